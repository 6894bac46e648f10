"""helpers.distributed: two MultiWorkerMirroredStrategy workers on 127.0.0.1, and the launcher's clean-up."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
import pytest

from helpers import distributed


def _alive(pids) -> list[int]:
    """The pids in ``pids`` that still run (zombies count as ended)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _single_process(task):
    """The same steps in this process: Adam on each whole global batch; weights and losses."""
    import keras
    import tensorflow as tf

    ids, x, y = distributed.task_data(task)
    model = distributed.tiny_model(task)
    optimizer = keras.optimizers.Adam(task.learning_rate)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    losses = []
    for start in range(0, len(ids), task.global_batch):
        batch = slice(start, start + task.global_batch)
        with tf.GradientTape() as tape:
            loss = loss_fn(y[batch], model(x[batch], training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        losses.append(float(loss))
    return model.get_weights(), losses


def test_tf_config_and_ports():
    ports = distributed.free_ports(3)
    assert len(set(ports)) == 3 and all(0 < p < 65536 for p in ports)
    config = json.loads(distributed.tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1))
    assert config == {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
                      "task": {"type": "worker", "index": 1}}
    with pytest.raises(ValueError, match="index"):
        distributed.tf_config(["127.0.0.1:1"], 1)
    with pytest.raises(ValueError, match="n must be"):
        distributed.run_workers(["-c", "pass"], n=0)
    with pytest.raises(ValueError, match="sequence of strings"):
        distributed.run_workers("-c pass")
    with pytest.raises(ValueError, match="global_batch"):
        distributed.TinyTask(global_batch=0)


@pytest.mark.timeout(120)
def test_two_workers_agree_with_one_process():
    task = distributed.TinyTask(steps=3, global_batch=8)
    args = distributed.worker_args(task)
    assert args[:3] == ["-m", "helpers.distributed", "worker"] and "--global-batch" in args
    results = distributed.run_workers(args, n=2, timeout=90)
    assert not _alive(distributed.run_workers.last_pids), "a worker outlived run_workers"
    assert [r.index for r in results] == [0, 1] and all(r.returncode == 0 for r in results)
    first, second = (r.arrays for r in results)
    # every global batch was split between the workers, without overlap
    ids = np.concatenate([first["ids"], second["ids"]], axis=1)  # (steps, global_batch)
    np.testing.assert_array_equal(np.sort(ids, axis=1), np.arange(24).reshape(3, 8))
    weights = sorted(k for k in first if k.startswith("weight_"))
    assert len(weights) == 4
    for name in weights:  # the same updates on both workers, bit for bit
        np.testing.assert_array_equal(first[name], second[name])
    expected_weights, expected_losses = _single_process(task)
    for name, expected in zip(weights, expected_weights):
        np.testing.assert_allclose(first[name], expected, rtol=1e-5, atol=1e-6)
    # the global loss of every step, as one process computes it on the whole batch
    for r in results:
        np.testing.assert_allclose(r.arrays["losses"], expected_losses, rtol=1e-5)


@pytest.mark.timeout(30)
def test_a_hanging_worker_is_killed_at_the_timeout():
    # the worker ignores SIGTERM and starts a child that would outlive it
    token = uuid.uuid4().hex  # finds this test's grandchildren, and only them
    hang = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)  # {token}']); "
            "print('started', flush=True, file=sys.stderr); time.sleep(60)")
    start = time.perf_counter()
    with pytest.raises(distributed.WorkerError, match=r"still running after 2 s(.|\n)*started"):
        distributed.run_workers(["-c", hang], n=2, timeout=2, grace=0.5)
    assert time.perf_counter() - start < 10
    pids = distributed.run_workers.last_pids
    assert len(pids) == 2 and not _alive(pids)
    # the grandchildren were in the workers' process groups, so they went too
    strays = [p for p in psutil.process_iter(["cmdline"])
              if p.info["cmdline"] and token in " ".join(p.info["cmdline"])
              and p.status() != psutil.STATUS_ZOMBIE]
    assert not strays, strays


@pytest.mark.timeout(30)
def test_a_failing_worker_reports_its_stderr():
    fail = "import sys; sys.stderr.write('no luck here\\n'); sys.exit(3)"
    with pytest.raises(distributed.WorkerError, match=r"status 3(.|\n)*no luck here"):
        distributed.run_workers(["-c", fail], n=2, timeout=20)
    assert not _alive(distributed.run_workers.last_pids)
    # a worker that exits cleanly but saves nothing
    with pytest.raises(distributed.WorkerError, match="without saving"):
        distributed.run_workers(["-c", "pass"], n=1, timeout=20)
    assert os.environ.get(distributed.RESULT_ENV) is None


ROOT = Path(__file__).resolve().parents[2]  # the repository, for `python -m helpers…`
SLEEPER = "import time; time.sleep(60)  # {token}"


def _with_token(token):
    """Live processes whose command line holds ``token``."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if p.info["cmdline"] and token in " ".join(p.info["cmdline"]) \
                    and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p.pid)
        except psutil.NoSuchProcess:
            pass
    return found


@pytest.mark.timeout(30)
def test_an_interrupt_ends_every_worker():
    # the reader presses stop (SIGINT → KeyboardInterrupt) while workers run
    token = uuid.uuid4().hex
    timer = threading.Timer(1.0, signal.raise_signal, (signal.SIGINT,))
    timer.start()
    start = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            distributed.run_workers(["-c", SLEEPER.format(token=token)], n=2, timeout=20, grace=0.5)
    finally:
        timer.cancel()
    assert time.perf_counter() - start < 10
    pids = distributed.run_workers.last_pids
    assert len(pids) == 2 and not _alive(pids)
    assert not _with_token(token)


@pytest.mark.timeout(60)
def test_workers_die_with_a_killed_launcher():
    # the launcher (a kernel, say) is killed with SIGKILL: no clean-up runs in it
    token = uuid.uuid4().hex
    launcher_code = ("from helpers import distributed; distributed.run_workers("
                     f"['-c', {SLEEPER.format(token=token)!r}], n=2, timeout=40)")
    launcher = subprocess.Popen([sys.executable, "-c", launcher_code], cwd=ROOT)
    try:
        deadline = time.perf_counter() + 20
        while (len(workers := [pid for pid in _with_token(token) if pid != launcher.pid]) < 2
               and time.perf_counter() < deadline):
            time.sleep(0.1)
        assert len(workers) == 2, "the launcher started two workers"
        launcher.kill()  # SIGKILL
        launcher.wait()
        deadline = time.perf_counter() + 5
        while _alive(workers) and time.perf_counter() < deadline:
            time.sleep(0.1)
        left = _alive(workers)
    finally:
        launcher.kill()
        for pid in _with_token(token):  # clean up after a failure
            os.kill(pid, signal.SIGKILL)
    if sys.platform.startswith("linux"):
        assert not left, f"workers {left} outlived their killed launcher"


@pytest.mark.timeout(30)
def test_a_worker_ends_itself_at_its_deadline(monkeypatch):
    code = "from helpers import distributed; import time; distributed.start_watchdog(); time.sleep(60)"
    env = {**os.environ, distributed.DEADLINE_ENV: "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=25)
    assert done.returncode == distributed.DEADLINE_STATUS, done.stderr
    assert "deadline" in done.stderr and time.perf_counter() - start < 20
    # without the variable nothing is started
    monkeypatch.delenv(distributed.DEADLINE_ENV, raising=False)
    assert distributed.start_watchdog() is None
