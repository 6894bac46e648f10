"""One training entry point for every Keras model in the book: :func:`fit`.

``fit`` wraps ``model.fit`` and adds what a reader needs while a model trains:

* a loss plot (training and validation) redrawn in place, with a progress
  line, when a notebook front-end is watching; one final figure otherwise
  (nbval, the book build, or ``LLM_BOOK_HEADLESS=1``);
* a stop with an explanation as soon as the loss becomes NaN or infinite;
* Ctrl-C or the notebook's stop button ends training early and still
  returns the model and everything recorded so far, whenever the stop
  arrives (see :class:`StopRequest`);
* throughput in tokens (or examples, or steps) per second, in a unit that
  says what was counted.
"""

from __future__ import annotations

import io
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from helpers import device  # noqa: F401  (imports TensorFlow quietly, before keras)
from helpers.frontend import HEADLESS_ENV, in_notebook, live_default  # noqa: F401  (part of this module's interface)

import keras  # noqa: E402



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
    count: int  # what training went through, in `unit`s
    seconds: float  # training time, validation excluded, on `clock`
    unit: str = "tokens"  # what `count` counts: "tokens", "examples" or "steps"
    clock: str = "wall"  # "wall": wall-clock seconds; "cpu": this process's processor seconds

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def rate(self) -> float:
        """``unit``s per second of training."""
        return self.count / self.seconds if self.seconds > 0 else 0.0

    @property
    def tokens(self) -> int | None:
        """Target tokens seen in training, or ``None`` when tokens were not what was counted."""
        return self.count if self.unit == "tokens" else None

    @property
    def tokens_per_second(self) -> float | None:
        return self.rate if self.unit == "tokens" else None

    @property
    def final_val_loss(self) -> float | None:
        return self.history.val_loss[-1] if self.history.val_loss else None

    def figure(self):
        """A matplotlib Figure of the loss curves."""
        return _loss_figure(self.history, self.message)


# --------------------------------------------------------------------------
# Display: live widgets in a watched notebook, a final figure otherwise
# --------------------------------------------------------------------------
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


def _progress_text(epoch, epochs, step, steps, loss, val_loss, rate, seconds, unit="tokens", clock="wall") -> str:
    parts = [f"epoch {epoch}/{epochs}"]
    parts.append(f"step {step}/{steps}" if steps else f"step {step}")
    if loss is not None:
        parts.append(f"loss {loss:.3f}")
    if val_loss is not None:
        parts.append(f"val {val_loss:.3f}")
    parts.append(f"{rate:,.0f} {unit}/s")
    parts.append(f"{seconds:.0f} {'s' if clock == 'wall' else 'CPU s'}")
    return " · ".join(parts)


class _LiveView:
    """Progress line and loss plot as widgets, updated in place.

    One figure is kept and only its line data change, so a redraw costs a
    few tens of milliseconds.  It is redrawn at most every
    ``refresh_seconds``, and never more often than keeps drawing under 0.5 %
    of the elapsed time: a redraw takes 35–50 ms on two CPU cores, so the
    plot changes every 7–10 s there while the progress line, which costs
    next to nothing, changes four times a second.  The first drawing waits
    by the same rule (its cost is taken from the last one), so a run of a
    few seconds draws its plot once, at the end, and a run of a quarter of
    a minute twice (``make bench`` measures the cost against plain
    ``model.fit``).  No wait is longer than :attr:`MAX_WAIT`.
    """

    #: Seconds the last plot render took, in any view: the first render of
    #: the next view is scheduled by it.  A first guess until one is timed.
    render_seconds = 0.04
    #: The longest wait between drawings (seconds), however slow one render
    #: was (a busy machine), so that a reader always sees the curve move.
    MAX_WAIT = 30.0

    def __init__(self, refresh_seconds: float):
        import ipywidgets

        self.refresh_seconds = refresh_seconds
        self.progress = ipywidgets.HTML("starting…")
        self.plot = None  # made at the first drawing
        # shown at its own size; by default the widget stretches to the cell
        width = f"{_LossPlot.SIZE[0] * _LossPlot.DPI:.0f}px"
        # hidden until its first drawing: an empty image shows as a broken one
        self.image = ipywidgets.Image(format="png", layout=ipywidgets.Layout(width=width, display="none"))
        self.box = ipywidgets.VBox([self.progress, self.image])
        self._next_draw = self._after(time.perf_counter())
        self._next_text = 0.0
        _display(self.box)

    def _after(self, now: float) -> float:
        return now + max(self.refresh_seconds, min(200 * _LiveView.render_seconds, self.MAX_WAIT))

    def update(self, now: float, text: str, history: History, force: bool = False,
               force_plot: bool | None = None) -> None:
        """Show ``text`` and redraw the plot, each when due; ``force`` does both now.

        ``force_plot=False`` with ``force`` shows the text now and leaves the
        plot to its schedule (an epoch's end: the plot catches up at its next
        drawing, or at the run's end, which forces both).
        """
        if force or now >= self._next_text:
            self.progress.value = f"<code>{text}</code>"
            self._next_text = now + 0.25
        if (force if force_plot is None else force_plot) or now >= self._next_draw:
            if self.plot is None:  # made once, outside the timing: only the render repeats
                self.plot = _LossPlot()
            start = time.perf_counter()
            self.image.value = figure_png(self.plot.draw(history))
            _LiveView.render_seconds = time.perf_counter() - start
            self.image.layout.display = None  # shown from the first drawing on
            self._next_draw = self._after(now)


# --------------------------------------------------------------------------
# The Keras callback that records, watches and draws
# --------------------------------------------------------------------------
def _per_batch(dataset) -> tuple[int, str]:
    """What one batch holds, from the dataset's static shapes: ``(count, unit)``.

    Integer targets of rank 2 or more are token ids, one per position, so a
    batch of ``(batch, time)`` targets holds ``batch × time`` tokens.  Other
    targets (class labels, images, real numbers) count as examples, the
    batch size.  When the shapes are not static (a last partial batch, say)
    nothing is pulled from the dataset to find out, since that would move a
    seeded shuffle: each step counts as one ``"steps"``.
    """
    spec = getattr(dataset, "element_spec", None)
    if not isinstance(spec, tuple) or len(spec) < 2:
        return 1, "steps"
    shape = getattr(spec[1], "shape", None)
    dtype = getattr(spec[1], "dtype", None)
    if shape is None or shape.rank is None or shape.rank == 0 or shape[0] is None:
        return 1, "steps"
    if shape.rank >= 2 and dtype is not None and dtype.is_integer and None not in shape:
        return int(np.prod(shape)), "tokens"
    return int(shape[0]), "examples"


#: What a training time is measured in: wall-clock seconds, or the processor
#: seconds this process used (all its threads).  Other programs running on
#: the machine stretch the first and hardly change the second.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


class TrainingClock(keras.callbacks.Callback):
    """Measures training time, excluding the validation passes inside ``fit``.

    Other callbacks subclass it to act on training time, for example to stop
    after a time budget (see ``bench/run.py``).  ``clock`` is a key of
    :data:`CLOCKS`.
    """

    def __init__(self, clock: str = "wall"):
        super().__init__()
        if clock not in CLOCKS:
            raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {clock!r}")
        self.clock = clock
        self._now = CLOCKS[clock]
        self.train_seconds = 0.0  # closed training segments
        self._segment_start: float | None = None

    def elapsed(self) -> float:
        """Seconds of training so far, on this callback's clock."""
        running = 0.0 if self._segment_start is None else self._now() - self._segment_start
        return self.train_seconds + running

    def _resume(self):
        self._segment_start = self._now()

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

    def __init__(self, history, per_batch, unit, epochs, view, log_every, stop, max_seconds=None, clock="wall"):
        super().__init__(clock)
        self.max_seconds = max_seconds
        self.out_of_time = False  # stopped by max_seconds
        self.history = history
        self.per_batch, self.unit = per_batch, unit
        self.epochs = epochs
        self.view = view
        self.log_every = log_every
        self.stop = stop
        self.global_step = 0
        self.count = 0
        self.diverged_at: tuple[int, int, float] | None = None
        self._epoch = 0
        self._last_index = 0  # batches seen this epoch at the previous curve point
        self._last_mean = 0.0
        self._printed_at = 0.0  # training seconds at the last progress line

    # A stop that Python swallowed (see StopRequest) is acted on at the next
    # of these moments: before and after every training or validation step.
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.stop.check()

    def on_train_batch_begin(self, batch, logs=None):
        self.stop.check()

    def on_test_batch_begin(self, batch, logs=None):
        self.stop.check()

    def on_test_batch_end(self, batch, logs=None):
        self.stop.check()

    def on_epoch_begin(self, epoch, logs=None):
        self.stop.check()
        self._epoch = epoch + 1
        self._last_index = 0
        self._last_mean = 0.0

    def on_train_batch_end(self, batch, logs=None):
        self.global_step += 1
        self.count += self.per_batch
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
        if self.max_seconds is not None and self.elapsed() >= self.max_seconds:
            self.out_of_time = True
            self.model.stop_training = True
        self.stop.check()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        logs["epoch"] = epoch + 1
        self.history.epochs.append(logs)
        val = logs.get("val_loss")
        if val is not None and self.diverged_at is None:
            self.history.val_step.append(self.global_step)
            self.history.val_loss.append(float(val))
            self.history.val_seconds.append(self.elapsed())
        if self.view is not None:  # the text now; the plot when due, or at the run's end
            self._refresh(logs.get("loss"), force=True, force_plot=False)
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
            self.count / seconds if seconds > 0 else 0.0,
            seconds,
            self.unit,
            self.clock,
        )

    def _refresh(self, loss, force=False, force_plot=None):
        self.view.update(time.perf_counter(), self.progress_text(loss), self.history, force, force_plot)


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


class StopRequest:
    """Ctrl-C, or the notebook's stop button, during :func:`fit`, made impossible to lose.

    Both send SIGINT to the Python process, and Python's own handler raises
    ``KeyboardInterrupt`` wherever the main thread happens to be.  If that is
    inside a finaliser (``__del__`` or a weak-reference callback, which
    TensorFlow and tf.data run often), Python prints "Exception ignored in …"
    and carries on: the stop is lost.  While :func:`fit` trains, this
    handler therefore records the request before raising, and the training
    callback raises again at the next step boundary if the first exception
    was swallowed.  Outside the main thread (where no signal arrives) it does
    nothing.
    """

    def __init__(self):
        self.requested = False  # a stop arrived
        self.raising = True  # while training: raise KeyboardInterrupt; after: only record
        self._previous = None
        self._installed = False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc):
        if self._installed:
            previous = self._previous
            # None: a handler not installed from Python; Python's own is the safe default
            signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
            self._installed = False
        return False

    def _handle(self, signum, frame):
        first = not self.requested
        self.requested = True
        if first and self.raising:  # a second press while stopping changes nothing
            raise KeyboardInterrupt

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if a stop arrived while training (called at step boundaries)."""
        if self.requested and self.raising:
            raise KeyboardInterrupt


def fit(
    model,
    train_data,
    validation_data=None,
    *,
    epochs: int = 1,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    tokens_per_batch: int | None = None,
    max_seconds: float | None = None,
    clock: str = "wall",
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

    Throughput is counted in tokens when the targets are token ids with a
    static shape, else in examples or in steps (see :func:`_per_batch`);
    ``tokens_per_batch`` states the count where the shapes cannot.

    ``max_seconds`` ends training once that much training time (validation
    excluded) has passed, at the end of a step: the way to give several
    models the same budget.  Set ``epochs`` high enough for it to matter.
    ``clock="cpu"`` measures that time (and the history's seconds) in the
    processor seconds this process uses rather than on the wall clock: a
    budget that other programs on a busy machine do not shrink, for
    comparisons that must come out the same on a shared machine.
    """
    _check_positive_int("epochs", epochs)
    _check_positive_int("steps_per_epoch", steps_per_epoch, allow_none=True)
    _check_positive_int("validation_steps", validation_steps, allow_none=True)
    _check_positive_int("tokens_per_batch", tokens_per_batch, allow_none=True)
    _check_positive_int("log_every", log_every)
    if max_seconds is not None and (
        isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float)) or not max_seconds > 0
    ):
        raise ValueError(f"max_seconds must be a number > 0, got {max_seconds!r}")
    if not getattr(model, "compiled", False):
        raise ValueError(
            "the model is not compiled: call model.compile(optimizer=..., loss=...) before training"
        )
    live = plot and (live_default() if live is None else live)
    per_batch, unit = (tokens_per_batch, "tokens") if tokens_per_batch else _per_batch(train_data)
    if steps_per_epoch is not None:
        train_data = train_data.repeat()
    if validation_data is not None and validation_steps is not None:
        validation_data = validation_data.take(validation_steps)

    _build_optimizer(model)

    history = History()
    stop = StopRequest()
    monitor = _Monitor(history, per_batch, unit, epochs, None, log_every, stop, max_seconds, clock)
    status = "completed"
    with stop:
        try:
            monitor.view = _LiveView(refresh_seconds) if live else None
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
        # From here on a stop is only recorded: the run is over, and what
        # follows (the message, the last redraw) must finish.
        stop.raising = False
        if stop.requested:
            status = "interrupted"
        result = _result(model, history, monitor, status)
        view = monitor.view
        if view is not None:
            view.update(time.perf_counter(), result.message, history, force=True)
        elif plot and in_notebook():
            from IPython.display import Image

            _display(Image(data=figure_png(result.figure())))
        if result.status != "completed" or view is None:
            print(result.message, flush=True)
    return result


def _build_optimizer(model) -> None:
    """Create the optimizer's slots before the first step.

    Left to Keras, the TensorFlow backend creates them inside the first
    traced step and then traces that step a second time; for a two-block GPT
    the first step took about 4 s instead of 2 (Keras 3.15, TensorFlow 2.21).
    A model whose weights do not exist yet (a ``Sequential`` with no
    ``Input``) is left to Keras.
    """
    optimizer = getattr(model, "optimizer", None)
    variables = model.trainable_variables if getattr(model, "built", False) else []
    if optimizer is not None and not optimizer.built and variables:
        optimizer.build(variables)


def _result(model, history: History, monitor: _Monitor, status: str) -> TrainResult:
    """The :class:`TrainResult`, with a message that says how training ended."""
    seconds = monitor.train_seconds
    rate = f"{monitor.count / seconds:,.0f} {monitor.unit}/s" if seconds else f"0 {monitor.unit}/s"
    if status == "interrupted":
        message = (
            f"Interrupted after {monitor.global_step} steps. The model keeps the weights it "
            "had reached, and the result's history holds the curves so far."
        )
    elif monitor.diverged_at is not None:
        epoch, step, value = monitor.diverged_at
        status = "diverged"
        message = (
            f"Training stopped at step {step} (epoch {epoch}): the loss became {value}. "
            f"The updates grew until the numbers overflowed; the learning rate "
            f"({_learning_rate(model)}) is probably too high. Try a smaller learning rate, "
            "or clip the gradients' global norm "
            "(for example optimizer=keras.optimizers.Adam(global_clipnorm=1.0))."
        )
    else:
        val = f", validation loss {history.val_loss[-1]:.3f}" if history.val_loss else ""
        unit = "s" if monitor.clock == "wall" else "CPU s"
        budget = f" (the {monitor.max_seconds:g} {unit} budget)" if monitor.out_of_time else ""
        message = f"Completed {monitor.global_step} steps in {seconds:.1f} {unit}{budget} ({rate}){val}."
    return TrainResult(
        model=model,
        history=history,
        status=status,
        message=message,
        steps=monitor.global_step,
        count=monitor.count,
        seconds=seconds,
        unit=monitor.unit,
        clock=monitor.clock,
    )


def _learning_rate(model) -> str:
    try:
        return f"{float(model.optimizer.learning_rate):g}"
    except (AttributeError, TypeError, ValueError):  # pragma: no cover - schedules
        return "see the optimizer"
