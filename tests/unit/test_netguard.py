"""The network guard that `make test` and `make book` load into every Python process."""

import os
import socket
import subprocess
import sys
from pathlib import Path

GUARD = Path(__file__).resolve().parents[1] / "netguard"

PROBE = """
import socket
try:
    socket.create_connection(("192.0.2.1", 80), timeout=1)   # TEST-NET-1, never routed
except ConnectionRefusedError as err:
    print("refused:", err)
try:
    socket.getaddrinfo("example.org", 443)
except socket.gaierror as err:
    print("lookup refused:", err)
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen()
client = socket.create_connection(server.getsockname(), timeout=1)
print("loopback ok"); client.close(); server.close()
"""


def test_guard_refuses_and_records_non_local_connections(tmp_path):
    log = tmp_path / "net.log"
    env = os.environ | {"PYTHONPATH": str(GUARD), "NETGUARD_LOG": str(log)}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True).stdout
    assert "refused: network guard: connection to ('192.0.2.1', 80) refused" in out
    assert "lookup refused: " in out and "example.org" in out
    assert "loopback ok" in out, "Jupyter's own loopback traffic must pass"
    logged = log.read_text()
    assert "connect to ('192.0.2.1', 80)" in logged and "name lookup of 'example.org'" in logged


def test_guard_lets_local_names_through():
    sys.path.insert(0, str(GUARD))
    try:
        import sitecustomize as guard
    finally:
        sys.path.remove(str(GUARD))
    try:
        for host in ("localhost", "127.0.0.1", "::1", "[::1]", b"127.0.0.2", None, "0.0.0.0"):
            assert guard._is_local_host(host), host
        for host in ("example.org", "10.0.0.1", "8.8.8.8", "2001:db8::1"):
            assert not guard._is_local_host(host), host
        guard._guard("/tmp/socket", socket.AF_UNIX)  # Unix sockets pass
    finally:
        socket.socket.connect, socket.socket.connect_ex = guard._connect, guard._connect_ex
        socket.getaddrinfo = guard._getaddrinfo
