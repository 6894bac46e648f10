"""helpers.frontend: who is watching, and matplotlib drawn from one thread only."""

import os
import sys
import threading

import matplotlib
import pytest
from IPython.core.events import EventManager, available_events

from helpers import frontend

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import pyplot  # noqa: E402


class Shell:
    """The part of an IPython shell that the hooks see."""

    def __init__(self):
        self.events = EventManager(self, available_events)


def log_axis_figure(top: float):
    """A pyplot figure whose tick labels need mathtext ($\\mathdefault{10^{k}}$)."""
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.barh(["a", "b"], [10.0, top])
    ax.set_xscale("log")
    return fig


def draw_while_another_thread_fires_post_execute(shell, figures=120):
    """What JupyterLab does to a panel: the main thread draws, a subshell fires post_execute."""
    stop, errors = threading.Event(), []

    def subshell():
        while not stop.is_set():
            shell.events.trigger("post_execute")  # after each widget message

    thread = threading.Thread(target=subshell, daemon=True)
    was_interactive, interval = matplotlib.is_interactive(), sys.getswitchinterval()
    plt.ion()  # as under the inline backend
    sys.setswitchinterval(1e-5)  # switch threads often, so that they do overlap
    thread.start()
    try:
        for k in range(figures):
            fig = log_axis_figure(10.0 ** (5 + k % 20))
            try:
                # as chapter 1's chart does: tight_layout measures the tick
                # labels outside the lock that canvas.draw() holds
                fig.tight_layout()
            except ValueError as err:  # ParseException surfaces as ValueError
                errors.append(str(err))
                break
            finally:
                plt.close(fig)
    finally:
        stop.set()
        thread.join(timeout=10)
        sys.setswitchinterval(interval)
        plt.interactive(was_interactive)
    return errors


def test_the_drawing_hooks_run_only_on_the_main_thread():
    shell = Shell()
    calls = []

    def flush_figures():
        calls.append(threading.current_thread().name)

    flush_figures.__module__ = "matplotlib_inline.backend_inline"
    shell.events.register("post_execute", flush_figures)
    shell.events.register("post_execute", pyplot._draw_all_if_interactive)
    other = []
    shell.events.register("post_execute", lambda: other.append(1))  # not ours to touch
    assert frontend.keep_plots_on_the_main_thread(shell) == 2
    assert frontend.keep_plots_on_the_main_thread(shell) == 0, "wrapped once only"
    thread = threading.Thread(target=shell.events.trigger, args=("post_execute",))
    thread.start()
    thread.join()
    assert calls == [] and other == [1], "nothing drawn from another thread"
    shell.events.trigger("post_execute")
    assert calls == ["MainThread"]
    shell.events.unregister("post_execute", flush_figures)  # as matplotlib does on a backend switch
    shell.events.unregister("post_execute", pyplot._draw_all_if_interactive)
    assert len(shell.events.callbacks["post_execute"]) == 1


def test_outside_a_kernel_nothing_is_changed():
    assert frontend.keep_plots_on_the_main_thread() == 0


def test_concurrent_redraws_no_longer_break_mathtext():
    """The ParseException of JupyterLab, reproduced without a browser, and gone with the guard.

    Without the guard (the test below) this fails within 120 figures every
    time we tried (5 of 5 runs); with it, the other thread draws nothing.
    """
    shell = Shell()
    shell.events.register("post_execute", pyplot._draw_all_if_interactive)
    frontend.keep_plots_on_the_main_thread(shell)
    assert draw_while_another_thread_fires_post_execute(shell) == []


@pytest.mark.skipif(not os.environ.get("LLM_BOOK_SHOW_RACE"), reason="a race: set LLM_BOOK_SHOW_RACE=1 to see it")
def test_without_the_guard_the_parser_fails():
    shell = Shell()
    shell.events.register("post_execute", pyplot._draw_all_if_interactive)
    errors = draw_while_another_thread_fires_post_execute(shell)
    assert errors and "Parse" in errors[0]
