"""Start several training processes on this machine, as a cluster would (chapter 13).

``tf.distribute.MultiWorkerMirroredStrategy`` runs one process per worker;
each process learns its place in the cluster from the ``TF_CONFIG``
environment variable, a JSON text naming every worker's address and its own
index.  On a real cluster each host sets it (see ``book/distributed.md``).
:func:`run_workers` plays the cluster on one machine: it picks free ports on
127.0.0.1, starts ``n`` Python processes with their ``TF_CONFIG``, waits for
them with a hard time limit, and collects what each one saved with
:func:`save_result`.

Whatever happens (a worker fails, the time runs out, the reader presses
stop) every process it started is ended before it returns: each worker runs
in its own process group, which is sent SIGTERM, then SIGKILL after a grace
period.  A failure raises :class:`WorkerError` with the end of the failing
worker's stderr.  Should the launching process itself die without cleaning
up (a kernel restart, SIGKILL), the workers do not live on: on Linux each
asks the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``), and
everywhere the book's worker ends itself at its own deadline
(:func:`start_watchdog`, from :data:`DEADLINE_ENV`).

The module also holds the book's worker, a custom training loop under
``MultiWorkerMirroredStrategy`` on a tiny classifier (Keras 3's
``model.fit`` does not support that strategy: keras-team/keras issue
20585)::

    python -m helpers.distributed worker --steps 4 --global-batch 16

Importing this module does not import TensorFlow: the launcher and its
tests stay fast, and only the worker pays for the import.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

#: Environment variable naming the file a worker saves its result to.
RESULT_ENV = "LLM_BOOK_WORKER_RESULT"
#: Environment variable with the seconds after which a worker ends itself.
DEADLINE_ENV = "LLM_BOOK_WORKER_DEADLINE"
#: Exit status of a worker ended by its own deadline (as timeout(1) uses).
DEADLINE_STATUS = 124
#: Characters of a failing worker's stderr quoted in :class:`WorkerError`.
STDERR_TAIL = 3000


def start_watchdog() -> float | None:
    """Called by a worker: end this process when :data:`DEADLINE_ENV` seconds have passed.

    A daemon thread sleeps that long, writes a line to stderr and calls
    ``os._exit(DEADLINE_STATUS)``, so a worker whose launcher died cannot run
    on for ever.  Returns the deadline in seconds, or None (nothing started)
    when the variable is not set.
    """
    value = os.environ.get(DEADLINE_ENV)
    if not value:
        return None
    seconds = float(value)
    if not seconds > 0:
        raise ValueError(f"{DEADLINE_ENV} must be a number of seconds > 0, got {value!r}")

    def end():
        time.sleep(seconds)
        try:
            sys.stderr.write(f"worker deadline of {seconds:g} s ({DEADLINE_ENV}) reached: exiting\n")
            sys.stderr.flush()
        finally:
            os._exit(DEADLINE_STATUS)

    threading.Thread(target=end, name="worker-deadline", daemon=True).start()
    return seconds


def _die_with_parent():
    """A ``preexec_fn`` (Linux): SIGKILL this child when the process that started it dies.

    Elsewhere it returns ``None`` and workers rely on their deadline.  The
    kernel ties the signal to the launching *thread*: call :func:`run_workers`
    from a thread that outlives the workers (the main thread does).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded before the fork
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    PR_SET_PDEATHSIG = 1

    def preexec():
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


class WorkerError(RuntimeError):
    """A worker failed or ran out of time; the message ends with its stderr."""


@dataclass(frozen=True)
class WorkerResult:
    """What one worker left behind."""

    index: int  # its task index in TF_CONFIG
    returncode: int  # its exit status (0: it finished)
    arrays: dict  # the arrays it saved with save_result, by name
    stderr: str  # the end of its standard error
    seconds: float  # from its start until it exited


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct TCP ports that are free on ``host`` now (the system picks them).

    All ``n`` sockets stay bound until every port is chosen, so the ports
    differ; another program could still take one before a worker binds it.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer ≥ 1, got {n!r}")
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))  # port 0: the system chooses a free one
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(addresses: Sequence[str], index: int) -> str:
    """The ``TF_CONFIG`` JSON for worker ``index`` of a cluster of ``addresses`` ("host:port")."""
    if not 0 <= index < len(addresses):
        raise ValueError(f"index must be in [0, {len(addresses)}), got {index!r}")
    return json.dumps({"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}})


def save_result(**arrays) -> None:
    """Called by a worker: save named arrays where :func:`run_workers` collects them.

    Written to a temporary name and renamed, so a worker killed half-way
    leaves no partial file.  Outside :func:`run_workers` it does nothing.
    """
    path = os.environ.get(RESULT_ENV)
    if not path:
        return
    partial = f"{path}.partial.npz"
    np.savez(partial, **{name: np.asarray(value) for name, value in arrays.items()})
    os.replace(partial, path)


def _end_group(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM the worker's process group, then SIGKILL whatever is left after ``grace`` s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # children that ignored SIGTERM too
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-STDERR_TAIL:]
    except OSError:
        return ""


def run_workers(
    args: Sequence[str],
    n: int = 2,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    grace: float = 3.0,
    host: str = "127.0.0.1",
) -> list[WorkerResult]:
    """Run ``python ARGS…`` as ``n`` workers of one cluster on ``host``; return their results.

    Each worker gets this process's environment, plus ``env``, plus its own
    ``TF_CONFIG`` and the path for :func:`save_result`; ``CUDA_VISIBLE_DEVICES``
    is set to ``""`` unless ``env`` says otherwise, so workers share no GPU.
    The workers start in new sessions (their own process groups).  When one
    fails, or ``timeout`` seconds pass, or this call is interrupted, every
    group is ended (SIGTERM, SIGKILL after ``grace`` seconds) and
    :class:`WorkerError` names the worker, with the end of its stderr.
    If this process dies instead, the workers die with it on Linux, and each
    gets :data:`DEADLINE_ENV` = ``timeout + grace + 1`` seconds for
    :func:`start_watchdog` (``env`` may override it).
    ``pids`` of the last call are kept in ``run_workers.last_pids``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer ≥ 1, got {n!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    if isinstance(args, str):
        raise ValueError("args must be a sequence of strings, e.g. ['-m', 'helpers.distributed', 'worker']")
    addresses = [f"{host}:{port}" for port in free_ports(n, host)]
    processes: list[subprocess.Popen] = []
    run_workers.last_pids = []
    preexec = _die_with_parent()
    with tempfile.TemporaryDirectory(prefix="llm-book-workers-") as folder:
        folder = Path(folder)
        results, errs, starts = [], [], []
        try:
            for i in range(n):
                worker_env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
                              DEADLINE_ENV: f"{timeout + grace + 1:g}", **(env or {}), "TF_CONFIG": tf_config(addresses, i),
                              RESULT_ENV: str(folder / f"worker-{i}.npz")}
                errs.append(folder / f"worker-{i}.stderr")
                with open(errs[-1], "wb") as stderr:
                    processes.append(subprocess.Popen(
                        [sys.executable, *args], env=worker_env, stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
                        preexec_fn=preexec))
                starts.append(time.perf_counter())
                run_workers.last_pids.append(processes[-1].pid)
            deadline = time.perf_counter() + timeout
            ended = [None] * n
            while any(t is None for t in ended):
                for i, p in enumerate(processes):
                    if ended[i] is None and p.poll() is not None:
                        ended[i] = time.perf_counter()
                        if p.returncode != 0:
                            raise WorkerError(f"worker {i} of {n} exited with status {p.returncode}; "
                                              f"the end of its stderr:\n{_tail(errs[i])}")
                if time.perf_counter() > deadline:
                    late = [i for i, t in enumerate(ended) if t is None]
                    raise WorkerError(f"worker(s) {late} of {n} still running after {timeout:g} s, "
                                      f"so every worker was stopped; the end of worker {late[0]}'s "
                                      f"stderr:\n{_tail(errs[late[0]])}")
                time.sleep(0.05)
            for i, p in enumerate(processes):
                path = folder / f"worker-{i}.npz"
                if not path.exists():
                    raise WorkerError(f"worker {i} exited without saving a result (save_result); "
                                      f"the end of its stderr:\n{_tail(errs[i])}")
                with np.load(path) as saved:
                    arrays = {name: saved[name] for name in saved.files}
                results.append(WorkerResult(i, p.returncode, arrays, _tail(errs[i]), ended[i] - starts[i]))
        finally:
            for p in processes:
                _end_group(p, grace)
    return results


run_workers.last_pids = []


# ---------------------------------------------------------------- the worker
@dataclass(frozen=True)
class TinyTask:
    """The book's distributed job: a small classifier on seeded random data."""

    features: int = 8  # inputs per example
    hidden: int = 16  # units of the one hidden layer
    classes: int = 4  # outputs (logits)
    global_batch: int = 16  # examples per synchronous step, over all workers
    steps: int = 4  # optimiser steps
    learning_rate: float = 0.05  # Adam's rate
    seed: int = 0  # for the data and the initial weights

    def __post_init__(self):
        for name in ("features", "hidden", "classes", "global_batch", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")


def worker_args(task: TinyTask) -> list[str]:
    """The arguments for :func:`run_workers` that start the book's worker on ``task``."""
    args = ["-m", "helpers.distributed", "worker"]
    for name, value in asdict(task).items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    return args


def task_data(task: TinyTask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``steps × global_batch`` examples: ids (N,), inputs (N, features), labels (N,)."""
    rng = np.random.default_rng(task.seed)
    count = task.steps * task.global_batch
    x = rng.normal(size=(count, task.features)).astype(np.float32)  # (N, features)
    teacher = rng.normal(size=(task.features, task.classes))  # a random linear rule
    y = np.argmax(x @ teacher, axis=1).astype(np.int32)  # (N,)
    return np.arange(count, dtype=np.int32), x, y


def tiny_model(task: TinyTask):
    """The classifier, float32, with seeded initial weights (the same in every process)."""
    import keras

    keras.utils.set_random_seed(task.seed)
    return keras.Sequential([
        keras.Input((task.features,)),
        keras.layers.Dense(task.hidden, activation="tanh", dtype="float32"),
        keras.layers.Dense(task.classes, dtype="float32"),  # logits
    ])


def train_worker(task: TinyTask) -> dict:
    """One worker's custom training loop under ``MultiWorkerMirroredStrategy``.

    Every worker builds the same model, reads its share of each global batch
    (sharded by data), computes its gradient of the loss averaged over the
    *global* batch, and the Keras optimiser sums the workers' gradients (an
    all-reduce) before every update, so all workers apply the same step.
    Returns the final weights, the example ids this worker read at each
    step, and the global loss at each step.
    """
    from helpers import device  # noqa: F401  (imports TensorFlow quietly)

    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)  # the workers share the cores
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.mixed_precision.set_global_policy("float32")
    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG
    ids, x, y = task_data(task)
    with strategy.scope():
        model = tiny_model(task)
        optimizer = keras.optimizers.Adam(task.learning_rate)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)

    dataset = tf.data.Dataset.from_tensor_slices((ids, x, y)).batch(task.global_batch)
    options = tf.data.Options()  # each worker takes a share of every batch's examples
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    batches = strategy.experimental_distribute_dataset(dataset.with_options(options))

    def replica_step(batch_ids, inputs, labels):
        with tf.GradientTape() as tape:
            per_example = loss_fn(labels, model(inputs, training=True))  # (local batch,)
            # divide by the GLOBAL batch: the all-reduced sum is then the mean
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=task.global_batch)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))  # all-reduce inside
        return batch_ids, loss

    @tf.function
    def step(batch):
        batch_ids, loss = strategy.run(replica_step, args=batch)
        return (strategy.experimental_local_results(batch_ids)[0],
                strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None))

    seen, losses = [], []
    for batch in batches:
        batch_ids, loss = step(batch)
        seen.append(batch_ids.numpy())
        losses.append(float(loss))
    result = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}
    return {**result, "ids": np.stack(seen), "losses": np.array(losses)}


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.distributed",
                                     description="Run the book's MultiWorkerMirroredStrategy worker.")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="train TinyTask as one worker of TF_CONFIG's cluster")
    defaults = TinyTask()
    for name, value in asdict(defaults).items():
        worker.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    options = parser.parse_args(argv)
    if "TF_CONFIG" not in os.environ:
        parser.error("TF_CONFIG is not set: start workers with helpers.distributed.run_workers")
    task = TinyTask(**{name: getattr(options, name) for name in asdict(defaults)})
    start_watchdog()  # ends this process if its launcher died and left it running
    save_result(**train_worker(task))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
