import os
import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import device


class FakeGPU:
    def __init__(self, name):
        self.name = name


def fake_gpus(monkeypatch, details):
    """Pretend TensorFlow sees one GPU per entry of ``details``."""
    gpus = [FakeGPU(f"/physical_device:GPU:{i}") for i in range(len(details))]
    monkeypatch.setattr(device, "gpus", lambda: gpus)
    table = {gpu.name: d for gpu, d in zip(gpus, details)}
    monkeypatch.setattr(device, "_gpu_details", lambda gpu: table[gpu.name])
    return gpus


def test_describe_on_this_cpu():
    assert device.gpus() == []  # the test machines have no GPU
    assert device.describe() == f"CPU: {os.cpu_count()} cores"
    assert device.setup(seed=1) == device.describe()
    assert keras.mixed_precision.global_policy().name == "float32"


def test_describe_says_whether_bfloat16_has_instructions(monkeypatch):
    assert device.cpu_bfloat16_units("flags : fpu avx512f avx512_bf16 amx_tile amx_bf16") == ["amx_bf16", "avx512_bf16"]
    assert device.cpu_bfloat16_units("flags : fpu avx512f avx512_fp16") == []
    monkeypatch.setattr(device, "cpu_bfloat16_units", lambda: ["avx512_bf16"])
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        assert device.describe() == f"CPU: {os.cpu_count()} cores (mixed_bfloat16; bfloat16 instructions: AVX512_BF16)"
        monkeypatch.setattr(device, "cpu_bfloat16_units", lambda: [])
        assert device.describe().endswith("(mixed_bfloat16; no bfloat16 instructions, so products are converted to float32)")
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_setup_keeps_float32_products_float32():
    """TF32 would round float32 matrix products to ~1e-3 on recent GPUs."""
    tf.config.experimental.enable_tensor_float_32_execution(True)
    device.setup(seed=0)
    assert not tf.config.experimental.tensor_float_32_execution_enabled()


def test_describe_a_gpu_with_mixed_precision(monkeypatch):
    fake_gpus(monkeypatch, [{"device_name": "NVIDIA H100", "compute_capability": (9, 0)}])
    assert device.use_mixed_precision() is True
    assert device.describe() == "GPU: NVIDIA H100 (mixed precision)"


def test_describe_two_old_gpus(monkeypatch):
    fake_gpus(monkeypatch, [{"device_name": "Tesla P100", "compute_capability": (6, 0)}] * 2)
    assert device.use_mixed_precision() is False
    assert device.describe() == "GPU: 2 × Tesla P100 (float32)"


def test_describe_mixed_gpus(monkeypatch):
    fake_gpus(monkeypatch, [{"device_name": "A", "compute_capability": (8, 0)}, {}])
    assert device.mixed_precision_recommended() is False  # one GPU has no capability
    assert device.describe() == "GPU: 2 × A, /physical_device:GPU:1 (float32)"


def test_mixed_precision_can_be_switched():
    assert device.use_mixed_precision(True) is True
    assert keras.mixed_precision.global_policy().name == "mixed_float16"
    assert device.use_mixed_precision(False) is False
    assert keras.mixed_precision.global_policy().name == "float32"


def test_strategy_default_on_one_device():
    assert isinstance(device.strategy(), type(tf.distribute.get_strategy()))


def test_strategy_mirrors_over_two_gpus(monkeypatch):
    fake_gpus(monkeypatch, [{}, {}])
    monkeypatch.setattr(tf.distribute, "MirroredStrategy", lambda: "mirrored")
    assert device.strategy() == "mirrored"


def test_seed_everything_repeats_every_generator():
    def draw():
        return random.random(), np.random.rand(), float(tf.random.uniform(())), float(keras.random.uniform(()))

    device.seed_everything(7)
    first = draw()
    device.seed_everything(7)
    assert draw() == first


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True, None])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        device.seed_everything(bad)


def test_quiet_native_stderr_hides_fd2_only_inside(capfd):
    with device.quiet_native_stderr():
        os.write(2, b"hidden\n")
    os.write(2, b"shown\n")
    err = capfd.readouterr().err
    assert "hidden" not in err and "shown" in err


def test_the_training_policy_can_be_forced(monkeypatch):
    monkeypatch.setenv(device.PRECISION_ENV, "mixed_bfloat16")
    assert device.training_policy() == "mixed_bfloat16"
    assert device.setup(seed=0).startswith(f"CPU: {os.cpu_count()} cores (mixed_bfloat16; ")
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    monkeypatch.setenv(device.PRECISION_ENV, "half")
    with pytest.raises(ValueError, match="LLM_BOOK_PRECISION must be one of"):
        device.training_policy()
    monkeypatch.delenv(device.PRECISION_ENV)
    assert device.training_policy() == "float32"  # this CPU


def test_exact_builds_in_float32_whatever_the_global_policy():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    with device.exact():
        inside = keras.layers.Dense(2)
        assert keras.mixed_precision.global_policy().name == "float32"
    outside = keras.layers.Dense(2)
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16", "restored"
    x = np.ones((1, 3), "float32")
    assert inside(x).dtype == "float32" and outside(x).dtype == "bfloat16"
    with pytest.raises(RuntimeError):
        with device.exact():
            raise RuntimeError("restored on errors too")
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"


MIRRORED = r"""
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from helpers import device, train

device.seed_everything(0)
x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], "float32")
batch = tf.data.Dataset.from_tensor_slices((x, y)).batch(16, drop_remainder=True)  # global batch 2B = 16


def build():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


single = build()
start = [w.copy() for w in single.get_weights()]
strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
with strategy.scope():
    mirrored = build()
mirrored.set_weights(start)
a = train.fit(single, batch, epochs=1, plot=False)
b = train.fit(mirrored, batch, epochs=1, plot=False)
assert strategy.num_replicas_in_sync == 2
assert a.completed and b.completed and a.steps == b.steps == 1
gap = max(float(np.abs(u - v).max()) for u, v in zip(single.get_weights(), mirrored.get_weights()))
moved = max(float(np.abs(u - v).max()) for u, v in zip(single.get_weights(), start))
assert moved > 1e-3 and gap < 1e-6, (moved, gap)
print("OK", moved, gap)
"""


def test_train_fit_honours_a_mirrored_strategy():
    """One synchronous step over two (logical CPU) replicas = one step on one device, same global batch."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr[-3000:]


def test_a_chapter_can_choose_float32_everywhere(monkeypatch):
    monkeypatch.setenv(device.PRECISION_ENV, "mixed_bfloat16")
    assert device.setup(seed=0, mixed=False) == f"CPU: {os.cpu_count()} cores"
    assert keras.mixed_precision.global_policy().name == "float32"
