"""Loaded through PYTHONPATH by tests that must prove a process makes no network calls.

Every attempt to resolve a name or open a non-local socket is refused and logged to
$NETWORK_GUARD_LOG, so an attempt swallowed by a background thread is still seen.
"""

import os
import socket

_LOG = os.environ.get("NETWORK_GUARD_LOG")
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _refuse(what: str) -> OSError:
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(what + "\n")
    return OSError(f"network access blocked in this test: {what}")


def _guarded_connect(self, address):  # type: ignore[no-untyped-def]
    if self.family == socket.AF_UNIX:
        return _connect(self, address)
    raise _refuse(f"connect {address!r}")


def _guarded_connect_ex(self, address):  # type: ignore[no-untyped-def]
    if self.family == socket.AF_UNIX:
        return _connect_ex(self, address)
    raise _refuse(f"connect {address!r}")


def _guarded_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    raise _refuse(f"getaddrinfo {host!r}")


if _LOG:  # proves the guard was active in the process under test
    with open(_LOG, "a", encoding="utf-8") as _log:
        _log.write("guard loaded\n")

socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
socket.getaddrinfo = _guarded_getaddrinfo
