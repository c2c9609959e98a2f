"""The two time formats of Azure Files: SMB times (``x-ms-file-last-write-time``) and HTTP dates.

Both run once per file of a tree transfer (an upload sends its mtime, a download sets it), so the common
shapes skip ``strftime``/``strptime``: the date part of an SMB time is formatted once per second, and an
SMB time is read with one regular expression and a ``datetime`` (which still refuses a 13th month).
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: The SMB time the service sends: 7 fractional digits, the ``Z`` optional here as it was for strptime.
_SMB_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,7}))?Z?"
)
_last_second: tuple[float, str] = (math.nan, "")  # (whole second, its "YYYY-MM-DDTHH:MM:SS.")


def format_time(ts: float) -> str:
    """SMB time format the service expects: ``2024-01-02T03:04:05.1234567Z`` (microseconds, as
    ``datetime.fromtimestamp`` rounds them, followed by a 0)."""
    global _last_second
    frac, whole = math.modf(ts)
    micros = round(frac * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1, micros + 1_000_000
    cached = _last_second
    if cached[0] != whole:
        t = time.gmtime(whole)
        prefix = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
        )
        cached = _last_second = (whole, prefix)
    return f"{cached[1]}{micros:06d}0Z"


def parse_time(text: str) -> float | None:
    """Parse an SMB time (7 fractional digits) or an RFC 1123 date into epoch seconds."""
    if not text:
        return None
    try:
        # An SMB time starts with its year; an HTTP date with a weekday (and "GMT" holds a "T" too).
        if text[0].isdigit():
            m = _SMB_TIME.fullmatch(text)
            if m is not None:
                y, mo, d, h, mi, s, frac = m.groups()
                base = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=UTC).timestamp()
                return base + (float("0." + frac) if frac else 0.0)
            head, _, frac = text.rstrip("Z").partition(".")
            base = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
            return base + (float("0." + frac) if frac else 0.0)
        return parsedate_to_datetime(text).timestamp()
    except (ValueError, TypeError):
        return None
