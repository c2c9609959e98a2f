"""The emulator's notion of now: wall time plus a configurable offset (to test clock-skew handling)."""

from __future__ import annotations

import time


class Clock:
    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def now(self) -> float:
        return time.time() + self.offset
