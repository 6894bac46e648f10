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
