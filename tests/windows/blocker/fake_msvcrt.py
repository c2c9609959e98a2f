"""An ``msvcrt`` stand-in with Windows's locking contract, for Linux processes simulating Windows.

``locking(fd, LK_NBLCK, n)`` locks ``n`` bytes from the current position or fails at once with EACCES
when another process holds them; ``LK_UNLCK`` releases. Built on ``os.lockf`` (POSIX record locks, which
live in ``os``, not in the blocked ``fcntl``), so separate processes really exclude each other.
"""

from __future__ import annotations

import errno
import os
import types


def make() -> types.ModuleType:
    lockf, f_tlock, f_ulock = os.lockf, os.F_TLOCK, os.F_ULOCK
    module = types.ModuleType("msvcrt")
    module.LK_UNLCK, module.LK_LOCK, module.LK_NBLCK = 0, 1, 2  # type: ignore[attr-defined]

    def locking(fd: int, mode: int, nbytes: int) -> None:
        if mode == 0:
            lockf(fd, f_ulock, nbytes)
            return
        if mode != 2:
            raise NotImplementedError("the simulation implements LK_NBLCK and LK_UNLCK only")
        try:
            lockf(fd, f_tlock, nbytes)
        except OSError as exc:
            # Windows's C runtime reports a held region as EACCES (msvcrt.locking's documented error).
            raise OSError(errno.EACCES, "Permission denied") from exc

    module.locking = locking  # type: ignore[attr-defined]
    return module
