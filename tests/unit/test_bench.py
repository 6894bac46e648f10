"""Smoke test: `make bench` still runs end to end (a few seconds, a tiny model)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_bench_runs_and_writes_its_outputs(tmp_path):
    bench = load_bench()
    results = bench.main([
        "--budget", "3", "--model", "tiny", "--validate-every", "20",
        "--overhead-steps", "5", "--repeats", "2", "--notebooks", "", "--survey-seconds", "0",
        "--out", str(tmp_path), "--page", str(tmp_path / "performance.md"),
    ])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["char_lm"]["model"] == "tiny" and saved["char_lm"]["steps"] > 0
    assert [t["budget_seconds"] for t in saved["trials"]] == [3]
    assert 2.5 <= saved["char_lm"]["training_seconds"] <= 10, "the time budget stops training"
    assert saved["overhead"]["median_ratio"] > 0 and saved["notebooks"]["seconds"] == {}
    assert (tmp_path / "figures" / "performance_loss_vs_time.png").stat().st_size > 0
    page = (tmp_path / "performance.md").read_text()
    assert "# Performance" in page and saved["machine"]["device"] in page
    losses = results["char_lm"]["held_out_loss_nats_per_char"]
    assert set(losses) == {"blocks256", "streaming"}, "both protocols, named"
    assert max(losses.values()) < results["char_lm"]["unigram_baseline_nats_per_char"] + 1
    low, high = saved["overhead"]["median_ratio_95ci"]
    assert low <= saved["overhead"]["median_ratio"] <= high
    own = saved["overhead"]["own_code_fraction"]
    assert len(own) == 2 and all(0 < f < 1 for f in own), "train.fit's own code is timed, and only part of a run"
    assert "s own code" in page
    assert len(saved["overhead"]["plot_renders_per_run"]) == 2 and saved["overhead"]["mean_render_ms"] > 0
    assert bench.train.figure_png.__name__ == "figure_png", "the render timer is taken off again"
    assert not hasattr(bench.train._Monitor.on_train_batch_end, "__wrapped__"), "the timers are taken off again"
    assert not hasattr(bench.train._LiveView.update, "__wrapped__")
    assert "on_train_end" not in bench.train._Monitor.__dict__, "the timers are taken off again"
    assert "## d. The whole book" in page and "protocol (a)" in page

    # a trial run adds to the table of trials and keeps the rest
    bench.main([
        "--budget", "2", "--model", "tiny", "--trial-only", "--validate-every", "20",
        "--out", str(tmp_path), "--page", str(tmp_path / "performance.md"),
    ])
    again = json.loads((tmp_path / "results.json").read_text())
    assert again["char_lm"] == saved["char_lm"] and again["overhead"] == saved["overhead"]
    assert sorted(t["budget_seconds"] for t in again["trials"]) == [2, 3]


def test_learning_rate_schedule():
    bench = load_bench()
    cfg = bench.MODELS["gru256"]
    budget = bench.TimeBudget(100.0, cfg)
    assert budget.rate(0) == cfg.peak_learning_rate * 0.05
    assert budget.rate(cfg.warmup_seconds) == cfg.peak_learning_rate
    assert abs(budget.rate(100.0) - cfg.final_learning_rate) < 1e-12
    rates = [budget.rate(t) for t in range(int(cfg.warmup_seconds), 101, 5)]
    assert rates == sorted(rates, reverse=True), "the cosine only decreases"


def test_notebook_times_run_each_notebook_and_find_stalls(tmp_path):
    import nbformat

    bench = load_bench()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("print(6 * 7)")]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    times = bench.notebook_times([path], runs=2, hogs=1)
    assert len(times["runs"]["tiny.ipynb"]) == 2 and times["hogs"] == 1
    assert times["stalls"] == [] and times["seconds"]["tiny.ipynb"] == times["runs"]["tiny.ipynb"][0]
    stalled = dict(times, runs={"a.ipynb": [5.0, 320.0]}, stalls=[{"notebook": "a.ipynb", "seconds": 320.0, "fastest": 5.0}])
    page = bench._stress_section(stalled)
    assert "`a.ipynb` took 320.0 s against 5.0 s" in page and "| `a.ipynb` | 5.0 | 162.5 | 320.0 | 64.00 |" in page
    assert bench._stress_section(None) == ""


def test_stream_windows_continue_each_row():
    import numpy as np

    bench = load_bench()
    ids = np.arange(1000, dtype=np.int32)  # each id is its own position
    batches = iter(bench.stream_windows(ids, sequence_length=10, batch_size=4, seed=3))
    x0, y0 = (t.numpy() for t in next(batches))
    x1, _ = (t.numpy() for t in next(batches))
    assert x0.shape == (4, 10) and np.array_equal(y0, x0 + 1), "targets are the next characters"
    assert np.array_equal(x1[:, 0], x0[:, -1] + 1), "each row goes on where it stopped"
    assert len(set(x0[:, 0] // 249)) == 4, "the rows are four separate streams of the text"


def test_bootstrap_interval_of_the_median():
    import numpy as np

    bench = load_bench()
    ratios = list(np.random.default_rng(0).normal(1.0, 0.05, 25))
    low, high = bench.bootstrap_median(ratios)
    assert low < float(np.median(ratios)) < high and high - low < 0.1
    assert bench.bootstrap_median([1.0, 1.0, 1.0]) == (1.0, 1.0)
    with pytest.raises(ValueError, match="at least 2"):
        bench.bootstrap_median([1.0])


def test_a_stateful_trial_is_scored_under_both_protocols(tmp_path):
    bench = load_bench()
    bench.main([
        "--budget", "3", "--model", "tiny", "--validate-every", "20", "--overhead-steps", "3",
        "--repeats", "2", "--notebooks", "", "--survey-seconds", "0",
        "--out", str(tmp_path), "--page", str(tmp_path / "performance.md"),
    ])
    bench.main(["--budget", "2", "--trials", "tiny-stateful,tiny", "--validate-every", "20",
                "--out", str(tmp_path), "--page", str(tmp_path / "performance.md")])
    saved = json.loads((tmp_path / "results.json").read_text())
    (trial,) = [t for t in saved["trials"] if t["model"] == "tiny-stateful"]
    assert set(trial["held_out_loss_nats_per_char"]) == {"blocks256", "streaming"}
    assert sorted((t["model"], t["budget_seconds"]) for t in saved["trials"]) == [
        ("tiny", 2), ("tiny", 3), ("tiny-stateful", 2)], "several trials in one run, each added"
    assert all(t["date"] for t in saved["trials"]) and "| Measured |" in (tmp_path / "performance.md").read_text()
    with pytest.raises(SystemExit):  # an unknown name is refused before anything trains
        bench.main(["--trials", "tiny,gru9999", "--out", str(tmp_path), "--page", str(tmp_path / "performance.md")])
    # a result from before the protocols were named still shows, in its own column
    assert bench.losses_of({"held_out_loss_nats_per_char": 1.5}) == {"windows100": 1.5}


def test_weight_decay_shrinks_matrices_but_not_biases():
    """AdamW's decoupled decay: with a zero gradient only the decay moves a weight."""
    import keras
    import numpy as np

    bench = load_bench()
    config = bench.ModelConfig("gru", 8, 4, 5, 2, 0.1, 0.1, 0.0, 1.0, weight_decay=0.5)
    model = bench.build(config, vocab_size=6)
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    assert bench._label(config).endswith("AdamW decay 0.5")
    dense = model.layers[-1]
    kernel, bias = (np.array(v) for v in (dense.kernel, dense.bias))
    dense.bias.assign(bias + 1.0)
    zeros = [keras.ops.zeros_like(v) for v in model.trainable_variables]
    model.optimizer.apply_gradients(zip(zeros, model.trainable_variables))
    np.testing.assert_allclose(np.array(dense.kernel), kernel * (1 - 0.1 * 0.5), rtol=1e-6)
    np.testing.assert_allclose(np.array(dense.bias), bias + 1.0, rtol=1e-6)
    assert type(bench.build(bench.MODELS["gru256"], 6).optimizer) is keras.optimizers.Adam


def test_layer_norm_gru_cell_matches_its_formula():
    """One step of bench.LayerNormGRUCell against the formula in NumPy, and a streaming copy of it."""
    import keras
    import numpy as np

    bench = load_bench()
    rng = np.random.default_rng(0)
    cell = bench.LayerNormGRUCell(4)
    x, h = rng.normal(size=(2, 3)).astype("float32"), rng.normal(size=(2, 4)).astype("float32")
    cell.build((None, 3))
    cell.gamma_x.assign(rng.uniform(0.5, 1.5, (3, 4)))
    cell.bias.assign(rng.normal(size=12))
    new, _ = cell(x, [h])

    def norm(p, gamma):
        g = p.reshape(-1, 3, 4)
        return ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-5) * gamma).reshape(-1, 12)

    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    xp = norm(x @ np.array(cell.kernel), np.array(cell.gamma_x)) + np.array(cell.bias)
    hp = norm(h @ np.array(cell.recurrent_kernel), np.array(cell.gamma_h))
    z, r = sig(xp[:, :4] + hp[:, :4]), sig(xp[:, 4:8] + hp[:, 4:8])
    expected = z * h + (1 - z) * np.tanh(xp[:, 8:] + r * hp[:, 8:])
    np.testing.assert_allclose(np.array(new), expected, atol=1e-5)

    from helpers import evaluate

    config = bench.ModelConfig("lngru", 8, 4, 5, 2, 0.01, 0.01, 0.0, 1.0)
    model = bench.build(config, vocab_size=6)
    ids = rng.integers(0, 6, 40)
    assert isinstance(model.layers[0], keras.layers.RNN) or isinstance(model.layers[1], keras.layers.RNN)
    # streaming from the start equals one block covering the whole text
    assert abs(evaluate.stream_loss(model, ids, chunk=7) - evaluate.char_loss(model, ids, block=40)) < 1e-5


def test_gpu_script_runs_on_the_cpu_too(tmp_path):
    """bench/gpu.py (Keras on JAX on the GPU machines) runs on this backend as well: a tiny run."""
    import math
    import shutil
    import subprocess

    from helpers import data

    out = tmp_path / "gpu.json"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py"), "--out", str(out), "--budget", "2", "--model", "tiny",
         "--precision", "float32", "--survey-seconds", "0.3", "--survey-models", "lngru256-decay",
         "--validate-every", "10", "--calibrate", "1"],
        check=True, timeout=300, cwd=tmp_path,
    )
    results = json.loads(out.read_text())
    assert results["machine"]["backend"] == "tensorflow" and results["survey_seconds"] == 0.3
    assert [(r["model"], r["precision"]) for r in results["survey"]] == [
        ("lngru256-decay", "float32"), ("lngru256-decay", "mixed_bfloat16")]
    assert all(row["tokens_per_second"] > 0 for row in results["survey"])
    run = results["char_lm"]
    assert run["model"] == "tiny" and run["steps"] > 10 and run["training_seconds"] <= 6
    assert run["training_seconds"] >= 1.5 or run["steps"] == run["planned_steps"] + 1, "the budget or the plan ends it"
    assert set(run["held_out_loss_nats_per_char"]) == {"blocks256", "streaming"}
    uniform = math.log(data.char_corpus().vocab.size)
    assert all(0 < v < uniform for v in run["held_out_loss_nats_per_char"].values()), "better than uniform"
    assert run["validation_curve"]["loss"] and run["validation_curve"]["step"][0] == 10

    # merged into a copy of the committed results, it fills the page's GPU section from the numbers
    shutil.copy(ROOT / "bench" / "results.json", tmp_path / "results.json")
    bench = load_bench()
    merged = bench.main(["--gpu", str(out), "--out", str(tmp_path), "--page", str(tmp_path / "performance.md")])
    assert merged["gpu"]["runs"][-1]["steps"] == run["steps"] and merged["gpu"]["survey"] == results["survey"]
    section = (tmp_path / "performance.md").read_text().split("## On a GPU")[1]
    assert f"| `tiny` | float32 | {run['training_seconds']:.0f} s of 2 | {merged['gpu']['runs'][-1]['tokens_per_second']:,} |" in section
    assert "| `lngru256-decay` | 64 | float32 |" in section and "(trial) |" in section
    assert "on the first 20,480 held-out characters" in section
    again = bench.main(["--gpu", str(out), "--out", str(tmp_path), "--page", str(tmp_path / "performance.md")])
    assert len(again["gpu"]["runs"]) == len(merged["gpu"]["runs"]), "a run merged twice is kept once"
