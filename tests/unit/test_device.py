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


def test_mixed_precision_can_be_forced():
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
