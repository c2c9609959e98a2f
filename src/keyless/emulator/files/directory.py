"""Directory operations: create, properties, metadata, delete, list; and the handle operations, which
the emulator answers for files and directories alike (it has no SMB clients, so there are no handles).
"""

from __future__ import annotations

from aiohttp import web

from keyless.emulator.files.headers import flag, parse_metadata, parse_smb
from keyless.emulator.files.model import Call
from keyless.emulator.files.replies import (
    XML_DECL,
    etag_headers,
    meta_headers,
    node_headers,
    reply,
    xml_reply,
)
from keyless.emulator.files.urls import max_results
from keyless.emulator.files.xml_bodies import decode_marker, listing_xml


async def create_directory(call: Call) -> web.StreamResponse:
    store = call.ctx.store
    metadata = parse_metadata(call.headers) or ()
    smb = parse_smb(call.headers, call.ctx.clock.now(), is_dir=True)
    node = store.create_directory(call.target.account, call.share, call.target.path, metadata, smb)
    return reply(call, 201, {**node_headers(node), "x-ms-request-server-encrypted": "true"})


async def get_directory_properties(call: Call) -> web.StreamResponse:
    node = call.ctx.store.get_node(call.target.account, call.share, call.target.path, is_dir=True,
                                   snapshot=call.snapshot)
    headers = {**node_headers(node), **meta_headers(node.metadata), "x-ms-server-encrypted": "true"}
    return reply(call, 200, headers)


async def delete_directory(call: Call) -> web.StreamResponse:
    call.ctx.store.delete_directory(call.target.account, call.share, call.target.path)
    return reply(call, 202)


async def set_directory_metadata(call: Call) -> web.StreamResponse:
    metadata = parse_metadata(call.headers) or ()
    node = call.ctx.store.update_node(call.target.account, call.share, call.target.path, is_dir=True,
                                      metadata=metadata)
    return reply(call, 200, {**etag_headers(node.etag, node.last_modified),
                             "x-ms-request-server-encrypted": "true"})


async def set_directory_properties(call: Call) -> web.StreamResponse:
    smb = parse_smb(call.headers, call.ctx.clock.now(), is_dir=True)
    node = call.ctx.store.update_node(call.target.account, call.share, call.target.path, is_dir=True, smb=smb)
    return reply(call, 200, {**node_headers(node), "x-ms-request-server-encrypted": "true"})


async def list_files_and_directories(call: Call) -> web.StreamResponse:
    q = call.query
    limit = max_results(q)
    prefix = q.get("prefix", "")
    marker = decode_marker(q["marker"]) if q.get("marker") else None
    include = {p.strip().lower() for p in q.get("include", "").split(",") if p.strip()}
    extended = flag(call.headers, "x-ms-file-extended-info") or bool(include)
    listing = call.ctx.store.list_directory(call.target.account, call.share, call.target.path, prefix,
                                            marker, limit, call.snapshot)
    return xml_reply(call, listing_xml(call, listing, prefix, limit, include, extended))


async def list_handles(call: Call) -> web.StreamResponse:
    call.ctx.store.get_node(call.target.account, call.share, call.target.path, snapshot=call.snapshot)
    return xml_reply(call, f"{XML_DECL}<EnumerationResults><Entries /><NextMarker /></EnumerationResults>")


async def force_close_handles(call: Call) -> web.StreamResponse:
    call.ctx.store.get_node(call.target.account, call.share, call.target.path)
    return reply(call, 200, {"x-ms-number-of-handles-closed": "0", "x-ms-number-of-handles-failed": "0"})
