"""One place that decides where the book's code runs.

Everything runs on a CPU.  When TensorFlow sees GPUs they are used with no
code change: one GPU through the default strategy, two or more through
``MirroredStrategy``, and mixed precision on GPUs with tensor cores.

Importing this module imports TensorFlow with its native start-up log
silenced, so a notebook imports it before ``keras`` or ``tensorflow``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import sys

import numpy as np

#: Lowest CUDA compute capability whose tensor cores speed up float16 maths
#: (Volta, 7.0).  Older GPUs run mixed precision no faster, so it stays off.
MIXED_PRECISION_MIN_CAPABILITY = (7, 0)


@contextlib.contextmanager
def quiet_native_stderr():
    """Send file descriptor 2 to /dev/null for the duration of the block.

    TensorFlow's C++ start-up messages ("oneDNN custom operations are on",
    "Could not find cuda drivers…") are written before its logging is set up,
    so ``TF_CPP_MIN_LOG_LEVEL`` cannot hide them, and a notebook shows them
    as red error output.  Python exceptions and warnings are unaffected.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


with quiet_native_stderr():
    import tensorflow as tf

import keras  # noqa: E402  (after TensorFlow, which it uses as its backend)


@functools.cache
def _physical_gpus() -> tuple:
    with quiet_native_stderr():  # the first query initialises CUDA, noisily
        return tuple(tf.config.list_physical_devices("GPU"))


def gpus() -> list:
    """The physical GPUs TensorFlow can use (an empty list on a CPU machine)."""
    return list(_physical_gpus())


def _gpu_details(gpu) -> dict:
    try:
        return tf.config.experimental.get_device_details(gpu) or {}
    except (RuntimeError, ValueError):  # pragma: no cover - driver specific
        return {}


def mixed_precision_recommended(devices: list | None = None) -> bool:
    """True when every visible GPU has tensor cores (compute capability ≥ 7.0)."""
    devices = gpus() if devices is None else devices
    if not devices:
        return False
    for gpu in devices:
        capability = _gpu_details(gpu).get("compute_capability")
        if capability is None or tuple(capability) < MIXED_PRECISION_MIN_CAPABILITY:
            return False
    return True


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and TensorFlow (and Keras' initialisers) with one number."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    os.environ["PYTHONHASHSEED"] = str(seed)  # for any subprocess we start
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)  # also seeds TensorFlow


def strategy():
    """A ``tf.distribute`` strategy: mirrored over 2+ GPUs, else the default one."""
    if len(gpus()) >= 2:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def use_mixed_precision(enable: bool | None = None) -> bool:
    """Set Keras' global dtype policy; ``None`` decides from the hardware.

    Returns whether mixed precision is now on.  Models that use it should
    give their output layer ``dtype="float32"`` so the softmax and the loss
    stay in full precision.
    """
    on = mixed_precision_recommended() if enable is None else bool(enable)
    keras.mixed_precision.set_global_policy("mixed_float16" if on else "float32")
    return on


def describe() -> str:
    """One line naming the hardware: ``"CPU: 2 cores"`` or ``"GPU: NVIDIA H100 (mixed precision)"``."""
    devices = gpus()
    if not devices:
        return f"CPU: {os.cpu_count()} cores"
    names = [_gpu_details(gpu).get("device_name", gpu.name) for gpu in devices]
    label = names[0] if len(set(names)) == 1 else ", ".join(names)
    count = f"{len(devices)} × " if len(devices) > 1 else ""
    precision = "mixed precision" if keras.mixed_precision.global_policy().name == "mixed_float16" else "float32"
    return f"GPU: {count}{label} ({precision})"


def setup(seed: int = 0) -> str:
    """Seed everything, pick the precision for this hardware, and describe it.

    The first code cell of every chapter prints what this returns.
    """
    seed_everything(seed)
    use_mixed_precision()
    return describe()
