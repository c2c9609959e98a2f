"""The local side of moving ranges: one reused buffer per worker thread, the all-zero check, and writing a
download's part file (allocated up front, a full disk named by file and directory).

Every large transfer moves 4 MiB ranges through worker threads (:mod:`keyless.files.transfer`). A new 4 MiB
object per range costs an allocation, fresh pages and, for ``bytes``, a copy; so each worker keeps one
buffer and reads every range it handles into it (``localos.pread_into`` on upload, the service's reply on
download and copy). A range is sent before the same worker reads the next one into that buffer.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import threading
from pathlib import Path

from keyless import localos
from keyless.files.errors import NotEnoughSpace
from keyless.files.parallel import RANGE_SIZE, ranges


class RangeBuffers:
    """One buffer per worker thread, no bigger than the file (a small file never costs 4 MiB)."""

    def __init__(self, file_size: int) -> None:
        self._size = min(file_size, RANGE_SIZE)
        self._local = threading.local()

    def take(self, length: int) -> tuple[bytearray | memoryview, memoryview]:
        """This thread's buffer for a range of ``length`` bytes: ``(the range's bytes, a view to fill)``.
        A whole buffer is the bytearray itself, so that the zero check is one memcmp; only a file's last,
        shorter range is a view."""
        buf: bytearray | None = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = bytearray(self._size)
        view = memoryview(buf)[:length]
        return (buf if length == len(buf) else view), view


_ZEROS = bytes(RANGE_SIZE)


def all_zero(data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` (at most one range) is all zero bytes: a memcmp that stops at the first difference,
    so real data costs next to nothing (``bytes.count`` reads the whole range every time)."""
    if not data or data[0] or data[-1]:
        return not len(data)
    if isinstance(data, memoryview):
        data = data.tobytes()  # memoryview == bytes compares item by item; a rare short last range only
    return data == (_ZEROS if len(data) == RANGE_SIZE else _ZEROS[: len(data)])


def size_part(fd: int, size: int, local: Path) -> None:
    """Size a download's part file of more than one range, its blocks allocated up front where the file
    system can (:func:`localos.preallocate`): writing into them is cheaper, and a full disk is found now,
    by name. (A file of one range gets its size from its one write.)"""
    try:
        localos.preallocate(fd, size)
    except OSError as exc:
        raise no_space(exc, local, size) from None


_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}


def no_space(exc: OSError, local: Path, size: int) -> OSError:
    """``exc``, or a :class:`NotEnoughSpace` naming the file, its size and the directory when the disk
    (or a quota, or the file system's largest file) is what refused."""
    if exc.errno not in _NO_SPACE:
        return exc
    where = local.absolute().parent
    return NotEnoughSpace(f"not enough space for {local} ({size} bytes) on {where}: {exc.strerror}")


def write_at(fd: int, view: memoryview, offset: int, local: Path, size: int) -> None:
    """Write ``view`` at ``offset``; a full disk (where nothing could be allocated up front, it fills
    now) is a :class:`NotEnoughSpace` for ``local`` of ``size`` bytes."""
    try:
        while view:  # a regular file rarely takes less than asked, but it may
            n = localos.pwrite(fd, view, offset)  # type: ignore[arg-type]
            view, offset = view[n:], offset + n
    except OSError as exc:
        raise no_space(exc, local, size) from None


def file_md5_matches(fd: int, size: int, expected_b64: str) -> bool:
    """Whether the file's content has the MD5 ``expected_b64`` (a Content-MD5 header's form)."""
    digest = hashlib.md5()  # noqa: S324 - integrity check against the service's Content-MD5
    for offset, length in ranges(size):
        digest.update(localos.pread(fd, length, offset))
    return base64.b64encode(digest.digest()).decode() == expected_b64
