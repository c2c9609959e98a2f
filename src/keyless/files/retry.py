"""When and how long to wait before resending a request: one immutable policy value.

Retried: 408, 429, 500, 502, 503 (``ServerBusy``), 504 and dropped connections, with exponential back-off
and full jitter, honouring ``Retry-After``. Never retried: 4xx other than 408/429 (a 403 is a permission
problem, not a transient one; 401 has its own one-shot refresh in the client).

"Only where the request can safely be resent": a request is *idempotent* when sending it twice has the
effect of sending it once (GET, HEAD, PUT range, create, set properties, DELETE). Rename is not: if the
first attempt went through but its reply was lost, a second one fails on the vanished source. A
non-idempotent request is retried only when the service certainly did not act on it: 429 / 503 replies
(throttled before execution) and connections that failed before the request was sent.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Replies that mean "not executed": safe to resend even a non-idempotent request.
REFUSED_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    total: int = 6  # attempts after the first
    backoff: float = 0.4  # seconds; attempt n waits up to backoff * 2**n
    max_backoff: float = 30.0
    max_retry_after: float = 120.0  # never sleep longer than this on a server's say-so

    def should_retry_status(self, status: int, attempt: int, idempotent: bool) -> bool:
        if attempt >= self.total or status not in RETRY_STATUSES:
            return False
        return idempotent or status in REFUSED_STATUSES

    def should_retry_connection(self, attempt: int, idempotent: bool, sent: bool) -> bool:
        """``sent`` is False when the connection failed before the request went out."""
        return attempt < self.total and (idempotent or not sent)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        cap = min(self.max_backoff, self.backoff * (2**attempt))
        # Full jitter: many clients throttled at once must not come back in lock step.
        return random.uniform(cap / 2, cap)  # noqa: S311 - jitter, not a secret

    def sleep(self, attempt: int, retry_after: float | None = None) -> None:
        time.sleep(self.delay(attempt, retry_after))


NO_RETRY = RetryPolicy(total=0)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
