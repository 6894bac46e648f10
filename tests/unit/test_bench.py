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
    bench.main(["--budget", "2", "--model", "tiny-stateful", "--trial-only", "--validate-every", "20",
                "--out", str(tmp_path), "--page", str(tmp_path / "performance.md")])
    saved = json.loads((tmp_path / "results.json").read_text())
    (trial,) = [t for t in saved["trials"] if t["model"] == "tiny-stateful"]
    assert set(trial["held_out_loss_nats_per_char"]) == {"blocks256", "streaming"}
    # a result from before the protocols were named still shows, in its own column
    assert bench.losses_of({"held_out_loss_nats_per_char": 1.5}) == {"windows100": 1.5}
