"""The in-process token cache: single flight, advisory and mandatory refresh windows, back-off.

Keyed (one entry per identity and audience), with a single flight per key:

- *fresh* (before the token's advisory point): returned at once, without taking a lock.
- *advisory window* (from the advisory point to 5 minutes before expiry): the first caller refreshes;
  every other caller keeps getting the still-valid token meanwhile, never waiting.
- *mandatory window* (the last 5 minutes) or *no token*: callers wait for the one refresh in flight and
  share its result or its error: 64 threads missing together cause exactly one request.
- a failed refresh keeps serving the old token while it is valid and backs off (exponentially, with
  jitter) before the next attempt, so a struggling IMDS is not hammered by every call.
- ``invalidate()``: the 401 path (drop a token the service rejected, once, however many callers saw it).

The clock only decides windows; waiting for a flight uses a real ``threading.Event``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Hashable
from typing import NamedTuple

from keyless.backoff import backoff_delay
from keyless.clock import SYSTEM_CLOCK, Clock, SystemClock
from keyless.identity.errors import IdentityUnavailable
from keyless.identity.token import Token

log = logging.getLogger("keyless.identity")


class CacheKey(NamedTuple):
    """(source + endpoint + identity, audience). The audience is the exact resource string.

    A named tuple rather than a dataclass: it is hashed on every cache hit, and a tuple hashes in C.
    """

    scope: str
    resource: str


class _Flight:
    """One refresh in progress; waiters block on ``done`` and read ``token`` or ``error``."""

    __slots__ = ("done", "error", "token")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.token: Token | None = None
        self.error: BaseException | None = None


class _Entry:
    __slots__ = ("failures", "flight", "retry_at", "token")

    def __init__(self) -> None:
        self.token: Token | None = None
        self.flight: _Flight | None = None
        self.retry_at = 0.0  # no refresh attempt before this (after a failure), while a token is valid
        self.failures = 0


class TokenCache:
    """Thread-safe token cache. ``get(key, fetch)`` returns a token valid for at least ``expiry_margin`` s."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK, expiry_margin: float = 30.0,
                 backoff_initial: float = 5.0, backoff_max: float = 60.0,
                 rng: random.Random | None = None) -> None:
        self._clock = clock
        # The fast path reads the clock on every call: skip a Python-level method call for the real clock.
        self._now: Callable[[], float] = time.time if isinstance(clock, SystemClock) else clock.now
        # Margin: a token this close to expiry could expire in flight to the service, or on a server whose
        # clock runs a little ahead; it is treated as already expired.
        self._margin = expiry_margin
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._rng = rng  # None: the back-off helper's own system source
        self._lock = threading.Lock()
        self._entries: dict[Hashable, _Entry] = {}
        # Bumped by every invalidate(): callers that memoise a hit (the credential's hot path) compare it
        # to know their memo still stands.
        self.generation = 0
        self.fetches = 0  # how many times a fetch was started (tests and the bench read it)

    def peek(self, key: Hashable) -> Token | None:
        """The cached token if it is fresh (before its advisory point), without fetching or locking."""
        entry = self._entries.get(key)
        if entry is not None:
            token = entry.token
            if token is not None and self._now() < token.refresh_on:
                return token
        return None

    def get(self, key: Hashable, fetch: Callable[[], Token]) -> Token:
        # Fast path: a dict lookup and one clock read, no lock (dict reads are atomic in CPython and an
        # entry's token is replaced, never mutated).
        entry = self._entries.get(key)
        if entry is not None:
            token = entry.token
            if token is not None and self._now() < token.refresh_on:
                return token
        return self._get_slow(key, fetch)

    def _usable(self, token: Token | None, now: float) -> bool:
        return token is not None and now < token.expires_on - self._margin

    def _get_slow(self, key: Hashable, fetch: Callable[[], Token]) -> Token:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            now = self._now()
            old = entry.token
            if old is not None and now < old.refresh_on:
                return old
            usable = self._usable(old, now)
            flight = entry.flight
            if flight is None:
                if usable and now < entry.retry_at:
                    assert old is not None
                    return old  # backing off after a failed refresh; the old token is still good
                flight = entry.flight = _Flight()
                self.fetches += 1
                leader = True
            else:
                leader = False
                if usable and old is not None and now < old.mandatory_at:
                    return old  # advisory window: someone is refreshing, keep using the valid token
        if leader:
            return self._lead(entry, flight, fetch, old)
        flight.done.wait()
        if flight.token is not None:
            return flight.token
        if self._usable(old, self._now()):
            assert old is not None
            return old
        assert flight.error is not None
        raise flight.error

    def _lead(self, entry: _Entry, flight: _Flight, fetch: Callable[[], Token], old: Token | None) -> Token:
        try:
            token = fetch()
        except Exception as exc:
            self._fail(entry, flight, exc)
            if self._usable(old, self._now()):
                assert old is not None
                log.warning("token refresh failed (%s: %s); keeping the current token, valid for %.0f s",
                            type(exc).__name__, exc, old.expires_on - self._now())
                return old
            raise
        except BaseException:
            # Interrupted (KeyboardInterrupt, SystemExit): waiters must not hang on this flight.
            self._fail(entry, flight, IdentityUnavailable("the token request was interrupted; try again"))
            raise
        with self._lock:
            entry.token = token
            entry.failures = 0
            entry.retry_at = 0.0
            entry.flight = None
        flight.token = token
        flight.done.set()
        return token

    def _fail(self, entry: _Entry, flight: _Flight, exc: BaseException) -> None:
        with self._lock:
            entry.failures += 1
            delay = backoff_delay(entry.failures - 1, backoff_factor=self._backoff_initial,
                                  backoff_max=self._backoff_max, rng=self._rng)
            entry.retry_at = self._now() + delay
            entry.flight = None
        flight.error = exc
        flight.done.set()

    def invalidate(self, key: Hashable | None = None, *, token: str | None = None) -> bool:
        """Drop cached tokens: all, or ``key``'s; with ``token``, only if that is still the cached one.

        The 401 path passes the token the service rejected, so that 64 requests failing with the same
        token drop it once and cause one refresh, not 64. Returns whether anything was dropped.
        """
        dropped = False
        with self._lock:
            entries = self._entries.values() if key is None else [e for e in [self._entries.get(key)] if e]
            for entry in entries:
                if entry.token is None or (token is not None and entry.token.token != token):
                    continue
                entry.token = None
                entry.retry_at = 0.0
                dropped = True
            if dropped:
                self.generation += 1
        return dropped

    def __repr__(self) -> str:
        return f"TokenCache(entries={len(self._entries)})"
