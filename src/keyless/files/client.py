"""``ShareClient``: share, directory and file operations over the Azure Files REST API.

Paths are share-relative, ``/``-separated, decoded names (``"dir/my file.txt"``); :mod:`keyless.files.urls`
encodes them. Every request goes through :meth:`ShareClient.send`, which adds the common headers, authorizes,
applies the retry policy, refreshes the token once on 401, optionally waits out a 403 while a new role
assignment propagates, and turns a failed reply into a typed error from :mod:`keyless.files.errors`.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
import xml.etree.ElementTree as ET  # replies from the storage service; expat >= 2.4 limits expansion
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, unquote

from keyless import protocol as p
from keyless.files.auth import Authorizer, BearerAuth, SharedKeyAuth, TokenCredential
from keyless.files.errors import (
    AlreadyExists,
    ConnectionFailed,
    FilesError,
    IntegrityError,
    NotFound,
    ParentNotFound,
    PermissionDenied,
    RequestInfo,
    from_response,
)
from keyless.files.retry import RetryPolicy, parse_retry_after
from keyless.files.transport import HttpTransport, Response, SendError, Transport
from keyless.files.urls import DEFAULT_SUFFIXES, FileUrl, join_path, parse

RANGE_SIZE = p.MAX_RANGE_UPDATE_BYTES
_READ, _WRITE, _DELETE = p.ACTION_READ, p.ACTION_WRITE, p.ACTION_DELETE


@dataclass(frozen=True, slots=True)
class Entry:
    """One item of a directory listing."""

    name: str
    path: str  # share-relative
    is_dir: bool
    size: int | None = None
    etag: str = ""
    last_modified: str = ""
    last_write_time: str = ""
    file_id: str = ""


@dataclass(frozen=True, slots=True)
class Properties:
    path: str
    is_dir: bool
    size: int = 0
    etag: str = ""
    last_modified: str = ""
    last_write_time: str = ""
    creation_time: str = ""
    content_type: str = ""
    content_md5: str = ""  # base64, as the service stores it
    metadata: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "type": "directory" if self.is_dir else "file",
            "size": self.size,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "last_write_time": self.last_write_time,
            "creation_time": self.creation_time,
            "content_type": self.content_type,
            "content_md5": self.content_md5,
            "metadata": self.metadata,
        }


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


def format_time(ts: float) -> str:
    """SMB time format the service expects: ``2024-01-02T03:04:05.1234567Z``."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0Z"


def parse_time(text: str) -> float | None:
    """Parse an SMB time (7 fractional digits) or an RFC 1123 date into epoch seconds."""
    if not text:
        return None
    try:
        if "T" in text:
            head, _, frac = text.rstrip("Z").partition(".")
            base = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
            return base + (float("0." + frac) if frac else 0.0)
        from email.utils import parsedate_to_datetime

        return parsedate_to_datetime(text).timestamp()
    except (ValueError, TypeError):
        return None


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
    ) -> None:
        self.target = (
            parse(share, emulator_url=emulator_url, suffixes=suffixes) if isinstance(share, str) else share
        )
        self.target = self.target.with_path("")
        self.auth = _as_authorizer(credential, account_key, self.target.account)
        self.transport: HttpTransport = transport or Transport(
            ca_cert=ca_cert, suffixes=suffixes, emulator_url=emulator_url, pool_size=max(concurrency, 1) + 4
        )
        self.retry = retry or RetryPolicy()
        self.concurrency = max(1, concurrency)
        self.wait_for_access = wait_for_access

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
        client_request_id = str(uuid.uuid4())  # one id for every attempt, so logs tie them together
        attempt = 0
        refreshed = False
        access_deadline: float | None = None
        access_attempt = 0
        while True:
            h = dict(headers or {})
            h[p.H_VERSION] = p.CURRENT_VERSION
            h[p.H_DATE] = formatdate(usegmt=True)
            h[p.H_CLIENT_REQUEST_ID] = client_request_id
            if body is not None or method in ("PUT", "POST"):
                h["Content-Length"] = str(len(body or b""))
            self.transport.check_destination(url)
            self.auth.authorize(method, url, h)
            try:
                resp = self.transport.request(method, url, h, body)
            except SendError as exc:
                if self.retry.should_retry_connection(attempt, idempotent, exc.sent):
                    self.retry.sleep(attempt)
                    attempt += 1
                    continue
                raise ConnectionFailed(
                    f"{operation or method} {target.url}: no reply ({exc})", request=info
                ) from None
            if 200 <= resp.status < 300:
                return resp
            if resp.status == 401 and not refreshed and self.auth.refresh(h.get("Authorization", "")):
                refreshed = True  # the seed: refresh the token and resend exactly once
                continue
            if self.retry.should_retry_status(resp.status, attempt, idempotent):
                self.retry.sleep(attempt, parse_retry_after(resp.header("retry-after")))
                attempt += 1
                continue
            info = _with_identity(info, self.auth.identity())
            if 300 <= resp.status < 400:
                raise FilesError(
                    f"{operation or method} {target.url}: the service answered with a redirect "
                    f"(HTTP {resp.status}); redirects are not followed with credentials",
                    status=resp.status,
                    request=info,
                )
            error = from_response(resp.status, resp.headers, resp.data, info)
            if isinstance(error, PermissionDenied) and self.wait_for_access > 0:
                now = time.monotonic()
                if access_deadline is None:
                    access_deadline = now + self.wait_for_access
                if now < access_deadline:
                    # A new role assignment propagates in 5-30 minutes: poll, gently.
                    time.sleep(
                        min(60.0, 2.0 * (2 ** min(access_attempt, 5)), max(0.0, access_deadline - now))
                    )
                    access_attempt += 1
                    continue
            raise error

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
        headers = _meta_headers(metadata)
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
            entries, marker = _parse_listing(resp.data, path)
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
                return _file_properties(path, resp)
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
        return _dir_properties(path, resp)

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
            "PUT", path, query=query, headers=_meta_headers(metadata), operation="set metadata", action=_WRITE
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
    ) -> None:
        """Create (or replace) a file of ``size`` zero bytes; content goes in with :meth:`put_range`."""
        headers = {"x-ms-type": "file", "x-ms-content-length": str(size), **_meta_headers(metadata)}
        if content_type:
            headers["x-ms-content-type"] = content_type
        if last_write_time is not None:
            headers["x-ms-file-last-write-time"] = format_time(last_write_time)
        self.send("PUT", path, headers=headers, operation="create file", action=_WRITE)

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
        from keyless.files.transfer import upload_bytes

        upload_bytes(self, path, data, content_type=content_type, metadata=metadata)

    def read_bytes(self, path: str) -> bytes:
        """The whole file in memory (for small files: ``cat``, the access test)."""
        size = self.properties(path).size
        out = bytearray()
        for offset in range(0, size, RANGE_SIZE):
            data, _ = self.get_range(path, offset, min(RANGE_SIZE, size - offset))
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
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            for _ in pool.map(self.delete_file, files):
                pass
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


# --- helpers ------------------------------------------------------------------------------------------------


def _with_identity(info: RequestInfo, identity: str) -> RequestInfo:
    from dataclasses import replace

    return replace(info, identity=identity)


def _meta_headers(metadata: dict[str, str] | None) -> dict[str, str]:
    return {f"x-ms-meta-{k}": v for k, v in (metadata or {}).items()}


def _metadata(resp: Response) -> dict[str, str]:
    return {k[len("x-ms-meta-") :]: v for k, v in resp.headers.items() if k.startswith("x-ms-meta-")}


def _file_properties(path: str, resp: Response) -> Properties:
    return Properties(
        path=path,
        is_dir=False,
        size=int(resp.header("content-length", "0") or 0),
        etag=resp.header("etag"),
        last_modified=resp.header("last-modified"),
        last_write_time=resp.header("x-ms-file-last-write-time"),
        creation_time=resp.header("x-ms-file-creation-time"),
        content_type=resp.header("content-type"),
        content_md5=resp.header("content-md5"),
        metadata=_metadata(resp),
    )


def _dir_properties(path: str, resp: Response) -> Properties:
    return Properties(
        path=path,
        is_dir=True,
        etag=resp.header("etag"),
        last_modified=resp.header("last-modified"),
        last_write_time=resp.header("x-ms-file-last-write-time"),
        creation_time=resp.header("x-ms-file-creation-time"),
        metadata=_metadata(resp),
    )


def _text(elem: ET.Element | None) -> str:
    return (elem.text or "") if elem is not None else ""


def _parse_listing(data: bytes, parent: str) -> tuple[list[Entry], str]:
    root = ET.fromstring(data)  # noqa: S314 - see the import
    entries: list[Entry] = []
    container = root.find("Entries")
    for elem in list(container) if container is not None else []:
        name_elem = elem.find("Name")
        name = _text(name_elem)
        if name_elem is not None and name_elem.get("Encoded", "").lower() == "true":
            name = unquote(name)  # names with characters XML cannot carry come percent-encoded
        props = elem.find("Properties")
        is_dir = elem.tag == "Directory"
        size_text = _text(props.find("Content-Length")) if props is not None else ""
        entries.append(
            Entry(
                name=name,
                path=f"{parent}/{name}" if parent else name,
                is_dir=is_dir,
                size=None if is_dir else int(size_text or 0),
                etag=_text(props.find("Etag")) if props is not None else "",
                last_modified=_text(props.find("Last-Modified")) if props is not None else "",
                last_write_time=_text(props.find("LastWriteTime")) if props is not None else "",
                file_id=_text(elem.find("FileId")),
            )
        )
    return entries, _text(root.find("NextMarker"))
