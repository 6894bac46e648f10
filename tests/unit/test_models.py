import keras
import numpy as np
import pytest

from helpers import models, train


def test_char_rnn_predicts_at_every_position():
    model = models.char_rnn(keras.layers.GRU(8, return_sequences=True), vocab_size=11, embedding_dim=4)
    out = model(np.zeros((2, 7), "int32"))
    assert out.shape == (2, 7, 11) and out.dtype == "float32"


def test_decoder_block_parameters_and_causality():
    block = models.DecoderBlock(width=16, heads=4)
    x = np.random.default_rng(0).normal(size=(1, 6, 16)).astype("float32")
    y = block(x).numpy()
    assert block.count_params() == 12 * 16**2 + 13 * 16
    changed = x.copy()
    changed[:, 4:] += 1.0  # change the future
    y2 = block(changed).numpy()
    assert np.allclose(y[:, :4], y2[:, :4], atol=1e-6) and not np.allclose(y[:, 4:], y2[:, 4:])
    with pytest.raises(ValueError, match="multiple of heads"):
        models.DecoderBlock(width=10, heads=4)


def test_gpt_shapes_parameters_and_training(text):
    from helpers import data

    corpus = data.char_corpus(text)
    config = models.GPTConfig(vocab_size=corpus.vocab.size, context=32, layers=2, heads=2, width=16)
    model = models.gpt(config)
    assert model.count_params() == config.parameters
    assert model(np.zeros((3, 32), "int32")).shape == (3, 32, corpus.vocab.size)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    train_ds, val_ds = corpus.datasets(32, 8)
    result = train.fit(model, train_ds, val_ds, epochs=2, steps_per_epoch=30, live=False, plot=False)
    assert result.completed and result.history.loss[-1] < result.history.loss[0]
    assert result.final_val_loss < np.log(corpus.vocab.size), "better than guessing uniformly"


def test_gpt_config_is_checked():
    for kwargs in (dict(vocab_size=0), dict(vocab_size=5, layers=1.5), dict(vocab_size=5, width=10, heads=4),
                   dict(vocab_size=5, dropout=1.0)):
        with pytest.raises(ValueError):
            models.GPTConfig(**kwargs)


def test_encoder_block_reads_both_ways_and_round_trips():
    block = models.DecoderBlock(width=8, heads=2, causal=False)
    x = np.random.default_rng(1).normal(size=(1, 5, 8)).astype("float32")
    changed = x.copy()
    changed[:, 3:] += 1.0
    assert not np.allclose(block(x).numpy()[:, :3], block(changed).numpy()[:, :3])
    again = models.DecoderBlock.from_config(block.get_config())
    assert again.causal is False and models.DecoderBlock(8, 2).get_config()["causal"] is True
