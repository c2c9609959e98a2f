"""``ShareClient``: share, directory and file operations over the Azure Files REST API.

Paths are share-relative, ``/``-separated, decoded names (``"dir/my file.txt"``); :mod:`keyless.files.urls`
encodes them. Every request goes through :meth:`ShareClient.send`: the layers of
:mod:`keyless.files.pipeline` send it (retries, the one-shot token refresh on 401, the optional wait for a
403 while a new role assignment propagates), and a failed reply becomes a typed error from
:mod:`keyless.files.errors` here, in one place.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from keyless import protocol as p
from keyless.clock import SYSTEM_CLOCK, Clock
from keyless.files import range_io, tuning
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
from keyless.files.request_ids import new_request_id
from keyless.files.retry import AccessWait, RetryPolicy
from keyless.files.times import format_time
from keyless.files.transport import Body, HttpTransport, Response, SendError, Sink, Transport
from keyless.files.urls import DEFAULT_SUFFIXES, FileUrl, encode_segment, join_path, parse, split_path

__all__ = ["RANGE_SIZE", "Entry", "Properties", "ShareClient"]

_READ, _WRITE, _DELETE = p.ACTION_READ, p.ACTION_WRITE, p.ACTION_DELETE
#: What ``quote(s, safe="")`` leaves as it is: most query names and values ("comp", "range"), which then
#: skip the encoder (it runs for every request).
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
#: A path whose URL form is itself: names of unreserved characters (which encode_segment leaves alone),
#: each holding something besides dots (so never "." or ".."), one "/" between names.
_PLAIN_PATH = re.compile(r"\.*[A-Za-z0-9_~-][A-Za-z0-9_.~-]*(?:/\.*[A-Za-z0-9_~-][A-Za-z0-9_.~-]*)*")


def query_quote(text: str) -> str:
    """``quote(text, safe="")``, without calling it for text it would return unchanged."""
    return text if _UNRESERVED.fullmatch(text) else quote(text, safe="")


#: Query strings already encoded, by their names and values: a transfer sends the same few ("comp=range",
#: "comp=rename") with every file. Bounded: listing markers differ on every page.
_QUERIES: dict[tuple[tuple[str, str], ...], str] = {}
_MAX_QUERIES = 64


def _query_string(query: dict[str, str]) -> str:
    key = tuple(query.items())
    text = _QUERIES.get(key)
    if text is None:
        text = "&".join(f"{query_quote(k)}={query_quote(v)}" for k, v in query.items())
        if len(_QUERIES) < _MAX_QUERIES:
            _QUERIES[key] = text
    return text


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
        concurrency: int | None = None,
        wait_for_access: float = 0.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.target = (
            parse(share, emulator_url=emulator_url, suffixes=suffixes) if isinstance(share, str) else share
        )
        self.target = self.target.with_path("")
        self._share_url = self.target.url
        self.auth = _as_authorizer(credential, account_key, self.target.account)
        #: The concurrency asked for, or None: then it is chosen from the measured latency (:mod:`tuning`).
        self.explicit_concurrency = tuning.check_concurrency(concurrency)
        self.transport: HttpTransport = transport or Transport(
            ca_cert=ca_cert, pool_size=(self.explicit_concurrency or tuning.MAX_FILES_IN_FLIGHT) + 4
        )
        self.destinations = Destinations(suffixes, emulator_url)
        self.retry = retry or RetryPolicy()
        #: Requests in flight where no rule applies (deletes, listings, callers' own loops).
        self.concurrency = self.explicit_concurrency or tuning.DEFAULT_IN_FLIGHT
        self.wait_for_access = wait_for_access
        self.clock = clock
        self._pipeline = Pipeline(
            self.transport, self.destinations, self.auth, self.retry, AccessWait(wait_for_access), clock
        )
        self.transport_streams = self._pipeline.streams
        # Ranges are read as CRC64-checked structured messages until a reply shows the service does not
        # send them (then with MD5: see read_range_into).
        self.crc64_downloads = True

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

    def _path_url(self, path: str) -> str:
        """``self.url(path).url`` without building a FileUrl per request."""
        if _PLAIN_PATH.fullmatch(path):
            return self._share_url + "/" + path  # nothing to encode, split or refuse
        names = split_path(path)
        if not names:
            return self._share_url
        return self._share_url + "/" + "/".join([encode_segment(n) for n in names])

    def identity(self) -> str:
        return self.auth.identity()

    # --- how many requests in flight ----------------------------------------------------------------------
    def round_trip(self) -> float | None:
        """The measured time of one exchange with the service (seconds): the fastest of the first ones,
        after one cheap probe (Get Directory Properties of the share root) when none was made yet. None
        when the transport cannot say (in-memory test services)."""
        measure = getattr(self.transport, "round_trip", None)
        if not callable(measure):
            return None
        rtt: float | None = measure()
        if rtt is None:
            with contextlib.suppress(FilesError):  # the operation itself will report what is wrong
                self.send("GET", "", query={"restype": "directory"}, operation="get directory properties")
            rtt = measure()
        return rtt

    def ranges_in_flight(self) -> int:
        """Ranges of one file to move at once: as asked, or by the latency rule."""
        return self.explicit_concurrency or tuning.ranges_in_flight(self.round_trip())

    def files_in_flight(self, largest: int, ranges_per_file: int) -> int:
        """Files of a tree to move at once (the largest has ``largest`` bytes): as asked, or by the
        latency rule within the memory bound."""
        if self.explicit_concurrency:
            return self.explicit_concurrency
        return tuning.files_in_flight(self.round_trip(), largest, ranges_per_file, RANGE_SIZE)

    # --- the one way requests are sent ------------------------------------------------------------------
    def send(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: Body | None = None,
        operation: str = "",
        action: str = _READ,
        idempotent: bool = True,
        content_length: int | None = None,
        sink: Sink | None = None,
    ) -> Response:
        """Send one operation's request (retries and token refresh included) and return its 2xx reply,
        or raise the typed error. ``body`` as chunks needs ``content_length``; ``sink`` reads a 2xx
        reply's body itself (see :mod:`keyless.files.transport`)."""
        url = self._path_url(path)
        if query:
            url += "?" + _query_string(query)
        request = Request(
            method,
            url,
            headers or {},
            body,
            idempotent,
            client_request_id=new_request_id(),
            content_length=content_length,
            sink=sink,
        )
        try:
            result = self._pipeline.send(request)
        except SendError as exc:
            info = self._info(method, path, operation, action)
            message = f"{operation or method} {info.url}: no reply ({exc})"
            raise ConnectionFailed(message, request=info) from None
        if 200 <= result.response.status < 300:
            return result.response
        info = replace(self._info(method, path, operation, action), identity=self.auth.identity())
        raise self._failure(result, info)

    def _info(self, method: str, path: str, operation: str, action: str) -> RequestInfo:
        # Built only for a failure: what its message may say about the request.
        return RequestInfo(
            method=method,
            url=self.url(path).url,
            account=self.account,
            share=self.share,
            operation=operation,
            action=action,
            backup_intent=self.auth.scheme == "Bearer",
        )

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

    def resize(self, path: str, size: int, *, props: Properties | None = None) -> None:
        """Grow (zero-filled) or truncate a file. Content headers are resent: Set File Properties clears
        the ones a request leaves out. ``props``: the file's properties when the caller has them (a
        listing, :meth:`read_small`): then the resize is one request, without a Get File Properties."""
        props = props or self.properties(path)
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
        self, path: str, offset: int, data: bytes | bytearray | memoryview, *, preserve_mtime: bool = False
    ) -> None:
        """Write ``data`` (at most 4 MiB) at ``offset``, checked by its CRC64 (:mod:`range_io`)."""
        range_io.write_range(self, path, offset, data, preserve_mtime=preserve_mtime)

    def read_range_into(self, path: str, offset: int, out: memoryview | bytearray) -> Response:
        """Read ``len(out)`` bytes at ``offset`` into ``out``, every byte checked (:mod:`range_io`)."""
        return range_io.read_range_into(self, path, offset, out)

    def get_range(self, path: str, offset: int, length: int) -> tuple[bytes, Response]:
        """Bytes ``[offset, offset+length)`` (at most 4 MiB), checked as :meth:`read_range_into` says."""
        buf = bytearray(length)
        resp = self.read_range_into(path, offset, buf)
        return bytes(buf), resp

    def read_small(self, path: str, size: int) -> tuple[bytes, Properties]:
        """The first ``size`` bytes of file ``path`` (1 to 4 MiB, checked as :meth:`read_range_into` says)
        and its properties, from one Get File: the reply's headers carry what Get File Properties would
        (content type, metadata, times, ETag, the stored Content-MD5 as ``x-ms-content-md5``), and its
        Content-Range the file's whole size, which ``Properties.size`` is. A file that changed size since
        ``size`` was learnt shows it there."""
        if not 0 < size <= RANGE_SIZE:
            raise ValueError(f"read_small reads 1 to {RANGE_SIZE} bytes in one request, asked for {size}")
        data, resp = self.get_range(path, 0, size)
        total = resp.header("content-range").rpartition("/")[2]
        if not total.isdigit():
            raise IntegrityError(f"read {path}: the reply has no Content-Range saying the file's size")
        props = file_properties(join_path(path), resp)
        return data, replace(
            props,
            size=int(total),
            content_md5=resp.header("x-ms-content-md5"),  # Content-MD5 would be the range's, if asked
        )

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
        out = bytearray(size)
        view = memoryview(out)
        for offset, length in ranges(size):
            self.read_range_into(path, offset, view[offset : offset + length])
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
            "x-ms-file-rename-source": self._path_url(source),
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
