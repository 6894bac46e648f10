"""A hyperparameter panel: sliders and boxes, a Train button, an output area.

Every value is checked before training starts.  A bad value (out of range,
text where a number belongs, an unknown name) gets a readable message in the
panel, "Please fix: …", never a traceback, and the widget keeps its last good
value.  A callback rejects settings that pass those checks but cannot work
(too little text for one batch, say) by raising :class:`InputError`.  Any
other exception is a failure of the code, not of the settings, and is shown
as one: its type, its message and a hint.

Example::

    panel = widgets.Panel(
        [widgets.Field("learning_rate", "learning rate", "log", 1e-3, 1e-4, 1.0)],
        on_train=lambda values: train.fit(build(**values), ...),
    )
    panel          # shows it in a notebook
"""

from __future__ import annotations

import contextlib
import html
import math
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from helpers import frontend

class InputError(ValueError):
    """Raised by a panel's callback to reject its settings: shown as "Please fix: …"."""


@dataclass(frozen=True)
class Failure:
    """What :meth:`Panel.train` returns when it could not produce a result.

    It is false in a boolean context, so ``if panel.train(): …`` works, and it
    can never be mistaken for a callback's own result, ``None`` included.
    """

    kind: str  # "input": settings rejected; "error": the code failed; "stopped": interrupted
    messages: tuple[str, ...]  # what the panel shows, one line each
    traceback: str = field(default="", repr=False)  # the full traceback of an "error"

    def __bool__(self) -> bool:
        return False


#: CSS classes a front-end (and the JupyterLab test) can find a panel by.
PANEL_CLASS, BUSY_CLASS = "llm-book-panel", "llm-book-panel-busy"

#: The widget kinds a :class:`Field` can have.
KINDS = ("int", "float", "log", "choice", "text", "number")


@dataclass(frozen=True)
class Field:
    """One hyperparameter of a panel."""

    name: str  # keyword passed to the train function
    label: str  # what the reader sees
    kind: str  # "int"/"float" slider, "log" slider, "choice" dropdown, "number" free box, "text"
    default: Any  # the starting value
    minimum: float | None = None  # smallest allowed value (numbers)
    maximum: float | None = None  # largest allowed value (numbers)
    options: tuple = ()  # allowed values of a "choice"
    help: str = ""  # a short hint shown as the tooltip

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Field {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "choice" and not self.options:
            raise ValueError(f"Field {self.name!r}: a choice needs options")
        if self.kind in ("int", "float", "log") and (self.minimum is None or self.maximum is None):
            raise ValueError(f"Field {self.name!r}: a slider needs a minimum and a maximum")
        if self.kind == "log" and not (self.minimum and self.minimum > 0):
            raise ValueError(f"Field {self.name!r}: a log slider needs a minimum > 0")
        value, error = self.check(self.default)
        if error:
            raise ValueError(f"Field {self.name!r}: the default is invalid: {error}")

    # ------------------------------------------------------------------ checks
    def _range_error(self, value) -> str | None:
        low, high = self.minimum, self.maximum
        if low is not None and high is not None and not low <= value <= high:
            return f"{self.label} must be between {low:g} and {high:g}, got {value:g}"
        if low is not None and value < low:
            return f"{self.label} must be at least {low:g}, got {value:g}"
        if high is not None and value > high:
            return f"{self.label} must be at most {high:g}, got {value:g}"
        return None

    def check(self, value) -> tuple[Any, str | None]:
        """Return ``(clean value, None)`` or ``(None, readable error)``."""
        if self.kind == "choice":
            for option in self.options:
                if value == option or (isinstance(value, str) and value.strip() == str(option)):
                    return option, None
            shown = ", ".join(str(o) for o in self.options)
            return None, f"{self.label} must be one of {shown}, got {value!r}"
        if self.kind == "text":
            if not isinstance(value, str) or not value.strip():
                return None, f"{self.label} must be non-empty text, got {value!r}"
            return value, None
        whole = self.kind == "int" or (self.kind == "number" and isinstance(self.default, int))
        number = _parse_number(value, whole)
        if number is None:
            kind = "a whole number" if whole else "a number"
            return None, f"{self.label} must be {kind}, got {value!r}"
        error = self._range_error(number)
        return (None, error) if error else (number, None)


def _parse_number(value, whole: bool):
    """int/float (or their text) → number; ``None`` for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    if whole:
        if float(value) != int(value):
            return None
        return int(value)
    return float(value)


def _make_widget(f: Field):
    import ipywidgets as w

    common = dict(description=f.label, description_tooltip=f.help or None, style={"description_width": "11em"})
    layout = w.Layout(width="32em")
    if f.kind == "int":
        return w.IntSlider(value=f.default, min=f.minimum, max=f.maximum, continuous_update=False, layout=layout, **common)
    if f.kind == "float":
        return w.FloatSlider(value=f.default, min=f.minimum, max=f.maximum, continuous_update=False, layout=layout, **common)
    if f.kind == "log":
        return w.FloatLogSlider(
            value=f.default,
            base=10,
            min=math.log10(f.minimum),
            max=math.log10(f.maximum),
            continuous_update=False,
            readout_format=".1e",
            layout=layout,
            **common,
        )
    if f.kind == "choice":
        return w.Dropdown(value=f.default, options=list(f.options), layout=layout, **common)
    # "number" and "text": free entry, checked on Train
    return w.Text(value=str(f.default), layout=layout, **common)


class Panel:
    """Widgets for ``fields``, a Train button, a message line and an output area.

    ``on_train(values)`` receives a dict of checked values.  Its return value
    is kept in ``panel.result`` and returned by :meth:`train`.  It rejects
    settings with :class:`InputError`; anything else it raises is reported
    as a failure of the code.  While it runs in a watched notebook the
    message line counts the seconds, and the callback may add a word on what
    it is doing with :meth:`progress`.
    """

    def __init__(
        self,
        fields: Sequence[Field],
        on_train: Callable[[dict], Any],
        *,
        title: str = "",
        button_label: str = "Train",
    ):
        import ipywidgets as w

        if not fields:
            raise ValueError("a panel needs at least one field")
        names = [f.name for f in fields]
        if len(set(names)) != len(names):
            raise ValueError(f"field names must be unique, got {names}")
        self.fields = {f.name: f for f in fields}
        self.on_train = on_train
        self.controls = {f.name: _make_widget(f) for f in fields}
        self.button = w.Button(description=button_label, button_style="primary", icon="play")
        self.message = w.HTML()
        self.output = w.Output()
        self.result = None
        self.failure: Failure | None = None  # why the last press gave no result
        self.errors: list[str] = []  # the messages of that failure
        self._progress_note = ""
        self.button.on_click(lambda _button: self.train())
        header = [w.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        self.widget = w.VBox([*header, *self.controls.values(), self.button, self.message, self.output])
        self.widget.add_class(PANEL_CLASS)
        frontend.keep_plots_on_the_main_thread()  # see there: JupyterLab's subshells

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    # ------------------------------------------------------------ messages
    def _show(self, errors: list[str], note: str = "") -> None:
        self.errors = list(errors)
        if errors:
            items = "".join(f"<li>{html.escape(e)}</li>" for e in errors)
            self.message.value = (
                '<div style="color:#8a1f11;background:#fdecea;padding:4px 8px;border-radius:4px">'
                f"Please fix:<ul style='margin:0'>{items}</ul></div>"
            )
        else:
            self.message.value = f"<span>{html.escape(note)}</span>" if note else ""

    def _show_failure(self, error: BaseException) -> None:
        summary = f"{type(error).__name__}: {error}"
        self.errors = [summary]
        self.message.value = (
            '<div style="color:#5c3c00;background:#fff4e0;padding:4px 8px;border-radius:4px">'
            f"The panel's code failed: <code>{html.escape(summary)}</code><br>"
            "<small>This is not about your settings. The full traceback is in "
            "<code>panel.failure.traceback</code>; calling <code>panel.train()</code> "
            "in a cell shows where it happened.</small></div>"
        )

    def progress(self, note: str) -> None:
        """Say what the callback is doing now; shown beside the elapsed time."""
        self._progress_note = str(note)

    def _tick(self, done: threading.Event, start: float) -> None:
        """Count the seconds on the message line until ``done`` (a watched notebook only)."""
        while not done.wait(1.0):
            note = f" · {self._progress_note}" if self._progress_note else ""
            self.message.value = f"<span>Working… {time.perf_counter() - start:.0f} s{html.escape(note)}</span>"

    # -------------------------------------------------------------- values
    def values(self) -> dict:
        """The raw values the widgets hold now."""
        return {name: control.value for name, control in self.controls.items()}

    def validate(self, values: dict | None = None) -> tuple[dict, list[str]]:
        """Check ``values`` (default: the widgets'); return ``(clean, errors)``."""
        values = self.values() if values is None else values
        clean, errors = {}, []
        for name, value in values.items():
            f = self.fields.get(name)
            if f is None:
                errors.append(f"unknown setting {name!r}; the settings are {', '.join(self.fields)}")
                continue
            good, error = f.check(value)
            if error:
                errors.append(error)
            else:
                clean[name] = good
        return clean, errors

    def set(self, **values) -> bool:
        """Set widgets from keyword values; bad ones are reported and left unchanged."""
        clean, errors = self.validate(values)
        for name, value in clean.items():
            control = self.controls[name]
            control.value = str(value) if self.fields[name].kind in ("number", "text") else value
        self._show(errors)
        return not errors

    # --------------------------------------------------------------- train
    def train(self, **overrides):
        """Check everything, then call ``on_train``; also what the button does.

        Returns the callback's result, or a :class:`Failure` (false) when the
        settings were rejected or the code failed.
        """
        if overrides and not self.set(**overrides):
            self.failure = Failure("input", tuple(self.errors))
            return self.failure
        clean, errors = self.validate()
        if errors:
            self._show(errors)
            self.failure = Failure("input", tuple(errors))
            return self.failure
        self.failure, self._progress_note = None, ""
        self._show([], "Working…")
        # With a front-end watching, what the callback prints and draws goes
        # into the panel's output area, and the message line counts seconds.
        # Without one (nbval, the book build) output goes into the cell: see
        # helpers.frontend for why that matters.
        live = frontend.live_default()
        done = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(done, time.perf_counter()), daemon=True)
        if live:
            self.output.clear_output()
            ticker.start()
        self.widget.add_class(BUSY_CLASS)
        try:
            # Exceptions are caught inside the Output context: one that
            # escapes it would be printed there as a traceback.
            with self.output if live else contextlib.nullcontext():
                try:
                    self.result = self.on_train(clean)
                except InputError as err:
                    self.failure = Failure("input", (str(err),))
                except KeyboardInterrupt:  # the notebook's stop button
                    self.failure = Failure("stopped", ("Stopped before it finished.",))
                except Exception as err:  # a failure of the code: reported, not a traceback wall
                    self.failure = Failure("error", (f"{type(err).__name__}: {err}",), traceback.format_exc())
                    failed_with = err
        finally:
            done.set()
            if ticker.is_alive():
                ticker.join(timeout=5)  # so that its last count cannot overwrite what follows
            self.widget.remove_class(BUSY_CLASS)
        if self.failure is None:
            self._show([], getattr(self.result, "message", "Done."))
            return self.result
        if self.failure.kind == "input":
            self._show(list(self.failure.messages))
        elif self.failure.kind == "stopped":
            self._show([], self.failure.messages[0])
            self.errors = list(self.failure.messages)
        else:
            self._show_failure(failed_with)
        return self.failure
