"""The retry policy as a value: schedules, the 410 window, Retry-After, what is never retried."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest

from keyless.backoff import parse_retry_after
from keyless.identity import DEFAULT_RETRY, RetryPolicy


def schedule(policy: RetryPolicy, status: int | None) -> list[float]:
    delays: list[float] = []
    elapsed = 0.0
    while (d := policy.next_delay(retries_done=len(delays), elapsed=elapsed, status=status,
                                  rng=random.Random(0))) is not None:
        delays.append(d)
        elapsed += d
    return delays


def test_policy_is_immutable() -> None:
    with pytest.raises(AttributeError):
        DEFAULT_RETRY.total = 9  # type: ignore[misc]


@pytest.mark.parametrize("status", [400, 401, 403, 501])
def test_never_retried(status: int) -> None:
    assert DEFAULT_RETRY.next_delay(retries_done=0, elapsed=0, status=status) is None


@pytest.mark.parametrize("status", [404, 429, 500, 503, None])
def test_transient_retried_five_times_with_growing_jittered_backoff(status: int | None) -> None:
    delays = schedule(DEFAULT_RETRY, status)
    assert len(delays) == DEFAULT_RETRY.total
    for n, d in enumerate(delays):
        full = min(DEFAULT_RETRY.backoff_max, DEFAULT_RETRY.backoff_factor * 2**n)
        assert full / 2 <= d <= full


def test_gone_is_retried_for_70_seconds() -> None:
    delays = schedule(DEFAULT_RETRY, 410)
    assert sum(delays) == pytest.approx(70.0)  # the last try lands at the end of the window
    assert len(delays) > DEFAULT_RETRY.total  # beyond total: the window is what counts
    assert max(delays) <= DEFAULT_RETRY.gone_backoff_max


def test_retry_after_is_honoured_and_capped() -> None:
    d = DEFAULT_RETRY.next_delay(retries_done=0, elapsed=0, status=429, retry_after=7)
    assert d == 7
    d = DEFAULT_RETRY.next_delay(retries_done=0, elapsed=0, status=429, retry_after=3600)
    assert d == DEFAULT_RETRY.retry_after_max  # a huge Retry-After is cut to the cap
    # ...and a wait that would overrun the total deadline is not made at all.
    assert DEFAULT_RETRY.next_delay(retries_done=1, elapsed=50, status=429, retry_after=60) is None


def test_connect_errors_get_one_retry() -> None:
    p = DEFAULT_RETRY
    assert p.next_delay(retries_done=0, elapsed=0, status=None, connect_error=True) is not None
    assert p.next_delay(retries_done=1, elapsed=1, status=None, connect_error=True) is None


def test_parse_retry_after() -> None:
    assert parse_retry_after("3", 0) == 3
    assert parse_retry_after("1.5", 0) == 1.5
    assert parse_retry_after(None, 0) is None
    assert parse_retry_after("soon", 0) is None
    now = 1_750_000_000.0
    assert parse_retry_after(formatdate(now + 10, usegmt=True), now) == pytest.approx(10, abs=1)
