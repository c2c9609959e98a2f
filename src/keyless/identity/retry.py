"""One immutable retry policy for identity endpoints, as the IMDS documentation prescribes.

- 404 (IMDS updating), 429 (throttled: 20 requests/s, 5 concurrent per VM), 408 and 5xx, connection
  errors and timeouts: retried with exponential back-off and jitter, at most ``total`` times, never sooner
  than a ``Retry-After`` the server sent. The schedule starts short (0.25 s, doubling: IMDS's limits are per
  second, so a throttled caller is usually served a fraction of a second later) and retries six times
  (about 16 s in all).
- 410 (IMDS being upgraded): retried for up to ``gone_window`` seconds (70 s by the documentation),
  whatever ``total`` says.
- 400 and every other 4xx: never retried (400 means "identity not found": retrying cannot help).

Field names follow urllib3's ``Retry`` (``total``, ``connect``, ``backoff_factor``, ``backoff_max``,
``status_forcelist``, ``respect_retry_after_header``), as does the Files client's policy. The policy is a
value: the loop asks it for the next delay and holds the state itself, so one policy can be shared by every
thread and every credential.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from keyless.backoff import backoff_delay


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    total: int = 6  # retries after the first attempt
    backoff_factor: float = 0.25  # first retry after up to 0.25 s, then 0.5, 1, 2, 4, 8 (jittered)
    backoff_max: float = 30.0
    gone_window: float = 70.0  # 410: keep trying this long after the first attempt
    gone_backoff_max: float = 10.0  # poll a 410 at least every 10 s so the upgrade's end is seen soon
    respect_retry_after_header: bool = True
    retry_after_max: float = 60.0  # never obey a Retry-After longer than this (a broken proxy, say)
    total_deadline: float = 90.0  # give up once this much time has passed since the first attempt
    # Connection refused / unreachable usually means "not on Azure" or "wrong endpoint": retry once
    # (an agent restarting) rather than keep the caller waiting through the whole schedule.
    connect: int = 1
    jitter: bool = True
    status_forcelist: frozenset[int] = field(
        default_factory=lambda: frozenset({404, 408, 429, *range(500, 600)}) - {501, 505}
    )

    def is_retryable_status(self, status: int) -> bool:
        return status == 410 or status in self.status_forcelist

    def next_delay(self, *, retries_done: int, elapsed: float, status: int | None,
                   retry_after: float | None = None, connect_error: bool = False,
                   rng: random.Random | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None to give up.

        ``retries_done``: retries already made; ``elapsed``: seconds since the first attempt started;
        ``status``: the HTTP status of the last answer, None for a connection error or timeout
        (``connect_error`` tells a refused connection from a timeout).
        """
        if status is not None and not self.is_retryable_status(status):
            return None
        if connect_error and retries_done >= self.connect:
            return None
        gone = status == 410
        if not gone and retries_done >= self.total:
            return None
        delay = backoff_delay(retries_done, backoff_factor=self.backoff_factor,
                              backoff_max=self.gone_backoff_max if gone else self.backoff_max,
                              jitter=self.jitter, rng=rng)
        if retry_after is not None and self.respect_retry_after_header:
            delay = max(delay, min(retry_after, self.retry_after_max))
        limit = self.gone_window if gone else self.total_deadline
        if elapsed + delay > limit:
            # For 410 the documented window is what matters: one last try at its end.
            remaining = limit - elapsed
            return float(remaining) if gone and remaining > 0 else None
        return float(delay)


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(total=0, gone_window=0.0, total_deadline=0.0)
