"""File bytes: one plain, sparse file per file version under ``DIR/blobs``, named by a random id.

Blobs are keyed by id, never by path, so a rename touches no bytes. Every byte mutation of one blob
(range write, clear, resize) takes that blob's stripe of a striped lock, so a resize cannot interleave
with a range write on the same file. Reads never go past the length the caller passes (the committed
length) and pad a short blob with zeros.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import cast

_LOCK_STRIPES = 64
COPY_CHUNK = 4 * 1024 * 1024
_BLOCK = 512  # the service's range granularity


class BlobStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._prefix = os.path.join(directory, "")  # blob paths by concatenation: no Path per request
        self._stripes = [threading.Lock() for _ in range(_LOCK_STRIPES)]

    def path(self, blob: str) -> str:
        return self._prefix + blob

    def _stripe(self, blob: str) -> threading.Lock:
        return self._stripes[hash(blob) % _LOCK_STRIPES]

    def new(self, length: int) -> str:
        """Create an empty sparse blob of ``length`` bytes: instant even for a 4 TiB file."""
        blob = uuid.uuid4().hex
        fd = os.open(self.path(blob), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, length)
        finally:
            os.close(fd)
        return blob

    def unlink(self, blobs: Iterable[str]) -> None:
        for blob in blobs:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(blob))

    def sweep(self, referenced: set[str]) -> int:
        """Delete every blob not in ``referenced``; returns how many went."""
        removed = 0
        for entry in os.scandir(self.directory):
            if entry.name not in referenced:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                removed += 1
        return removed

    # -- writes (FileNotFoundError when the blob is gone: deleted or replaced meanwhile) --

    def write(self, blob: str, offset: int, data: bytes) -> None:
        with self._stripe(blob):
            fd = os.open(self.path(blob), os.O_WRONLY)
            try:
                view = memoryview(data)
                while view:
                    written = os.pwrite(fd, view, offset)
                    view, offset = view[written:], offset + written
            finally:
                os.close(fd)

    def clear(self, blob: str, offset: int, length: int) -> None:
        """Clear a range without allocating anything: punch a hole (as the service, where Clear Range is
        a metadata operation); where the filesystem cannot, zero only the parts that hold data, so a clear
        over a huge sparse file never writes more than the data already there."""
        with self._stripe(blob):
            fd = os.open(self.path(blob), os.O_WRONLY)
            try:
                if not punch_hole(fd, offset, length):
                    _zero_data(fd, offset, length)
            finally:
                os.close(fd)

    def grow(self, blob: str, old_length: int, new_length: int) -> None:
        """Zero-fill the grown region: truncate to the old length (stale bytes may sit past it), then up."""
        with self._stripe(blob):
            os.truncate(self.path(blob), old_length)
            os.truncate(self.path(blob), new_length)

    def shrink(self, blob: str, length: int) -> None:
        with self._stripe(blob), contextlib.suppress(FileNotFoundError):
            os.truncate(self.path(blob), length)

    # -- reads --

    def read(self, blob: str | None, size: int, offset: int, length: int) -> bytes:
        """Bytes ``[offset, offset+length)`` of a blob whose committed length is ``size`` (clamped to it;
        zero-padded where the blob is shorter). FileNotFoundError when the blob is gone."""
        length = max(0, min(length, size - offset))
        if length == 0 or blob is None:
            return b""
        fd = os.open(self.path(blob), os.O_RDONLY)
        try:
            chunks: list[bytes] = []
            pos, end = offset, offset + length
            while pos < end:
                chunk = os.pread(fd, end - pos, pos)
                if not chunk:
                    break
                chunks.append(chunk)
                pos += len(chunk)
        finally:
            os.close(fd)
        data = b"".join(chunks)
        return data + bytes(length - len(data)) if len(data) < length else data

    def data_ranges(self, blob: str | None, size: int, start: int, end: int) -> list[tuple[int, int]]:
        """Inclusive ranges holding data within ``[start, end]``, 512-aligned like the service's.

        Uses SEEK_DATA/SEEK_HOLE on the sparse blob; where unsupported, the whole file counts as data.
        """
        end = min(end, size - 1)
        if blob is None or end < start:
            return []
        ranges: list[tuple[int, int]] = []
        try:
            fd = os.open(self.path(blob), os.O_RDONLY)
        except FileNotFoundError:
            return []
        try:
            pos = start
            while pos <= end:
                try:
                    data = os.lseek(fd, pos, os.SEEK_DATA)
                except OSError as exc:
                    if exc.errno == errno.ENXIO:  # no data after pos
                        break
                    raise
                if data > end:
                    break
                hole = os.lseek(fd, data, os.SEEK_HOLE)
                lo = data - data % 512
                hi = min(-(-hole // 512) * 512, size) - 1
                ranges.append((max(lo, start), min(hi, end)))
                pos = hole
        except (AttributeError, OSError):
            ranges = [(start, end)]
        finally:
            os.close(fd)
        return _merge(ranges)

    def diff_ranges(self, blob: str | None, size: int, current: list[tuple[int, int]], previous: str | None,
                    previous_size: int, before: list[tuple[int, int]],
                    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """What changed since ``previous`` (the file in an earlier snapshot), given both versions' written
        ranges: (ranges now holding different data, ranges cleared since), inclusive, 512-aligned.

        A unit written now and not then, or written in both with different bytes, is a changed range; a
        unit written then and not now is a cleared range. Bytes are compared only where both hold data.
        """
        changed: list[tuple[int, int]] = []
        cleared: list[tuple[int, int]] = []
        for lo, hi in _merge(current + before):
            pos = lo - lo % _BLOCK
            while pos <= hi:
                n = min(COPY_CHUNK, hi - pos + 1)
                now = self.read(blob, size, pos, n).ljust(n, b"\0")
                then = self.read(previous, previous_size, pos, n).ljust(n, b"\0")
                for off in range(0, n, _BLOCK):
                    unit = (pos + off, min(pos + off + _BLOCK, hi + 1) - 1)
                    in_now = any(a <= unit[0] <= b for a, b in current)
                    in_then = any(a <= unit[0] <= b for a, b in before)
                    if in_now and (not in_then or now[off:off + _BLOCK] != then[off:off + _BLOCK]):
                        changed.append(unit)
                    elif in_then and not in_now:
                        cleared.append(unit)
                pos += n
        return _merge(changed), _merge(cleared)

    def copy(self, source: str | None, size: int, target: str) -> None:
        """Copy the data ranges of ``source`` into ``target`` (a new blob as long as the source)."""
        if source is None:
            return
        for start, end in self.data_ranges(source, size, 0, size - 1):
            pos = start
            while pos <= end:
                n = min(COPY_CHUNK, end - pos + 1)
                self.write(target, pos, self.read(source, size, pos, n))
                pos += n


# fallocate(2) modes (linux/falloc.h): deallocate the range, keep the file's length.
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02


def _load_fallocate() -> Callable[[int, int, int, int], int] | None:
    """glibc/musl ``fallocate`` through ctypes (the os module has only posix_fallocate); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        func = libc.fallocate
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    func.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], func)


_fallocate = _load_fallocate()


def punch_hole(fd: int, offset: int, length: int) -> bool:
    """Deallocate ``[offset, offset+length)`` (reads give zeros); False when the filesystem cannot."""
    if _fallocate is None or length <= 0:
        return length <= 0
    if _fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(err, os.strerror(err))


def _zero_data(fd: int, offset: int, length: int) -> None:
    """Write zeros over the data extents within the range only (SEEK_DATA/SEEK_HOLE), never over holes.

    Where the filesystem cannot report holes, it has no sparse files either, so every byte is already
    allocated and zeroing the whole range allocates nothing new.
    """
    end = offset + length
    for lo, hi in _data_extents(fd, offset, end):
        pos = lo
        while pos < hi:
            n = min(COPY_CHUNK, hi - pos)
            os.pwrite(fd, bytes(n), pos)
            pos += n


def _data_extents(fd: int, start: int, end: int) -> list[tuple[int, int]]:
    """Half-open extents holding data within ``[start, end)``."""
    extents: list[tuple[int, int]] = []
    pos = start
    try:
        while pos < end:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no data after pos
                    break
                raise
            if data >= end:
                break
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            extents.append((data, min(hole, end)))
            pos = hole
    except (AttributeError, OSError):
        return [(start, min(end, os.fstat(fd).st_size))]
    return extents


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged
