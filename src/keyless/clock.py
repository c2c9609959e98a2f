"""Injectable time: wall-clock reads and sleeps go through one object so tests can run 70 s instantly.

Standard library only: the identity library, the Files client and their retry loops share it.

Wall-clock (epoch) time is used on purpose: token expiry is an epoch instant (``expires_on``), and the
refresh windows are compared against it. Thread coordination (condition waits) never uses this clock.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    __slots__ = ()

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


class FakeClock:
    """A clock that only moves when told to, or when someone sleeps on it (sleep returns at once).

    ``sleeps`` records every requested sleep so tests can assert the back-off schedule.
    """

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            if seconds > 0:
                self._now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def set(self, when: float) -> None:
        with self._lock:
            self._now = when
