"""Lease File: acquire, release, change, break (file leases are always infinite)."""

from __future__ import annotations

import uuid

from aiohttp import web

from keyless.emulator import request_keys as keys
from keyless.emulator.files.headers import header_error, lease_header, required
from keyless.emulator.files.model import Call
from keyless.emulator.files.replies import etag_headers, reply
from keyless.emulator.storage import LeaseAction
from keyless.protocol import E_MISSING_HEADER


async def lease_file(call: Call) -> web.StreamResponse:
    headers = call.headers
    action = required(headers, "x-ms-lease-action").strip().lower()
    names = {"acquire": "AcquireFileLease", "release": "ReleaseFileLease", "change": "ChangeFileLease",
             "break": "BreakFileLease"}
    if action not in names:
        raise header_error("x-ms-lease-action")
    call.request[keys.OPERATION] = names[action]
    if action == "acquire" and headers.get("x-ms-lease-duration", "-1").strip() != "-1":
        raise header_error("x-ms-lease-duration",
                           message="File leases are infinite: the duration must be -1.")
    proposed = headers.get("x-ms-proposed-lease-id")
    if proposed is not None:
        try:
            proposed = str(uuid.UUID(proposed.strip()))
        except ValueError:
            raise header_error("x-ms-proposed-lease-id") from None
    if action in ("release", "change"):
        required(headers, "x-ms-lease-id")
    if action == "change" and proposed is None:
        raise header_error("x-ms-proposed-lease-id", E_MISSING_HEADER)
    node = call.ctx.store.lease(call.target.account, call.share, call.target.path, LeaseAction(action),
                                lease_header(headers), proposed)
    out = etag_headers(node.etag, node.last_modified)
    if action in ("acquire", "change"):
        out["x-ms-lease-id"] = node.lease_id or ""
    if action == "break":
        out["x-ms-lease-time"] = "0"
    status = {"acquire": 201, "release": 200, "change": 200, "break": 202}[action]
    return reply(call, status, out)
