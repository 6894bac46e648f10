"""`make bench`'s model on a GPU machine without TensorFlow: Keras 3 on JAX.

The GPU machines this project is lent carry PyTorch and JAX but no
TensorFlow, and cannot fetch one (a TensorFlow wheel with its CUDA
libraries is gigabytes).  Keras 3 runs the same model code on JAX, so
this script measures what it can there:

* tokens/s of the benchmark's models in float32 and in mixed bfloat16, at
  the CPU's batch and at a batch a GPU user would pick;
* the headline model (``bench.run.BEST``) trained for the same
  wall-clock budget as on the CPU, with the same data, hyperparameters and
  learning-rate shape, scored under both protocols of ``helpers.evaluate``.

The figures are Keras-on-JAX figures, not TensorFlow's: JAX's Keras runs
a GRU as a compiled scan, TensorFlow's Keras would call cuDNN's fused GRU,
and float32 products on an H100 use TF32 under JAX by default.  The page
(``book/performance.md``) says so beside them.  ``bench/run.py --gpu FILE``
merges the JSON written here into ``bench/results.json``.

Usage (on the GPU machine):
    KERAS_BACKEND=jax python bench/gpu.py --out gpu.json [--budget 300]
It also runs on the CPU, on either backend (the unit test runs it tiny).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import run  # noqa: E402  (bench.run imports helpers.device first)
from helpers import data, device  # noqa: E402

import keras  # noqa: E402

#: (model in bench.run.MODELS, batch, Keras dtype policy) timed in the survey.
SURVEY = [
    (run.BEST, None, "float32"),
    (run.BEST, None, "mixed_bfloat16"),
    ("gru256", None, "float32"),
    ("gru256", None, "mixed_bfloat16"),
    ("gru256", 1024, "mixed_bfloat16"),
    ("gpt128", None, "mixed_bfloat16"),
    ("gpt128", 512, "mixed_bfloat16"),
]


#: Held-out characters scored during the headline run (the first of the held-out tenth).
VALIDATION_CHARS = 20_480


def batches(ids, length: int, batch: int, seed: int = 0):
    """Endless (inputs, targets) batches of the disjoint windows of ``helpers.data.windows``,
    reshuffled every pass (NumPy, so that it needs no ``tf.data``)."""
    import numpy as np

    count = (len(ids) - 1) // length
    span = np.asarray(ids[: count * length + 1], dtype=np.int32)
    inputs, targets = span[:-1].reshape(count, length), span[1:].reshape(count, length)
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(count)
        for start in range(0, count - batch + 1, batch):
            pick = order[start : start + batch]
            yield inputs[pick], targets[pick]


def _build(config, vocab_size: int, policy: str, learning_rate=None):
    return run.build(replace(config, precision=policy), vocab_size, jit_compile=True, learning_rate=learning_rate)


def _steps_per_second(model, stream, seconds: float) -> float:
    """Optimiser steps per second after the compilation, each step's loss read back."""
    for _ in range(3):  # compile, and let the clocks and caches settle
        model.train_on_batch(*next(stream))
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.train_on_batch(*next(stream))
        steps += 1
    return steps / (time.perf_counter() - start)


def survey(corpus, seconds: float, names=None) -> list[dict]:
    rows = []
    for name, batch, policy in SURVEY:
        if names is not None and name not in names:
            continue
        config = run.MODELS[name]
        config = replace(config, batch_size=batch or config.batch_size)
        model = _build(config, corpus.vocab.size, policy)
        stream = batches(corpus.train_ids, config.sequence_length, config.batch_size)
        rate = _steps_per_second(model, stream, seconds) * config.batch_size * config.sequence_length
        rows.append({"model": name, "batch": config.batch_size, "precision": policy,
                     "tokens_per_second": round(rate)})
        print(f"  {name}, batch {config.batch_size}, {policy}: {rate:,.0f} tokens/s", flush=True)
    return rows


class _Budget(keras.callbacks.Callback):
    """Stops training once ``budget`` seconds of training have passed since the first step ended,
    and every ``validate_every`` steps scores the first held-out characters (off the clock)."""

    def __init__(self, budget: float, val_ids, block: int, validate_every: int):
        super().__init__()
        self.budget, self.start, self.steps = budget, None, 0
        self.val_ids, self.block, self.validate_every = val_ids, block, validate_every
        self.curve = {"step": [], "seconds": [], "loss": []}

    def on_train_batch_end(self, batch, logs=None):
        from helpers import evaluate

        self.steps += 1
        now = time.perf_counter()
        if self.start is None:  # the first step includes the compilation: the clock starts after it
            self.start = now
            return
        if self.steps % self.validate_every == 0:
            if hasattr(self.model, "jax_state_sync"):  # JAX trains on a copy of the weights: write it back
                self.model.jax_state_sync()
            loss = evaluate.char_loss(self.model, self.val_ids, block=self.block)
            self.curve["step"].append(self.steps)
            self.curve["seconds"].append(round(now - self.start, 1))
            self.curve["loss"].append(round(loss, 4))
            print(f"  step {self.steps}, {now - self.start:.0f} s: held-out {loss:.4f} "
                  f"(first {len(self.val_ids):,} characters)", flush=True)
            self.start += time.perf_counter() - now  # validation is not training time
            if not math.isfinite(loss):
                self.model.stop_training = True
        if time.perf_counter() - self.start >= self.budget:
            self.model.stop_training = True


def headline(corpus, name: str, budget: float, policy: str, validate_every: int = 1000,
             calibrate: float = 10.0) -> dict:
    """Train ``name`` for ``budget`` seconds and score it under both protocols.

    The rate follows ``bench.run.TimeBudget``'s shape (a linear warm-up to
    the peak, here from 5 % of it, then a cosine decay to the final rate), set in steps:
    the steps that fit in the budget are estimated from ``calibrate``
    seconds of training a twin model first.
    """
    config = run.MODELS[name]
    device.seed_everything(0)
    twin = _build(config, corpus.vocab.size, policy)
    per_second = _steps_per_second(twin, batches(corpus.train_ids, config.sequence_length, config.batch_size, 1),
                                   calibrate)
    planned = max(int(per_second * budget), 2)
    warmup = min(max(int(per_second * config.warmup_seconds), 1), planned - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.05 * config.peak_learning_rate, planned - warmup,
        alpha=config.final_learning_rate / config.peak_learning_rate,
        warmup_target=config.peak_learning_rate, warmup_steps=warmup)
    device.seed_everything(0)
    model = _build(config, corpus.vocab.size, policy, learning_rate=schedule)
    clock = _Budget(budget, corpus.val_ids[:VALIDATION_CHARS], min(256, config.sequence_length), validate_every)
    start = time.perf_counter()
    model.fit(batches(corpus.train_ids, config.sequence_length, config.batch_size), epochs=1,
              steps_per_epoch=planned + 1, callbacks=[clock], verbose=0)  # + 1: the compiling step
    wall = time.perf_counter() - start
    seconds = time.perf_counter() - clock.start
    start = time.perf_counter()
    losses = run.held_out_losses(model, config, corpus.val_ids)
    tokens = clock.steps * config.batch_size * config.sequence_length
    timed = (clock.steps - 1) * config.batch_size * config.sequence_length  # the steps after the compiling one
    return {
        "model": name, "config": asdict(config), "precision": policy, "parameters": int(model.count_params()),
        "budget_seconds": budget, "training_seconds": round(seconds, 2), "wall_seconds": round(wall, 2),
        "planned_steps": planned, "steps": clock.steps, "tokens": tokens,
        "tokens_per_second": round(timed / seconds), "calibration_seconds": calibrate,
        "validate_every": validate_every,
        "evaluation_seconds": round(time.perf_counter() - start, 1),
        "held_out_loss_nats_per_char": losses,
        "validation_curve": clock.curve,  # protocol (a) on the first validation_characters held-out characters
        "validation_characters": VALIDATION_CHARS,
    }


def machine() -> dict:
    backend = keras.backend.backend()
    return {"device": device.describe(), "backend": backend,
            backend: __import__(backend).__version__, "keras": keras.__version__,
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="the JSON file to write")
    parser.add_argument("--budget", type=float, default=300.0, help="training seconds of the headline run")
    parser.add_argument("--model", default=run.BEST, choices=sorted(run.MODELS), help="the headline model")
    parser.add_argument("--precision", default="mixed_bfloat16", choices=device.POLICIES)
    parser.add_argument("--survey-seconds", type=float, default=8.0, help="per survey row; 0 skips the survey")
    parser.add_argument("--survey-models", default="", help="comma-separated: only these models' rows")
    parser.add_argument("--validate-every", type=int, default=1000, help="steps between held-out checks")
    parser.add_argument("--calibrate", type=float, default=10.0,
                        help="seconds of training a twin model to estimate the steps in the budget")
    args = parser.parse_args(argv)
    if not math.isfinite(args.budget) or args.budget <= 0:
        parser.error(f"--budget must be a number of seconds > 0, got {args.budget}")
    if run.MODELS[args.model].stateful:
        parser.error(f"{args.model} carries its state across windows; bench/gpu.py trains stateless models only")
    corpus = data.char_corpus()
    results = {"machine": machine()}
    print(f"{results['machine']['device']}, Keras {keras.__version__} on {results['machine']['backend']}",
          flush=True)
    if args.survey_seconds > 0:
        print("survey …", flush=True)
        names = set(args.survey_models.split(",")) if args.survey_models else None
        results["survey"] = survey(corpus, args.survey_seconds, names)
        results["survey_seconds"] = args.survey_seconds
    print(f"{args.model} for {args.budget:g} s in {args.precision} …", flush=True)
    results["char_lm"] = headline(corpus, args.model, args.budget, args.precision, args.validate_every,
                                  args.calibrate)
    results["char_lm"]["machine"] = results["machine"]
    print(json.dumps(results["char_lm"]["held_out_loss_nats_per_char"]), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
