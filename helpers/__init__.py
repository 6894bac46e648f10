"""Shared code for *Large Language Models: From Theory to Practice*.

Only what two or more chapters use lives here:

* :mod:`helpers.device`  – hardware description, seeding, strategy, precision;
* :mod:`helpers.data`    – offline corpora, character vocabularies, ``tf.data`` windows;
* :mod:`helpers.train`   – :func:`helpers.train.fit`, the one training loop with a live plot;
* :mod:`helpers.sample`  – sampling text from a character language model;
* :mod:`helpers.widgets` – the hyperparameter panel.

Import the submodules you need: ``from helpers import data, train``.
"""

import os

# TensorFlow's C++ start-up chatter (CPU feature notices, plugin
# registration) says nothing a reader can act on; warnings and errors stay.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = ["data", "device", "sample", "train", "widgets"]
