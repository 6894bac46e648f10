"""Neither executing the notebooks nor building the book tried to reach the network.

`make test-notebooks` and `make book` run every Python process under the
guard in tests/netguard (and, where possible, in a network namespace with
only loopback); the guard logs each attempt to leave the machine.
"""

import pytest

from conftest import ROOT

LOGS = {
    "notebook execution (nbval)": ROOT / "_build" / "netguard-notebooks.log",
    "book build (jupyter-book)": ROOT / "_build" / "netguard-book.log",
}


@pytest.mark.parametrize("what", LOGS)
def test_no_network_attempt(what):
    log = LOGS[what]
    if not log.exists():
        pytest.fail(f"{log} is missing: run `make test` (it runs the notebooks and the build under the guard)")
    attempts = log.read_text()
    assert attempts == "", f"{what} tried to reach the network:\n{attempts}"
