"""Rename File / Rename Directory and Copy File (synchronous, within one account), and Abort Copy File."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from aiohttp import web

from keyless.emulator import request_keys as keys
from keyless.emulator.errors import StorageError
from keyless.emulator.files.headers import (
    flag,
    header_error,
    lease_header,
    parse_metadata,
    parse_smb,
    required,
)
from keyless.emulator.files.model import READ, Call, Target
from keyless.emulator.files.replies import etag_headers, node_headers, reply
from keyless.emulator.files.urls import decode_segment, parse_query, parse_target


def _source_target(call: Call, value: str, header: str, trailing_dot: bool) -> Target:
    """A rename/copy source: a URL into this account, or (rename) a path relative to the share."""
    value = value.strip()
    if value.lower().startswith(("https://", "http://")):
        parts = urlsplit(value)
        segments = parts.path.split("/")[1:]
        if not segments or decode_segment(segments[0]) != call.target.account:
            raise header_error(header, "CannotVerifyCopySource" if header == "x-ms-copy-source" else
                               "InvalidHeaderValue", "The source must be in the same storage account.")
        raw = segments[1:]
    elif header == "x-ms-file-rename-source":
        raw = [call.share, *value.split("?", 1)[0].lstrip("/").split("/")]
    else:
        raise header_error(header)
    if not raw or raw == [""]:
        raise header_error(header)
    source = parse_target(call.target.account, raw, trailing_dot)
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
    headers = call.headers
    raw_source = headers["x-ms-copy-source"]
    source = _source_target(call, raw_source, "x-ms-copy-source",
                            flag(headers, "x-ms-source-allow-trailing-dot"))
    assert source.share is not None
    caller = call.request.get(keys.CALLER)
    if caller is not None:
        call.security.authorize(call.ctx, caller, call.target.account, source.share, READ)
    store = call.ctx.store
    # Restoring a file from a share snapshot copies from a source URL naming it (?sharesnapshot=...).
    source_query = parse_query(urlsplit(raw_source.strip()).query)
    try:
        src = store.get_node(source.account, source.share, source.path, is_dir=False,
                             snapshot=source_query.get("sharesnapshot", ""))
    except StorageError as err:
        if err.status == 404:
            raise StorageError(404, "CannotVerifyCopySource",
                               "The specified resource does not exist.") from None
        raise
    copy_id = str(uuid.uuid4())
    metadata = parse_metadata(headers)
    target = call.target
    node = await call.run(lambda: store.copy_file(
        src, target.account, call.share, target.path, copy_id=copy_id,
        copy_source=raw_source.split("?", 1)[0], metadata=metadata, lease_id=lease_header(headers),
    ))
    return reply(call, 202, {**etag_headers(node.etag, node.last_modified), "x-ms-copy-id": copy_id,
                             "x-ms-copy-status": "success"})


async def abort_copy(call: Call) -> web.StreamResponse:
    if required(call.headers, "x-ms-copy-action").strip().lower() != "abort":
        raise header_error("x-ms-copy-action")
    call.ctx.store.get_node(call.target.account, call.share, call.target.path, is_dir=False)
    raise StorageError(409, "NoPendingCopyOperation", "There is currently no pending copy operation.")
