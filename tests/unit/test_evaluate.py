import keras
import numpy as np
import pytest

from helpers import data, evaluate


def by_hand(model, ids, block):
    """The protocol written out one block at a time, in NumPy."""
    total, count = 0.0, 0
    for start in range(0, len(ids) - 1, block):
        x = ids[start : start + block]
        y = ids[start + 1 : start + block + 1]
        x = x[: len(y)]
        logits = model(x[None, :]).numpy()[0].astype(np.float64)  # (time, vocab)
        log_p = logits - logits.max(-1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
        total -= log_p[np.arange(len(y)), y].sum()
        count += len(y)
    assert count == len(ids) - 1
    return total / count


@pytest.mark.parametrize("block, batch", [(256, 32), (50, 3), (7, 1), (500, 2)])
def test_char_loss_is_the_mean_over_every_character(text, tiny_lm, block, batch):
    corpus = data.char_corpus(text)
    model = tiny_lm(corpus.vocab.size)
    ids = corpus.val_ids  # 200 ids, so some blocks are short
    assert np.isclose(evaluate.char_loss(model, ids, block, batch), by_hand(model, ids, block), rtol=1e-6)


def test_char_loss_against_keras_on_whole_windows(text, tiny_lm):
    """Where every window is complete, Keras' evaluate computes the same mean."""
    corpus = data.char_corpus(text)
    model = tiny_lm(corpus.vocab.size)
    ids = corpus.val_ids[:161]  # 160 predictions: 8 windows of 20, 2 batches of 4
    keras_loss = model.evaluate(data.held_out_windows(ids, 20, 4), verbose=0)
    assert np.isclose(evaluate.char_loss(model, ids, 20), keras_loss, rtol=1e-5)


def test_char_loss_checks_its_arguments(text, tiny_lm):
    model = tiny_lm(5)
    for kwargs in (dict(block=0), dict(batch_size=True)):
        with pytest.raises(ValueError, match="must be an integer"):
            evaluate.char_loss(model, np.arange(5), **kwargs)
    with pytest.raises(ValueError, match="at least 2"):
        evaluate.char_loss(model, np.array([1]))


@pytest.mark.parametrize("cell", ["SimpleRNN", "GRU", "LSTM"])
@pytest.mark.parametrize("chunk", [1, 7, 2048])
def test_stream_loss_is_one_pass_over_the_whole_text(text, cell, chunk):
    """Carrying the state chunk to chunk equals reading the text in one piece."""
    corpus = data.char_corpus(text)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(corpus.vocab.size, 8),
            getattr(keras.layers, cell)(12, return_sequences=True),
            keras.layers.Dense(corpus.vocab.size),
        ]
    )
    ids = corpus.val_ids[:120]
    whole = by_hand(model, ids, len(ids))  # one block: each character sees all before it
    assert np.isclose(evaluate.stream_loss(model, ids, chunk), whole, rtol=1e-5)
    # and it is not the block protocol: fresh states every 10 characters lose context
    assert not np.isclose(evaluate.char_loss(model, ids, 10), whole, rtol=1e-5)


def test_stream_loss_refuses_models_it_cannot_stream(tiny_lm):
    inputs = keras.Input((None,), dtype="int32")
    functional = keras.Model(inputs, keras.layers.Dense(5)(keras.layers.Embedding(5, 4)(inputs)))
    with pytest.raises(ValueError, match="Sequential"):
        evaluate.stream_loss(functional, np.arange(5))
    feed_forward = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(5, 4),
                                     keras.layers.Dense(5)])
    with pytest.raises(ValueError, match="recurrent"):
        evaluate.stream_loss(feed_forward, np.arange(5))
    with pytest.raises(ValueError, match="chunk"):
        evaluate.stream_loss(tiny_lm(5), np.arange(5), chunk=0)


def _gpt(vocab_size, context):
    from helpers import models

    keras.utils.set_random_seed(0)
    return models.gpt(models.GPTConfig(vocab_size, context, 1, 2, 16))


@pytest.mark.parametrize("n", [25, 61])
def test_window_loss_with_stride_one_is_the_true_sliding_window(text, n):
    """Stride 1: character t is predicted from the `context` characters before it (all of them near the start)."""
    corpus = data.char_corpus(text)
    context = 8
    model = _gpt(corpus.vocab.size, context)
    ids = corpus.val_ids[: n + 1]
    total = 0.0
    for t in range(n):  # target ids[t + 1]
        start = max(0, t + 1 - context)
        x = ids[start : max(t + 1, context)][None]  # the first window is read whole, causally
        logits = model(x).numpy()[0, t - start].astype(np.float64)
        log_p = logits - logits.max() - np.log(np.exp(logits - logits.max()).sum())
        total -= log_p[ids[t + 1]]
    assert np.isclose(evaluate.window_loss(model, ids, context, stride=1), total / n, rtol=1e-5)


@pytest.mark.parametrize("n, stride", [(64, 8), (61, 3), (30, 4), (5, 4)])
def test_window_loss_with_stride_equal_to_context_is_the_block_protocol(text, n, stride):
    corpus = data.char_corpus(text)
    model = _gpt(corpus.vocab.size, 8)
    ids = corpus.val_ids[: n + 1]
    blocks = evaluate.char_loss(model, ids, 8)
    strided = evaluate.window_loss(model, ids, 8, stride=8)
    if n % 8 == 0:  # the short last block aside, the two cut the text the same way
        assert np.isclose(strided, blocks, rtol=1e-5)
    # any stride scores every character exactly once: for a model that reads
    # no context at all, every protocol gives the plain mean over characters
    keras.utils.set_random_seed(1)
    no_context = keras.Sequential([keras.Input((None,), dtype="int32"),
                                   keras.layers.Embedding(corpus.vocab.size, 4),
                                   keras.layers.Dense(corpus.vocab.size)])
    per_char = by_hand(no_context, ids, 1)
    assert np.isclose(evaluate.window_loss(no_context, ids, 8, stride=stride), per_char, rtol=1e-6)


def test_window_loss_checks_its_arguments():
    model = _gpt(5, 8)
    with pytest.raises(ValueError, match="must not exceed"):
        evaluate.window_loss(model, np.arange(20) % 5, 8, stride=9)
    with pytest.raises(ValueError, match="must be an integer"):
        evaluate.window_loss(model, np.arange(20) % 5, 0)
