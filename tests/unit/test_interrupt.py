"""A stop (Ctrl-C, or the notebook's stop button: SIGINT) is never lost by ``train.fit``.

Each test sends a real SIGINT to this process from another thread at one
moment of training, and checks that ``fit`` returns promptly with the status
"interrupted", the model and the curves so far.  Every run is bounded: if a
stop were lost, training would simply finish its few thousand short steps
and the test would fail on the status, never hang.
"""

import os
import signal
import sys
import threading
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import train

STEPS = 2_000  # upper bound of every run; the stop comes long before
PROMPT_SECONDS = 5.0  # a stop must end training within this
REPEATS = 3


def model_and_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8, drop_remainder=True)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return model, data


class Slow(keras.callbacks.Callback):
    """Makes each step take a few milliseconds, so that STEPS bounds the run by seconds."""

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.003)


class Stopper:
    """Sends SIGINT to this process once ``moment`` is set (from the main thread)."""

    def __init__(self):
        self.moment = threading.Event()
        self.sent_at = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        if self.moment.wait(timeout=30):
            self.sent_at = time.perf_counter()
            os.kill(os.getpid(), signal.SIGINT)

    def join(self):
        self.moment.set()  # never leave the thread waiting
        self._thread.join(timeout=5)


@pytest.fixture(autouse=True)
def stray_signals():
    """Outside fit, a SIGINT is recorded here instead of aborting the pytest session."""
    received = []
    previous = signal.signal(signal.SIGINT, lambda *args: received.append(time.perf_counter()))
    yield received
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def unraisable(monkeypatch):
    """Exceptions Python could not raise (in finalisers), by type."""
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: seen.append(info.exc_type))
    return seen


def stop_and_fit(model, data, arm, stray, **kwargs):
    """Train with ``arm(stopper)`` deciding when the stop is sent; check the outcome."""
    stopper = Stopper()
    callbacks = (Slow(), *arm(stopper))
    handler = signal.getsignal(signal.SIGINT)
    try:
        result = train.fit(
            model, data, data, epochs=1, steps_per_epoch=STEPS, log_every=5, callbacks=callbacks, **kwargs
        )
        ended = time.perf_counter()
    finally:
        stopper.join()
    assert stopper.sent_at is not None, "the moment never came"
    assert stray == [], "the stop arrived after fit had returned"
    assert signal.getsignal(signal.SIGINT) is handler, "fit restores the SIGINT handler it found"
    assert result.status == "interrupted", result.message
    assert result.steps < STEPS and "Interrupted after" in result.message
    assert ended - stopper.sent_at < PROMPT_SECONDS, f"took {ended - stopper.sent_at:.1f} s to stop"
    assert result.history.step == list(range(5, result.steps + 1, 5)), "every curve point so far is kept"
    assert result.model is model and model.predict(np.zeros((1, 4), "float32"), verbose=0).shape == (1, 1)
    return result


def at_callback(hook, when=lambda batch: True, hold=0.5):
    """A callback that sets the stopper's moment at ``hook`` and then stays there for ``hold`` s."""

    def arm(stopper):
        class AtMoment(keras.callbacks.Callback):
            pass

        def fire(self, *args, **kwargs):
            if not stopper.moment.is_set() and when(args[0] if args else None):
                stopper.moment.set()
                time.sleep(hold)  # the signal arrives during this

        setattr(AtMoment, hook, fire)
        return [AtMoment()]

    return arm


@pytest.mark.parametrize("repeat", range(REPEATS))
def test_stop_before_the_first_step(stray_signals, repeat):
    model, data = model_and_data()
    result = stop_and_fit(model, data, at_callback("on_train_begin"), stray_signals)
    assert result.steps == 0


@pytest.mark.parametrize("repeat", range(REPEATS))
def test_stop_while_the_step_is_traced(stray_signals, repeat):
    model, data = model_and_data()
    original = model.train_step
    armed = []

    def train_step(data):  # Python code here runs only while TensorFlow traces the step
        armed[0].moment.set()
        time.sleep(0.5)
        return original(data)

    model.train_step = train_step

    def arm(stopper):
        armed.append(stopper)
        return []

    result = stop_and_fit(model, data, arm, stray_signals)
    assert result.steps <= 1


@pytest.mark.parametrize("repeat", range(REPEATS))
def test_stop_in_the_middle_of_training(stray_signals, repeat):
    model, data = model_and_data()

    def arm(stopper):
        class After20(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if batch == 20:
                    stopper.moment.set()  # and training goes on

        return [After20()]

    result = stop_and_fit(model, data, arm, stray_signals)
    assert 20 <= result.steps < STEPS


@pytest.mark.parametrize("repeat", range(REPEATS))
def test_stop_during_validation(stray_signals, repeat):
    model, data = model_and_data()
    # validation after every 30 steps; the stop comes in the first validation pass
    stopper_arm = at_callback("on_test_batch_begin", when=lambda batch: batch == 2)
    stopper = Stopper()

    callbacks = (Slow(), *stopper_arm(stopper))
    try:
        result = train.fit(model, data, data, epochs=50, steps_per_epoch=30, log_every=5, callbacks=callbacks)
        ended = time.perf_counter()
    finally:
        stopper.join()
    assert stray_signals == [] and stopper.sent_at is not None
    assert result.status == "interrupted" and result.steps == 30, result.message
    assert ended - stopper.sent_at < PROMPT_SECONDS
    assert result.history.val_loss == [], "the interrupted validation pass is not recorded"


@pytest.mark.parametrize("repeat", range(REPEATS))
def test_stop_while_the_live_plot_redraws(stray_signals, repeat, monkeypatch):
    model, data = model_and_data()
    monkeypatch.setattr(train, "_display", lambda obj: None)
    render = train.figure_png
    armed = []

    # With no interval and a last render taken as free, the first redraw comes
    # at the first curve point (step 5), mid-training on any machine; later
    # ones are throttled by their cost, and on a loaded machine the next may
    # come only after the last step.
    monkeypatch.setattr(train._LiveView, "render_seconds", 0.0)
    def slow_render(fig):
        if armed and not armed[0].moment.is_set() and len(fig.axes[0].lines[0].get_xdata()) >= 1:
            armed[0].moment.set()
            time.sleep(0.5)  # the signal arrives while the plot is drawn
        return render(fig)

    monkeypatch.setattr(train, "figure_png", slow_render)

    def arm(stopper):
        armed.append(stopper)
        return []

    result = stop_and_fit(model, data, arm, stray_signals, live=True, refresh_seconds=0.0)
    assert result.steps >= 5


@pytest.mark.parametrize("repeat", range(REPEATS))
def test_stop_swallowed_by_a_finaliser_is_still_obeyed(stray_signals, repeat, unraisable):
    """Python prints "Exception ignored in …" for an exception raised inside __del__ and carries
    on; the request was recorded all the same, and training stops at the next step boundary."""
    model, data = model_and_data()

    def arm(stopper):
        class Finaliser:
            def __del__(self):
                stopper.moment.set()
                time.sleep(0.5)  # the signal's KeyboardInterrupt is raised here, and lost

        class DropAt10(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if batch == 10:
                    obj = Finaliser()
                    del obj

        return [DropAt10()]

    result = stop_and_fit(model, data, arm, stray_signals)
    assert 11 <= result.steps <= 13, "stopped at the next step boundary"
    assert KeyboardInterrupt in unraisable, "the first KeyboardInterrupt was indeed swallowed"


def test_a_finaliser_does_swallow_keyboard_interrupt(unraisable):
    """Why fit records the request: without it, this stop would be lost."""

    class Finaliser:
        def __del__(self):
            raise KeyboardInterrupt

    obj = Finaliser()
    del obj  # no exception reaches this frame
    assert unraisable == [KeyboardInterrupt]


def test_a_second_stop_while_stopping_changes_nothing(stray_signals):
    stop = train.StopRequest()
    with stop:
        with pytest.raises(KeyboardInterrupt):
            stop._handle(signal.SIGINT, None)
        stop._handle(signal.SIGINT, None)  # no second exception in the middle of cleaning up
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            stop.check()
        stop.raising = False
        stop.check()  # after training, a stop is only recorded


def test_outside_the_main_thread_nothing_is_installed():
    outcome = []

    def run():
        stop = train.StopRequest()
        with stop:
            outcome.append(stop._installed)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=10)
    assert outcome == [False]
