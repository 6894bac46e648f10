"""Held-out loss of a character language model, exactly, under a named protocol.

Keras' ``evaluate`` averages per-batch means, and a window that starts from
a fresh state predicts its first characters with almost no context, so how
the held-out text is cut moves the figure.  The book therefore states the
protocol beside every held-out loss it reports.  Here it is nanoGPT's
(Karpathy, 2022): the held-out ids are cut into non-overlapping
blocks of ``block`` characters (256 by default), each predicted from a fresh
state or an empty context, and the loss is the mean negative log-likelihood
over every character after the first, the short last block included.
"""

from __future__ import annotations

import weakref

import numpy as np

from helpers import device  # noqa: F401  (imports TensorFlow quietly)

#: nanoGPT's evaluation block for character-level Shakespeare.
NANOGPT_BLOCK = 256


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _nll_sum_fn(model):
    """Σ −log p(target | inputs) over a batch, in float64, as one compiled graph.

    Calling a Keras RNN eagerly steps through time in Python; traced once
    (and once more for the short last block) it runs several times faster.
    """
    fn = _COMPILED.get(model)
    if fn is None:
        import tensorflow as tf

        @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32)] * 2)
        def fn(inputs, targets):  # (batch, time), (batch, time) → ()
            logits = tf.cast(model(inputs, training=False), tf.float64)  # (batch, time, vocab)
            log_p = tf.nn.log_softmax(logits, axis=-1)
            picked = tf.gather(log_p, targets[..., None], axis=-1, batch_dims=2)  # (batch, time, 1)
            return -tf.reduce_sum(picked)

        _COMPILED[model] = fn
    return fn


def _nll_sum(model, inputs: np.ndarray, targets: np.ndarray) -> float:
    return float(_nll_sum_fn(model)(inputs, targets))


def char_loss(model, ids, block: int = NANOGPT_BLOCK, batch_size: int = 32) -> float:
    """Mean held-out loss in nats per character (nanoGPT's protocol, see the module).

    ``model`` maps ``(batch, time)`` int32 ids to ``(batch, time, vocab)``
    logits.  Every character of ``ids`` after the first is predicted once.
    """
    for name, value in (("block", block), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
    ids = np.asarray(ids, dtype=np.int32)
    if ids.ndim != 1 or len(ids) < 2:
        raise ValueError(f"ids must be a 1-D sequence of at least 2 ids, got shape {ids.shape}")
    inputs, targets = ids[:-1], ids[1:]
    count = len(targets) // block  # complete blocks
    total = 0.0
    full_x = inputs[: count * block].reshape(count, block)  # (blocks, block)
    full_y = targets[: count * block].reshape(count, block)
    for start in range(0, count, batch_size):
        total += _nll_sum(model, full_x[start : start + batch_size], full_y[start : start + batch_size])
    if len(targets) > count * block:  # the short last block
        total += _nll_sum(model, inputs[None, count * block :], targets[None, count * block :])
    return total / len(targets)
