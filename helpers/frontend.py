"""Whether a notebook front-end is watching: the one place that decides
between live widgets and plain, static output.

``make test`` and ``make book`` set ``LLM_BOOK_HEADLESS=1``: the notebooks
then run under nbval or nbclient, where no one watches.  There, training
draws one final figure instead of redrawing a live plot, and a widget
panel prints into the cell instead of capturing its output in an
``ipywidgets.Output`` area.  The second matters for more than looks:
nbclient imitates an Output area by sending a message to the kernel on the
shell socket for every output captured, while it waits for the cell's reply
on that same socket, and that send can swallow the wake-up of the reply
(ZeroMQ signals arrivals edge-triggered).  The cell then appears to hang
until nbclient's per-cell timeout, although the kernel finished long ago.
"""

from __future__ import annotations

import os

#: Environment variable that turns live display off (set by ``make test``
#: and ``make book``, where no one watches the notebook run).
HEADLESS_ENV = "LLM_BOOK_HEADLESS"


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, nbclient, nbval…)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the book
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def live_default() -> bool:
    """Live display when a kernel runs us and ``LLM_BOOK_HEADLESS`` is not ``1``."""
    return in_notebook() and os.environ.get(HEADLESS_ENV, "") != "1"


# --------------------------------------------------------------------------
# Plots drawn in one thread only
# --------------------------------------------------------------------------
#: The post-execute hooks that draw matplotlib figures: pyplot's redraw in
#: interactive mode, and the inline backend's display of new figures.
_DRAWING_HOOKS = {
    ("matplotlib.pyplot", "_draw_all_if_interactive"),
    ("matplotlib_inline.backend_inline", "flush_figures"),
}


class _MainThreadOnly:
    """A post-execute hook that runs only when triggered from the main thread.

    It compares equal to the function it wraps, so matplotlib can still
    unregister that function when the backend changes.
    """

    def __init__(self, hook):
        self.hook = hook

    def __call__(self, *args, **kwargs):
        import threading

        if threading.current_thread() is threading.main_thread():
            return self.hook(*args, **kwargs)
        return None

    def __eq__(self, other):
        return other is self or other is self.hook

    def __hash__(self):
        return hash(self.hook)

    def __repr__(self):
        return f"<main thread only: {self.hook!r}>"


def keep_plots_on_the_main_thread(shell=None) -> int:
    """Let matplotlib's post-execute hooks draw only from the main thread.

    JupyterLab with ipykernel 7 handles some widget messages in a kernel
    *subshell*, a thread of its own, while the main thread may be running a
    panel's callback.  After every widget message the ``comm`` package fires
    IPython's ``post_execute`` event in that thread, and matplotlib's hooks
    there redraw every open figure, at the same time as the callback draws
    it.  Matplotlib's mathtext parser is not thread-safe: the two threads
    then fail to parse the tick labels of a log axis
    (``ParseException: Expected end of text, found '$'``).  The main thread
    runs the same hooks after its own work, so nothing is lost.

    Returns how many hooks it wrapped (0 outside a kernel, or when done).
    """
    if shell is None:
        if not in_notebook():
            return 0
        from IPython import get_ipython

        shell = get_ipython()
    events = getattr(shell, "events", None)
    if events is None:  # not an IPython shell
        return 0
    hooks = events.callbacks.get("post_execute", [])
    wrapped = 0
    for index, hook in enumerate(hooks):
        name = (getattr(hook, "__module__", None), getattr(hook, "__name__", None))
        if not isinstance(hook, _MainThreadOnly) and name in _DRAWING_HOOKS:
            hooks[index] = _MainThreadOnly(hook)
            wrapped += 1
    return wrapped
