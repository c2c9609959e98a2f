"""The two time formats of Azure Files: SMB times (``x-ms-file-last-write-time``) and HTTP dates."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def format_time(ts: float) -> str:
    """SMB time format the service expects: ``2024-01-02T03:04:05.1234567Z``."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0Z"


def parse_time(text: str) -> float | None:
    """Parse an SMB time (7 fractional digits) or an RFC 1123 date into epoch seconds."""
    if not text:
        return None
    try:
        if "T" in text:
            head, _, frac = text.rstrip("Z").partition(".")
            base = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
            return base + (float("0." + frac) if frac else 0.0)
        return parsedate_to_datetime(text).timestamp()
    except (ValueError, TypeError):
        return None
