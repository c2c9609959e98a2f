"""SMB times and HTTP dates, as the service writes them: formatted and parsed without strftime/strptime on
the common shapes, with the same results as the datetime forms."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from keyless.files.times import format_time, parse_time


def _reference(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0Z"


def test_format_time_agrees_with_datetime_rounding() -> None:
    rng = random.Random(7)
    stamps = [rng.uniform(0, 4e9) for _ in range(2000)] + [rng.uniform(-1e6, 1e6) for _ in range(200)]
    stamps += [1.5, 0.0, -1e-7, 1700000000.0000005, 1700000000.9999996, 1700000000.9999994]
    for ts in stamps:
        assert format_time(ts) == _reference(ts), ts


def test_parse_time_reads_smb_times_back() -> None:
    assert parse_time("2026-12-02T02:33:20.6360010Z") == 1796178800.636001
    assert parse_time("2024-01-02T03:04:05Z") == 1704164645.0
    assert parse_time("2024-1-2T3:4:5") == 1704164645.0  # the loose form strptime took still parses
    assert parse_time("2024-13-02T03:04:05.1234567Z") is None  # no 13th month
    assert parse_time("2024-02-30T00:00:00.1Z") is None
    assert parse_time("") is None
    assert parse_time("garbage") is None


def test_parse_time_reads_http_dates_whose_zone_holds_a_t() -> None:
    # "GMT" holds a "T": an HTTP date (Last-Modified) must not be taken for an SMB time and lost.
    assert parse_time("Wed, 02 Dec 2026 02:33:22 GMT") == 1796178802.0
