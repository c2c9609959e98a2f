"""Lease File (acquire, release, change, break; file leases are always infinite) and Lease Share
(acquire, renew, change, release, break; 15 to 60 seconds or infinite, on a share or a snapshot)."""

from __future__ import annotations

import uuid

from aiohttp import web

from keyless.emulator import request_keys as keys
from keyless.emulator.files.headers import header_error, int_header, lease_header, required
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


_SHARE_LEASE_OPS = {"acquire": ("AcquireShareLease", 201), "renew": ("RenewShareLease", 200),
                    "change": ("ChangeShareLease", 200), "release": ("ReleaseShareLease", 200),
                    "break": ("BreakShareLease", 202)}


async def lease_share(call: Call) -> web.StreamResponse:
    headers = call.headers
    action = required(headers, "x-ms-lease-action").strip().lower()
    if action not in _SHARE_LEASE_OPS:
        raise header_error("x-ms-lease-action")
    name, status = _SHARE_LEASE_OPS[action]
    call.request[keys.OPERATION] = name
    duration = -1
    if action == "acquire":
        given = int_header(headers, "x-ms-lease-duration", -1, 60)
        duration = -1 if given is None else given
        if duration != -1 and duration < 15:
            raise header_error("x-ms-lease-duration", message="A share lease lasts 15 to 60 seconds, or -1 "
                               "for a lease that never expires.")
    break_period = int_header(headers, "x-ms-lease-break-period", 0, 60) if action == "break" else None
    proposed = _proposed(headers.get("x-ms-proposed-lease-id"))
    if action in ("renew", "change", "release"):
        required(headers, "x-ms-lease-id")
    if action == "change" and proposed is None:
        raise header_error("x-ms-proposed-lease-id", E_MISSING_HEADER)
    share, lease_time = call.ctx.store.lease_share(
        call.target.account, call.share, call.snapshot, LeaseAction(action), lease_id=lease_header(headers),
        proposed=proposed, duration=duration, break_period=break_period)
    out = etag_headers(share.etag, share.last_modified)
    if action in ("acquire", "renew", "change"):
        out["x-ms-lease-id"] = share.lease.lease_id or ""
    if lease_time is not None:
        out["x-ms-lease-time"] = str(lease_time)
    return reply(call, status, out)


def _proposed(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise header_error("x-ms-proposed-lease-id") from None
