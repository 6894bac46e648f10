import time

import pytest

from helpers import data, widgets
from helpers.widgets import Field


def rnn_fields():
    return [
        Field("hidden_units", "hidden units", "int", 64, 8, 512),
        Field("sequence_length", "window length", "int", 20, 5, 200),
        Field("batch_size", "batch size", "choice", 8, options=(8, 16, 32)),
        Field("learning_rate", "learning rate", "log", 1e-2, 1e-4, 10.0),
        Field("dropout", "dropout", "float", 0.1, 0.0, 0.9),
        Field("train_chars", "training characters", "number", 1800, 100, 1800),
        Field("clip", "clip at", "choice", "off", options=("off", 1.0)),
        Field("prompt", "prompt", "text", "to be"),
    ]


@pytest.fixture
def panel(text):
    calls = []

    def on_train(values):
        calls.append(values)
        corpus = data.char_corpus(text, max_chars=values["train_chars"])
        try:
            corpus.datasets(values["sequence_length"], values["batch_size"])
        except ValueError as err:  # settings that pass the fields' checks but cannot work
            raise widgets.InputError(str(err)) from None
        return "trained"

    p = widgets.Panel(rnn_fields(), on_train, title="Test panel")
    p.calls = calls
    return p


def test_good_values_reach_the_train_function(panel):
    assert panel.train() == "trained" and panel.result == "trained"
    assert panel.calls == [
        dict(hidden_units=64, sequence_length=20, batch_size=8, learning_rate=1e-2, dropout=0.1,
             train_chars=1800, clip="off", prompt="to be")
    ]
    assert panel.errors == [] and panel.failure is None and "Done." in panel.message.value
    assert widgets.PANEL_CLASS in panel.widget._dom_classes
    assert widgets.BUSY_CLASS not in panel.widget._dom_classes


def test_the_button_trains(panel):
    panel.button.click()
    assert len(panel.calls) == 1


BAD_INPUTS = [
    (dict(hidden_units=0), "hidden units must be between 8 and 512, got 0"),
    (dict(hidden_units=-16), "hidden units must be between 8 and 512, got -16"),
    (dict(hidden_units="many"), "hidden units must be a whole number, got 'many'"),
    (dict(hidden_units=12.5), "hidden units must be a whole number, got 12.5"),
    (dict(sequence_length=True), "window length must be a whole number, got True"),
    (dict(learning_rate=0), "learning rate must be between 0.0001 and 10, got 0"),
    (dict(learning_rate=-0.1), "learning rate must be between 0.0001 and 10, got -0.1"),
    (dict(learning_rate="fast"), "learning rate must be a number, got 'fast'"),
    (dict(learning_rate=float("nan")), "learning rate must be a number, got nan"),
    (dict(dropout=1.5), "dropout must be between 0 and 0.9, got 1.5"),
    (dict(batch_size=100), "batch size must be one of 8, 16, 32, got 100"),
    (dict(train_chars=0), "training characters must be between 100 and 1800, got 0"),
    (dict(train_chars="a lot"), "training characters must be a whole number, got 'a lot'"),
    (dict(prompt="   "), "prompt must be non-empty text, got '   '"),
    (dict(epochs=3), "unknown setting 'epochs'"),
]


@pytest.mark.parametrize("values, message", BAD_INPUTS)
def test_bad_input_gets_a_message_not_a_traceback(panel, values, message):
    before = panel.values()
    failure = panel.train(**values)
    assert isinstance(failure, widgets.Failure) and failure.kind == "input" and not failure
    assert panel.failure is failure and list(failure.messages) == panel.errors
    assert panel.calls == [], "nothing is trained"
    assert any(message in error for error in panel.errors), panel.errors
    assert message.split(",")[0].replace("'", "&#x27;") in panel.message.value
    assert "Traceback" not in panel.message.value
    assert panel.values() == before, "the widgets keep their good values"


def test_an_empty_corpus_slice_is_reported_by_the_train_function(panel):
    """A slice too short for one batch passes the field checks but not data.windows."""
    failure = panel.train(train_chars=100, sequence_length=50, batch_size=32)
    assert failure.kind == "input" and "too few for one batch" in panel.errors[0]
    assert "Please fix" in panel.message.value and "Traceback" not in panel.message.value


@pytest.mark.parametrize("error", [RuntimeError("out of memory"), ValueError("Expected end of text, found '$'"),
                                   KeyError("width")])
def test_a_broken_callback_is_a_failure_of_the_code_not_of_the_settings(error):
    """Only InputError means "your settings": any other exception, ValueError included, is a bug."""

    def broken(values):
        raise error

    p = widgets.Panel([Field("n", "n", "int", 1, 1, 2)], broken)
    failure = p.train()
    assert isinstance(failure, widgets.Failure) and failure.kind == "error" and not failure
    assert failure.messages == (f"{type(error).__name__}: {error}",) and p.errors == list(failure.messages)
    assert "broken" in failure.traceback, "the traceback is kept for whoever wants it"
    assert "Please fix" not in p.message.value and "failed" in p.message.value
    assert type(error).__name__ in p.message.value and "Traceback" not in p.message.value
    assert widgets.BUSY_CLASS not in p.widget._dom_classes


def test_a_none_result_is_not_a_failure():
    p = widgets.Panel([Field("n", "n", "int", 1, 1, 2)], lambda values: None)
    assert p.train() is None and p.failure is None and p.errors == []
    assert isinstance(p.train(n=5), widgets.Failure), "a rejected value is a Failure, not None"


def test_a_stop_while_the_callback_runs_is_reported(monkeypatch):
    def interrupted(values):
        raise KeyboardInterrupt

    p = widgets.Panel([Field("n", "n", "int", 1, 1, 2)], interrupted)
    failure = p.train()
    assert failure.kind == "stopped" and "Stopped" in p.message.value


class FakeShell:
    kernel = object()


def test_a_watched_panel_captures_output_and_counts_seconds(monkeypatch):
    """In a live notebook the output goes to the panel and the message line shows the time."""
    monkeypatch.setattr("IPython.get_ipython", lambda: FakeShell())
    monkeypatch.delenv("LLM_BOOK_HEADLESS", raising=False)
    seen = []

    def slow(values):
        panel.progress("counting")
        time.sleep(1.3)  # long enough for one tick of the clock
        seen.append(panel.message.value)
        return "done"

    panel = widgets.Panel([Field("n", "n", "int", 1, 1, 2)], slow)
    entered = []
    monkeypatch.setattr(type(panel.output), "__enter__", lambda self: entered.append(self))
    monkeypatch.setattr(type(panel.output), "__exit__", lambda self, *exc: None)
    assert panel.train() == "done"
    assert entered and all(o is panel.output for o in entered), "output captured in the panel's area"
    assert "Working… 1 s · counting" in seen[0]
    assert panel.message.value == "<span>Done.</span>", "the clock stops before the result is shown"


def test_an_unwatched_panel_prints_into_the_cell(monkeypatch):
    monkeypatch.setenv("LLM_BOOK_HEADLESS", "1")
    panel = widgets.Panel([Field("n", "n", "int", 1, 1, 2)], lambda values: "done")
    entered = []
    monkeypatch.setattr(type(panel.output), "__enter__", lambda self: entered.append(self))
    assert panel.train() == "done" and entered == []


def test_set_accepts_text_for_numbers_and_updates_widgets(panel):
    assert panel.set(hidden_units="128", learning_rate="0.5", train_chars="1_000", batch_size="16", clip=1.0)
    values = panel.values()
    assert values["hidden_units"] == 128 and values["learning_rate"] == pytest.approx(0.5)
    assert values["train_chars"] == "1000" and values["batch_size"] == 16 and values["clip"] == 1.0
    assert panel.validate()[0]["train_chars"] == 1000
    assert panel.set(prompt="ROMEO:") and panel.values()["prompt"] == "ROMEO:"


def test_several_errors_are_listed_together(panel):
    panel.set(hidden_units=0, learning_rate="x", batch_size=7)
    assert len(panel.errors) == 3 and panel.message.value.count("<li>") == 3
    panel.set(hidden_units=32)
    assert panel.errors == [] and panel.message.value == ""


def test_field_definitions_are_checked():
    with pytest.raises(ValueError, match="kind must be one of"):
        Field("x", "x", "slider", 1, 0, 2)
    with pytest.raises(ValueError, match="a choice needs options"):
        Field("x", "x", "choice", 1)
    with pytest.raises(ValueError, match="a slider needs a minimum and a maximum"):
        Field("x", "x", "int", 1)
    with pytest.raises(ValueError, match="a log slider needs a minimum > 0"):
        Field("x", "x", "log", 1.0, 0.0, 2.0)
    with pytest.raises(ValueError, match="the default is invalid"):
        Field("x", "x", "int", 5, 0, 2)


def test_open_ended_number_fields():
    low = Field("n", "n", "number", 5, minimum=1)
    high = Field("m", "m", "number", 0.5, maximum=1.0)
    assert low.check("7") == (7, None) and low.check(0)[1] == "n must be at least 1, got 0"
    assert high.check(2)[1] == "m must be at most 1, got 2" and high.check("0.25") == (0.25, None)
    assert Field("t", "t", "number", 1.0).check("1e-3") == (0.001, None)
    assert Field("w", "w", "int", 2, 0, 10).check("3.0") == (3, None)


def test_panel_definitions_are_checked():
    with pytest.raises(ValueError, match="at least one field"):
        widgets.Panel([], lambda v: None)
    with pytest.raises(ValueError, match="unique"):
        widgets.Panel([Field("a", "a", "int", 1, 0, 2)] * 2, lambda v: None)


def test_panel_displays_its_widget(panel, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    panel._ipython_display_()
    assert shown == [panel.widget]
    assert panel.widget.children[0].value == "<b>Test panel</b>"
