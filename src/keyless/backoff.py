"""Exponential back-off and ``Retry-After``: the one formula every retry loop in keyless uses.

Standard library only, so the identity, Files, doctor and SMB code can all share it. The names follow
urllib3's ``Retry`` (``backoff_factor``, ``backoff_max``): the n-th retry (counting from 0) waits up to
``backoff_factor * 2**n`` seconds, never more than ``backoff_max``.

Jitter is "equal jitter": a delay drawn between half and all of that value. A herd of clients throttled
together comes back spread out, while the schedule keeps its growth and the total wait stays predictable.
"""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime

_jitter_source = random.SystemRandom()


def backoff_delay(
    retries_done: int,
    *,
    backoff_factor: float,
    backoff_max: float,
    jitter: bool = True,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``retries_done + 1`` (``retries_done`` counts from 0)."""
    delay = min(backoff_max, backoff_factor * 2.0 ** max(0, retries_done))
    if jitter:
        delay *= 0.5 + 0.5 * (rng or _jitter_source).random()
    return float(delay)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` in seconds (never negative): delta-seconds, or an HTTP date relative to ``now``
    (epoch seconds). None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - now
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)
