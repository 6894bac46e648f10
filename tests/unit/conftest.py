"""Fixtures for the helpers unit tests: tiny, seeded models and data."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.pop("LLM_BOOK_PRECISION", None)  # the unit tests set policies themselves

from helpers import device  # noqa: E402  (imports TensorFlow quietly)

import ipywidgets  # noqa: E402,F401  (imported before any test patches IPython)
import keras  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded():
    device.seed_everything(0)
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def text():
    """A short text with a small alphabet, long enough for a few batches."""
    return ("to be or not to be that is the question\n" * 60)[:2000]


@pytest.fixture
def tiny_lm():
    """A compiled character model: (batch, time) ids → (batch, time, vocab) logits."""

    def build(vocab_size, learning_rate=1e-2, optimizer=None):
        model = keras.Sequential(
            [
                keras.Input((None,), dtype="int32"),
                keras.layers.Embedding(vocab_size, 8),
                keras.layers.SimpleRNN(16, return_sequences=True),
                keras.layers.Dense(vocab_size),
            ]
        )
        model.compile(
            optimizer=optimizer or keras.optimizers.Adam(learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    return build


@pytest.fixture
def regression_data():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32"))[:, None]
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(32, drop_remainder=True)
