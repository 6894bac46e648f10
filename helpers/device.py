"""One place that decides where the book's code runs, and in what precision.

Everything runs on a CPU.  When TensorFlow sees a GPU it is used with no code
change, with mixed precision on GPUs with tensor cores.  :func:`strategy`
mirrors a model over two or more GPUs when it is built in the strategy's
scope; :func:`helpers.train.fit` trains such a model like any other.

Precision is a choice made in two places.  :func:`setup` sets Keras' global
policy for training: mixed precision where the hardware gains from it, or
what ``LLM_BOOK_PRECISION`` forces (the tests force ``mixed_bfloat16`` on a
CPU to check that the exactness checks below cannot pick it up).  Code that
checks one implementation against another, or a gradient against a formula,
builds its models inside :func:`exact`, which is float32 on every device.

Importing this module imports TensorFlow with its native start-up log
silenced, so a notebook imports it before ``keras`` or ``tensorflow``.
(With ``KERAS_BACKEND=jax`` it imports no TensorFlow: ``bench/gpu.py``
measures the benchmark model that way on GPU machines without TensorFlow.)
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import sys

import numpy as np

from helpers import frontend

#: Lowest CUDA compute capability whose tensor cores speed up float16 maths
#: (Volta, 7.0).  Older GPUs run mixed precision no faster, so it stays off.
MIXED_PRECISION_MIN_CAPABILITY = (7, 0)
#: Environment variable that forces the training policy ("float32",
#: "mixed_float16" or "mixed_bfloat16"), whatever the hardware.
PRECISION_ENV = "LLM_BOOK_PRECISION"
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


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


def _keras_backend() -> str:
    """Keras' backend as Keras reads it: ``KERAS_BACKEND``, else ``~/.keras/keras.json``, else TensorFlow."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    config = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "keras.json")
    try:
        import json

        with open(config) as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


#: The book runs on TensorFlow; only ``bench/gpu.py`` runs on JAX, on a GPU
#: machine that has no TensorFlow.
BACKEND = _keras_backend()

if BACKEND == "tensorflow":
    with quiet_native_stderr():
        import tensorflow as tf
elif BACKEND == "jax":  # pragma: no cover - exercised by bench/gpu.py on a GPU machine
    tf = None
else:
    raise ImportError(f"the book's helpers run on Keras' TensorFlow backend (or JAX for bench/gpu.py), "
                      f"not {BACKEND!r}: unset KERAS_BACKEND or set it to 'tensorflow'")

import keras  # noqa: E402  (after TensorFlow, which it uses as its backend)


@functools.cache
def _physical_gpus() -> tuple:
    if tf is None:  # pragma: no cover - JAX (bench/gpu.py)
        import jax

        return tuple(d for d in jax.devices() if d.platform == "gpu")
    with quiet_native_stderr():  # the first query initialises CUDA, noisily
        return tuple(tf.config.list_physical_devices("GPU"))


def gpus() -> list:
    """The physical GPUs Keras' backend can use (an empty list on a CPU machine)."""
    return list(_physical_gpus())


def _gpu_details(gpu) -> dict:
    if tf is None:  # pragma: no cover - JAX (bench/gpu.py)
        capability = getattr(gpu, "compute_capability", None)  # "9.0" on CUDA
        return {"device_name": gpu.device_kind,
                "compute_capability": tuple(int(n) for n in capability.split(".")) if capability else None}
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
    """A ``tf.distribute`` strategy: mirrored over 2+ GPUs, else the default one.

    Build and compile the model inside ``strategy().scope()``; then
    :func:`helpers.train.fit` trains it, each batch split across the devices.
    """
    if tf is None:  # pragma: no cover
        raise RuntimeError(f"strategy() needs Keras' TensorFlow backend; KERAS_BACKEND is {BACKEND!r}")
    if len(gpus()) >= 2:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def training_policy() -> str:
    """The dtype policy for training on this machine, or the one ``LLM_BOOK_PRECISION`` forces."""
    forced = os.environ.get(PRECISION_ENV, "").strip()
    if forced:
        if forced not in POLICIES:
            raise ValueError(f"{PRECISION_ENV} must be one of {', '.join(POLICIES)}, got {forced!r}")
        return forced
    return "mixed_float16" if mixed_precision_recommended() else "float32"


def use_mixed_precision(enable: bool | None = None) -> bool:
    """Set Keras' global dtype policy; ``None`` decides as :func:`training_policy` does.

    Returns whether mixed precision is now on.  Models that use it should
    give their output layer ``dtype="float32"`` so the softmax and the loss
    stay in full precision.
    """
    if enable is None:
        policy = training_policy()
    else:
        policy = "mixed_float16" if enable else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy != "float32"


@contextlib.contextmanager
def exact():
    """Build models in float32, whatever the global policy (for equality and gradient checks).

    Layers keep the policy they were built with, so a model built inside
    this block computes in float32 afterwards too.
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def cpu_bfloat16_units(cpuinfo: str | None = None) -> list[str]:
    """The CPU's instructions for bfloat16 products: ``"amx_bf16"``, ``"avx512_bf16"``, both or none.

    Read from the flags in ``/proc/cpuinfo`` (an empty list where there is
    none, as on macOS).  Without them TensorFlow still computes in bfloat16,
    by converting to float32 and back, which is no faster than float32.
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return []
    flags = set(cpuinfo.split())
    return [unit for unit in ("amx_bf16", "avx512_bf16") if unit in flags]


def describe() -> str:
    """One line naming the hardware: ``"CPU: 2 cores"`` or ``"GPU: NVIDIA H100 (mixed precision)"``.

    On a CPU the precision is named only when it is not float32 (when
    forced); for ``mixed_bfloat16`` the line also says whether the CPU has
    bfloat16 instructions that the products use, or converts instead.
    """
    devices = gpus()
    policy = keras.mixed_precision.global_policy().name
    if not devices:
        if policy == "mixed_bfloat16":
            units = cpu_bfloat16_units()
            how = ("bfloat16 instructions: " + ", ".join(u.upper() for u in units)) if units else \
                "no bfloat16 instructions, so products are converted to float32"
            return f"CPU: {os.cpu_count()} cores ({policy}; {how})"
        return f"CPU: {os.cpu_count()} cores" + ("" if policy == "float32" else f" ({policy})")
    names = [_gpu_details(gpu).get("device_name") or getattr(gpu, "name", str(gpu)) for gpu in devices]
    label = names[0] if len(set(names)) == 1 else ", ".join(names)
    count = f"{len(devices)} × " if len(devices) > 1 else ""
    precision = {"float32": "float32", "mixed_float16": "mixed precision"}.get(policy, policy)
    return f"GPU: {count}{label} ({precision})"


def setup(seed: int = 0, mixed: bool = True) -> str:
    """Seed everything, choose the training precision, and describe the hardware.

    The first code cell of every chapter prints what this returns.  Float32
    products stay float32 on GPUs with TensorFloat-32 (TF32 is turned off;
    on Keras' JAX backend, used only by ``bench/gpu.py``, JAX's default stays).  With
    ``mixed=False`` the chapter computes in float32 on every device (for a
    chapter whose checks are all numerical); otherwise the global policy is
    :func:`training_policy`'s.
    """
    seed_everything(seed)
    frontend.keep_plots_on_the_main_thread()  # see there: JupyterLab's subshells
    # Ampere and later GPUs run float32 matrix products in TF32 (a 10-bit
    # mantissa) unless told not to: errors near 1e-3 that would break the
    # float32 checks of device.exact().  Training in mixed precision does
    # not use float32 products, so this costs it nothing.
    if tf is not None:
        tf.config.experimental.enable_tensor_float_32_execution(False)
    if mixed:
        use_mixed_precision()
    else:
        keras.mixed_precision.set_global_policy("float32")
    return describe()
