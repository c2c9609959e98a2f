"""TokenCache: windows, single flight, back-off, invalidation. Fake clock: no real waiting on windows."""

from __future__ import annotations

import random
import threading

import pytest

from keyless.identity import FakeClock, IdentityUnavailable, Token, TokenCache
from keyless.identity.cache import CacheKey

KEY = CacheKey("imds|http://x|system-assigned", "https://storage.azure.com/")


def tok(clock: FakeClock, lifetime: float = 3600.0, value: str = "t1") -> Token:
    now = clock.now()
    return Token(token=value, expires_on=now + lifetime, received_at=now, resource=KEY.resource)


class Counter:
    def __init__(self, clock: FakeClock, lifetime: float = 3600.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.fail: Exception | None = None
        self.lock = threading.Lock()

    def __call__(self) -> Token:
        with self.lock:
            self.calls += 1
            n = self.calls
        if self.fail is not None:
            raise self.fail
        return tok(self.clock, self.lifetime, f"t{n}")


def make(clock: FakeClock) -> TokenCache:
    return TokenCache(clock=clock, rng=random.Random(1))


def test_windows_follow_the_spec() -> None:
    clock = FakeClock()
    day = tok(clock, 24 * 3600)
    assert day.refresh_on == pytest.approx(clock.now() + 12 * 3600)  # half-life for long tokens
    assert day.mandatory_at == pytest.approx(day.expires_on - 300)
    hour = tok(clock, 3600)
    assert hour.refresh_on == pytest.approx(hour.expires_on - 600)
    assert hour.mandatory_at == pytest.approx(hour.expires_on - 300)
    short = tok(clock, 60)  # scaled: never born stale
    assert clock.now() < short.refresh_on < short.mandatory_at < short.expires_on


def test_fresh_token_is_served_without_fetching() -> None:
    clock = FakeClock()
    cache, fetch = make(clock), Counter(clock)
    first = cache.get(KEY, fetch)
    clock.advance(3000 - 1)  # just before the advisory point (3600 - 600)
    assert cache.get(KEY, fetch) is first
    assert fetch.calls == 1


def test_advisory_window_refreshes_once_and_others_keep_the_old_token() -> None:
    clock = FakeClock()
    cache = make(clock)
    first = cache.get(KEY, Counter(clock))
    clock.advance(3100)  # advisory window: 500 s left
    started, release = threading.Event(), threading.Event()

    def slow() -> Token:
        started.set()
        release.wait(5)
        return tok(clock, 3600, "t2")

    leader = threading.Thread(target=lambda: cache.get(KEY, slow))
    leader.start()
    assert started.wait(5)
    # While the refresh is in flight, callers get the valid old token at once (no waiting).
    assert cache.get(KEY, Counter(clock)).token == first.token
    release.set()
    leader.join(5)
    assert cache.get(KEY, Counter(clock)).token == "t2"


def test_mandatory_window_waits_for_the_refresh() -> None:
    clock = FakeClock()
    cache = make(clock)
    cache.get(KEY, Counter(clock))
    clock.advance(3400)  # 200 s left: mandatory
    fetch = Counter(clock)
    results: list[str] = []
    def worker() -> None:
        results.append(cache.get(KEY, fetch).token)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert fetch.calls == 1
    assert results == ["t1"] * 16  # the Counter's first token is named t1


def test_single_flight_64_threads_one_fetch() -> None:
    clock = FakeClock()
    cache = make(clock)
    barrier = threading.Barrier(64)
    calls = 0
    lock = threading.Lock()
    gate = threading.Event()

    def fetch() -> Token:
        nonlocal calls
        with lock:
            calls += 1
        gate.wait(5)  # hold the flight open until every thread has asked
        return tok(clock, 3600, "herd")

    got: list[str] = []

    def worker() -> None:
        barrier.wait(5)
        got.append(cache.get(KEY, fetch).token)

    threads = [threading.Thread(target=worker) for _ in range(64)]
    for t in threads:
        t.start()
    threading.Timer(0.2, gate.set).start()
    for t in threads:
        t.join(10)
    assert calls == 1
    assert got == ["herd"] * 64
    assert cache.fetches == 1


def test_single_flight_shares_the_error() -> None:
    clock = FakeClock()
    cache = make(clock)
    gate = threading.Event()
    calls = 0

    def fetch() -> Token:
        nonlocal calls
        calls += 1
        gate.wait(5)
        raise IdentityUnavailable("IMDS down")

    errors: list[BaseException] = []

    def worker() -> None:
        try:
            cache.get(KEY, fetch)
        except IdentityUnavailable as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    threading.Timer(0.2, gate.set).start()
    for t in threads:
        t.join(10)
    assert calls == 1
    assert len(errors) == 32


def test_failed_refresh_keeps_old_token_and_backs_off_with_jitter() -> None:
    clock = FakeClock()
    cache = make(clock)
    first = cache.get(KEY, Counter(clock))
    clock.advance(3100)  # advisory window
    failing = Counter(clock)
    failing.fail = IdentityUnavailable("IMDS down")
    assert cache.get(KEY, failing).token == first.token  # failure swallowed: old token still valid
    assert failing.calls == 1
    for _ in range(10):  # inside the back-off: no new attempt
        assert cache.get(KEY, failing).token == first.token
    assert failing.calls == 1
    clock.advance(5.01)  # first back-off is 2.5-5 s (jittered)
    cache.get(KEY, failing)
    assert failing.calls == 2
    clock.advance(2.4)  # second back-off is 5-10 s: not yet
    cache.get(KEY, failing)
    assert failing.calls == 2
    clock.advance(10)
    failing.fail = None
    assert cache.get(KEY, failing).token == "t3"


def test_failed_refresh_without_a_valid_token_raises() -> None:
    clock = FakeClock()
    cache = make(clock)
    cache.get(KEY, Counter(clock))
    clock.advance(3600 - 10)  # inside the expiry margin: unusable
    failing = Counter(clock)
    failing.fail = IdentityUnavailable("IMDS down")
    with pytest.raises(IdentityUnavailable):
        cache.get(KEY, failing)


def test_invalidate_only_the_rejected_token() -> None:
    clock = FakeClock()
    cache, fetch = make(clock), Counter(clock)
    first = cache.get(KEY, fetch)
    assert not cache.invalidate(KEY, token="some-other-token")
    assert cache.get(KEY, fetch) is first
    assert cache.invalidate(KEY, token=first.token)
    assert not cache.invalidate(KEY, token=first.token)  # the second 401 with the same token: no-op
    assert cache.get(KEY, fetch).token == "t2"
    assert cache.invalidate()  # everything
    assert cache.get(KEY, fetch).token == "t3"


def test_keys_are_exact() -> None:
    clock = FakeClock()
    cache, fetch = make(clock), Counter(clock)
    rest = cache.get(CacheKey("s", "https://storage.azure.com/"), fetch)
    smb = cache.get(CacheKey("s", "https://storage.azure.com"), fetch)
    assert rest.token != smb.token
    assert fetch.calls == 2


def test_interrupted_leader_releases_waiters() -> None:
    clock = FakeClock()
    cache = make(clock)

    def boom() -> Token:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.get(KEY, boom)
    # The flight was cleared: the next caller fetches normally.
    assert cache.get(KEY, Counter(clock)).token == "t1"
