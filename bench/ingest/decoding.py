"""What decoding one telemetry message costs, by its size: ``python -m bench.ingest.decoding``.

Both workers decode every message they take (the ingest to store it, each alert worker to evaluate
it), so this is paid twice per message. The payloads are the bench publisher's own (shape (a) is one
equipment of 8 readings, shape (b) 50). Two ways, in the same run: `decode_telemetry` as the workers
call it (a batch as it should be is parsed into the catalogue's msgspec types and checked in C), and
the way a message with something wrong in it goes, parsed by orjson and checked entry by entry (what a
message cost before the typed path, but for a whole-message check on 8 entries or more that saved a
tenth at 50; it still says what is wrong with each bad entry).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import msgspec
import orjson

from bench.ingest.publisher import _slot_parts, payload
from safewatch.contract import Limits, decode_telemetry
from safewatch.contract.payloads import _decode_by_entry


def _cpu_us(work: Callable[[], object], repeats: int) -> float:
    """CPU µs a call, the best of five rounds of ``repeats`` calls."""
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(repeats):
            work()
        best = min(best, (time.process_time() - start) / repeats * 1e6)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5000)
    args = parser.parse_args(argv)
    print(f"machine: {platform.platform()}; {os.cpu_count()} CPUs; Python {platform.python_version()}; "
          f"msgspec {msgspec.__version__}; orjson {orjson.__version__}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    now_ms = int(time.time() * 1000)
    limits = Limits(now_ms)
    for n in (1, 8, 50):
        fleet = [(b"1500%014d" % i, "3000" if i % 2 else "1000") for i in range(n)]  # elevators and boilers
        message = payload(_slot_parts(fleet), b"%d" % now_ms, 3)
        assert not decode_telemetry(message, limits).rejected
        # Functions rather than lambdas with a default: a type checker can read what those take.
        def typed_decode(message: bytes = message) -> object:
            return decode_telemetry(message, limits)

        def decode_by_entry(message: bytes = message) -> object:
            return _decode_by_entry(message, limits)

        typed = _cpu_us(typed_decode, args.repeats)
        by_entry = _cpu_us(decode_by_entry, args.repeats)
        print(f"{n:>2} equipment, {n * 8:>3} readings, {len(message):>5} bytes: {typed:6.1f} µs a message "
              f"({typed / (n * 8):.3f} µs a reading); entry by entry {by_entry:6.1f} µs "
              f"({by_entry / (n * 8):.3f}); ratio {typed / by_entry:.2f}")


if __name__ == "__main__":
    main()
