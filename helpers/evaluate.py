"""Held-out loss of a character language model, exactly, under a named protocol.

Keras' ``evaluate`` averages per-batch means, and a window that starts from
a fresh state predicts its first characters with almost no context, so how
the held-out text is cut moves the figure.  The book therefore states the
protocol beside every held-out loss it reports.  Here it is nanoGPT's
(Karpathy, 2022): the held-out ids are cut into non-overlapping
blocks of ``block`` characters (256 by default), each predicted from a fresh
state or an empty context, and the loss is the mean negative log-likelihood
over every character after the first, the short last block included.

Two more protocols give every character more context, and name themselves
beside the figures they produce (``bench/run.py``, ``book/performance.md``):

* :func:`stream_loss`, *streaming*: a recurrent model's state is carried
  across the whole held-out text, so each character is predicted once from
  everything before it, as char-rnn evaluates (Karpathy, 2015);
* :func:`window_loss`, *sliding window*: a model with a fixed context (a
  GPT) reads overlapping windows and scores each character once, with at
  least ``context - stride`` characters before it.
"""

from __future__ import annotations

import weakref

import numpy as np

from helpers import device  # imports TensorFlow quietly (and says which backend)

#: nanoGPT's evaluation block for character-level Shakespeare.
NANOGPT_BLOCK = 256


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _nll(logits, targets):
    """Σ −log softmax(logits)[target], in float64: logits (batch, time, vocab), targets (batch, time)."""
    if device.tf is None:  # pragma: no cover - JAX (bench/gpu.py), which computes in float32: NumPy
        import keras

        logits = keras.ops.convert_to_numpy(logits).astype(np.float64)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        return -np.take_along_axis(log_p, np.asarray(targets)[..., None], axis=-1).sum()
    import tensorflow as tf

    log_p = tf.nn.log_softmax(tf.cast(logits, tf.float64), axis=-1)
    return -tf.reduce_sum(tf.gather(log_p, targets[..., None], axis=-1, batch_dims=2))


def _nll_sum_fn(model):
    """Σ −log p(target | inputs) over a batch, in float64, as one compiled graph.

    Calling a Keras RNN eagerly steps through time in Python; traced once
    (and once more for the short last block) it runs several times faster.
    """
    fn = _COMPILED.get(model)
    if fn is None and device.tf is None:  # pragma: no cover - JAX (bench/gpu.py): Keras' compiled predict
        def fn(inputs, targets):
            return _nll(model.predict_on_batch(inputs), targets)

        _COMPILED[model] = fn
    if fn is None:
        import tensorflow as tf

        @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32)] * 2)
        def fn(inputs, targets):  # (batch, time), (batch, time) → ()
            return _nll(model(inputs, training=False), targets)  # logits: (batch, time, vocab)

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


def _check_ids(ids) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int32)
    if ids.ndim != 1 or len(ids) < 2:
        raise ValueError(f"ids must be a 1-D sequence of at least 2 ids, got shape {ids.shape}")
    return ids


def _streaming_layers(model):
    """The model's layers in order, each recurrent one replaced by a copy that returns its state."""
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if not isinstance(model, keras.Sequential):
        raise ValueError(
            "stream_loss needs a keras.Sequential model whose recurrent layers return sequences; "
            f"got {type(model).__name__} (use char_loss, or window_loss for a model with a fixed context)"
        )
    out = []
    for layer in layers:
        if isinstance(layer, keras.layers.RNN):
            if not layer.return_sequences:
                raise ValueError(f"layer {layer.name} must return sequences to predict every character")
            config = dict(layer.get_config(), return_state=True, stateful=False, name=layer.name + "_stream")
            copy = type(layer).from_config(config)
            copy.build(layer.input.shape if hasattr(layer, "input") else (None, None, None))
            copy.set_weights(layer.get_weights())
            out.append(copy)
        else:
            out.append(layer)
    if not any(isinstance(layer, keras.layers.RNN) for layer in out):
        raise ValueError("stream_loss needs a recurrent model (GRU, LSTM, SimpleRNN); use window_loss")
    return out


def stream_loss(model, ids, chunk: int = 2048) -> float:
    """Mean loss in nats per character with the state carried across all of ``ids`` (streaming).

    One stream, batch 1: the text is fed ``chunk`` characters at a time,
    and each recurrent layer starts every chunk from the state the last one
    ended in, so character ``t`` is predicted from characters ``0 … t-1``.
    ``model`` is a ``keras.Sequential`` character model (embedding, recurrent
    layers returning sequences, per-position layers).
    """
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be an integer ≥ 1, got {chunk!r}")
    ids = _check_ids(ids)
    import keras

    layers = _streaming_layers(model)

    def run(x, states):  # x: (1, time) ids; states: one list per recurrent layer
        new_states, k = [], 0
        for layer in layers:
            if isinstance(layer, keras.layers.RNN):
                out = layer(x, initial_state=states[k] if states is not None else None, training=False)
                x, state = out[0], list(out[1:])
                new_states.append(state)
                k += 1
            else:
                x = layer(x, training=False)
        return x, new_states

    if device.tf is None:  # pragma: no cover - JAX (bench/gpu.py): its recurrence is a compiled scan
        first, later = (lambda x: run(x, None)), run
    else:
        import tensorflow as tf

        first, later = tf.function(lambda x: run(x, None)), tf.function(run)
    inputs, targets = ids[:-1], ids[1:]
    total, states = 0.0, None
    for start in range(0, len(targets), chunk):
        x = keras.ops.convert_to_tensor(inputs[None, start : start + chunk])
        logits, states = (first(x) if states is None else later(x, states))
        total += float(_nll(logits, targets[None, start : start + chunk]))  # logits: (1, time, vocab)
    return total / len(targets)


def window_loss(model, ids, context: int, stride: int | None = None, batch_size: int = 32) -> float:
    """Mean loss in nats per character over overlapping windows (sliding window).

    Windows of ``context`` characters start every ``stride`` characters
    (half a window by default); the first window scores all its
    characters, every later one only its last ``stride``, so each character
    is scored once and, after the first window, with at least
    ``context - stride`` characters of context.  For models with a fixed
    context, such as a GPT, whose "state" is its window.
    """
    stride = context // 2 if stride is None else stride
    for name, value in (("context", context), ("stride", stride), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
    if stride > context:
        raise ValueError(f"stride ({stride}) must not exceed context ({context})")
    ids = _check_ids(ids)
    inputs, targets = ids[:-1], ids[1:]
    n = len(targets)
    if n <= context:
        return _nll_sum(model, inputs[None], targets[None]) / n
    total = _nll_sum(model, inputs[None, :context], targets[None, :context])
    starts = list(range(stride, n - context + 1, stride))
    last = starts[-1] + context if starts else context  # characters scored so far
    total += _scored_tail_sum(model, inputs, targets, starts, context, stride, batch_size)
    if last < n:  # the end of the text: one window ending at the last character
        start = n - context
        total += _tail_nll(model, inputs[None, start:], targets[None, start:], n - last)
    return total / n


def _tail_nll(model, x, y, keep: int) -> float:
    """Σ −log p over the last ``keep`` positions of each row."""
    return float(_nll(model(x, training=False)[:, -keep:], y[:, -keep:]))


def _scored_tail_sum(model, inputs, targets, starts, context, stride, batch_size) -> float:
    total = 0.0
    for b in range(0, len(starts), batch_size):
        chunk = starts[b : b + batch_size]
        x = np.stack([inputs[s : s + context] for s in chunk])
        y = np.stack([targets[s : s + context] for s in chunk])
        total += _tail_nll(model, x, y, stride)
    return total
