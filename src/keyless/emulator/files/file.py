"""File operations: create, put range, get (inline or streamed), properties, metadata, delete, range list."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import partial

from aiohttp import web

from keyless.emulator.errors import StorageError
from keyless.emulator.files import integrity
from keyless.emulator.files.headers import (
    MAX_FILE_SIZE,
    flag,
    header_error,
    int_header,
    lease_header,
    md5_header,
    parse_content,
    parse_metadata,
    parse_range,
    parse_smb,
    required,
)
from keyless.emulator.files.model import INLINE_BYTES, Call
from keyless.emulator.files.replies import (
    XML_DECL,
    b64,
    base_headers,
    etag_headers,
    file_headers,
    node_headers,
    reply,
)
from keyless.emulator.files.urls import bad_query, max_results
from keyless.emulator.storage import ContentSettings, Node, check_lease
from keyless.protocol import E_INVALID_RANGE, E_MISSING_HEADER, MAX_RANGE_UPDATE_BYTES

_STREAM_CHUNK = 1024 * 1024
_STRUCTURED_SLACK = 64 * 1024  # smaller segments than the emulator's own cost more headers and CRCs


async def create_file(call: Call) -> web.StreamResponse:
    headers = call.headers
    file_type = required(headers, "x-ms-type")
    if file_type.strip().lower() != "file":
        raise header_error("x-ms-type")
    length = int_header(headers, "x-ms-content-length", 0, MAX_FILE_SIZE)
    if length is None:
        raise header_error("x-ms-content-length", E_MISSING_HEADER)
    body = await read_body(call, limit=min(length, MAX_RANGE_UPDATE_BYTES))
    check_md5(headers, body)
    checksums = integrity_headers(headers, body)
    content = parse_content(headers) or ContentSettings()
    metadata = parse_metadata(headers) or ()
    smb = parse_smb(headers, call.ctx.clock.now(), is_dir=False)
    store = call.ctx.store
    target = call.target

    def work() -> Node:
        return store.create_file(target.account, call.share, target.path, length, content, metadata, smb,
                                 body, lease_header(headers))

    node = await call.run(work, size=len(body))
    return reply(call, 201, {**node_headers(node), **checksums, "x-ms-request-server-encrypted": "true"})


async def read_body(call: Call, limit: int) -> bytes:
    """The request's content, refusing more than ``limit`` bytes before reading it.

    A structured message body (``x-ms-structured-body``) is decoded and its CRC64s checked; its content
    length is ``x-ms-structured-content-length``, and Content-Length counts the encoded message.
    """
    request = call.request
    structured = integrity.wants_structured(request.headers)
    declared = request.content_length
    if declared is None:
        if request.body_exists and request.method == "PUT":
            raise StorageError(411, "MissingContentLengthHeader", "Content-Length HTTP header is missing.")
        return b""
    content_length = declared
    if structured:
        given = int_header(request.headers, integrity.STRUCTURED_LENGTH_HEADER, 0, MAX_RANGE_UPDATE_BYTES)
        if given is None:
            raise header_error(integrity.STRUCTURED_LENGTH_HEADER, E_MISSING_HEADER)
        content_length = given
        if declared > integrity.encoded_length(MAX_RANGE_UPDATE_BYTES) + _STRUCTURED_SLACK:
            raise StorageError(413, "RequestBodyTooLarge")
    elif declared > MAX_RANGE_UPDATE_BYTES:
        raise StorageError(413, "RequestBodyTooLarge")
    if content_length > limit:
        raise header_error(integrity.STRUCTURED_LENGTH_HEADER if structured else "Content-Length")
    body = await request.read()
    if len(body) != declared:
        raise header_error("Content-Length")
    return integrity.decode(body, content_length) if structured else body


def integrity_headers(headers: Mapping[str, str], data: bytes) -> dict[str, str]:
    """Check ``x-ms-content-crc64`` and answer the checksums an upload asked for: the CRC64 when it sent
    one (as a header or a structured body), and the structured-body header echoed, which the SDK checks."""
    out: dict[str, str] = {}
    if "x-ms-content-crc64" in headers or integrity.STRUCTURED_HEADER in headers:
        out["x-ms-content-crc64"] = b64(integrity.check_crc64_header(headers, data))
    if integrity.STRUCTURED_HEADER in headers:
        out[integrity.STRUCTURED_HEADER] = integrity.STRUCTURED_V1_CRC64
    return out


def check_md5(headers: Mapping[str, str], body: bytes) -> bytes:
    """Verify ``Content-MD5`` when given; returns the body's MD5 either way."""
    digest = hashlib.md5(body, usedforsecurity=False).digest()
    given = md5_header(headers, "Content-MD5")
    if given is not None and given != digest:
        raise StorageError(400, "Md5Mismatch",
                           extra={"UserSpecifiedMd5": b64(given), "ServerCalculatedMd5": b64(digest)})
    return digest


async def put_range(call: Call) -> web.StreamResponse:
    headers = call.headers
    mode = required(headers, "x-ms-write").strip().lower()
    if mode not in ("update", "clear"):
        raise header_error("x-ms-write")
    parsed = parse_range(headers)
    if parsed is None:
        raise header_error("x-ms-range", E_MISSING_HEADER)
    name, start, end = parsed
    if end is None:
        raise header_error(name)
    length = end - start + 1
    write_time = headers.get("x-ms-file-last-write-time", "now").strip().lower()
    if write_time not in ("now", "preserve"):
        raise header_error("x-ms-file-last-write-time")
    extra: dict[str, str] = {}
    data: bytes | None = None
    if mode == "update":
        if length > MAX_RANGE_UPDATE_BYTES:
            raise StorageError(413, "RequestBodyTooLarge")
        if call.request.content_length is None:
            raise StorageError(411, "MissingContentLengthHeader", "Content-Length HTTP header is missing.")
        data = await read_body(call, limit=length)
        if len(data) != length:
            raise header_error(integrity.STRUCTURED_LENGTH_HEADER if integrity.STRUCTURED_HEADER in headers
                               else "Content-Length")
        extra["Content-MD5"] = b64(check_md5(headers, data))
        extra.update(integrity_headers(headers, data))
    elif call.request.content_length not in (None, 0):
        raise header_error("Content-Length")
    store = call.ctx.store
    target = call.target

    def work() -> Node:
        return store.write_range(target.account, call.share, target.path, start, data, length,
                                 lease_id=lease_header(headers),
                                 preserve_last_write_time=write_time == "preserve")

    node = await call.run(work, size=length)
    return reply(call, 201, {
        **etag_headers(node.etag, node.last_modified), **extra,
        "x-ms-request-server-encrypted": "true",
        "x-ms-file-last-write-time": node.smb.last_write_time,
    })


async def get_file(call: Call) -> web.StreamResponse:
    headers = call.headers
    store = call.ctx.store
    node = store.get_node(call.target.account, call.share, call.target.path, is_dir=False,
                          snapshot=call.snapshot)
    check_lease(node, lease_header(headers), write=False)
    size = node.content_length
    out = file_headers(node)
    want_md5 = flag(headers, "x-ms-range-get-content-md5")
    parsed = parse_range(headers)
    if parsed is None:
        if want_md5:
            raise header_error("x-ms-range-get-content-md5")
        start, length, status = 0, size, 200
        if node.content.content_md5 is not None:
            out["Content-MD5"] = b64(node.content.content_md5)
    else:
        _, start, end = parsed
        if start >= size:
            raise StorageError(416, E_INVALID_RANGE, headers={"Content-Range": f"bytes */{size}"})
        last = size - 1 if end is None else min(end, size - 1)
        length, status = last - start + 1, 206
        out["Content-Range"] = f"bytes {start}-{last}/{size}"
        if node.content.content_md5 is not None:
            out["x-ms-content-md5"] = b64(node.content.content_md5)
        if want_md5 and length > MAX_RANGE_UPDATE_BYTES:
            raise StorageError(400, "OutOfRangeInput", "The requested range for content MD5 exceeds 4 MiB.")
    want_crc64 = flag(headers, "x-ms-range-get-content-crc64")
    if want_crc64 and (parsed is None or want_md5 or length > MAX_RANGE_UPDATE_BYTES):
        # Only for a range of at most 4 MiB, and not together with the MD5 (Get File, 2019-02-02+).
        raise header_error("x-ms-range-get-content-crc64")
    if integrity.wants_structured(headers):
        return await _structured(call, status, out, node, start, length)
    if length <= INLINE_BYTES or want_md5 or want_crc64:
        data = await call.run(lambda: store.read_range(node, start, length), size=length)
        if want_md5:
            out["Content-MD5"] = b64(hashlib.md5(data, usedforsecurity=False).digest())
        if want_crc64:
            out["x-ms-content-crc64"] = b64(integrity.crc64_bytes(data))
        return reply(call, status, out, body=data)
    return await _stream(call, status, out, node, start, length)


async def _structured(call: Call, status: int, headers: dict[str, str], node: Node, start: int,
                      length: int) -> web.StreamResponse:
    """The range as a structured message (the SDK's crc64 download validation): the content length is
    in x-ms-structured-content-length, Content-Length counts the message."""
    store = call.ctx.store
    headers = {**headers, integrity.STRUCTURED_HEADER: integrity.STRUCTURED_V1_CRC64,
               integrity.STRUCTURED_LENGTH_HEADER: str(length)}
    parts = integrity.encode(length, lambda offset, size: store.read_range(node, start + offset, size))
    if call.request.method == "HEAD":
        return reply(call, status, headers)
    response = web.StreamResponse(status=status, headers={**base_headers(call), **headers})
    response.content_length = integrity.encoded_length(length)
    first = await call.run(lambda: next(parts, b""), size=length)  # errors surface before the headers go
    await response.prepare(call.request)
    await response.write(first)
    while chunk := await call.run(lambda: next(parts, b""), size=length):
        await response.write(chunk)
    await response.write_eof()
    return response


async def _stream(call: Call, status: int, headers: dict[str, str], node: Node, start: int,
                  length: int) -> web.StreamResponse:
    store = call.ctx.store
    first = await call.run(lambda: store.read_range(node, start, min(_STREAM_CHUNK, length)), size=length)
    response = web.StreamResponse(status=status, headers={**base_headers(call), **headers})
    response.content_length = length
    await response.prepare(call.request)
    await response.write(first)
    pos = start + len(first)
    end = start + length
    while pos < end:
        read = partial(store.read_range, node, pos, min(_STREAM_CHUNK, end - pos))
        chunk = await call.run(read, size=length)
        if not chunk:
            break
        await response.write(chunk)
        pos += len(chunk)
    await response.write_eof()
    return response


async def get_file_properties(call: Call) -> web.StreamResponse:
    node = call.ctx.store.get_node(call.target.account, call.share, call.target.path, is_dir=False,
                                   snapshot=call.snapshot)
    check_lease(node, lease_header(call.headers), write=False)
    headers = file_headers(node)
    headers["Content-Length"] = str(node.content_length)
    if node.content.content_md5 is not None:
        headers["Content-MD5"] = b64(node.content.content_md5)
    return reply(call, 200, headers)


async def set_file_properties(call: Call) -> web.StreamResponse:
    headers = call.headers
    length = int_header(headers, "x-ms-content-length", 0, MAX_FILE_SIZE)
    content = parse_content(headers)
    smb = parse_smb(headers, call.ctx.clock.now(), is_dir=False)
    node = call.ctx.store.update_node(call.target.account, call.share, call.target.path, is_dir=False,
                                      smb=smb, content=content, length=length,
                                      lease_id=lease_header(headers))
    return reply(call, 200, {**node_headers(node), "x-ms-request-server-encrypted": "true"})


async def set_file_metadata(call: Call) -> web.StreamResponse:
    metadata = parse_metadata(call.headers) or ()
    node = call.ctx.store.update_node(call.target.account, call.share, call.target.path, is_dir=False,
                                      metadata=metadata, lease_id=lease_header(call.headers))
    return reply(call, 200, {**etag_headers(node.etag, node.last_modified),
                             "x-ms-request-server-encrypted": "true"})


async def delete_file(call: Call) -> web.StreamResponse:
    store = call.ctx.store
    store.delete_file(call.target.account, call.share, call.target.path, lease_header(call.headers))
    return reply(call, 202)


async def list_ranges(call: Call) -> web.StreamResponse:
    store = call.ctx.store
    account, share, path = call.target.account, call.share, call.target.path
    node = store.get_node(account, share, path, is_dir=False, snapshot=call.snapshot)
    check_lease(node, lease_header(call.headers), write=False)
    previous_snapshot = call.query.get("prevsharesnapshot")
    previous: Node | None = None
    if previous_snapshot is not None:
        # The earlier snapshot must exist (409 PreviousSnapshotNotFound, the code Azure's SDKs list for
        # it); the file need not have existed in it, in which case everything it holds now is a change.
        try:
            store.get_share(account, share, previous_snapshot)
        except StorageError as err:
            if err.code != "ShareSnapshotNotFound":
                raise
            raise StorageError(409, "PreviousSnapshotNotFound",
                               "The previous share snapshot is not found.") from None
        try:
            previous = store.get_node(account, share, path, is_dir=False, snapshot=previous_snapshot)
        except StorageError as err:
            if err.status != 404:
                raise
    parsed = parse_range(call.headers)
    start, end = 0, node.content_length - 1
    if parsed is not None:
        _, start, wanted_end = parsed
        end = end if wanted_end is None else min(end, wanted_end)
    if previous_snapshot is None:
        ranges = await call.run(lambda: store.data_ranges(node, start, end))
        cleared: list[tuple[int, int]] = []
    else:
        ranges, cleared = await call.run(lambda: store.diff_ranges(node, previous, start, end))
    entries = sorted([*((lo, hi, "Range") for lo, hi in ranges),
                      *((lo, hi, "ClearRange") for lo, hi in cleared)])
    # Pages (version 2024-05-04 and later: marker, maxresults, NextMarker); the marker is the offset
    # the next page starts at, opaque to the client.
    marker = call.query.get("marker")
    if marker:
        if not (marker.isascii() and marker.isdigit()):
            raise bad_query("marker")
        entries = [e for e in entries if e[0] >= int(marker)]
    limit = max_results(call.query)
    page, rest = entries[:limit], entries[limit:]
    body = "".join(f"<{tag}><Start>{lo}</Start><End>{hi}</End></{tag}>" for lo, hi, tag in page)
    if rest:
        body += f"<NextMarker>{rest[0][0]}</NextMarker>"
    headers = {**etag_headers(node.etag, node.last_modified),
               "x-ms-content-length": str(node.content_length)}
    return reply(call, 200, headers, f"{XML_DECL}<Ranges>{body}</Ranges>".encode(), "application/xml")
