"""``ShareClient``: share, directory and file operations over the Azure Files REST API.

Paths are share-relative, ``/``-separated, decoded names (``"dir/my file.txt"``); :mod:`keyless.files.urls`
encodes them. Every request goes through :meth:`ShareClient.send`: the layers of
:mod:`keyless.files.pipeline` send it (retries, the one-shot token refresh on 401, the optional wait for a
403 while a new role assignment propagates), and a failed reply becomes a typed error from
:mod:`keyless.files.errors` here, in one place.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from keyless import protocol as p
from keyless.clock import SYSTEM_CLOCK, Clock
from keyless.files.auth import Authorizer, BearerAuth, SharedKeyAuth, TokenCredential
from keyless.files.destinations import Destinations
from keyless.files.errors import (
    AlreadyExists,
    ConnectionFailed,
    FilesError,
    IntegrityError,
    NotFound,
    ParentNotFound,
    RequestInfo,
    from_response,
)
from keyless.files.models import (
    Entry,
    Properties,
    dir_properties,
    file_properties,
    meta_headers,
    parse_listing,
)
from keyless.files.parallel import RANGE_SIZE, ranges, run_bounded
from keyless.files.pipeline import Pipeline, Request, Result
from keyless.files.retry import AccessWait, RetryPolicy
from keyless.files.times import format_time
from keyless.files.transport import HttpTransport, Response, SendError, Transport
from keyless.files.urls import DEFAULT_SUFFIXES, FileUrl, join_path, parse

__all__ = ["RANGE_SIZE", "Entry", "Properties", "ShareClient"]

_READ, _WRITE, _DELETE = p.ACTION_READ, p.ACTION_WRITE, p.ACTION_DELETE


def _as_authorizer(credential: Any, account_key: str | None, account: str) -> Authorizer:
    if account_key is not None:
        return SharedKeyAuth(account, account_key)
    if credential is None:
        raise ValueError("a credential (any azure-core TokenCredential) or an account key is required")
    if hasattr(credential, "authorize") and hasattr(credential, "refresh"):
        return credential  # type: ignore[no-any-return]
    if hasattr(credential, "get_token"):
        return BearerAuth(credential)
    raise TypeError(f"unsupported credential type {type(credential).__name__}")


class ShareClient:
    """Operations on one share. Thread-safe: worker threads share one client (and its connection pool)."""

    def __init__(
        self,
        share: FileUrl | str,
        credential: TokenCredential | Authorizer | None = None,
        *,
        account_key: str | None = None,
        transport: HttpTransport | None = None,
        ca_cert: str | None = None,
        emulator_url: str | None = None,
        suffixes: tuple[str, ...] = DEFAULT_SUFFIXES,
        retry: RetryPolicy | None = None,
        concurrency: int = 8,
        wait_for_access: float = 0.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.target = (
            parse(share, emulator_url=emulator_url, suffixes=suffixes) if isinstance(share, str) else share
        )
        self.target = self.target.with_path("")
        self.auth = _as_authorizer(credential, account_key, self.target.account)
        self.transport: HttpTransport = transport or Transport(
            ca_cert=ca_cert, pool_size=max(concurrency, 1) + 4
        )
        self.destinations = Destinations(suffixes, emulator_url)
        self.retry = retry or RetryPolicy()
        self.concurrency = max(1, concurrency)
        self.wait_for_access = wait_for_access
        self.clock = clock
        self._pipeline = Pipeline(
            self.transport, self.destinations, self.auth, self.retry, AccessWait(wait_for_access), clock
        )

    def __repr__(self) -> str:
        return f"ShareClient({self.target.shorthand()!r}, auth={self.auth.scheme})"

    @property
    def account(self) -> str:
        return self.target.account

    @property
    def share(self) -> str:
        return self.target.share

    def url(self, path: str = "") -> FileUrl:
        return self.target.with_path(path)

    def identity(self) -> str:
        return self.auth.identity()

    # --- the one way requests are sent ------------------------------------------------------------------
    def send(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        operation: str = "",
        action: str = _READ,
        idempotent: bool = True,
    ) -> Response:
        target = self.url(path)
        url = target.url
        if query:
            url += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query.items())
        info = RequestInfo(
            method=method,
            url=target.url,
            account=self.account,
            share=self.share,
            operation=operation,
            action=action,
            backup_intent=self.auth.scheme == "Bearer",
        )
        request = Request(method, url, headers or {}, body, idempotent, client_request_id=str(uuid.uuid4()))
        try:
            result = self._pipeline.send(request)
        except SendError as exc:
            raise ConnectionFailed(
                f"{operation or method} {target.url}: no reply ({exc})", request=info
            ) from None
        if 200 <= result.response.status < 300:
            return result.response
        raise self._failure(result, replace(info, identity=self.auth.identity()))

    @staticmethod
    def _failure(result: Result, info: RequestInfo) -> FilesError:
        """The typed error for a reply the retries could not cure: every failure is mapped here."""
        resp = result.response
        if 300 <= resp.status < 400:
            return FilesError(
                f"{info.operation or info.method} {info.url}: the service answered with a redirect "
                f"(HTTP {resp.status}); redirects are not followed with credentials",
                status=resp.status,
                request=info,
            )
        return from_response(resp.status, resp.headers, resp.data, info, token_refreshed=result.refreshed)

    # --- directories ------------------------------------------------------------------------------------
    def mkdir(
        self,
        path: str,
        *,
        parents: bool = False,
        exist_ok: bool = False,
        metadata: dict[str, str] | None = None,
    ) -> bool:
        """Create a directory; True if it was created, False if it existed (with ``exist_ok``)."""
        path = join_path(path)
        if not path:
            if exist_ok:
                return False
            raise AlreadyExists("the share root always exists")
        headers = meta_headers(metadata)
        try:
            self.send(
                "PUT",
                path,
                query={"restype": "directory"},
                headers=headers,
                operation="create directory",
                action=_WRITE,
            )
            return True
        except AlreadyExists:
            if exist_ok:
                return False
            raise
        except ParentNotFound:
            if not parents:
                raise
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        self.mkdir(parent, parents=True, exist_ok=True)
        return self.mkdir(path, parents=False, exist_ok=exist_ok, metadata=metadata)

    def listdir(self, path: str = "", *, prefix: str | None = None) -> Iterator[Entry]:
        """The entries directly in directory ``path``, page by page (5000 per request)."""
        path = join_path(path)
        marker = ""
        while True:
            query = {
                "restype": "directory",
                "comp": "list",
                "include": "Timestamps,ETag,Attributes",
                "maxresults": str(p.MAX_LIST_RESULTS),
            }
            if prefix:
                query["prefix"] = prefix
            if marker:
                query["marker"] = marker
            resp = self.send(
                "GET",
                path,
                query=query,
                headers={"x-ms-file-extended-info": "true"},
                operation="list directory",
            )
            entries, marker = parse_listing(resp.data, path)
            yield from entries
            if not marker:
                return

    def walk(self, path: str = "") -> Iterator[tuple[str, list[Entry], list[Entry]]]:
        """Like ``os.walk``, top-down: ``(dirpath, dirs, files)`` for ``path`` and every directory below."""
        stack = [join_path(path)]
        while stack:
            current = stack.pop()
            dirs: list[Entry] = []
            files: list[Entry] = []
            for entry in self.listdir(current):
                (dirs if entry.is_dir else files).append(entry)
            yield current, dirs, files
            stack.extend(reversed([d.path for d in dirs]))

    # --- properties -------------------------------------------------------------------------------------
    def properties(self, path: str) -> Properties:
        """File or directory properties (files first: the common case costs one request)."""
        path = join_path(path)
        if path:
            try:
                resp = self.send("HEAD", path, operation="get file properties")
                return file_properties(path, resp)
            except NotFound as exc:
                file_error: NotFound = exc
        try:
            resp = self.send(
                "GET", path, query={"restype": "directory"}, operation="get directory properties"
            )
        except NotFound:
            if path:
                raise file_error from None
            raise
        return dir_properties(path, resp)

    def is_dir(self, path: str) -> bool:
        """Whether ``path`` is an existing directory, in one request (Get Directory Properties answers 404
        for a file as for nothing at all)."""
        path = join_path(path)
        try:
            self.send("GET", path, query={"restype": "directory"}, operation="get directory properties")
        except NotFound:
            return False
        return True

    def exists(self, path: str) -> bool:
        try:
            self.properties(path)
        except NotFound:
            return False
        return True

    def set_metadata(self, path: str, metadata: dict[str, str], *, is_dir: bool | None = None) -> None:
        """Replace the metadata of a file or directory (the service replaces, it does not merge)."""
        if is_dir is None:
            is_dir = self.properties(path).is_dir
        query = {"restype": "directory", "comp": "metadata"} if is_dir else {"comp": "metadata"}
        self.send(
            "PUT", path, query=query, headers=meta_headers(metadata), operation="set metadata", action=_WRITE
        )

    def resize(self, path: str, size: int) -> None:
        """Grow (zero-filled) or truncate a file. Content headers are resent: Set File Properties clears
        the ones a request leaves out."""
        props = self.properties(path)
        headers = {"x-ms-content-length": str(size)}
        if props.content_type:
            headers["x-ms-content-type"] = props.content_type
        self.send(
            "PUT", path, query={"comp": "properties"}, headers=headers, operation="resize file", action=_WRITE
        )

    # --- files ------------------------------------------------------------------------------------------
    def create_file(
        self,
        path: str,
        size: int,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        last_write_time: float | None = None,
        parents: bool = False,
    ) -> None:
        """Create (or replace) a file of ``size`` zero bytes; content goes in with :meth:`put_range`.
        ``parents``: create missing parent directories first, as AzCopy and rclone do for uploads."""
        headers = {"x-ms-type": "file", "x-ms-content-length": str(size), **meta_headers(metadata)}
        if content_type:
            headers["x-ms-content-type"] = content_type
        if last_write_time is not None:
            headers["x-ms-file-last-write-time"] = format_time(last_write_time)
        try:
            self.send("PUT", path, headers=headers, operation="create file", action=_WRITE)
        except ParentNotFound:
            path = join_path(path)
            if not parents or "/" not in path:
                raise
            self.mkdir(path.rsplit("/", 1)[0], parents=True, exist_ok=True)
            self.send("PUT", path, headers=headers, operation="create file", action=_WRITE)

    def file_etag(self, path: str) -> str | None:
        """The ETag of file ``path``, or None when no file is there (one request)."""
        try:
            return self.send("HEAD", path, operation="get file properties").header("etag")
        except NotFound:
            return None

    def put_range(
        self, path: str, offset: int, data: bytes | memoryview, *, preserve_mtime: bool = False
    ) -> None:
        """Write ``data`` (at most 4 MiB) at ``offset``, with a transactional MD5 the service checks."""
        body = bytes(data)
        if not body:
            return
        if len(body) > RANGE_SIZE:
            raise ValueError(f"a range holds at most {RANGE_SIZE} bytes, got {len(body)}")
        headers = {
            "x-ms-range": f"bytes={offset}-{offset + len(body) - 1}",
            "x-ms-write": "update",
            "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),  # noqa: S324 - integrity
        }
        if preserve_mtime:
            headers["x-ms-file-last-write-time"] = "preserve"
        self.send(
            "PUT",
            path,
            query={"comp": "range"},
            headers=headers,
            body=body,
            operation="write range",
            action=_WRITE,
        )

    def get_range(
        self, path: str, offset: int, length: int, *, check_md5: bool = True
    ) -> tuple[bytes, Response]:
        """Bytes ``[offset, offset+length)``; the reply's MD5 is checked when the service sends one."""
        headers = {"x-ms-range": f"bytes={offset}-{offset + length - 1}"}
        if check_md5 and length <= RANGE_SIZE:
            headers["x-ms-range-get-content-md5"] = "true"
        resp = self.send("GET", path, headers=headers, operation="read range")
        data = resp.data
        if len(data) != length:
            raise IntegrityError(
                f"read range {offset}-{offset + length - 1} of {path}: got {len(data)} bytes",
                status=resp.status,
            )
        expected = resp.header("content-md5")
        if check_md5 and expected and length <= RANGE_SIZE:
            actual = base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - integrity
            if actual != expected:
                raise IntegrityError(f"read range {offset}-{offset + length - 1} of {path}: MD5 mismatch")
        return data, resp

    def upload_bytes(
        self,
        path: str,
        data: bytes,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Create ``path`` holding ``data``; ranges are sent in parallel."""
        self.create_file(path, len(data), content_type=content_type, metadata=metadata)
        view = memoryview(data)

        def send(rng: tuple[int, int]) -> None:
            offset, length = rng
            self.put_range(path, offset, view[offset : offset + length])

        run_bounded(send, ranges(len(data)), self.concurrency)

    def read_bytes(self, path: str) -> bytes:
        """The whole file in memory (for small files: ``cat``, the access test)."""
        size = self.properties(path).size
        out = bytearray()
        for offset, length in ranges(size):
            data, _ = self.get_range(path, offset, length)
            out += data
        return bytes(out)

    # --- delete, rename, copy ---------------------------------------------------------------------------
    def delete_file(self, path: str) -> None:
        self.send("DELETE", path, operation="delete file", action=_DELETE)

    def delete_directory(self, path: str) -> None:
        self.send(
            "DELETE", path, query={"restype": "directory"}, operation="delete directory", action=_DELETE
        )

    def delete(self, path: str, *, recursive: bool = False) -> int:
        """Delete a file or directory (with ``recursive``, a whole tree). Returns the number of items."""
        path = join_path(path)
        props = self.properties(path)
        if not props.is_dir:
            self.delete_file(path)
            return 1
        if not recursive:
            self.delete_directory(path)
            return 1
        tree = list(self.walk(path))
        files = [f.path for _, _, fs in tree for f in fs]
        run_bounded(self.delete_file, files, self.concurrency)
        # Deepest directories first: a directory must be empty before it can go.
        dirs = sorted((d.path for _, ds, _ in tree for d in ds), key=lambda d: d.count("/"), reverse=True)
        for d in dirs:
            self.delete_directory(d)
        if path:
            self.delete_directory(path)
        return len(files) + len(dirs) + (1 if path else 0)

    def rename(self, source: str, dest: str, *, replace: bool = False, is_dir: bool | None = None) -> None:
        """Rename within the share. Not idempotent, so only retried when the service refused it outright."""
        if is_dir is None:
            is_dir = self.properties(source).is_dir
        query = {"restype": "directory", "comp": "rename"} if is_dir else {"comp": "rename"}
        headers = {
            "x-ms-file-rename-source": self.url(source).url,
            "x-ms-file-rename-replace-if-exists": "true" if replace else "false",
        }
        self.send(
            "PUT", dest, query=query, headers=headers, operation="rename", action=_WRITE, idempotent=False
        )

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> ShareClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
