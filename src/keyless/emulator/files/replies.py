"""Replies: the headers every Files answer carries, and the headers that describe a share, a directory
or a file (ETag, SMB properties, content properties, lease and copy state).
"""

from __future__ import annotations

import base64
import functools
import math
import uuid
from collections.abc import Mapping
from email.utils import formatdate

from aiohttp import web

from keyless.emulator import request_keys as keys
from keyless.emulator.files.model import Call
from keyless.emulator.storage import LeaseState, Metadata, Node, ShareRecord, copy_status, lease_state
from keyless.protocol import CURRENT_VERSION, H_CLIENT_REQUEST_ID, H_REQUEST_ID, H_VERSION

XML_DECL = '<?xml version="1.0" encoding="utf-8"?>'


def http_date(ts: float) -> str:
    """RFC 1123 date of ``ts`` (whole seconds, as HTTP dates are)."""
    return _http_date_of_second(math.floor(ts))


@functools.lru_cache(maxsize=1024)
def _http_date_of_second(second: int) -> str:
    # Every answer carries Date and most a Last-Modified: the few seconds in play are formatted once.
    return formatdate(second, usegmt=True)


def base_headers(call: Call) -> dict[str, str]:
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


def reply(call: Call, status: int, headers: Mapping[str, str] | None = None,
          body: bytes | None = None, content_type: str | None = None) -> web.Response:
    out = base_headers(call)
    if headers:
        out.update(headers)
    if content_type is not None:
        out["Content-Type"] = content_type
    if call.request.method == "HEAD":
        # No body on HEAD; Content-Length (when given) still tells the entity's size, as the service does.
        return web.Response(status=status, headers=out)
    return web.Response(status=status, headers=out, body=body if body is not None else b"")


def xml_reply(call: Call, body: str) -> web.Response:
    return reply(call, 200, body=body.encode("utf-8"), content_type="application/xml")


def etag_headers(etag: str, last_modified: float) -> dict[str, str]:
    return {"ETag": etag, "Last-Modified": http_date(last_modified)}


def meta_headers(metadata: Metadata) -> dict[str, str]:
    return {f"x-ms-meta-{k}": v for k, v in metadata}


def smb_headers(node: Node) -> dict[str, str]:
    headers = {
        "x-ms-file-attributes": node.smb.attributes,
        "x-ms-file-creation-time": node.smb.creation_time,
        "x-ms-file-last-write-time": node.smb.last_write_time,
        "x-ms-file-change-time": node.smb.change_time,
        "x-ms-file-permission-key": node.smb.permission_key,
        "x-ms-file-id": node.file_id,
    }
    if node.parent_file_id is not None:
        headers["x-ms-file-parent-id"] = node.parent_file_id
    return headers


def node_headers(node: Node) -> dict[str, str]:
    return {**etag_headers(node.etag, node.last_modified), **smb_headers(node)}


def file_headers(node: Node) -> dict[str, str]:
    """What Get File / Get File Properties return about the file itself."""
    c = node.content
    headers = {
        **node_headers(node),
        **meta_headers(node.metadata),
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
    headers.update(copy_headers(node))
    return headers


def copy_headers(node: Node) -> dict[str, str]:
    """The last Copy File onto this file, as Get File Properties reports it (REST "Get File
    Properties": x-ms-copy-id/-source/-status/-progress, -completion-time once it ended, and
    -status-description when it failed or was aborted)."""
    status = copy_status(node)
    if node.copy_id is None or status is None:
        return {}
    headers = {
        "x-ms-copy-id": node.copy_id,
        "x-ms-copy-status": status,
        "x-ms-copy-source": node.copy_source or "",
        "x-ms-copy-progress": node.copy_progress or f"{node.content_length}/{node.content_length}",
    }
    if node.copy_completion is not None:
        headers["x-ms-copy-completion-time"] = http_date(node.copy_completion)
    if node.copy_status_description and status in ("failed", "aborted"):
        headers["x-ms-copy-status-description"] = node.copy_status_description
    return headers


def tier_headers(share: ShareRecord) -> dict[str, str]:
    headers = {"x-ms-access-tier": share.access_tier}
    if share.tier_changed is not None:
        headers["x-ms-access-tier-change-time"] = http_date(share.tier_changed)
    return headers


def share_lease_headers(share: ShareRecord, now: float) -> dict[str, str]:
    """x-ms-lease-status / -state / -duration of a share (Get Share Properties)."""
    state = lease_state(share.lease, now)
    locked = state in (LeaseState.LEASED, LeaseState.BREAKING)
    headers = {"x-ms-lease-status": "locked" if locked else "unlocked", "x-ms-lease-state": state.value}
    if state is LeaseState.LEASED:
        headers["x-ms-lease-duration"] = "infinite" if share.lease.duration == -1 else "fixed"
    return headers


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def service_endpoint(call: Call) -> str:
    """The account's Files endpoint as the listings name it (``ServiceEndpoint``)."""
    base = call.ctx.files_url or f"{call.request.scheme}://{call.request.host}"
    return f"{base.rstrip('/')}/{call.target.account}/"
