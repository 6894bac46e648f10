"""Refuse, and record, any network connection that leaves the machine.

``make test`` and ``make book`` put this folder on ``PYTHONPATH``, so every
Python process they start (pytest, Jupyter kernels, the book build) imports
it at start-up.  Connections to loopback addresses and Unix sockets pass;
anything else raises ``ConnectionRefusedError`` and appends a line to the
file named by ``NETGUARD_LOG``, which a test then requires to be empty.
"""

import ipaddress
import os
import socket
import traceback

_LOG = os.environ.get("NETGUARD_LOG")
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def _is_local_host(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).strip("[]").split("%")[0]
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a host name other than localhost
    return address.is_loopback or address.is_unspecified


def _record(what: str) -> None:
    if _LOG:
        stack = "".join(traceback.format_stack(limit=6)[:-2])
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(f"pid {os.getpid()}: {what}\n{stack}\n")


def _guard(address, family) -> None:
    if family == getattr(socket, "AF_UNIX", None) or not isinstance(address, tuple):
        return
    if not _is_local_host(address[0]):
        _record(f"connect to {address!r}")
        raise ConnectionRefusedError(f"network guard: connection to {address!r} refused (the book runs offline)")


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def connect(self, address):
    _guard(address, self.family)
    return _connect(self, address)


def connect_ex(self, address):
    _guard(address, self.family)
    return _connect_ex(self, address)


def _is_address(host) -> bool:
    try:
        ipaddress.ip_address((host.decode() if isinstance(host, bytes) else str(host)).strip("[]"))
    except ValueError:
        return False
    return True


def getaddrinfo(host, *args, **kwargs):
    """Name lookups of other hosts are refused; address literals pass to connect()."""
    if not _is_local_host(host) and not _is_address(host):
        _record(f"name lookup of {host!r}")
        raise socket.gaierror(socket.EAI_NONAME, f"network guard: lookup of {host!r} refused (the book runs offline)")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.getaddrinfo = getaddrinfo
