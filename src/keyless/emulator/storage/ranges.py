"""A file's written ranges, kept as the service keeps them: what Put Range wrote, minus what Clear Range
cleared, in 512-byte units, merged where they touch. List Ranges reports these, not the extents the
local file system happens to allocate (which are 4 KiB blocks, and which zero-writes do not change).

Ranges are inclusive ``(start, end)`` pairs, sorted and disjoint.
"""

from __future__ import annotations

Ranges = list[tuple[int, int]]

UNIT = 512  # the service's range granularity


def merge(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def ranges_written(ranges: Ranges, start: int, end: int, size: int) -> Ranges:
    """After a write of ``[start, end]``: the 512-byte units it touched now hold data."""
    lo = start - start % UNIT
    hi = min(-(-(end + 1) // UNIT) * UNIT, size) - 1
    return merge([*ranges, (lo, hi)])


def ranges_cleared(ranges: Ranges, start: int, end: int, size: int) -> Ranges:
    """After a clear of ``[start, end]``: the units it covers entirely (the file's last, short unit
    counts as covered when the clear reaches the end of the file) hold no data any more."""
    lo = -(-start // UNIT) * UNIT
    hi = size - 1 if end >= size - 1 else (end + 1) // UNIT * UNIT - 1
    return subtract(ranges, lo, hi) if hi >= lo else list(ranges)


def subtract(ranges: Ranges, lo: int, hi: int) -> Ranges:
    out: Ranges = []
    for a, b in ranges:
        if b < lo or a > hi:
            out.append((a, b))
            continue
        if a < lo:
            out.append((a, lo - 1))
        if b > hi:
            out.append((hi + 1, b))
    return out


def clip_ranges(ranges: Ranges, start: int, end: int) -> Ranges:
    """The parts of ``ranges`` within ``[start, end]``."""
    return [(max(a, start), min(b, end)) for a, b in ranges if b >= start and a <= end]


