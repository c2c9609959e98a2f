"""The file object of ``azfiles://`` (buffered reads with read-ahead, writes published whole on close) and
the translation of keyless's errors into Python's, for :mod:`keyless.fsspec`.
"""

from __future__ import annotations

import contextlib
import errno
import io
from collections.abc import Iterator
from typing import Any, Protocol

from fsspec.spec import AbstractBufferedFile

from keyless.files import errors as fe
from keyless.files.client import ShareClient
from keyless.files.parallel import ranges, run_bounded
from keyless.files.parts import remote_part_name


class FileOwner(Protocol):
    """What a file needs of its filesystem (``keyless.fsspec.AzureFilesFileSystem``)."""

    max_concurrency: int

    def _resolve(self, path: str) -> tuple[ShareClient, str]: ...

    def _read(self, client: ShareClient, rel: str, lo: int, hi: int) -> bytes: ...

    def _ensure_parent(self, client: ShareClient, rel: str) -> None: ...

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


class AzureFilesFile(AbstractBufferedFile):  # type: ignore[misc]  # fsspec is untyped
    """A buffered ``azfiles`` file. Reads fetch ``block_size`` ranges with read-ahead (fsspec's
    ``readahead`` cache) and seek freely. Writes go to a temporary file next to the target, sent as ranges
    as the buffer fills, and become visible under the target's name only on a successful ``close()``
    (a rename with replace); leaving a ``with`` block by an exception, or ``discard()``, deletes them."""

    def __init__(self, fs: FileOwner, path: str, mode: str = "rb", **kwargs: Any) -> None:
        kwargs.setdefault("cache_type", "readahead")
        self._client, self._rel = fs._resolve(path)
        self._part = ""
        self._exclusive = "x" in mode
        if "a" in mode:
            raise NotImplementedError(
                "azfiles: append mode is not supported (writes replace a file atomically); read the file "
                "and write it anew"
            )
        if self._exclusive and fs.exists(path):
            raise FileExistsError(errno.EEXIST, "azfiles: the file exists", path)
        super().__init__(fs, path, mode, **kwargs)

    # reads
    def _fetch_range(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if end <= start:
            return b""
        with translate_errors(self.path):
            data: bytes = self.fs._read(self._client, self._rel, start, end)
            return data

    # writes
    def _initiate_upload(self) -> None:
        with translate_errors(self.path):
            self.fs._ensure_parent(self._client, self._rel)
            self._part = remote_part_name(self._rel)
            self._client.create_file(self._part, 0)

    def _upload_chunk(self, final: bool = False) -> bool:
        data = self.buffer.getvalue()
        with translate_errors(self.path):
            if not self._part:
                self._initiate_upload()
            if data:
                end = self.offset + len(data)
                # The file grows with each chunk: Set File Properties sets its new length first.
                self._client.send("PUT", self._part, query={"comp": "properties"},
                                  headers={"x-ms-content-length": str(end)}, operation="resize file",
                                  action="Microsoft.Storage/storageAccounts/fileServices/fileshares/files/write")
                view = memoryview(data)

                def send(rng: tuple[int, int]) -> None:
                    off, length = rng
                    self._client.put_range(self._part, self.offset + off, view[off : off + length])

                run_bounded(send, ranges(len(data)), self.fs.max_concurrency)
            if final and self.autocommit:
                self.commit()
        return True

    def commit(self) -> None:
        if not self._part:  # nothing was ever flushed: an empty file
            self._initiate_upload()
        with translate_errors(self.path):
            try:
                self._client.rename(self._part, self._rel, replace=not self._exclusive, is_dir=False)
            except BaseException:
                self.discard()
                raise
        self._part = ""

    def discard(self) -> None:
        """Drop what was written: the target keeps its previous content (or stays absent)."""
        part, self._part = self._part, ""
        if part:
            with contextlib.suppress(fe.FilesError):
                self._client.delete_file(part)

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None and self.mode in ("wb", "xb"):
            self.buffer = io.BytesIO()
            self.closed = True
            self.discard()
            return
        self.close()
