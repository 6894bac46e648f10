"""Sampling text from a character language model."""

from __future__ import annotations

import weakref

import numpy as np

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _next_logits_fn(model):
    """``model``'s forward pass as one compiled graph for any sequence length.

    Calling a Keras RNN eagerly steps through time in Python, tens of
    milliseconds per character; traced once with a dynamic time axis, the
    same call takes about a millisecond.
    """
    fn = _COMPILED.get(model)
    if fn is None:
        import tensorflow as tf

        @tf.function(input_signature=[tf.TensorSpec((1, None), tf.int32)])
        def fn(ids):  # (1, time) → (vocab,) logits for the next character
            return model(ids, training=False)[0, -1]

        _COMPILED[model] = fn
    return fn


def softmax_with_temperature(logits, temperature: float) -> np.ndarray:
    """p_i = exp(z_i / T) / Σ_j exp(z_j / T), computed stably in float64.

    ``temperature`` 0 puts all the mass on the largest logit (greedy).
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ValueError(f"temperature must be a number ≥ 0, got {temperature!r}")
    if not temperature >= 0 or not np.isfinite(temperature):
        raise ValueError(f"temperature must be a number ≥ 0, got {temperature!r}")
    z = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        p = np.zeros_like(z)
        p[np.argmax(z)] = 1.0
        return p
    z = z / temperature
    z -= z.max()
    p = np.exp(z)  # exp(-inf) = 0: masked entries keep probability 0
    return p / p.sum()


def sample(
    model,
    vocab,
    prompt: str,
    length: int = 200,
    *,
    temperature: float = 1.0,
    context: int = 100,
    seed: int | None = 0,
    allowed=None,
) -> str:
    """Continue ``prompt`` by ``length`` characters drawn from ``model``.

    ``model`` maps a batch of id sequences ``(1, time)`` to next-character
    logits ``(1, time, vocab)``; only the last position is used.  The model
    sees at most the last ``context`` characters.  ``temperature`` below 1
    sharpens the distribution, above 1 flattens it, 0 is greedy.

    ``allowed`` constrains the decoding: called with the text generated so
    far (the prompt excluded), it returns a boolean mask over the
    vocabulary, or ``None`` for no constraint at that step.  Characters
    outside the mask get probability 0 and the rest are renormalised, so a
    form (a line length, a rhyme position) holds whatever the model prefers.
    """
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("prompt must be a non-empty string")
    for name, value in (("length", length), ("context", context)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
    softmax_with_temperature([0.0], temperature)  # validates temperature
    rng = np.random.default_rng(seed)
    ids = list(vocab.encode(prompt))
    next_logits = _next_logits_fn(model)
    for _ in range(length):
        window = np.asarray(ids[-context:], dtype=np.int32)[None, :]  # (1, time)
        logits = next_logits(window).numpy()  # (vocab,)
        if allowed is not None:
            mask = allowed(vocab.decode(ids[len(prompt) :]))
            if mask is not None:
                mask = np.asarray(mask, dtype=bool)
                if mask.shape != logits.shape or not mask.any():
                    raise ValueError(f"allowed must return a non-empty mask of {logits.shape[0]} booleans")
                logits = np.where(mask, logits, -np.inf)
        p = softmax_with_temperature(logits, temperature)
        ids.append(int(rng.choice(len(p), p=p)))
    return prompt + vocab.decode(ids[len(prompt) :])
