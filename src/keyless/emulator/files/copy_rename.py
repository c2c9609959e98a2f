"""Rename File / Rename Directory, Copy File (synchronous, or pending with a background copier:
``keyless.emulator.copy_engine``), Put Range From URL, and Abort Copy File."""

from __future__ import annotations

import base64
import uuid
from urllib.parse import urlsplit

from aiohttp import web

from keyless.emulator import request_keys as keys
from keyless.emulator.errors import StorageError
from keyless.emulator.files import integrity
from keyless.emulator.files.headers import (
    flag,
    header_error,
    lease_header,
    parse_metadata,
    parse_range,
    parse_smb,
    required,
)
from keyless.emulator.files.model import READ, Call, Target
from keyless.emulator.files.replies import etag_headers, node_headers, reply
from keyless.emulator.files.urls import decode_segment, parse_query, parse_target
from keyless.emulator.storage import Node, copy_status
from keyless.protocol import E_INVALID_RANGE, E_MISSING_HEADER, MAX_RANGE_UPDATE_BYTES


def _source_target(call: Call, value: str, header: str, trailing_dot: bool,
                   other_accounts: bool = False) -> Target:
    """A rename/copy source: a URL into this account (or, ``other_accounts``, any account the emulator
    hosts), or (rename) a path relative to the share."""
    value = value.strip()
    account = call.target.account
    if value.lower().startswith(("https://", "http://")):
        try:
            parts = urlsplit(value)
        except ValueError:  # e.g. an unclosed IPv6 bracket: a malformed header, not a server fault
            raise header_error(header) from None
        segments = parts.path.split("/")[1:]
        named = decode_segment(segments[0]) if segments else ""
        if named != account and other_accounts and call.ctx.config.account(named) is not None:
            account = named
        elif named != account and header == "x-ms-copy-source" and call.ctx.config.account(named):
            # The request's own credential cannot read another account: the source is unverifiable.
            raise StorageError(403, "CannotVerifyCopySource", "A copy source in another account needs a "
                               "credential of its own.")
        elif named != account:
            # An account the emulator does not host (on Azure, a host that does not resolve).
            raise header_error(header, "CannotVerifyCopySource" if header == "x-ms-copy-source" else
                               "InvalidHeaderValue", "The source must be an account the emulator hosts.")
        raw = segments[1:]
    elif header == "x-ms-file-rename-source":
        raw = [call.share, *value.split("?", 1)[0].lstrip("/").split("/")]
    else:
        raise header_error(header)
    if not raw or raw == [""]:
        raise header_error(header)
    source = parse_target(account, raw, trailing_dot)
    if not source.path:
        raise header_error(header)
    return source


async def rename(call: Call, *, is_dir: bool) -> web.StreamResponse:
    headers = call.headers
    source = _source_target(call, required(headers, "x-ms-file-rename-source"), "x-ms-file-rename-source",
                            flag(headers, "x-ms-source-allow-trailing-dot"))
    if source.share != call.share:
        raise header_error("x-ms-file-rename-source", "InvalidInput",
                           "The source and destination must be in the same share.")
    replace_existing = flag(headers, "x-ms-file-rename-replace-if-exists")
    smb = parse_smb(headers, call.ctx.clock.now(), is_dir=is_dir)
    node = call.ctx.store.rename(
        call.target.account, call.share, source.path, call.target.path, is_dir=is_dir,
        replace_existing=replace_existing, metadata=parse_metadata(headers), smb=smb,
        content_type=None if is_dir else headers.get("x-ms-content-type"),
        source_lease=headers.get("x-ms-source-lease-id"),
        target_lease=headers.get("x-ms-destination-lease-id"),
    )
    return reply(call, 200, {**node_headers(node), "x-ms-request-server-encrypted": "true"})


async def rename_file(call: Call) -> web.StreamResponse:
    return await rename(call, is_dir=False)


async def rename_directory(call: Call) -> web.StreamResponse:
    return await rename(call, is_dir=True)


async def copy_file(call: Call) -> web.StreamResponse:
    """Copy File (REST "Copy File"): 202 with ``x-ms-copy-status`` ``success`` when the copy finished
    before the answer, ``pending`` when it goes on in the background (a source in another account, or
    any source while a copy rate is set: ``keyless.emulator.copy_engine``)."""
    headers = call.headers
    raw_source = headers["x-ms-copy-source"]
    # Restoring a file from a share snapshot copies from a source URL naming it (?sharesnapshot=...).
    source, snapshot = _readable_source(call, source_token=False)
    assert source.share is not None
    store = call.ctx.store
    src = _source_node(call, source, snapshot)
    copy_id = str(uuid.uuid4())
    metadata = parse_metadata(headers)
    target = call.target
    # The source as Get File Properties reports it later: never its query, so never a SAS signature.
    copy_source = raw_source.strip().split("?", 1)[0]
    copies = call.ctx.copies
    if copies.is_async(cross_account=source.account != target.account):
        node = await call.run(lambda: store.start_copy(
            src, target.account, call.share, target.path, copy_id=copy_id, copy_source=copy_source,
            metadata=metadata, lease_id=lease_header(headers),
        ))
        copies.start(store, node, src)
    else:
        node = await call.run(lambda: store.copy_file(
            src, target.account, call.share, target.path, copy_id=copy_id, copy_source=copy_source,
            metadata=metadata, lease_id=lease_header(headers),
        ))
    return reply(call, 202, {**etag_headers(node.etag, node.last_modified), "x-ms-copy-id": copy_id,
                             "x-ms-copy-status": copy_status(node) or "success"})


def _source_node(call: Call, source: Target, snapshot: str) -> Node:
    """The source file; a missing one is Azure's 404 CannotVerifyCopySource with the source's own
    status and code in ``x-ms-copy-source-status-code`` / ``-error-code``."""
    assert source.share is not None
    try:
        return call.ctx.store.get_node(source.account, source.share, source.path, is_dir=False,
                                       snapshot=snapshot)
    except StorageError as err:
        if err.status == 404:
            raise _unverifiable(err, "The specified resource does not exist.") from None
        raise


def _unverifiable(err: StorageError, message: str | None = None) -> StorageError:
    """The source's refusal as Azure answers it on the destination request: the source's status with the
    code ``CannotVerifyCopySource``, and the source's own status and code in ``x-ms-copy-source-status-code``
    and ``x-ms-copy-source-error-code`` (the headers the official SDKs read: azure-storage-file-share
    ``_shared/policies.py`` ``is_retry``; Azure/azure-sdk-for-go ``getCopySourceStatusCode``). The message
    is the source's, without its detail (a SAS's string-to-sign stays out of the reply)."""
    return StorageError(err.status, "CannotVerifyCopySource", message or err.message, headers={
        "x-ms-copy-source-status-code": str(err.status), "x-ms-copy-source-error-code": err.code,
    })


def _readable_source(call: Call, *, source_token: bool) -> tuple[Target, str]:
    """The copy source (a file the emulator hosts, in a snapshot when its URL names one) and its
    snapshot, checked readable.

    A source URL carrying a SAS (``sig=``: account, service or user delegation SAS, or one naming a stored
    access policy with ``si=``) is authorized by that SAS alone, for the *source's* account, as a Get
    File of the source would be: the signature, the time window, the IP and protocol, and read
    permission (REST "Copy File": a source in another account "must be authorized via SAS"). The source
    may then be in any account the emulator hosts.

    With ``source_token`` (Put Range From URL, version 2020-10-02+) and
    ``x-ms-copy-source-authorization: Bearer <token>``, the token is authenticated for the source's
    account and needs read on the source share, whatever authorizes the request itself; the source may
    then be in another account. Copy File has no such header (the official SDK's ``start_copy`` never
    sends one; azure-storage-file-share ``_generated/operations/_operations.py``
    ``build_file_start_copy_request``), so there it is ignored, as the service ignores headers an
    operation does not define.

    Otherwise the request's own credential must read the source, so the source must be in the
    request's account (Shared Key: the account; OAuth: the data actions on the source share).
    A source that cannot be read is 4xx ``CannotVerifyCopySource`` (:func:`_unverifiable`).
    """
    header = "x-ms-copy-source"
    raw = call.headers[header].strip()
    try:
        query = parse_query(urlsplit(raw).query)
    except ValueError:  # e.g. an unclosed IPv6 bracket: a malformed header, not a server fault
        raise header_error(header) from None
    trailing_dot = flag(call.headers, "x-ms-source-allow-trailing-dot")
    if "sig" in query:
        source = _source_target(call, raw, header, trailing_dot, other_accounts=True)
        _authorize_by_sas(call, raw, source)
        return source, query.get("sharesnapshot", "")
    source_auth = call.headers.get("x-ms-copy-source-authorization") if source_token else None
    source = _source_target(call, raw, header, trailing_dot, other_accounts=source_auth is not None)
    assert source.share is not None
    if source_auth is not None:
        scheme, _, token = source_auth.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise header_error("x-ms-copy-source-authorization", message="Only the Bearer scheme "
                               "(a Microsoft Entra token) authorizes a copy source.")
        # The source's credential is checked as a request to the source would be: the same rules
        # (signature, audience, expiry, x-ms-version, intent) through the injected authentication.
        as_source = call.request.clone(headers={**call.headers, "Authorization": source_auth.strip()})
        try:
            source_caller = call.security.authenticate(call.ctx, as_source, source.account)
            call.security.authorize(call.ctx, source_caller, source.account, source.share, READ)
        except StorageError as err:
            # Whatever the source's credential lacks (signature, role, intent header), the service
            # cannot read the source: CannotVerifyCopySource, the reason in the message.
            raise StorageError(403, "CannotVerifyCopySource",
                               f"The copy source's authorization failed: {err.code}.", headers={
                                   "x-ms-copy-source-status-code": str(err.status),
                                   "x-ms-copy-source-error-code": err.code}) from None
        return source, query.get("sharesnapshot", "")
    caller = call.request.get(keys.CALLER)
    if caller is not None:
        call.security.authorize(call.ctx, caller, call.target.account, source.share, READ)
    return source, query.get("sharesnapshot", "")


def _authorize_by_sas(call: Call, raw: str, source: Target) -> None:
    """Check the source URL's SAS as the source's account would check a Get File carrying it: the same
    request (client address, TLS) re-aimed at the source's path and query, with no Authorization header
    (that one authorizes the destination)."""
    assert source.share is not None
    parts = urlsplit(raw)
    dropped = {"authorization", "x-ms-copy-source-authorization"}
    as_source = call.request.clone(
        method="GET", rel_url=f"{parts.path}?{parts.query}",
        headers={k: v for k, v in call.headers.items() if k.lower() not in dropped},
    )
    try:
        caller = call.security.authenticate(call.ctx, as_source, source.account)
        # A user delegation SAS is only as strong as its delegator's role now (emulator.auth.authorize).
        call.security.authorize(call.ctx, caller, source.account, source.share, READ)
    except StorageError as err:
        raise _unverifiable(err) from None


async def put_range_from_url(call: Call) -> web.StreamResponse:
    """Put Range From URL: up to 4 MiB of another file (``x-ms-source-range``) written at ``x-ms-range``."""
    headers = call.headers
    if required(headers, "x-ms-write").strip().lower() != "update":
        raise header_error("x-ms-write", message="Put Range From URL only updates (x-ms-write: update).")
    dest = parse_range(headers)
    if dest is None or dest[2] is None:
        raise header_error("x-ms-range", E_MISSING_HEADER if dest is None else "InvalidHeaderValue")
    src_range = parse_range({"x-ms-range": required(headers, "x-ms-source-range")})
    if src_range is None or src_range[2] is None:
        raise header_error("x-ms-source-range")
    start, end = dest[1], dest[2]
    src_start, src_end = src_range[1], src_range[2]
    length = end - start + 1
    if src_end - src_start + 1 != length:
        raise header_error("x-ms-source-range", message="The source and destination ranges differ in length.")
    if length > MAX_RANGE_UPDATE_BYTES:
        raise StorageError(413, "RequestBodyTooLarge")
    if call.request.content_length not in (None, 0):
        raise header_error("Content-Length")
    source, snapshot = _readable_source(call, source_token=True)
    store = call.ctx.store
    src = _source_node(call, source, snapshot)
    if src_end >= src.content_length:
        raise StorageError(416, E_INVALID_RANGE)
    target = call.target
    lease_id = lease_header(headers)

    def work() -> tuple[bytes, Node]:
        data = store.read_range(src, src_start, length)
        integrity.check_crc64_header({"x-ms-content-crc64": headers.get("x-ms-source-content-crc64", "")},
                                     data)
        node = store.write_range(target.account, call.share, target.path, start, data, length,
                                 lease_id=lease_id)
        return data, node

    data, node = await call.run(work, size=length)
    return reply(call, 201, {
        **etag_headers(node.etag, node.last_modified),
        "x-ms-content-crc64": base64.b64encode(integrity.crc64_bytes(data)).decode("ascii"),
        "x-ms-request-server-encrypted": "true",
        "x-ms-file-last-write-time": node.smb.last_write_time,
    })


async def abort_copy(call: Call) -> web.StreamResponse:
    """Abort Copy File (REST "Abort Copy File"): 204, and the destination is left with zero length, its
    metadata and ``x-ms-copy-status: aborted``; 409 NoPendingCopyOperation when the copy has ended,
    409 CopyIdMismatch for another copy's id; a leased destination needs its lease id."""
    if required(call.headers, "x-ms-copy-action").strip().lower() != "abort":
        raise header_error("x-ms-copy-action")
    copy_id = call.query.get("copyid", "").strip()
    if not copy_id:
        raise StorageError(400, "MissingRequiredQueryParameter",
                           "A query parameter that's mandatory for this request is not specified.",
                           extra={"QueryParameterName": "copyid"})
    target = call.target
    await call.run(lambda: call.ctx.store.abort_copy(target.account, call.share, target.path, copy_id,
                                                     lease_header(call.headers)))
    return reply(call, 204, {})
