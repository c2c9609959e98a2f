"""How many requests to keep in flight, from the measured round-trip time and the sizes being moved.

A worker waits one round trip per request and spends a little client CPU on it; to keep the client busy
rather than waiting, about ``1 + round trip / CPU per request`` requests must be in flight (Little's law).
The round trip is measured on the client's first requests (:meth:`ShareClient.round_trip`, the fastest of
the first exchanges on an open connection, so connection set-up is not counted). The rule:

* files in flight (tree transfers) = ``1 + rtt / 0.3 ms``, at least 8 and at most 64, and at most as many as
  keep ``files in flight x the largest file's ranges in flight x 4 MiB`` within 128 MiB (today's bound:
  8 files x 4 ranges x 4 MiB);
* ranges in flight (one file) = ``1 + rtt / 0.3 ms``, at least 8 and at most 16 (64 MiB of ranges).

So a local emulator (well under 2 ms) gets the fixed 8 of before, and 20 ms of latency gets 64 files in
flight for small files. ``--concurrency N`` on the command line, or ``concurrency=N`` on ``ShareClient`` and
the transfer functions, overrides the rule.
"""

from __future__ import annotations

import math

#: Client CPU per request, measured on small-file uploads (bench/bench_latency.py).
CPU_PER_REQUEST_S = 0.0003
DEFAULT_IN_FLIGHT = 8
MAX_FILES_IN_FLIGHT = 64
MAX_RANGES_IN_FLIGHT = 16
MAX_CONCURRENCY = MAX_FILES_IN_FLIGHT  # the largest value --concurrency / concurrency= accept
TREE_MEMORY_BUDGET = 128 * 1024 * 1024


def check_concurrency(value: int | None) -> int | None:
    """``value`` when it is a usable explicit concurrency (or None, for the rule); else ValueError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"concurrency must be a whole number, got {value!r}")
    if not 1 <= value <= MAX_CONCURRENCY:
        raise ValueError(
            f"concurrency must be between 1 and {MAX_CONCURRENCY}, got {value} "
            "(leave it unset to have it chosen from the measured latency)"
        )
    return value


def _by_latency(rtt: float | None) -> int:
    if rtt is None or rtt <= 0:
        return DEFAULT_IN_FLIGHT
    return 1 + math.ceil(rtt / CPU_PER_REQUEST_S)


def ranges_in_flight(rtt: float | None) -> int:
    """Ranges of one file in flight."""
    return max(DEFAULT_IN_FLIGHT, min(MAX_RANGES_IN_FLIGHT, _by_latency(rtt)))


def files_in_flight(rtt: float | None, largest: int, ranges_per_file: int, range_size: int) -> int:
    """Files in flight in a tree transfer whose largest file has ``largest`` bytes."""
    per_file = max(1, min(largest, ranges_per_file * range_size))
    memory_cap = max(DEFAULT_IN_FLIGHT, TREE_MEMORY_BUDGET // per_file)
    return max(DEFAULT_IN_FLIGHT, min(MAX_FILES_IN_FLIGHT, memory_cap, _by_latency(rtt)))
