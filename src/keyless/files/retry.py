"""When and how long to wait before resending a request: one immutable policy value.

Retried: 408, 429, 500, 502, 503 (``ServerBusy``), 504 and dropped connections, with exponential back-off
and jitter (:mod:`keyless.backoff`), honouring ``Retry-After``. Never retried: 4xx other than 408/429 (a 403
is a permission problem, not a transient one; 401 has its own one-shot refresh in the client).

"Only where the request can safely be resent": a request is *idempotent* when sending it twice has the
effect of sending it once (GET, HEAD, PUT range, create, set properties, DELETE). Rename is not: if the
first attempt went through but its reply was lost, a second one fails on the vanished source. A
non-idempotent request is retried only when the service certainly did not act on it: 429 / 503 replies
(throttled before execution) and connections that failed before the request was sent.

Field names follow urllib3's ``Retry``, as the identity library's policy does. The policy only answers
"how long to wait, or give up"; the client's retry layer counts attempts and sleeps on its clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from keyless.backoff import backoff_delay

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Replies that mean "not executed": safe to resend even a non-idempotent request.
REFUSED_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    total: int = 6  # retries after the first attempt
    backoff_factor: float = 0.4  # seconds; retry n (from 0) waits up to backoff_factor * 2**n
    backoff_max: float = 30.0
    respect_retry_after_header: bool = True
    retry_after_max: float = 120.0  # never sleep longer than this on a server's say-so
    status_forcelist: frozenset[int] = RETRY_STATUSES
    jitter: bool = True

    def status_delay(
        self,
        status: int,
        retries_done: int,
        *,
        idempotent: bool,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to wait before resending after an HTTP ``status`` reply, or None to give up."""
        if retries_done >= self.total or status not in self.status_forcelist:
            return None
        if not (idempotent or status in REFUSED_STATUSES):
            return None
        return self.delay(retries_done, retry_after, rng=rng)

    def connection_delay(
        self, retries_done: int, *, idempotent: bool, sent: bool, rng: random.Random | None = None
    ) -> float | None:
        """Seconds to wait after a request got no reply, or None to give up. ``sent`` is False when the
        connection failed before the request went out."""
        if retries_done >= self.total or not (idempotent or not sent):
            return None
        return self.delay(retries_done, rng=rng)

    def delay(
        self, retries_done: int, retry_after: float | None = None, *, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before retry ``retries_done + 1``: the server's ``Retry-After`` (capped) when it
        sent one, else the back-off."""
        if retry_after is not None and self.respect_retry_after_header:
            return min(max(retry_after, 0.0), self.retry_after_max)
        return backoff_delay(
            retries_done,
            backoff_factor=self.backoff_factor,
            backoff_max=self.backoff_max,
            jitter=self.jitter,
            rng=rng,
        )



@dataclass(frozen=True, slots=True)
class AccessWait:
    """How a 403 is polled while a new role assignment propagates (5-30 minutes): gently, for at most
    ``seconds`` from the first refusal. Off (0) unless asked for."""

    seconds: float = 0.0
    backoff_factor: float = 2.0
    backoff_max: float = 60.0
    max_doublings: int = 5

    def delay(self, polls_done: int, remaining: float) -> float | None:
        """Seconds to wait before asking again, or None once the wait is over."""
        if remaining <= 0:
            return None
        step = backoff_delay(
            min(polls_done, self.max_doublings),
            backoff_factor=self.backoff_factor,
            backoff_max=self.backoff_max,
            jitter=False,
        )
        return min(step, remaining)
