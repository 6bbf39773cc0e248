"""Process tuning shared by the long-running workers."""

from __future__ import annotations

import gc
import threading

# A batch of shape (b) makes tens of thousands of short-lived containers (decoded JSON); at CPython's
# default threshold of 700 that is dozens of young collections a batch, each also walking whatever
# survived, and the alert worker's heap holds every equipment's state. Measured on the alert engine in
# steady state (80 equipment past their learning period): about a tenth of its time.
GC_THRESHOLDS = (50_000, 50, 100)


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
