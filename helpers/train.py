"""One training entry point for every Keras model in the book: :func:`fit`.

``fit`` wraps ``model.fit`` and adds what a reader needs while a model trains:

* a loss plot (training and validation) redrawn in place, with a progress
  line, when a notebook front-end is watching; one final figure otherwise
  (nbval, the book build, or ``LLM_BOOK_HEADLESS=1``);
* a stop with an explanation as soon as the loss becomes NaN or infinite;
* Ctrl-C or the notebook's stop button ends training early and still
  returns the model and everything recorded so far;
* throughput in tokens (target positions) per second.
"""

from __future__ import annotations

import io
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from helpers import device  # noqa: F401  (imports TensorFlow quietly, before keras)

import keras  # noqa: E402

#: Environment variable that turns live plotting off (set by ``make test``
#: and ``make book``, where no one watches the notebook run).
HEADLESS_ENV = "LLM_BOOK_HEADLESS"


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------
@dataclass
class History:
    """Everything recorded during one call of :func:`fit`."""

    step: list[int] = field(default_factory=list)  # global step of each training-curve point
    loss: list[float] = field(default_factory=list)  # mean training loss since the previous point
    seconds: list[float] = field(default_factory=list)  # training time (s) at each point
    val_step: list[int] = field(default_factory=list)  # global step of each validation
    val_loss: list[float] = field(default_factory=list)  # validation loss at that step
    val_seconds: list[float] = field(default_factory=list)  # training time (s) at that step
    epochs: list[dict] = field(default_factory=list)  # Keras' end-of-epoch logs, one dict each

    def __len__(self) -> int:
        return len(self.step)


@dataclass
class TrainResult:
    """What :func:`fit` returns, whether training finished or not."""

    model: object  # the trained keras.Model (the same object that was passed in)
    history: History  # the curves recorded so far
    status: str  # "completed", "interrupted" or "diverged"
    message: str  # one readable sentence about how training ended
    steps: int  # optimiser steps taken
    tokens: int  # target positions seen in training
    seconds: float  # training time, validation excluded

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def final_val_loss(self) -> float | None:
        return self.history.val_loss[-1] if self.history.val_loss else None

    def figure(self):
        """A matplotlib Figure of the loss curves."""
        return _loss_figure(self.history, self.message)


# --------------------------------------------------------------------------
# Display: live widgets in a watched notebook, a final figure otherwise
# --------------------------------------------------------------------------
def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, nbclient, nbval…)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the book
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def live_default() -> bool:
    """Live plots when a kernel runs us and ``LLM_BOOK_HEADLESS`` is not ``1``."""
    return in_notebook() and os.environ.get(HEADLESS_ENV, "") != "1"


def _display(obj) -> None:
    from IPython.display import display

    display(obj)


class _LossPlot:
    """A loss figure (training line, validation markers) whose data can be replaced."""

    SIZE, DPI = (6.4, 3.2), 90  # inches, dots per inch

    def __init__(self):
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=self.SIZE, dpi=self.DPI)
        self.figure.subplots_adjust(left=0.11, right=0.97, bottom=0.16, top=0.9)
        self.axes = self.figure.add_subplot()
        (self.train_line,) = self.axes.plot([], [], color="tab:blue", label="training")
        (self.val_line,) = self.axes.plot([], [], "o-", color="tab:orange", label="validation")
        self.axes.set_xlabel("optimiser step")
        self.axes.set_ylabel("loss")
        self.axes.grid(alpha=0.3)
        self.axes.legend(loc="upper right")

    def draw(self, history: History, title: str = ""):
        self.train_line.set_data(history.step, history.loss)
        self.val_line.set_data(history.val_step, history.val_loss)
        self.axes.relim()
        self.axes.autoscale_view()
        self.axes.set_title(title, fontsize=9)
        return self.figure


def _loss_figure(history: History, title: str = ""):
    return _LossPlot().draw(history, title)


def figure_png(fig) -> bytes:
    """Render a matplotlib Figure to PNG bytes without touching pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _progress_text(epoch, epochs, step, steps, loss, val_loss, rate, seconds) -> str:
    parts = [f"epoch {epoch}/{epochs}"]
    parts.append(f"step {step}/{steps}" if steps else f"step {step}")
    if loss is not None:
        parts.append(f"loss {loss:.3f}")
    if val_loss is not None:
        parts.append(f"val {val_loss:.3f}")
    parts.append(f"{rate:,.0f} tokens/s")
    parts.append(f"{seconds:.0f} s")
    return " · ".join(parts)


class _LiveView:
    """Progress line and loss plot as widgets, updated in place.

    One figure is kept and only its line data change, so a redraw costs a
    few tens of milliseconds.  It is redrawn at most every
    ``refresh_seconds``, and never more often than keeps drawing under 2 % of
    the elapsed time.
    """

    def __init__(self, refresh_seconds: float):
        import ipywidgets

        self.refresh_seconds = refresh_seconds
        self.progress = ipywidgets.HTML("starting…")
        self.plot = _LossPlot()
        # shown at its own size; by default the widget stretches to the cell
        width = f"{self.plot.SIZE[0] * self.plot.DPI:.0f}px"
        self.image = ipywidgets.Image(format="png", layout=ipywidgets.Layout(width=width))
        self.box = ipywidgets.VBox([self.progress, self.image])
        self._next_draw = 0.0
        self._next_text = 0.0
        _display(self.box)

    def update(self, now: float, text: str, history: History, force: bool = False) -> None:
        if force or now >= self._next_text:
            self.progress.value = f"<code>{text}</code>"
            self._next_text = now + 0.25
        if force or now >= self._next_draw:
            start = time.perf_counter()
            self.image.value = figure_png(self.plot.draw(history))
            cost = time.perf_counter() - start
            self._next_draw = now + max(self.refresh_seconds, 50 * cost)


# --------------------------------------------------------------------------
# The Keras callback that records, watches and draws
# --------------------------------------------------------------------------
def _tokens_per_batch(dataset) -> int | None:
    """Target positions per batch, read from the dataset's static shapes."""
    spec = getattr(dataset, "element_spec", None)
    if not isinstance(spec, tuple) or len(spec) < 2:
        return None
    shape = getattr(spec[1], "shape", None)
    if shape is None or shape.rank is None or any(d is None for d in shape):
        return None
    return int(np.prod(shape)) if shape.rank else 1


class TrainingClock(keras.callbacks.Callback):
    """Measures training time, excluding the validation passes inside ``fit``.

    Other callbacks subclass it to act on training time, for example to stop
    after a time budget (see ``bench/run.py``).
    """

    def __init__(self):
        super().__init__()
        self.train_seconds = 0.0  # closed training segments
        self._segment_start: float | None = None

    def elapsed(self) -> float:
        """Seconds of training so far."""
        running = 0.0 if self._segment_start is None else time.perf_counter() - self._segment_start
        return self.train_seconds + running

    def _resume(self):
        self._segment_start = time.perf_counter()

    def _pause(self):
        self.train_seconds = self.elapsed()
        self._segment_start = None

    def on_train_begin(self, logs=None):
        self._resume()

    def on_train_end(self, logs=None):
        self._pause()

    def on_test_begin(self, logs=None):
        self._pause()

    def on_test_end(self, logs=None):
        self._resume()


class _Monitor(TrainingClock):
    """Records the curves, stops on NaN/Inf, and feeds the live view."""

    def __init__(self, history, tokens_per_batch, epochs, view, log_every):
        super().__init__()
        self.history = history
        self.tokens_per_batch = tokens_per_batch
        self.epochs = epochs
        self.view = view
        self.log_every = log_every
        self.global_step = 0
        self.tokens = 0
        self.diverged_at: tuple[int, int, float] | None = None
        self._epoch = 0
        self._last_index = 0  # batches seen this epoch at the previous curve point
        self._last_mean = 0.0
        self._printed_at = 0.0  # training seconds at the last progress line

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1
        self._last_index = 0
        self._last_mean = 0.0

    def on_train_batch_end(self, batch, logs=None):
        self.global_step += 1
        self.tokens += self.tokens_per_batch or 0
        mean = float((logs or {}).get("loss", math.nan))
        index = batch + 1  # batches seen this epoch; Keras' loss is their running mean
        if not math.isfinite(mean):
            self.diverged_at = (self._epoch, self.global_step, mean)
            self.model.stop_training = True
            return
        if index - self._last_index >= self.log_every:
            interval = (mean * index - self._last_mean * self._last_index) / (index - self._last_index)
            self.history.step.append(self.global_step)
            self.history.loss.append(interval)
            self.history.seconds.append(self.elapsed())
            self._last_index, self._last_mean = index, mean
            if self.view is not None:
                self._refresh(mean)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        logs["epoch"] = epoch + 1
        self.history.epochs.append(logs)
        val = logs.get("val_loss")
        if val is not None and self.diverged_at is None:
            self.history.val_step.append(self.global_step)
            self.history.val_loss.append(float(val))
            self.history.val_seconds.append(self.elapsed())
        if self.view is not None:
            self._refresh(logs.get("loss"), force=True)
        elif self.diverged_at is None and _print_epoch(
            self.elapsed() - self._printed_at, epoch + 1, self.epochs
        ):
            self._printed_at = self.elapsed()
            print(self.progress_text(logs.get("loss")), flush=True)

    def progress_text(self, loss) -> str:
        seconds = self.elapsed()
        steps = self.params.get("steps") if self.params else None
        return _progress_text(
            self._epoch,
            self.epochs,
            self.global_step,
            steps * self.epochs if steps else None,
            loss,
            self.history.val_loss[-1] if self.history.val_loss else None,
            self.tokens / seconds if seconds > 0 else 0.0,
            seconds,
        )

    def _refresh(self, loss, force=False):
        self.view.update(time.perf_counter(), self.progress_text(loss), self.history, force)


# --------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------
#: Without a live view, a progress line at most this often (seconds).
PRINT_EVERY_SECONDS = 5.0


def _print_epoch(since_last_line: float, epoch: int, epochs: int) -> bool:
    """Whether a run without a live view prints a line after ``epoch``.

    A line when ``PRINT_EVERY_SECONDS`` have passed since the last one, but
    not after the final epoch, which the closing message reports: a short
    run prints only that message, a long one shows it is still going.
    """
    return epoch < epochs and since_last_line >= PRINT_EVERY_SECONDS


def _check_positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")


def fit(
    model,
    train_data,
    validation_data=None,
    *,
    epochs: int = 1,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    live: bool | None = None,
    plot: bool = True,
    refresh_seconds: float = 2.0,
    log_every: int = 10,
    callbacks: tuple = (),
) -> TrainResult:
    """Train a compiled Keras model and return a :class:`TrainResult`.

    ``train_data`` and ``validation_data`` are ``tf.data`` datasets of
    ``(inputs, targets)`` batches.  With ``steps_per_epoch`` the training data
    is repeated, so an "epoch" is just ``steps_per_epoch`` steps between two
    validations.  ``validation_steps`` evaluates the same first batches of
    the validation data every time.  ``live`` (default: only when a notebook
    front-end watches) redraws the plot in place; otherwise one figure is
    drawn at the end; ``plot=False`` draws nothing (for runs the caller
    plots together).  ``log_every`` sets how many steps one point of the
    training curve averages.
    """
    _check_positive_int("epochs", epochs)
    _check_positive_int("steps_per_epoch", steps_per_epoch, allow_none=True)
    _check_positive_int("validation_steps", validation_steps, allow_none=True)
    _check_positive_int("log_every", log_every)
    if not getattr(model, "compiled", False):
        raise ValueError(
            "the model is not compiled: call model.compile(optimizer=..., loss=...) before training"
        )
    live = plot and (live_default() if live is None else live)
    tokens_per_batch = _tokens_per_batch(train_data)
    if tokens_per_batch is None:
        # shapes are dynamic; count the positions of one batch (batches of a
        # tf.data pipeline built with drop_remainder=True all have this size)
        tokens_per_batch = int(np.prod(next(iter(train_data))[1].shape))
    if steps_per_epoch is not None:
        train_data = train_data.repeat()
    if validation_data is not None and validation_steps is not None:
        validation_data = validation_data.take(validation_steps)

    history = History()
    view = _LiveView(refresh_seconds) if live else None
    monitor = _Monitor(history, tokens_per_batch, epochs, view, log_every)
    status, message = "completed", ""
    try:
        model.fit(
            train_data,
            validation_data=validation_data,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=[monitor, *callbacks],
            shuffle=False,  # tf.data pipelines shuffle themselves
            verbose=0,
        )
    except KeyboardInterrupt:
        monitor._pause()
        status = "interrupted"
        message = (
            f"Interrupted after {monitor.global_step} steps. The model keeps the weights it "
            "had reached, and the result's history holds the curves so far."
        )
    if monitor.diverged_at is not None:
        epoch, step, value = monitor.diverged_at
        lr = _learning_rate(model)
        status = "diverged"
        message = (
            f"Training stopped at step {step} (epoch {epoch}): the loss became {value}. "
            f"The updates grew until the numbers overflowed; the learning rate ({lr}) is "
            "probably too high. Try a smaller learning rate, or clip gradients "
            "(for example optimizer=keras.optimizers.Adam(clipnorm=1.0))."
        )
    if status == "completed":
        val = f", validation loss {history.val_loss[-1]:.3f}" if history.val_loss else ""
        rate = monitor.tokens / monitor.train_seconds if monitor.train_seconds else 0.0
        message = (
            f"Completed {monitor.global_step} steps in {monitor.train_seconds:.1f} s "
            f"({rate:,.0f} tokens/s){val}."
        )
    result = TrainResult(
        model=model,
        history=history,
        status=status,
        message=message,
        steps=monitor.global_step,
        tokens=monitor.tokens,
        seconds=monitor.train_seconds,
    )
    if view is not None:
        view.update(time.perf_counter(), message, history, force=True)
    elif plot and in_notebook():
        from IPython.display import Image

        _display(Image(data=figure_png(result.figure())))
    if status != "completed" or view is None:
        print(message, flush=True)
    return result


def _learning_rate(model) -> str:
    try:
        return f"{float(model.optimizer.learning_rate):g}"
    except (AttributeError, TypeError, ValueError):  # pragma: no cover - schedules
        return "see the optimizer"
