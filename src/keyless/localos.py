"""The few operating-system facts the client side needs, with a POSIX and a Windows form.

Everything on the REST path (identity, Files client, CLI) goes through here instead of ``fcntl``,
``os.getuid``, ``os.pread`` and friends, which do not exist on Windows. The choice is made by what the
running Python has (``fcntl`` importable, ``os.getuid`` present), not by the platform's name, so that a
Linux test process where those are blocked runs the Windows code and proves it needs nothing POSIX-only.

* Locking: ``fcntl.flock`` on POSIX; ``msvcrt.locking`` on byte 0 on Windows (a mandatory lock that every
  process using the same file honours, which is all the shared token cache asks of it).
* Ownership: on POSIX a file is private when it is owned by this uid and has no group/other bits. Windows
  has no uid or mode bits in ``os.stat``; privacy there comes from the place (a directory under the user's
  profile, ``%LOCALAPPDATA%``, whose ACL grants only the user, SYSTEM and Administrators) and is not
  re-checked per file; the checks that remain are "a regular file, not a link".
* Positional I/O: ``os.pread``/``os.pwrite`` on POSIX; on Windows a seek and a read/write under a lock per
  file descriptor (the descriptor's position is shared by the threads of a transfer).
* Reading into a buffer the caller reuses (``pread_into``: ``os.preadv`` where it exists), so an upload does
  not allocate a new 4 MiB object per range.
* Preallocation of a download's file (``preallocate``): Linux's ``fallocate(2)`` with mode 0, which gives
  the file its blocks at once. Writing into allocated blocks is cheaper than extending a file one write at
  a time, and a disk too small fails at the start with ENOSPC instead of half-way. Where the file system
  cannot (EOPNOTSUPP: some FUSE and network file systems) or the platform has no ``fallocate``, the file
  is only sized with ``ftruncate`` (sparse, as before). glibc's ``posix_fallocate`` is not used on Linux:
  where the file system cannot allocate, it writes a byte into every 4 KiB block instead, one system call
  each (a network round trip on a FUSE or NFS mount).
* ``O_BINARY`` is added to every ``os.open`` (on Windows the default text mode would rewrite CR LF).

Stdlib only: both the identity library and the Files client import it.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

try:  # POSIX
    import fcntl as _fcntl

    FCNTL: ModuleType | None = _fcntl
except ImportError:  # Windows
    FCNTL = None

#: Extra ``os.open`` flags every binary open needs here: binary mode on Windows, close-on-exec on POSIX,
#: no-inherit on Windows.
BINARY_FLAGS: int = getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOINHERIT", 0)
#: ``O_NOFOLLOW`` where it exists (POSIX); on Windows callers check ``is_link`` first (creating a
#: symbolic link there needs a privilege ordinary users do not have by default).
NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
HAS_UIDS: bool = hasattr(os, "getuid")


class Unset:
    """The type of ``UNSET``: "not given", where None is a meaningful value (no uids)."""


UNSET = Unset()


def is_junction(path: Path) -> bool:
    """A Windows directory junction (a link ``lstat`` reports as a directory); False elsewhere."""
    check = getattr(os.path, "isjunction", None)  # Python 3.12+
    return bool(check(path)) if check is not None else False


class Locker(Protocol):
    def try_lock(self, fd: int) -> bool: ...

    def unlock(self, fd: int) -> None: ...


class FlockLocker:
    """``flock``: whole-file advisory lock, released when the descriptor closes."""

    def __init__(self, fcntl_module: Any) -> None:
        self._fcntl = fcntl_module

    def try_lock(self, fd: int) -> bool:
        try:
            self._fcntl.flock(fd, self._fcntl.LOCK_EX | self._fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise

    def unlock(self, fd: int) -> None:
        self._fcntl.flock(fd, self._fcntl.LOCK_UN)


class MsvcrtLocker:
    """``msvcrt.locking`` on the first byte (Windows): ``LK_NBLCK`` fails at once with EACCES/EDEADLOCK
    when another process holds it; a locked region may lie beyond the end of the (empty) lock file."""

    def __init__(self, msvcrt_module: Any) -> None:
        self._msvcrt = msvcrt_module

    def try_lock(self, fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            self._msvcrt.locking(fd, self._msvcrt.LK_NBLCK, 1)
            return True
        except OSError as exc:
            if exc.errno in (errno.EACCES, getattr(errno, "EDEADLOCK", errno.EDEADLK), errno.EAGAIN):
                return False
            raise

    def unlock(self, fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        self._msvcrt.locking(fd, self._msvcrt.LK_UNLCK, 1)


def default_locker() -> Locker:
    if FCNTL is not None:
        return FlockLocker(FCNTL)
    import msvcrt  # Windows (or a test process standing in for it)

    return MsvcrtLocker(msvcrt)


# --- who may read a file ------------------------------------------------------------------------------------


def current_uid() -> int | None:
    """This process's uid, or None where there are no uids (Windows)."""
    return os.getuid() if HAS_UIDS else None


def privacy_problem(st: os.stat_result, *, uid: int | None) -> str | None:
    """Why a file or directory with this ``stat`` is not private to the user, or None.

    ``uid`` None means Windows semantics: owner and mode bits are not in ``stat`` there, and privacy rests
    on the directory's place under the user's profile (see the module docstring)."""
    if uid is None:
        return None
    if st.st_uid != uid:
        return f"it belongs to uid {st.st_uid}, not to this user"
    if st.st_mode & 0o077:
        return "group or others may read it"
    return None


def profile_problem(directory: Path, env: Mapping[str, str]) -> str | None:
    """Windows: why ``directory`` is not a private place (under the user's profile), or None.

    Nothing per file says who may read it there; the profile's ACL does (the user, SYSTEM and
    Administrators), so a cache outside it (``C:\\temp``, a share) could be readable by every user."""
    roots = [Path(env[name]) for name in ("LOCALAPPDATA", "USERPROFILE") if env.get(name)]
    if not roots:
        return "neither %LOCALAPPDATA% nor %USERPROFILE% is set, so no private place is known"
    resolved = directory.resolve()
    if any(resolved.is_relative_to(root.resolve()) for root in roots):
        return None
    return (f"{directory} is not under the user's profile ({roots[0]}), whose access list is what keeps "
            f"the tokens private on Windows")


def user_cache_root(env: Mapping[str, str], *, windows: bool) -> Path | None:
    """The per-user, per-machine directory for caches on Windows: ``%LOCALAPPDATA%`` (not roaming, so
    tokens never travel with a roaming profile). None on POSIX, where the runtime-dir rules apply."""
    if not windows:
        return None
    local = env.get("LOCALAPPDATA")
    return Path(local) if local else None


# --- positional I/O -----------------------------------------------------------------------------------------

_fd_locks: dict[int, threading.Lock] = {}
_fd_locks_guard = threading.Lock()


def _fd_lock(fd: int) -> threading.Lock:
    with _fd_locks_guard:
        return _fd_locks.setdefault(fd, threading.Lock())


def seek_pread(fd: int, length: int, offset: int) -> bytes:
    """``pread`` for systems without it: seek and read under the descriptor's lock, to the full length."""
    with _fd_lock(fd):
        os.lseek(fd, offset, os.SEEK_SET)
        chunks = []
        while length > 0:
            chunk = os.read(fd, length)
            if not chunk:
                break
            chunks.append(chunk)
            length -= len(chunk)
        return b"".join(chunks)


def seek_pwrite(fd: int, data: bytes, offset: int) -> int:
    """``pwrite`` for systems without it: seek and write everything under the descriptor's lock."""
    with _fd_lock(fd):
        os.lseek(fd, offset, os.SEEK_SET)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return len(data)


def pread(fd: int, length: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, length, offset)
    return seek_pread(fd, length, offset)


def pwrite(fd: int, data: bytes, offset: int) -> int:
    if hasattr(os, "pwrite"):
        return os.pwrite(fd, data, offset)
    return seek_pwrite(fd, data, offset)



def pread_into(fd: int, view: memoryview, offset: int) -> int:
    """Read up to ``len(view)`` bytes at ``offset`` into ``view`` (a reused buffer); the number read, fewer
    only at the end of the file."""
    if hasattr(os, "preadv"):
        got = 0
        while got < len(view):  # a regular file returns less than asked only at its end, but it may
            n = os.preadv(fd, [view[got:]], offset + got)
            if not n:
                break
            got += n
        return got
    data = pread(fd, len(view), offset)
    view[: len(data)] = data
    return len(data)


# EPERM: a sandbox whose system-call filter refuses fallocate (ftruncate then says whether sizing is).
_NOT_SUPPORTED = {
    errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.EPERM, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)
}
_fallocate: list[Any] = []  # [libc fallocate or None], looked up on first use


def _load_fallocate() -> Any:
    function = None
    # 64-bit Linux only, where off_t is 64 bits and ``fallocate`` is the one symbol (glibc and musl).
    if sys.platform.startswith("linux") and sys.maxsize > 2**32:
        import ctypes

        try:
            function = ctypes.CDLL(None, use_errno=True).fallocate
        except (OSError, AttributeError):  # pragma: no cover - a libc without it
            function = None
        else:
            function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
            function.restype = ctypes.c_int
    _fallocate[:] = [function]
    return function


def preallocate(fd: int, size: int) -> bool:
    """Give ``fd`` (an empty file opened for writing) ``size`` bytes: allocated where the file system can
    (True), else only sized, sparse (False). Raises ``OSError`` ENOSPC (or EDQUOT) when the space is not
    there, before anything is written."""
    function = _fallocate[0] if _fallocate else _load_fallocate()
    if function is not None and size > 0:
        while function(fd, 0, 0, size) != 0:
            code = _errno()
            if code == errno.EINTR:
                continue
            if code in _NOT_SUPPORTED:
                break
            raise OSError(code, os.strerror(code))
        else:
            return True
    os.ftruncate(fd, size)
    return False


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()
