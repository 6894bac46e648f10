import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import data, train


def regression_model(learning_rate=0.05, optimizer=None):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer or keras.optimizers.SGD(learning_rate), loss="mse")
    return model


class InterruptAt(keras.callbacks.Callback):
    """Simulates Ctrl-C: raises KeyboardInterrupt after ``step`` batches."""

    def __init__(self, step):
        super().__init__()
        self.step, self.seen = step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.step:
            raise KeyboardInterrupt


def test_fit_trains_and_records(text, tiny_lm):
    corpus = data.char_corpus(text)
    train_ds, val_ds = corpus.datasets(sequence_length=20, batch_size=8)
    model = tiny_lm(corpus.vocab.size)
    result = train.fit(model, train_ds, val_ds, epochs=3, steps_per_epoch=20, log_every=5, live=False)
    assert result.completed and result.model is model
    assert result.steps == 60 and result.tokens == 60 * 8 * 20
    assert result.history.step == list(range(5, 61, 5)) and len(result.history) == 12
    assert result.history.loss[-1] < result.history.loss[0], "the loss must fall"
    assert result.history.val_step == [20, 40, 60] and len(result.history.epochs) == 3
    assert result.final_val_loss == result.history.val_loss[-1] < np.log(corpus.vocab.size)
    assert result.tokens_per_second > 0 and "Completed 60 steps" in result.message
    assert result.seconds > 0 and result.history.seconds == sorted(result.history.seconds)
    assert len(result.figure().axes[0].lines) == 2


def test_curve_points_are_exact_batch_means(regression_data):
    model = regression_model(optimizer=keras.optimizers.SGD(0.0))  # frozen weights
    result = train.fit(model, regression_data, epochs=2, log_every=1, live=False)
    per_batch = [float(keras.losses.mean_squared_error(y, model(x)).numpy().mean()) for x, y in regression_data]
    assert np.allclose(result.history.loss, per_batch * 2, rtol=1e-4)
    assert result.history.val_step == []


def test_validation_steps_take_the_same_batches(text, tiny_lm):
    corpus = data.char_corpus(text)
    train_ds, val_ds = corpus.datasets(10, 4)
    model = tiny_lm(corpus.vocab.size, learning_rate=0.0)
    result = train.fit(model, train_ds, val_ds, epochs=2, steps_per_epoch=3, validation_steps=2, live=False)
    first_two = model.evaluate(val_ds.take(2), verbose=0)
    assert np.allclose(result.history.val_loss, [first_two, first_two], rtol=1e-5)


def test_diverging_run_stops_with_an_explanation(regression_data, capsys):
    model = regression_model(learning_rate=1e3)
    result = train.fit(model, regression_data, epochs=50, log_every=1, live=False)
    assert result.status == "diverged" and not result.completed
    assert result.steps < 50 * 8, "training must stop early"
    assert "learning rate (1000) is probably too high" in result.message
    assert "global_clipnorm=1.0" in result.message and result.message in capsys.readouterr().out
    assert all(np.isfinite(result.history.loss)), "the recorded curve stays readable"


def test_divergence_stops_at_the_first_bad_step(regression_data):
    """The loss is read after every step (Keras does so anyway with the TensorFlow backend), so no step follows a NaN."""
    import re

    model = regression_model(learning_rate=1e4)
    result = train.fit(model, regression_data, epochs=50, log_every=1, live=False)
    first_bad = int(re.search(r"stopped at step (\d+)", result.message).group(1))
    assert result.status == "diverged" and result.steps == first_bad


def test_interrupted_run_keeps_model_and_history(regression_data, capsys):
    model = regression_model()
    before = model.get_weights()[0].copy()
    result = train.fit(model, regression_data, epochs=10, log_every=2, live=False, callbacks=(InterruptAt(13),))
    assert result.status == "interrupted" and result.steps == 13
    assert result.history.step == [2, 4, 6, 8, 10, 12], "every curve point before the interrupt is kept"
    assert result.model is model and not np.allclose(model.get_weights()[0], before)
    assert "Interrupted after 13 steps" in capsys.readouterr().out


def test_bad_arguments():
    model = regression_model()
    ds = tf.data.Dataset.from_tensor_slices((np.zeros((4, 4)), np.zeros((4, 1)))).batch(2)
    for kwargs in (dict(epochs=0), dict(epochs=1.5), dict(steps_per_epoch=-1), dict(validation_steps=0),
                   dict(log_every=True), dict(tokens_per_batch=0)):
        with pytest.raises(ValueError, match="must be an integer"):
            train.fit(model, ds, **kwargs)
    uncompiled = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="not compiled"):
        train.fit(uncompiled, ds)


def test_dynamic_batch_shapes_count_steps_without_reading_the_data():
    model = regression_model()
    ds = tf.data.Dataset.from_tensor_slices((np.zeros((12, 4), "float32"), np.zeros((12, 3), "float32"))).batch(4)
    assert train._per_batch(ds) == (1, "steps")  # the batch dimension is unknown
    result = train.fit(model, ds, epochs=1, live=False, plot=False)
    assert (result.count, result.unit, result.tokens, result.tokens_per_second) == (3, "steps", None, None)
    assert "steps/s" in result.message
    stated = train.fit(model, ds, epochs=1, live=False, plot=False, tokens_per_batch=12)
    assert (stated.count, stated.unit, stated.tokens) == (36, "tokens", 36)


def test_counting_does_not_move_a_seeded_shuffle():
    """fit must not pull a batch to count it: the first epoch sees the seeded order."""

    def pipeline():  # the batch dimension is dynamic (no drop_remainder)
        ds = tf.data.Dataset.range(64).shuffle(64, seed=3).batch(8)
        return ds.map(lambda i: (tf.cast(i, "float32")[:, None] * tf.ones((1, 4)), tf.cast(i, "float32")))

    expected = [y.numpy().tolist() for _, y in pipeline()]
    seen = []
    model = regression_model(optimizer=keras.optimizers.SGD(0.0))
    original = model.train_step

    def train_step(data):  # eager (run_eagerly), so the batch can be read
        seen.append(data[1].numpy().tolist())
        return original(data)

    model.train_step = train_step
    model.run_eagerly = True
    train.fit(model, pipeline(), epochs=1, live=False, plot=False)
    assert seen == expected


def test_what_a_batch_counts():
    def batched(x, y, size=2):
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(size, drop_remainder=True)

    assert train._per_batch(object()) == (1, "steps")
    ids = np.zeros((4, 5), "int32")
    assert train._per_batch(batched(ids, ids)) == (10, "tokens"), "token ids: batch × time"
    assert train._per_batch(batched(np.zeros((4, 64)), np.zeros((4, 64), "float32"))) == (2, "examples"), "pixels are not tokens"
    assert train._per_batch(batched(np.zeros((4, 2)), np.zeros(4, "int64"))) == (2, "examples"), "class labels"
    unbatched = tf.data.Dataset.from_tensor_slices((np.zeros((4, 2)), np.zeros(4)))
    assert train._per_batch(unbatched) == (1, "steps")


class FakeShell:
    kernel = object()


@pytest.fixture
def notebook(monkeypatch):
    """Pretend to run in a Jupyter kernel; collect what would be displayed."""
    shown = []
    monkeypatch.setattr("IPython.get_ipython", lambda: FakeShell())
    monkeypatch.setattr(train, "_display", shown.append)
    return shown


def test_live_view_updates_in_place(notebook, regression_data, monkeypatch):
    monkeypatch.delenv(train.HEADLESS_ENV, raising=False)
    assert train.in_notebook() and train.live_default()
    result = train.fit(regression_model(), regression_data, regression_data, epochs=2, log_every=2)
    (box,) = notebook  # one widget box, updated in place, nothing else displayed
    progress, image = box.children
    assert bytes(image.value).startswith(b"\x89PNG"), "the plot is drawn"
    assert "Completed 16 steps" in progress.value and result.completed


def test_live_view_redraws_often_enough(regression_data, notebook, monkeypatch):
    monkeypatch.setattr(train._LiveView, "render_seconds", 0.0)  # the first drawing is due at once
    view = train._LiveView(refresh_seconds=0.0)
    assert view.image.layout.display == "none", "no empty (broken) image before the first drawing"
    now = time.perf_counter()
    history = train.History(step=[1, 2], loss=[2.0, 1.0])
    view.update(now, "first", history)
    first = bytes(view.image.value)
    assert first.startswith(b"\x89PNG"), "drawn at the first update"
    history.step.append(3)
    history.loss.append(0.5)
    view.update(now + view.MAX_WAIT, "epoch 1/1 · loss 0.5", history)
    assert bytes(view.image.value) != first and "loss 0.5" in view.progress.value, "redrawn within MAX_WAIT"


def test_a_short_live_run_draws_its_plot_once(notebook, regression_data, monkeypatch):
    """The first drawing waits as long as later ones (200 × the last render's cost), and an
    epoch's end updates the text only, so a run of a few seconds pays for one render, at its end."""
    monkeypatch.delenv(train.HEADLESS_ENV, raising=False)
    monkeypatch.setattr(train._LiveView, "render_seconds", 1.0)  # the next drawing is due in 200 s
    renders = []
    render = train.figure_png
    monkeypatch.setattr(train, "figure_png", lambda fig: renders.append(1) or render(fig))
    result = train.fit(regression_model(), regression_data, regression_data, epochs=3, log_every=1)
    (box,) = notebook
    assert renders == [1], "one drawing, at the end"
    assert box.children[1].layout.display is None, "the image is shown once drawn (hidden while empty)"
    assert result.completed and bytes(box.children[1].value).startswith(b"\x89PNG")
    assert train._LiveView.render_seconds < 1.0, "the render's own cost is remembered for the next view"


def test_headless_notebook_draws_one_final_figure(notebook, regression_data, monkeypatch):
    monkeypatch.setenv(train.HEADLESS_ENV, "1")
    assert not train.live_default()
    train.fit(regression_model(), regression_data, epochs=2)
    (image,) = notebook
    assert image.data.startswith(b"\x89PNG")
    notebook.clear()
    train.fit(regression_model(), regression_data, epochs=1, plot=False)
    assert notebook == []


def test_outside_a_notebook_nothing_is_displayed(regression_data, monkeypatch):
    shown = []
    monkeypatch.setattr(train, "_display", shown.append)
    assert not train.in_notebook()
    train.fit(regression_model(), regression_data, epochs=1)
    assert shown == []


def test_progress_lines_only_for_long_runs():
    every = train.PRINT_EVERY_SECONDS
    assert not train._print_epoch(every / 2, 1, 60)  # too soon
    assert train._print_epoch(every, 1, 60)
    assert not train._print_epoch(10 * every, 60, 60)  # the closing message says it


def test_progress_text():
    text = train._progress_text(2, 5, 30, 100, 1.23456, 1.5, 12345.6, 7.2)
    assert text == "epoch 2/5 · step 30/100 · loss 1.235 · val 1.500 · 12,346 tokens/s · 7 s"
    assert train._progress_text(1, 1, 3, None, None, None, 0.0, 0.0, "steps") == "epoch 1/1 · step 3 · 0 steps/s · 0 s"
    assert train._progress_text(1, 1, 3, None, None, None, 0.0, 2.0, "steps", "cpu").endswith("· 2 CPU s")


def test_empty_figure_and_result_defaults():
    fig = train._loss_figure(train.History())
    assert all(len(line.get_xdata()) == 0 for line in fig.axes[0].lines)
    result = train.TrainResult(None, train.History(), "completed", "", 0, 0, 0.0)
    assert result.tokens_per_second == 0.0 and result.rate == 0.0 and result.final_val_loss is None
    assert train.figure_png(fig).startswith(b"\x89PNG")


class Sleep(keras.callbacks.Callback):
    """Waits after every step: wall time passes, processor time hardly does."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(self.seconds)


def test_a_time_budget_ends_training(regression_data):
    result = train.fit(regression_model(), regression_data.repeat(), epochs=1000, steps_per_epoch=50,
                       max_seconds=0.5, live=False, plot=False, callbacks=(Sleep(0.01),))
    assert result.completed and 0.5 <= result.seconds < 2.0 and result.steps < 1000 * 50
    assert "(the 0.5 s budget)" in result.message
    for bad in (0, -1, "10", True):
        with pytest.raises(ValueError, match="max_seconds"):
            train.fit(regression_model(), regression_data, max_seconds=bad)


def test_a_cpu_time_budget_is_not_spent_by_waiting(regression_data):
    """Sleeping uses wall time but no processor time: a CPU budget outlasts it."""

    def traced():
        # One step first, so that tracing the step (which can take more
        # processor time than the whole budget, on several threads) is not
        # what either budget measures.
        model = regression_model()
        train.fit(model, regression_data.repeat(), epochs=1, steps_per_epoch=1, live=False, plot=False)
        return model

    runs = {
        clock: train.fit(traced(), regression_data.repeat(), epochs=1000, steps_per_epoch=10,
                         max_seconds=0.3, clock=clock, live=False, plot=False, callbacks=(Sleep(0.02),))
        for clock in ("wall", "cpu")
    }
    wall, cpu = runs["wall"], runs["cpu"]
    assert wall.clock == "wall" and cpu.clock == "cpu"
    assert cpu.seconds >= 0.3 and "(the 0.3 CPU s budget)" in cpu.message
    assert cpu.steps > 2 * wall.steps, (cpu.steps, wall.steps)
    with pytest.raises(ValueError, match="clock"):
        train.fit(regression_model(), regression_data, clock="sundial")
    with pytest.raises(ValueError, match="clock"):
        train.TrainingClock("sundial")


def test_the_optimizer_is_built_before_the_first_step(text, tiny_lm):
    corpus = data.char_corpus(text)
    model = tiny_lm(corpus.vocab.size)
    assert not model.optimizer.built
    train._build_optimizer(model)
    assert model.optimizer.built and len(model.optimizer.variables) > 1
    # a model without weights yet is left to Keras, and still trains
    unbuilt = keras.Sequential([keras.layers.Dense(1)])
    unbuilt.compile(optimizer="sgd", loss="mse")
    train._build_optimizer(unbuilt)
    assert not unbuilt.optimizer.built
    xy = tf.data.Dataset.from_tensor_slices((np.ones((8, 3), "float32"), np.ones((8, 1), "float32"))).batch(4)
    assert train.fit(unbuilt, xy, plot=False).completed
