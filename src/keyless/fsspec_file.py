"""The file object of ``azfiles://`` (parallel read-ahead, parallel writes published whole on close) and
the translation of keyless's errors into Python's, for :mod:`keyless.fsspec`.
"""

from __future__ import annotations

import contextlib
import errno
import io
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

from fsspec.spec import AbstractBufferedFile

from keyless.files import errors as fe
from keyless.files.client import ShareClient
from keyless.files.parallel import ranges
from keyless.files.parts import remote_part_name
from keyless.fsspec_readahead import ParallelReadAhead


class FileOwner(Protocol):
    """What a file needs of its filesystem (``keyless.fsspec.AzureFilesFileSystem``)."""

    max_concurrency: int

    def _resolve(self, path: str) -> tuple[ShareClient, str]: ...

    def _read(self, client: ShareClient, rel: str, lo: int, hi: int, *, etag: str = "") -> bytes: ...

    def exists(self, path: str) -> bool: ...


@contextlib.contextmanager
def translate_errors(path: str) -> Iterator[None]:
    """keyless errors as Python's built-in exceptions, keeping keyless's message (identity, role, action)."""
    try:
        yield
    except (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError):
        raise  # keyless's NotFound, AlreadyExists and PermissionDenied already are these
    except fe.DirectoryNotEmpty as exc:
        raise OSError(errno.ENOTEMPTY, str(exc), path) from None
    except fe.AuthenticationFailed as exc:
        raise PermissionError(errno.EACCES, str(exc), path) from None
    except fe.TokenError as exc:
        raise PermissionError(errno.EACCES, str(exc), path) from None
    except fe.ConnectionFailed as exc:
        raise ConnectionError(str(exc)) from None
    except fe.FilesError as exc:
        raise OSError(errno.EIO, str(exc), path) from None


class _ParallelWriter:
    """Sends a growing file's ranges to its part file, ``concurrency`` at a time.

    The part is created by the first chunk: at its exact size when that chunk is the whole file (one
    Create File, one Put Range per 4 MiB, one rename: a small file costs three requests), else at twice
    the size written so far, and grown by doubling (Set File Properties), so a file written in 4 MiB
    blocks costs a handful of resizes, not one per block. :meth:`finish` waits for every range and sets
    the exact length. All-zero ranges are not sent: a new or grown file is zero-filled already. Memory:
    each range in flight is its own copy (at most ``concurrency`` of 4 MiB), so a caller's buffer is free
    as soon as ``write`` returns, and ``write`` waits while ``concurrency`` ranges are in flight.
    """

    def __init__(self, client: ShareClient, part: str, concurrency: int) -> None:
        self.client = client
        self.part = part
        self.concurrency = max(1, concurrency)
        self.allocated = -1  # not created yet
        self.pending: set[Future[None]] = set()
        self._pool: ThreadPoolExecutor | None = None

    def write(self, offset: int, data: bytes | memoryview, *, final: bool) -> None:
        end = offset + len(data)
        if self.allocated < 0:
            self.client.create_file(self.part, end if final else 2 * end, parents=True)
            self.allocated = end if final else 2 * end
        elif end > self.allocated:
            self._resize(end if final else max(end, 2 * self.allocated))
        view = memoryview(data).cast("B")
        for off, length in ranges(len(view)):
            chunk = bytes(view[off : off + length])
            if chunk.count(0) != length:
                self._submit(offset + off, chunk)

    def _submit(self, offset: int, chunk: bytes) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="azfiles-write")
        while len(self.pending) >= self.concurrency:
            done, self.pending = wait(self.pending, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()
        self.pending.add(self._pool.submit(self.client.put_range, self.part, offset, chunk))

    def _resize(self, size: int) -> None:
        self.client.send("PUT", self.part, query={"comp": "properties"},
                         headers={"x-ms-content-length": str(size)}, operation="resize file",
                         action="Microsoft.Storage/storageAccounts/fileServices/fileshares/files/write")
        self.allocated = size

    def finish(self, size: int) -> None:
        """Wait for every range, then give the part its exact length."""
        finished, self.pending = wait(self.pending).done, set()
        for future in finished:
            future.result()
        if self.allocated < 0:
            self.client.create_file(self.part, size, parents=True)
            self.allocated = size
        elif self.allocated != size:
            self._resize(size)
        self.close()

    def abort(self) -> None:
        """Cancel what is queued and wait for what is being sent (so nothing lands after a delete)."""
        for future in self.pending:
            future.cancel()
        wait(self.pending)
        self.pending = set()
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class AzureFilesFile(AbstractBufferedFile):  # type: ignore[misc]  # fsspec is untyped
    """A buffered ``azfiles`` file.

    Reads: the ``azfiles-parallel`` cache by default (:mod:`keyless.fsspec_readahead`): sequential and
    large reads keep ``max_concurrency`` ranges in flight with bounded memory; random small reads (parquet
    footers) fetch only what they ask for, rounded up to 64 KiB. Any fsspec ``cache_type`` may be chosen
    instead. Every range must come from the version of the file opened (its ETag): a file replaced while
    it is read fails the read instead of mixing two versions.

    Writes: sent as ranges in parallel (``max_concurrency`` in flight, see :class:`_ParallelWriter`) to a
    temporary file next to the target, which becomes visible under the target's name only on a
    successful ``close()`` (a rename with replace). A failed request, leaving a ``with`` block by an
    exception, or ``discard()`` deletes the temporary file: the target keeps its old content or stays
    absent."""

    offset: int | None  # fsspec's: where the buffer starts in the file (None until the first flush)

    def __init__(self, fs: FileOwner, path: str, mode: str = "rb", **kwargs: Any) -> None:
        cache_type = kwargs.get("cache_type") or ParallelReadAhead.name
        kwargs["cache_type"] = cache_type
        if cache_type == ParallelReadAhead.name:
            options = dict(kwargs.get("cache_options") or {})
            options.setdefault("concurrency", fs.max_concurrency)
            kwargs["cache_options"] = options
        self._client, self._rel = fs._resolve(path)
        self._part = ""
        self._writer: _ParallelWriter | None = None
        self._exclusive = "x" in mode
        if "a" in mode:
            raise NotImplementedError(
                "azfiles: append mode is not supported (writes replace a file atomically); read the file "
                "and write it anew"
            )
        if self._exclusive and fs.exists(path):
            raise FileExistsError(errno.EEXIST, "azfiles: the file exists", path)
        super().__init__(fs, path, mode, **kwargs)
        details = getattr(self, "_details", None) or {}
        self._etag = str(details.get("etag") or "") if mode == "rb" else ""

    # reads
    def _fetch_range(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if end <= start:
            return b""
        with translate_errors(self.path):
            data: bytes = self.fs._read(self._client, self._rel, start, end, etag=self._etag)
            return data

    def close(self) -> None:
        cache = getattr(self, "cache", None)
        if isinstance(cache, ParallelReadAhead):
            cache.close()
        super().close()

    # writes
    def write(self, data: Any) -> int:
        """Whole blocks of a large write go straight out as ranges, without a copy into the buffer."""
        if self.mode not in ("wb", "xb") or self.closed or self.forced or self.buffer.tell():
            return int(super().write(data))
        view = memoryview(data).cast("B")
        direct = len(view) - len(view) % self.blocksize
        if direct:
            if self.offset is None:
                self.offset = 0
                self._initiate_upload()
            offset = int(self.offset)
            self._guarded(lambda: self._writer_for().write(offset, view[:direct], final=False))
            self.offset = offset + direct
            self.loc += direct
        if direct < len(view):
            super().write(view[direct:])
        return len(view)

    def _initiate_upload(self) -> None:
        self._part = remote_part_name(self._rel)  # created by the first chunk, at its size

    def _writer_for(self) -> _ParallelWriter:
        if self._writer is None:
            if not self._part:
                self._initiate_upload()
            self._writer = _ParallelWriter(self._client, self._part, self.fs.max_concurrency)
        return self._writer

    def _guarded(self, action: Callable[[], None]) -> None:
        """Run a write step; on failure drop everything sent, so the target never sees part of it."""
        try:
            with translate_errors(self.path):
                action()
        except BaseException:
            self._abort()
            self.closed = True
            raise

    def _upload_chunk(self, final: bool = False) -> bool:
        data = self.buffer.getvalue()
        writer = self._writer_for()
        offset = self.offset or 0  # fsspec sets it before the first chunk

        def step() -> None:
            if data:
                writer.write(offset, data, final=final)
            if final:
                writer.finish(offset + len(data))

        self._guarded(step)
        if final and self.autocommit:
            self.commit()
        return True

    def commit(self) -> None:
        writer = self._writer_for()
        with translate_errors(self.path):
            try:
                if writer.allocated < 0:  # nothing was ever flushed: an empty file
                    writer.finish(0)
                self._client.rename(self._part, self._rel, replace=not self._exclusive, is_dir=False)
            except BaseException:
                self.discard()
                raise
        self._part = ""
        self._writer = None

    def _abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
        self.discard()

    def discard(self) -> None:
        """Drop what was written: the target keeps its previous content (or stays absent)."""
        part, self._part = self._part, ""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.abort()
        if part and writer is not None and writer.allocated >= 0:
            with contextlib.suppress(fe.FilesError):
                self._client.delete_file(part)

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None and self.mode in ("wb", "xb"):
            self.buffer = io.BytesIO()
            self.closed = True
            self._abort()
            return
        self.close()
