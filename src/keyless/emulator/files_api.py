"""Azure Files REST data plane: one entry point, dispatch by method + ``restype`` + ``comp``.

URLs are IP-style, ``/<account>/<share>/<dir>/<file>?<query>``. The raw path is split on ``/`` before
percent-decoding, so names holding ``%``, ``#``, ``?`` (encoded) or unicode round-trip; the SDK's
directory client encodes inner slashes as ``%2F``, so each decoded segment is split again.

Order of work for every request: account (unknown: 400 ``InvalidUri``, the nearest thing the service
says about a URI naming nothing it hosts; on Azure the host name would simply not resolve), then
:func:`authenticate`, then path and query validation and routing, then :func:`authorize` with the
operation's data actions, then the handler. Every failure is a :class:`StorageError`, which the server
turns into the service's XML reply.

Small requests never leave the event loop (SQLite lookups cost microseconds); bodies and reads above
``_INLINE_BYTES`` are moved to a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import formatdate
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qsl, quote, unquote_to_bytes, urlsplit
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from keyless.emulator import request_keys as keys
from keyless.emulator.errors import StorageError
from keyless.emulator.request_keys import Caller
from keyless.emulator.storage import (
    ContentHeaders,
    Listing,
    Metadata,
    Node,
    ShareRecord,
    SmbUpdate,
    Store,
    permission_key_for,
    smb_time,
)
from keyless.protocol import (
    ACTION_DELETE,
    ACTION_READ,
    ACTION_READ_BACKUP,
    ACTION_WRITE,
    ACTION_WRITE_BACKUP,
    CURRENT_VERSION,
    E_INVALID_RANGE,
    E_MISSING_HEADER,
    H_CLIENT_REQUEST_ID,
    H_REQUEST_ID,
    H_VERSION,
    MAX_LIST_RESULTS,
    MAX_RANGE_UPDATE_BYTES,
)

if TYPE_CHECKING:
    from keyless.emulator.context import Emulator

READ = frozenset({ACTION_READ, ACTION_READ_BACKUP})
WRITE = frozenset({ACTION_WRITE, ACTION_WRITE_BACKUP})
DELETE = frozenset({ACTION_DELETE, ACTION_WRITE_BACKUP})

_INLINE_BYTES = 256 * 1024  # above this, file bytes move through a worker thread
_STREAM_CHUNK = 1024 * 1024
_MAX_FILE_SIZE = 4 * 1024**4  # 4 TiB, the service's largest file
_MAX_METADATA_BYTES = 8 * 1024
_MAX_PERMISSION_BYTES = 8 * 1024
_MAX_NAME_CHARS = 255
_MAX_PATH_CHARS = 2048
_MAX_DEPTH = 250
_XML_DECL = '<?xml version="1.0" encoding="utf-8"?>'

_SHARE_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_METADATA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INVALID_NAME_CHARS = frozenset('"\\/:|<>*?') | frozenset(chr(c) for c in range(0x20))
_RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CLOCK$", ".", ".."}
    | {f"COM{i}" for i in range(1, 10)}
    | {f"LPT{i}" for i in range(1, 10)}
)
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_SMB_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?Z$")
_ATTRIBUTES = ("ReadOnly", "Hidden", "System", "None", "Directory", "Archive", "Temporary", "Offline",
               "NotContentIndexed", "NoScrubData")
_ATTRIBUTE_BY_LOWER = {a.lower(): a for a in _ATTRIBUTES}


# --- security (passed in by the server; tests pass their own) ---------------------------------------


class Authenticator(Protocol):
    def __call__(self, ctx: Emulator, request: web.Request, account: str) -> Caller: ...


class Authorizer(Protocol):
    def __call__(self, ctx: Emulator, caller: Caller, account: str, share: str | None,
                 actions: frozenset[str]) -> None: ...


@dataclass(frozen=True)
class Security:
    """Who is calling (authentication) and whether they may (authorization), as the server wires them."""

    authenticate: Authenticator
    authorize: Authorizer


# --- request model -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    account: str
    share: str | None
    path: tuple[str, ...]


@dataclass
class Call:
    ctx: Emulator
    security: Security
    request: web.Request
    target: Target
    query: dict[str, str]

    @property
    def share(self) -> str:
        assert self.target.share is not None  # routing guarantees it for share-level operations
        return self.target.share

    @property
    def headers(self) -> Mapping[str, str]:
        return self.request.headers


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Op:
    name: str
    actions: frozenset[str]
    handler: Handler


# --- entry point ---------------------------------------------------------------------------------------


async def handle_files_request(ctx: Emulator, security: Security,
                               request: web.Request) -> web.StreamResponse:
    """The single entry point for ``https://host:port/<account>/...`` requests."""
    raw_path, _, raw_query = request.raw_path.partition("?")
    segments = raw_path.split("/")[1:]
    account = _decode_segment(segments[0]) if segments else ""
    if not account or ctx.config.account(account) is None:
        raise StorageError(400, "InvalidUri")
    caller = security.authenticate(ctx, request, account)
    request[keys.CALLER] = caller
    target = _parse_target(account, segments[1:], request.headers)
    query = _parse_query(raw_query)
    op = _route(request.method, target, query, request.headers)
    request[keys.OPERATION] = op.name
    security.authorize(ctx, caller, account, target.share, op.actions)
    return await op.handler(Call(ctx, security, request, target, query))


# --- URL parsing ---------------------------------------------------------------------------------------


def _decode_segment(raw: str) -> str:
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise StorageError(400, "InvalidUri", "The request URI is not valid UTF-8 after decoding.") from None


def _parse_target(account: str, segments: list[str], headers: Mapping[str, str]) -> Target:
    """Share and path components from the raw segments after the account."""
    if not segments or segments == [""]:
        return Target(account, None, ())
    share = _decode_segment(segments[0])
    if not _SHARE_NAME.match(share):
        raise StorageError(400, "InvalidResourceName")
    rest = segments[1:]
    if rest and rest[-1] == "":
        rest = rest[:-1]  # "Directory names can't end with /; if provided it is removed"
    parts: list[str] = []
    for raw in rest:
        parts.extend(_decode_segment(raw).split("/"))
    return Target(account, share, parse_path(parts, _flag(headers, "x-ms-allow-trailing-dot")))


def parse_path(parts: list[str], allow_trailing_dot: bool) -> tuple[str, ...]:
    """Validate decoded components; without ``x-ms-allow-trailing-dot`` trailing dots are trimmed."""
    if len(parts) > _MAX_DEPTH or sum(len(p) + 1 for p in parts) > _MAX_PATH_CHARS:
        raise StorageError(400, "InvalidFileOrDirectoryPathName")
    out: list[str] = []
    for part in parts:
        if part == "":
            raise StorageError(400, "InvalidUri", "The requested URI contains an empty path segment.")
        if part.upper() in _RESERVED_NAMES:
            raise StorageError(400, "InvalidResourceName")
        name = part if allow_trailing_dot else part.rstrip(".")
        if not name or len(name) > _MAX_NAME_CHARS or any(ch in _INVALID_NAME_CHARS for ch in name):
            raise StorageError(400, "InvalidResourceName")
        if any(0xD800 <= ord(ch) <= 0xDFFF for ch in name):
            raise StorageError(400, "InvalidResourceName")
        out.append(name)
    return tuple(out)


def _parse_query(raw_query: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(raw_query, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise StorageError(400, "InvalidQueryParameterValue") from None
    return {k.lower(): v for k, v in pairs}


def _flag(headers: Mapping[str, str], name: str) -> bool:
    return headers.get(name, "").strip().lower() == "true"


# --- routing -------------------------------------------------------------------------------------------


def _route(method: str, target: Target, query: dict[str, str], headers: Mapping[str, str]) -> Op:
    restype = query.get("restype")
    comp = query.get("comp")
    if "sharesnapshot" in query or "snapshot" in query:
        raise _bad_query("sharesnapshot", "Share snapshots are not supported by the emulator.")
    if target.share is None:
        table = _SERVICE_OPS if restype in (None, "service") else {}
        return _pick(table, method, comp, "restype" if restype else "comp")
    if restype == "share":
        if target.path:
            raise _bad_query("restype")
        return _pick(_SHARE_OPS, method, comp, "comp")
    if restype == "directory":
        return _pick(_DIRECTORY_OPS, method, comp, "comp")
    if restype is not None:
        raise _bad_query("restype")
    if not target.path:
        raise StorageError(400, "InvalidUri")
    if method == "PUT" and comp is None and "x-ms-copy-source" in headers:
        return _COPY_OP
    return _pick(_FILE_OPS, method, comp, "comp")


def _pick(table: dict[tuple[str, str | None], Op], method: str, comp: str | None, param: str) -> Op:
    op = table.get((method, comp))
    if op is not None:
        return op
    if any(c == comp for _, c in table):
        raise StorageError(405, "UnsupportedHttpVerb")
    raise _bad_query(param)


def _bad_query(name: str, reason: str | None = None) -> StorageError:
    extra = {"QueryParameterName": name}
    if reason:
        extra["Reason"] = reason
    return StorageError(400, "InvalidQueryParameterValue", extra=extra)


# --- response helpers ----------------------------------------------------------------------------------


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def _base_headers(call: Call) -> dict[str, str]:
    req = call.request
    request_id = req.get(keys.REQUEST_ID)
    if request_id is None:
        request_id = str(uuid.uuid4())
        req[keys.REQUEST_ID] = request_id
    headers = {
        H_REQUEST_ID: str(request_id),
        H_VERSION: req.headers.get(H_VERSION, CURRENT_VERSION),
        "Date": http_date(call.ctx.clock.now()),
        "Server": "Windows-Azure-File/1.0 Microsoft-HTTPAPI/2.0",
    }
    client_id = req.headers.get(H_CLIENT_REQUEST_ID)
    if client_id is not None:
        headers[H_CLIENT_REQUEST_ID] = client_id
    return headers


def _reply(call: Call, status: int, headers: Mapping[str, str] | None = None,
           body: bytes | None = None, content_type: str | None = None) -> web.Response:
    out = _base_headers(call)
    if headers:
        out.update(headers)
    if content_type is not None:
        out["Content-Type"] = content_type
    if call.request.method == "HEAD":
        # No body on HEAD; Content-Length (when given) still tells the entity's size, as the service does.
        return web.Response(status=status, headers=out)
    return web.Response(status=status, headers=out, body=body if body is not None else b"")


def _xml(call: Call, body: str) -> web.Response:
    return _reply(call, 200, body=body.encode("utf-8"), content_type="application/xml")


def _etag_headers(etag: str, last_modified: float) -> dict[str, str]:
    return {"ETag": etag, "Last-Modified": http_date(last_modified)}


def _meta_headers(metadata: Metadata) -> dict[str, str]:
    return {f"x-ms-meta-{k}": v for k, v in metadata}


def _smb_headers(node: Node) -> dict[str, str]:
    headers = {
        "x-ms-file-attributes": node.smb.attributes,
        "x-ms-file-creation-time": node.smb.creation_time,
        "x-ms-file-last-write-time": node.smb.last_write_time,
        "x-ms-file-change-time": node.smb.change_time,
        "x-ms-file-permission-key": node.smb.permission_key,
        "x-ms-file-id": node.id,
    }
    if node.parent_id is not None:
        headers["x-ms-file-parent-id"] = node.parent_id
    return headers


def _node_headers(node: Node) -> dict[str, str]:
    return {**_etag_headers(node.etag, node.last_modified), **_smb_headers(node)}


def _file_headers(node: Node) -> dict[str, str]:
    """What Get File / Get File Properties return about the file itself."""
    c = node.content
    headers = {
        **_node_headers(node),
        **_meta_headers(node.metadata),
        "x-ms-type": "File",
        "Content-Type": c.content_type or "application/octet-stream",
        "x-ms-server-encrypted": "true",
        "Accept-Ranges": "bytes",
        "x-ms-lease-state": "leased" if node.lease_id else "available",
        "x-ms-lease-status": "locked" if node.lease_id else "unlocked",
    }
    if node.lease_id:
        headers["x-ms-lease-duration"] = "infinite"
    for name, value in (("Content-Encoding", c.content_encoding), ("Content-Language", c.content_language),
                        ("Content-Disposition", c.content_disposition), ("Cache-Control", c.cache_control)):
        if value is not None:
            headers[name] = value
    if node.copy_id is not None:
        headers["x-ms-copy-id"] = node.copy_id
        headers["x-ms-copy-status"] = "success"
        headers["x-ms-copy-source"] = node.copy_source or ""
        headers["x-ms-copy-progress"] = f"{node.content_length}/{node.content_length}"
        if node.copy_completion is not None:
            headers["x-ms-copy-completion-time"] = http_date(node.copy_completion)
    return headers


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- request header parsing ----------------------------------------------------------------------------


def parse_metadata(headers: Mapping[str, str]) -> Metadata | None:
    """``x-ms-meta-*`` headers (None when there are none). Names are C# identifiers, ≤ 8 KiB in all."""
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    size = 0
    for key, value in headers.items():
        if not key.lower().startswith("x-ms-meta-"):
            continue
        name = key[len("x-ms-meta-"):]
        if not name:
            raise StorageError(400, "EmptyMetadataKey",
                               "The key for one of the metadata key-value pairs is empty.")
        if not _METADATA_NAME.match(name) or name.lower() in seen:
            raise StorageError(400, "InvalidMetadata", extra={"MetadataName": name[:64]})
        if any(not (0x20 <= ord(ch) < 0x7F or ch == "\t") for ch in value):
            raise StorageError(400, "InvalidMetadata", extra={"MetadataName": name[:64]})
        seen.add(name.lower())
        size += len(name) + len(value)
        pairs.append((name, value))
    if size > _MAX_METADATA_BYTES:
        raise StorageError(400, "MetadataTooLarge")
    return tuple(pairs) if pairs else None


def _header_error(name: str, code: str = "InvalidHeaderValue", message: str | None = None) -> StorageError:
    return StorageError(400, code, message, extra={"HeaderName": name})


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        raise _header_error(name, E_MISSING_HEADER)
    return value


def _int_header(headers: Mapping[str, str], name: str, lo: int, hi: int) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise _header_error(name) from None
    if not lo <= value <= hi:
        raise _header_error(name, "OutOfRangeInput", "One of the request inputs is out of range.")
    return value


def _md5_header(headers: Mapping[str, str], name: str) -> bytes | None:
    raw = headers.get(name)
    if raw is None or raw == "":
        return None
    try:
        digest = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise StorageError(400, "InvalidMd5", "The MD5 value specified in the request is invalid. "
                           "The MD5 value must be 128 bits and Base64-encoded.", extra={"HeaderName": name})
    return digest


def _smb_time_header(headers: Mapping[str, str], name: str, now: str) -> str | None:
    raw = headers.get(name)
    if raw is None or raw.lower() == "preserve":
        return None
    if raw.lower() == "now":
        return now
    m = _SMB_TIME.match(raw.strip())
    if m is None:
        raise _header_error(name)
    try:
        year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
        datetime(year, month, day, hour, minute, second)  # only validates the fields
    except ValueError:
        raise _header_error(name) from None
    return f"{raw.strip()[:19]}.{(m.group(7) or '').ljust(7, '0')}Z"


def _attributes(raw: str | None, *, is_dir: bool) -> str | None:
    if raw is None or raw.strip().lower() == "preserve":
        return None
    names: set[str] = set()
    for part in raw.split("|"):
        part = part.strip().lower()
        if not part:
            continue
        canonical = _ATTRIBUTE_BY_LOWER.get(part)
        if canonical is None:
            raise _header_error("x-ms-file-attributes")
        names.add(canonical)
    names.discard("None")
    if is_dir:
        names.add("Directory")
    elif "Directory" in names:
        raise _header_error("x-ms-file-attributes")
    if not names:
        return "Archive"
    return " | ".join(a for a in _ATTRIBUTES if a in names)


def parse_smb(headers: Mapping[str, str], now: float, *, is_dir: bool) -> SmbUpdate:
    stamp = smb_time(now)
    permission = headers.get("x-ms-file-permission")
    key = headers.get("x-ms-file-permission-key")
    permission_key: str | None = None
    if permission is not None and permission.lower() not in ("inherit", "preserve"):
        if key is not None:
            raise _header_error("x-ms-file-permission-key", message="Only one of x-ms-file-permission "
                                "or x-ms-file-permission-key may be specified.")
        if len(permission.encode("utf-8")) > _MAX_PERMISSION_BYTES:
            raise _header_error("x-ms-file-permission", message="The permission is larger than 8 KiB; "
                                "create it on the share and pass x-ms-file-permission-key instead.")
        permission_key = permission_key_for(permission)
    elif key is not None:
        permission_key = key.strip() or None
    return SmbUpdate(
        attributes=_attributes(headers.get("x-ms-file-attributes"), is_dir=is_dir),
        creation_time=_smb_time_header(headers, "x-ms-file-creation-time", stamp),
        last_write_time=_smb_time_header(headers, "x-ms-file-last-write-time", stamp),
        change_time=_smb_time_header(headers, "x-ms-file-change-time", stamp),
        permission_key=permission_key,
    )


_CONTENT_HEADERS = ("x-ms-content-type", "x-ms-content-encoding", "x-ms-content-language",
                    "x-ms-content-disposition", "x-ms-cache-control", "x-ms-content-md5")


def parse_content(headers: Mapping[str, str]) -> ContentHeaders | None:
    """The file's HTTP properties; None when the request names none of them."""
    if not any(h in headers for h in _CONTENT_HEADERS):
        return None
    return ContentHeaders(
        content_type=headers.get("x-ms-content-type"),
        content_encoding=headers.get("x-ms-content-encoding"),
        content_language=headers.get("x-ms-content-language"),
        content_disposition=headers.get("x-ms-content-disposition"),
        cache_control=headers.get("x-ms-cache-control"),
        content_md5=_md5_header(headers, "x-ms-content-md5"),
    )


def parse_range(headers: Mapping[str, str]) -> tuple[str, int, int | None] | None:
    """(header name, start, end or None) from ``x-ms-range`` (preferred) or ``Range``."""
    for name in ("x-ms-range", "Range"):
        raw = headers.get(name)
        if raw is None:
            continue
        m = _RANGE.match(raw.strip())
        if m is None:
            raise _header_error(name)
        start, end = int(m.group(1)), (int(m.group(2)) if m.group(2) else None)
        if end is not None and end < start:
            raise _header_error(name)
        return name, start, end
    return None


def _lease_header(headers: Mapping[str, str]) -> str | None:
    value = headers.get("x-ms-lease-id")
    return value.strip() if value else None


async def _in_thread_if_large(size: int, fn: Callable[[], Node]) -> Node:
    if size > _INLINE_BYTES:
        return await asyncio.to_thread(fn)
    return fn()


# --- service-level operations --------------------------------------------------------------------------


def _max_results(query: Mapping[str, str]) -> int:
    raw = query.get("maxresults")
    if raw is None:
        return MAX_LIST_RESULTS
    try:
        value = int(raw)
    except ValueError:
        raise _bad_query("maxresults") from None
    if value <= 0:
        raise StorageError(400, "OutOfRangeQueryParameterValue",
                           "One of the query parameters specified in the request URI is outside the "
                           "permissible range.", extra={"QueryParameterName": "maxresults"})
    return min(value, MAX_LIST_RESULTS)


def _service_endpoint(call: Call) -> str:
    base = call.ctx.files_url or f"{call.request.scheme}://{call.request.host}"
    return f"{base.rstrip('/')}/{call.target.account}/"


async def list_shares(call: Call) -> web.StreamResponse:
    q = call.query
    limit = _max_results(q)
    prefix = q.get("prefix", "")
    include = {p.strip().lower() for p in q.get("include", "").split(",") if p.strip()}
    shares, next_marker = call.ctx.store.list_shares(call.target.account, prefix, q.get("marker"), limit)
    parts = [_XML_DECL, f"<EnumerationResults ServiceEndpoint={quoteattr(_service_endpoint(call))}>"]
    if "prefix" in q:
        parts.append(f"<Prefix>{escape(prefix)}</Prefix>")
    if "marker" in q:
        parts.append(f"<Marker>{escape(q['marker'])}</Marker>")
    if "maxresults" in q:
        parts.append(f"<MaxResults>{limit}</MaxResults>")
    parts.append("<Shares>")
    for share in shares:
        parts.append(_share_xml(share, "metadata" in include))
    parts.append(f"</Shares><NextMarker>{escape(next_marker or '')}</NextMarker></EnumerationResults>")
    return _xml(call, "".join(parts))


def _share_xml(share: ShareRecord, with_metadata: bool) -> str:
    props = (
        f"<Properties><Last-Modified>{http_date(share.last_modified)}</Last-Modified>"
        f"<Etag>{escape(share.etag)}</Etag><Quota>{share.quota}</Quota>"
        "<AccessTier>TransactionOptimized</AccessTier><LeaseStatus>unlocked</LeaseStatus>"
        "<LeaseState>available</LeaseState><EnabledProtocols>SMB</EnabledProtocols></Properties>"
    )
    meta = ""
    if with_metadata:
        meta = "<Metadata>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in share.metadata) + "</Metadata>"
    return f"<Share><Name>{escape(share.name)}</Name>{props}{meta}</Share>"


async def get_service_properties(call: Call) -> web.StreamResponse:
    body = (
        f"{_XML_DECL}<StorageServiceProperties>"
        "<HourMetrics><Version>1.0</Version><Enabled>false</Enabled>"
        "<RetentionPolicy><Enabled>false</Enabled></RetentionPolicy></HourMetrics>"
        "<MinuteMetrics><Version>1.0</Version><Enabled>false</Enabled>"
        "<RetentionPolicy><Enabled>false</Enabled></RetentionPolicy></MinuteMetrics>"
        "<Cors /></StorageServiceProperties>"
    )
    return _xml(call, body)


# --- share operations ----------------------------------------------------------------------------------


async def create_share(call: Call) -> web.StreamResponse:
    quota = _int_header(call.headers, "x-ms-share-quota", 1, 102400) or 5120
    metadata = parse_metadata(call.headers) or ()
    share = call.ctx.store.create_share(call.target.account, call.share, quota, metadata)
    return _reply(call, 201, _etag_headers(share.etag, share.last_modified))


async def get_share_properties(call: Call) -> web.StreamResponse:
    share = call.ctx.store.get_share(call.target.account, call.share)
    headers = {
        **_etag_headers(share.etag, share.last_modified),
        **_meta_headers(share.metadata),
        "x-ms-share-quota": str(share.quota),
        "x-ms-access-tier": "TransactionOptimized",
        "x-ms-enabled-protocols": "SMB",
        "x-ms-lease-status": "unlocked",
        "x-ms-lease-state": "available",
    }
    return _reply(call, 200, headers)


async def delete_share(call: Call) -> web.StreamResponse:
    store = call.ctx.store
    await asyncio.to_thread(store.delete_share, call.target.account, call.share)
    return _reply(call, 202)


async def set_share_metadata(call: Call) -> web.StreamResponse:
    metadata = parse_metadata(call.headers) or ()
    share = call.ctx.store.update_share(call.target.account, call.share, metadata=metadata)
    return _reply(call, 200, _etag_headers(share.etag, share.last_modified))


async def set_share_properties(call: Call) -> web.StreamResponse:
    quota = _int_header(call.headers, "x-ms-share-quota", 1, 102400)
    share = call.ctx.store.update_share(call.target.account, call.share, quota=quota)
    return _reply(call, 200, _etag_headers(share.etag, share.last_modified))


async def get_share_stats(call: Call) -> web.StreamResponse:
    used = call.ctx.store.share_usage(call.target.account, call.share)
    return _xml(call, f"{_XML_DECL}<ShareStats><ShareUsageBytes>{used}</ShareUsageBytes></ShareStats>")


async def get_share_acl(call: Call) -> web.StreamResponse:
    share = call.ctx.store.get_share(call.target.account, call.share)
    response = _xml(call, f"{_XML_DECL}<SignedIdentifiers />")
    response.headers.update(_etag_headers(share.etag, share.last_modified))
    return response


# --- directory operations ------------------------------------------------------------------------------


async def create_directory(call: Call) -> web.StreamResponse:
    store = call.ctx.store
    metadata = parse_metadata(call.headers) or ()
    smb = parse_smb(call.headers, call.ctx.clock.now(), is_dir=True)
    node = store.create_directory(call.target.account, call.share, call.target.path, metadata, smb)
    return _reply(call, 201, {**_node_headers(node), "x-ms-request-server-encrypted": "true"})


async def get_directory_properties(call: Call) -> web.StreamResponse:
    node = call.ctx.store.get_node(call.target.account, call.share, call.target.path, is_dir=True)
    headers = {**_node_headers(node), **_meta_headers(node.metadata), "x-ms-server-encrypted": "true"}
    return _reply(call, 200, headers)


async def delete_directory(call: Call) -> web.StreamResponse:
    call.ctx.store.delete_directory(call.target.account, call.share, call.target.path)
    return _reply(call, 202)


async def set_directory_metadata(call: Call) -> web.StreamResponse:
    metadata = parse_metadata(call.headers) or ()
    node = call.ctx.store.update_node(call.target.account, call.share, call.target.path, is_dir=True,
                                      metadata=metadata)
    return _reply(call, 200, {**_etag_headers(node.etag, node.last_modified),
                              "x-ms-request-server-encrypted": "true"})


async def set_directory_properties(call: Call) -> web.StreamResponse:
    smb = parse_smb(call.headers, call.ctx.clock.now(), is_dir=True)
    node = call.ctx.store.update_node(call.target.account, call.share, call.target.path, is_dir=True, smb=smb)
    return _reply(call, 200, {**_node_headers(node), "x-ms-request-server-encrypted": "true"})


def _encode_marker(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii").rstrip("=")


def _decode_marker(marker: str) -> str:
    try:
        return base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        raise StorageError(400, "InvalidQueryParameterValue", "The specified marker is invalid.",
                           extra={"QueryParameterName": "marker"}) from None


async def list_files_and_directories(call: Call) -> web.StreamResponse:
    q = call.query
    limit = _max_results(q)
    prefix = q.get("prefix", "")
    marker = _decode_marker(q["marker"]) if q.get("marker") else None
    include = {p.strip().lower() for p in q.get("include", "").split(",") if p.strip()}
    extended = _flag(call.headers, "x-ms-file-extended-info") or bool(include)
    listing = call.ctx.store.list_directory(call.target.account, call.share, call.target.path, prefix,
                                            marker, limit)
    return _xml(call, _listing_xml(call, listing, prefix, limit, include, extended))


def _listing_xml(call: Call, listing: Listing, prefix: str, limit: int, include: set[str],
                 extended: bool) -> str:
    q = call.query
    path = "/".join(call.target.path)
    parts = [
        _XML_DECL,
        f"<EnumerationResults ServiceEndpoint={quoteattr(_service_endpoint(call))} "
        f"ShareName={quoteattr(call.share)} DirectoryPath={quoteattr(path)}>",
    ]
    if "prefix" in q:
        parts.append(_name_xml("Prefix", prefix))
    if "marker" in q:
        parts.append(f"<Marker>{escape(q['marker'])}</Marker>")
    if "maxresults" in q:
        parts.append(f"<MaxResults>{limit}</MaxResults>")
    if extended:
        parts.append(f"<DirectoryId>{listing.directory_id}</DirectoryId>")
    parts.append("<Entries>")
    for node in listing.directories:
        parts.append(_entry_xml("Directory", node, include, extended))
    for node in listing.files:
        parts.append(_entry_xml("File", node, include, extended))
    next_marker = _encode_marker(listing.next_marker) if listing.next_marker is not None else ""
    parts.append(f"</Entries><NextMarker>{next_marker}</NextMarker></EnumerationResults>")
    return "".join(parts)


def _xml_safe(text: str) -> bool:
    return all(
        ch in "\t\n\r" or 0x20 <= ord(ch) <= 0xD7FF or 0xE000 <= ord(ch) <= 0xFFFD or ord(ch) >= 0x10000
        for ch in text
    )


def _name_xml(tag: str, name: str) -> str:
    """Names XML cannot carry (e.g. U+FFFF) are sent percent-encoded with ``Encoded="true"``."""
    if _xml_safe(name):
        return f"<{tag}>{escape(name)}</{tag}>"
    return f'<{tag} Encoded="true">{quote(name, safe="")}</{tag}>'


def _entry_xml(tag: str, node: Node, include: set[str], extended: bool) -> str:
    parts = [f"<{tag}>", _name_xml("Name", node.name)]
    if extended:
        parts.append(f"<FileId>{node.id}</FileId>")
    parts.append("<Properties>")
    if not node.is_dir:
        parts.append(f"<Content-Length>{node.content_length}</Content-Length>")
    if "timestamps" in include:
        smb = node.smb
        parts.append(
            f"<CreationTime>{smb.creation_time}</CreationTime><LastAccessTime>{smb.last_write_time}"
            f"</LastAccessTime><LastWriteTime>{smb.last_write_time}</LastWriteTime>"
            f"<ChangeTime>{smb.change_time}</ChangeTime>"
            f"<Last-Modified>{http_date(node.last_modified)}</Last-Modified>"
        )
    if "etag" in include:
        parts.append(f"<Etag>{escape(node.etag)}</Etag>")
    parts.append("</Properties>")
    if "attributes" in include:
        parts.append(f"<Attributes>{escape(node.smb.attributes)}</Attributes>")
    if "permissionkey" in include:
        parts.append(f"<PermissionKey>{escape(node.smb.permission_key)}</PermissionKey>")
    parts.append(f"</{tag}>")
    return "".join(parts)


async def list_handles(call: Call) -> web.StreamResponse:
    call.ctx.store.get_node(call.target.account, call.share, call.target.path)
    return _xml(call, f"{_XML_DECL}<EnumerationResults><Entries /><NextMarker /></EnumerationResults>")


async def force_close_handles(call: Call) -> web.StreamResponse:
    call.ctx.store.get_node(call.target.account, call.share, call.target.path)
    return _reply(call, 200, {"x-ms-number-of-handles-closed": "0", "x-ms-number-of-handles-failed": "0"})


# --- file operations -----------------------------------------------------------------------------------


async def create_file(call: Call) -> web.StreamResponse:
    headers = call.headers
    file_type = _required(headers, "x-ms-type")
    if file_type.strip().lower() != "file":
        raise _header_error("x-ms-type")
    length = _int_header(headers, "x-ms-content-length", 0, _MAX_FILE_SIZE)
    if length is None:
        raise _header_error("x-ms-content-length", E_MISSING_HEADER)
    body = await _read_body(call, limit=min(length, MAX_RANGE_UPDATE_BYTES))
    _check_md5(headers, body)
    content = parse_content(headers) or ContentHeaders()
    metadata = parse_metadata(headers) or ()
    smb = parse_smb(headers, call.ctx.clock.now(), is_dir=False)
    store = call.ctx.store
    target = call.target

    def work() -> Node:
        return store.create_file(target.account, call.share, target.path, length, content, metadata, smb,
                                 body, _lease_header(headers))

    node = await _in_thread_if_large(len(body), work)
    return _reply(call, 201, {**_node_headers(node), "x-ms-request-server-encrypted": "true"})


async def _read_body(call: Call, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes before reading it."""
    request = call.request
    if "x-ms-structured-body" in request.headers:
        raise _header_error("x-ms-structured-body", "UnsupportedHeader")
    declared = request.content_length
    if declared is None:
        if request.body_exists and request.method == "PUT":
            raise StorageError(411, "MissingContentLengthHeader", "Content-Length HTTP header is missing.")
        return b""
    if declared > MAX_RANGE_UPDATE_BYTES:
        raise StorageError(413, "RequestBodyTooLarge")
    if declared > limit:
        raise _header_error("Content-Length")
    body = await request.read()
    if len(body) != declared:
        raise _header_error("Content-Length")
    return body


def _check_md5(headers: Mapping[str, str], body: bytes) -> bytes:
    """Verify ``Content-MD5`` when given; returns the body's MD5 either way."""
    digest = hashlib.md5(body, usedforsecurity=False).digest()
    given = _md5_header(headers, "Content-MD5")
    if given is not None and given != digest:
        raise StorageError(400, "Md5Mismatch",
                           extra={"UserSpecifiedMd5": _b64(given), "ServerCalculatedMd5": _b64(digest)})
    return digest


async def put_range(call: Call) -> web.StreamResponse:
    headers = call.headers
    mode = _required(headers, "x-ms-write").strip().lower()
    if mode not in ("update", "clear"):
        raise _header_error("x-ms-write")
    parsed = parse_range(headers)
    if parsed is None:
        raise _header_error("x-ms-range", E_MISSING_HEADER)
    name, start, end = parsed
    if end is None:
        raise _header_error(name)
    length = end - start + 1
    write_time = headers.get("x-ms-file-last-write-time", "now").strip().lower()
    if write_time not in ("now", "preserve"):
        raise _header_error("x-ms-file-last-write-time")
    extra: dict[str, str] = {}
    data: bytes | None = None
    if mode == "update":
        if length > MAX_RANGE_UPDATE_BYTES:
            raise StorageError(413, "RequestBodyTooLarge")
        if call.request.content_length is None:
            raise StorageError(411, "MissingContentLengthHeader", "Content-Length HTTP header is missing.")
        if call.request.content_length != length:
            raise _header_error("Content-Length")
        data = await _read_body(call, limit=length)
        extra["Content-MD5"] = _b64(_check_md5(headers, data))
    elif call.request.content_length not in (None, 0):
        raise _header_error("Content-Length")
    store = call.ctx.store
    target = call.target

    def work() -> Node:
        return store.write_range(target.account, call.share, target.path, start, data, length,
                                 lease_id=_lease_header(headers),
                                 last_write_time="preserve" if write_time == "preserve" else None)

    node = await _in_thread_if_large(length, work)
    return _reply(call, 201, {
        **_etag_headers(node.etag, node.last_modified), **extra,
        "x-ms-request-server-encrypted": "true",
        "x-ms-file-last-write-time": node.smb.last_write_time,
    })


async def get_file(call: Call) -> web.StreamResponse:
    headers = call.headers
    store = call.ctx.store
    node = store.get_node(call.target.account, call.share, call.target.path, is_dir=False)
    lease = _lease_header(headers)
    if lease is not None and (node.lease_id is None or lease.lower() != node.lease_id.lower()):
        raise StorageError(412, "LeaseIdMismatchWithFileOperation")
    size = node.content_length
    out = _file_headers(node)
    want_md5 = _flag(headers, "x-ms-range-get-content-md5")
    parsed = parse_range(headers)
    if parsed is None:
        if want_md5:
            raise _header_error("x-ms-range-get-content-md5")
        start, length, status = 0, size, 200
        if node.content.content_md5 is not None:
            out["Content-MD5"] = _b64(node.content.content_md5)
    else:
        _, start, end = parsed
        if start >= size:
            raise StorageError(416, E_INVALID_RANGE, headers={"Content-Range": f"bytes */{size}"})
        last = size - 1 if end is None else min(end, size - 1)
        length, status = last - start + 1, 206
        out["Content-Range"] = f"bytes {start}-{last}/{size}"
        if node.content.content_md5 is not None:
            out["x-ms-content-md5"] = _b64(node.content.content_md5)
        if want_md5 and length > MAX_RANGE_UPDATE_BYTES:
            raise StorageError(400, "OutOfRangeInput", "The requested range for content MD5 exceeds 4 MiB.")
    if length <= _INLINE_BYTES or want_md5:
        data = await _read(store, node, start, length)
        if want_md5:
            out["Content-MD5"] = _b64(hashlib.md5(data, usedforsecurity=False).digest())
        return _reply(call, status, out, body=data)
    return await _stream(call, status, out, node, start, length)


async def _read(store: Store, node: Node, start: int, length: int) -> bytes:
    if length > _INLINE_BYTES:
        return await asyncio.to_thread(store.read_range, node, start, length)
    return store.read_range(node, start, length)


async def _stream(call: Call, status: int, headers: dict[str, str], node: Node, start: int,
                  length: int) -> web.StreamResponse:
    store = call.ctx.store
    first = await asyncio.to_thread(store.read_range, node, start, min(_STREAM_CHUNK, length))
    response = web.StreamResponse(status=status, headers={**_base_headers(call), **headers})
    response.content_length = length
    await response.prepare(call.request)
    await response.write(first)
    pos = start + len(first)
    end = start + length
    while pos < end:
        chunk = await asyncio.to_thread(store.read_range, node, pos, min(_STREAM_CHUNK, end - pos))
        if not chunk:
            break
        await response.write(chunk)
        pos += len(chunk)
    await response.write_eof()
    return response


async def get_file_properties(call: Call) -> web.StreamResponse:
    node = call.ctx.store.get_node(call.target.account, call.share, call.target.path, is_dir=False)
    headers = _file_headers(node)
    headers["Content-Length"] = str(node.content_length)
    if node.content.content_md5 is not None:
        headers["Content-MD5"] = _b64(node.content.content_md5)
    return _reply(call, 200, headers)


async def set_file_properties(call: Call) -> web.StreamResponse:
    headers = call.headers
    length = _int_header(headers, "x-ms-content-length", 0, _MAX_FILE_SIZE)
    content = parse_content(headers)
    smb = parse_smb(headers, call.ctx.clock.now(), is_dir=False)
    node = call.ctx.store.update_node(call.target.account, call.share, call.target.path, is_dir=False,
                                      smb=smb, content=content, length=length,
                                      lease_id=_lease_header(headers))
    return _reply(call, 200, {**_node_headers(node), "x-ms-request-server-encrypted": "true"})


async def set_file_metadata(call: Call) -> web.StreamResponse:
    metadata = parse_metadata(call.headers) or ()
    node = call.ctx.store.update_node(call.target.account, call.share, call.target.path, is_dir=False,
                                      metadata=metadata, lease_id=_lease_header(call.headers))
    return _reply(call, 200, {**_etag_headers(node.etag, node.last_modified),
                              "x-ms-request-server-encrypted": "true"})


async def delete_file(call: Call) -> web.StreamResponse:
    store = call.ctx.store
    store.delete_file(call.target.account, call.share, call.target.path, _lease_header(call.headers))
    return _reply(call, 202)


async def list_ranges(call: Call) -> web.StreamResponse:
    if "prevsharesnapshot" in call.query:
        raise _bad_query("prevsharesnapshot", "Share snapshots are not supported by the emulator.")
    node = call.ctx.store.get_node(call.target.account, call.share, call.target.path, is_dir=False)
    parsed = parse_range(call.headers)
    start, end = 0, node.content_length - 1
    if parsed is not None:
        _, start, wanted_end = parsed
        end = end if wanted_end is None else min(end, wanted_end)
    ranges = await asyncio.to_thread(call.ctx.store.data_ranges, node, start, end)
    body = "".join(f"<Range><Start>{lo}</Start><End>{hi}</End></Range>" for lo, hi in ranges)
    headers = {**_etag_headers(node.etag, node.last_modified),
               "x-ms-content-length": str(node.content_length)}
    return _reply(call, 200, headers, f"{_XML_DECL}<Ranges>{body}</Ranges>".encode(), "application/xml")


# --- rename and copy -----------------------------------------------------------------------------------


def _source_target(call: Call, value: str, header: str, trailing_dot: bool) -> Target:
    """A rename/copy source: a URL into this account, or (rename) a path relative to the share."""
    value = value.strip()
    if value.lower().startswith(("https://", "http://")):
        parts = urlsplit(value)
        segments = parts.path.split("/")[1:]
        if not segments or _decode_segment(segments[0]) != call.target.account:
            raise _header_error(header, "CannotVerifyCopySource" if header == "x-ms-copy-source" else
                                "InvalidHeaderValue", "The source must be in the same storage account.")
        raw = segments[1:]
    elif header == "x-ms-file-rename-source":
        raw = [call.share, *value.split("?", 1)[0].lstrip("/").split("/")]
    else:
        raise _header_error(header)
    if not raw or raw == [""]:
        raise _header_error(header)
    flag = {"x-ms-allow-trailing-dot": "true"} if trailing_dot else {}
    source = _parse_target(call.target.account, raw, flag)
    if not source.path:
        raise _header_error(header)
    return source


async def rename(call: Call, *, is_dir: bool) -> web.StreamResponse:
    headers = call.headers
    source = _source_target(call, _required(headers, "x-ms-file-rename-source"), "x-ms-file-rename-source",
                            _flag(headers, "x-ms-source-allow-trailing-dot"))
    if source.share != call.share:
        raise _header_error("x-ms-file-rename-source", "InvalidInput",
                            "The source and destination must be in the same share.")
    replace_existing = _flag(headers, "x-ms-file-rename-replace-if-exists")
    smb = parse_smb(headers, call.ctx.clock.now(), is_dir=is_dir)
    node = call.ctx.store.rename(
        call.target.account, call.share, source.path, call.target.path, is_dir=is_dir,
        replace_existing=replace_existing, metadata=parse_metadata(headers), smb=smb,
        content_type=None if is_dir else headers.get("x-ms-content-type"),
        source_lease=headers.get("x-ms-source-lease-id"),
        target_lease=headers.get("x-ms-destination-lease-id"),
    )
    return _reply(call, 200, {**_node_headers(node), "x-ms-request-server-encrypted": "true"})


async def rename_file(call: Call) -> web.StreamResponse:
    return await rename(call, is_dir=False)


async def rename_directory(call: Call) -> web.StreamResponse:
    return await rename(call, is_dir=True)


async def copy_file(call: Call) -> web.StreamResponse:
    headers = call.headers
    raw_source = headers["x-ms-copy-source"]
    source = _source_target(call, raw_source, "x-ms-copy-source",
                            _flag(headers, "x-ms-source-allow-trailing-dot"))
    assert source.share is not None
    caller = call.request.get(keys.CALLER)
    if caller is not None:
        call.security.authorize(call.ctx, caller, call.target.account, source.share, READ)
    store = call.ctx.store
    try:
        src = store.get_node(source.account, source.share, source.path, is_dir=False)
    except StorageError as err:
        if err.status == 404:
            raise StorageError(404, "CannotVerifyCopySource",
                               "The specified resource does not exist.") from None
        raise
    copy_id = str(uuid.uuid4())
    metadata = parse_metadata(headers)
    target = call.target
    node = await asyncio.to_thread(
        store.copy_file, src, target.account, call.share, target.path, copy_id=copy_id,
        copy_source=raw_source.split("?", 1)[0], metadata=metadata, lease_id=_lease_header(headers),
    )
    return _reply(call, 202, {**_etag_headers(node.etag, node.last_modified), "x-ms-copy-id": copy_id,
                              "x-ms-copy-status": "success"})


async def abort_copy(call: Call) -> web.StreamResponse:
    if _required(call.headers, "x-ms-copy-action").strip().lower() != "abort":
        raise _header_error("x-ms-copy-action")
    call.ctx.store.get_node(call.target.account, call.share, call.target.path, is_dir=False)
    raise StorageError(409, "NoPendingCopyOperation", "There is currently no pending copy operation.")


# --- leases --------------------------------------------------------------------------------------------


async def lease_file(call: Call) -> web.StreamResponse:
    headers = call.headers
    action = _required(headers, "x-ms-lease-action").strip().lower()
    names = {"acquire": "AcquireFileLease", "release": "ReleaseFileLease", "change": "ChangeFileLease",
             "break": "BreakFileLease"}
    if action not in names:
        raise _header_error("x-ms-lease-action")
    call.request[keys.OPERATION] = names[action]
    if action == "acquire" and headers.get("x-ms-lease-duration", "-1").strip() != "-1":
        raise _header_error("x-ms-lease-duration",
                            message="File leases are infinite: the duration must be -1.")
    proposed = headers.get("x-ms-proposed-lease-id")
    if proposed is not None:
        try:
            proposed = str(uuid.UUID(proposed.strip()))
        except ValueError:
            raise _header_error("x-ms-proposed-lease-id") from None
    if action in ("release", "change"):
        _required(headers, "x-ms-lease-id")
    node = call.ctx.store.lease(call.target.account, call.share, call.target.path, action,
                                _lease_header(headers), proposed)
    out = _etag_headers(node.etag, node.last_modified)
    if action in ("acquire", "change"):
        out["x-ms-lease-id"] = node.lease_id or ""
    if action == "break":
        out["x-ms-lease-time"] = "0"
    status = {"acquire": 201, "release": 200, "change": 200, "break": 202}[action]
    return _reply(call, status, out)


# --- routing tables ------------------------------------------------------------------------------------

_SERVICE_OPS: dict[tuple[str, str | None], Op] = {
    ("GET", "list"): Op("ListShares", READ, list_shares),
    ("GET", "properties"): Op("GetFileServiceProperties", READ, get_service_properties),
}

_SHARE_OPS: dict[tuple[str, str | None], Op] = {
    ("PUT", None): Op("CreateShare", WRITE, create_share),
    ("GET", None): Op("GetShareProperties", READ, get_share_properties),
    ("HEAD", None): Op("GetShareProperties", READ, get_share_properties),
    ("DELETE", None): Op("DeleteShare", DELETE, delete_share),
    ("PUT", "metadata"): Op("SetShareMetadata", WRITE, set_share_metadata),
    ("GET", "metadata"): Op("GetShareMetadata", READ, get_share_properties),
    ("HEAD", "metadata"): Op("GetShareMetadata", READ, get_share_properties),
    ("PUT", "properties"): Op("SetShareProperties", WRITE, set_share_properties),
    ("GET", "stats"): Op("GetShareStats", READ, get_share_stats),
    ("GET", "acl"): Op("GetShareAcl", READ, get_share_acl),
}

_DIRECTORY_OPS: dict[tuple[str, str | None], Op] = {
    ("PUT", None): Op("CreateDirectory", WRITE, create_directory),
    ("GET", None): Op("GetDirectoryProperties", READ, get_directory_properties),
    ("HEAD", None): Op("GetDirectoryProperties", READ, get_directory_properties),
    ("DELETE", None): Op("DeleteDirectory", DELETE, delete_directory),
    ("PUT", "metadata"): Op("SetDirectoryMetadata", WRITE, set_directory_metadata),
    ("GET", "metadata"): Op("GetDirectoryMetadata", READ, get_directory_properties),
    ("HEAD", "metadata"): Op("GetDirectoryMetadata", READ, get_directory_properties),
    ("PUT", "properties"): Op("SetDirectoryProperties", WRITE, set_directory_properties),
    ("GET", "list"): Op("ListFilesAndDirectories", READ, list_files_and_directories),
    ("GET", "listhandles"): Op("ListHandles", READ, list_handles),
    ("PUT", "forceclosehandles"): Op("ForceCloseHandles", WRITE, force_close_handles),
    ("PUT", "rename"): Op("RenameDirectory", WRITE | DELETE, rename_directory),
}

_FILE_OPS: dict[tuple[str, str | None], Op] = {
    ("PUT", None): Op("CreateFile", WRITE, create_file),
    ("GET", None): Op("GetFile", READ, get_file),
    ("HEAD", None): Op("GetFileProperties", READ, get_file_properties),
    ("DELETE", None): Op("DeleteFile", DELETE, delete_file),
    ("PUT", "range"): Op("PutRange", WRITE, put_range),
    ("GET", "rangelist"): Op("ListFileRangeList", READ, list_ranges),
    ("PUT", "properties"): Op("SetFileProperties", WRITE, set_file_properties),
    ("PUT", "metadata"): Op("SetFileMetadata", WRITE, set_file_metadata),
    ("PUT", "rename"): Op("RenameFile", WRITE | DELETE, rename_file),
    ("PUT", "lease"): Op("LeaseFile", WRITE, lease_file),
    ("PUT", "copy"): Op("AbortCopyFile", WRITE, abort_copy),
    ("GET", "listhandles"): Op("ListHandles", READ, list_handles),
    ("PUT", "forceclosehandles"): Op("ForceCloseHandles", WRITE, force_close_handles),
}

_COPY_OP = Op("CopyFile", WRITE, copy_file)
