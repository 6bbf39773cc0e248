"""Process-level resources shared by the long-running processes: heap tuning and the ports they listen on."""

from __future__ import annotations

import errno
import gc
import socket
import threading

# A batch of shape (b) makes tens of thousands of short-lived containers (decoded JSON); at CPython's
# default threshold of 700 that is dozens of young collections a batch, each also walking whatever
# survived, and the alert worker's heap holds every equipment's state. Measured on the alert engine in
# steady state (80 equipment past their learning period): about a tenth of its time.
GC_THRESHOLDS = (50_000, 50, 100)

#: Exit code of a process that cannot listen where it is told to (click's usage errors use 2 as well).
EXIT_PORT_UNAVAILABLE = 2


def settle_heap() -> None:
    """Call once start-up state is loaded: move it out of the collector's sight and collect less often.

    `gc.freeze` keeps what exists now (registry, rules, restored engine state) out of every later
    collection; the raised thresholds still collect reference cycles, just in larger, rarer sweeps.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # a worker run on a thread of another program (the tests) leaves that program's collector alone
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def setting_env_var(group: str, field: str) -> str:
    """The environment variable of a nested setting: ("alerts", "metrics_port") → SAFEWATCH_ALERTS__METRICS_PORT."""
    return f"SAFEWATCH_{group.upper()}__{field.upper()}"


def port_unavailable_reason(exc: OSError) -> str:
    """Why a bind failed, in the words an operator needs ("in use by another program" is the usual one)."""
    if exc.errno == errno.EADDRINUSE:
        return "in use by another program"
    if exc.errno == errno.EACCES:
        return "reserved for root (ports below 1024)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "not an address of this machine"
    return exc.strerror or str(exc)


def listen_socket(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on host:port, as a server would open it (SO_REUSEADDR); OSError when unavailable.

    Binding before a server starts turns a busy port into an error we can word ourselves, and leaves no
    window in which another program could take the port between a check and the bind.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=backlog)


def port_unavailable(host: str, port: int) -> str | None:
    """Why a server could not listen on host:port now, or None when it could (a check: it may be taken later)."""
    try:
        listen_socket(host, port, backlog=1).close()
    except OSError as exc:
        return port_unavailable_reason(exc)
    return None
