"""Share operations: create, properties, metadata, delete, snapshot, stats, ACL, permissions."""

from __future__ import annotations

import base64
import json
import re
from xml.sax.saxutils import escape

from aiohttp import web

from keyless.emulator.errors import StorageError
from keyless.emulator.files.headers import (
    header_error,
    int_header,
    lease_header,
    parse_metadata,
    permission_text,
    required,
)
from keyless.emulator.files.model import Call
from keyless.emulator.files.replies import (
    XML_DECL,
    etag_headers,
    meta_headers,
    reply,
    share_lease_headers,
    tier_headers,
    xml_reply,
)
from keyless.emulator.files.sddl import sddl_to_binary
from keyless.emulator.files.service import share_retention_days
from keyless.emulator.files.xml_bodies import invalid_xml, read_xml, text_of
from keyless.emulator.storage import AccessPolicy


async def create_share(call: Call) -> web.StreamResponse:
    quota = int_header(call.headers, "x-ms-share-quota", 1, 102400) or 5120
    metadata = parse_metadata(call.headers) or ()
    share = call.ctx.store.create_share(call.target.account, call.share, quota, metadata,
                                        _access_tier(call))
    return reply(call, 201, etag_headers(share.etag, share.last_modified))


async def get_share_properties(call: Call) -> web.StreamResponse:
    share = call.ctx.store.get_share(call.target.account, call.share, call.snapshot,
                                     lease_id=lease_header(call.headers))
    headers = {
        **etag_headers(share.etag, share.last_modified),
        **meta_headers(share.metadata),
        "x-ms-share-quota": str(share.quota),
        **tier_headers(share),
        "x-ms-enabled-protocols": "SMB",
        **share_lease_headers(share, call.ctx.clock.now()),
    }
    return reply(call, 200, headers)


async def delete_share(call: Call) -> web.StreamResponse:
    store = call.ctx.store
    account, share, snapshot = call.target.account, call.share, call.snapshot
    # x-ms-delete-snapshots: include | include-leased (Delete Share, version 2017-04-17 and later).
    option = call.headers.get("x-ms-delete-snapshots")
    if option is not None and option.strip().lower() not in ("include", "include-leased"):
        raise header_error("x-ms-delete-snapshots")
    if option is not None and snapshot:
        raise header_error("x-ms-delete-snapshots", "InvalidHeaderValue",
                           "x-ms-delete-snapshots is not allowed when deleting one share snapshot.")
    lease_id = lease_header(call.headers)
    with_leased = option is not None and option.strip().lower() == "include-leased"
    # With the account's ShareDeleteRetentionPolicy enabled the share is soft-deleted ("Enable soft
    # delete on Azure file shares"): List Shares include=deleted shows it until Restore Share or expiry.
    retention_days = share_retention_days(call)
    await call.run(lambda: store.delete_share(account, share, snapshot=snapshot,
                                              with_snapshots=option is not None, with_leased=with_leased,
                                              lease_id=lease_id, retention_days=retention_days))
    return reply(call, 202)


_DELETED_VERSION = re.compile(r"^[0-9A-Fa-f]{16}$", re.ASCII)


async def restore_share(call: Call) -> web.StreamResponse:
    """Restore Share (``PUT ?restype=share&comp=undelete``, version 2019-12-12 and later): the share of
    x-ms-deleted-share-name and x-ms-deleted-share-version comes back with its data, metadata, properties
    and snapshots; 201 with its etag. The service restores under the deleted name only (the SDKs pass
    the share client's own name; renaming on restore was never enabled for shares), so another name in
    the header is refused as Azure refuses a malformed one: 400 InvalidHeaderValue naming it."""
    name = required(call.headers, "x-ms-deleted-share-name").strip()
    version = required(call.headers, "x-ms-deleted-share-version").strip()
    if name != call.share:
        raise header_error("x-ms-deleted-share-name", message=f"x-ms-deleted-share-name must be the share "
                           f"named in the URL ({call.share}): a share is restored under its own name.")
    if not _DELETED_VERSION.match(version):
        raise header_error("x-ms-deleted-share-version", message="x-ms-deleted-share-version is the 16 "
                           "hex digit Version that List Shares include=deleted reports.")
    store, account = call.ctx.store, call.target.account
    share = await call.run(lambda: store.restore_share(account, name, version.upper()))
    return reply(call, 201, etag_headers(share.etag, share.last_modified))


async def create_snapshot(call: Call) -> web.StreamResponse:
    """Snapshot Share: 201 with the snapshot's name in ``x-ms-snapshot``; metadata given on the request
    replaces the share's on the snapshot."""
    store = call.ctx.store
    account, name, metadata = call.target.account, call.share, parse_metadata(call.headers)
    snap = await call.run(lambda: store.create_snapshot(account, name, metadata))
    return reply(call, 201, {**etag_headers(snap.etag, snap.last_modified), "x-ms-snapshot": snap.snapshot})


async def set_share_metadata(call: Call) -> web.StreamResponse:
    metadata = parse_metadata(call.headers) or ()
    share = call.ctx.store.update_share(call.target.account, call.share, metadata=metadata,
                                        lease_id=lease_header(call.headers))
    return reply(call, 200, etag_headers(share.etag, share.last_modified))


async def set_share_properties(call: Call) -> web.StreamResponse:
    quota = int_header(call.headers, "x-ms-share-quota", 1, 102400)
    share = call.ctx.store.update_share(call.target.account, call.share, quota=quota,
                                        access_tier=_access_tier(call), lease_id=lease_header(call.headers))
    return reply(call, 200, etag_headers(share.etag, share.last_modified))


async def get_share_stats(call: Call) -> web.StreamResponse:
    used = call.ctx.store.share_usage(call.target.account, call.share, call.snapshot)
    return xml_reply(call, f"{XML_DECL}<ShareStats><ShareUsageBytes>{used}</ShareUsageBytes></ShareStats>")


async def get_share_acl(call: Call) -> web.StreamResponse:
    share = call.ctx.store.get_share(call.target.account, call.share, lease_id=lease_header(call.headers))
    identifiers = "".join(
        f"<SignedIdentifier><Id>{escape(p.id)}</Id><AccessPolicy>"
        + (f"<Start>{escape(p.start)}</Start>" if p.start else "")
        + (f"<Expiry>{escape(p.expiry)}</Expiry>" if p.expiry else "")
        + (f"<Permission>{escape(p.permission)}</Permission>" if p.permission else "")
        + "</AccessPolicy></SignedIdentifier>"
        for p in share.acl
    )
    response = xml_reply(call, f"{XML_DECL}<SignedIdentifiers>{identifiers}</SignedIdentifiers>")
    response.headers.update(etag_headers(share.etag, share.last_modified))
    return response


_ACL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?Z?)?$", re.ASCII)


async def set_share_acl(call: Call) -> web.StreamResponse:
    """Set Share ACL: at most 5 stored access policies (signed identifiers), ids of 1 to 64 characters,
    permissions from r, c, w, d, l; the policies sent replace the share's."""
    root = await read_xml(call, "SignedIdentifiers", empty_ok=True)
    policies: list[AccessPolicy] = []
    for item in root:
        if item.tag != "SignedIdentifier":
            raise invalid_xml(f"unknown element {item.tag}")
        ident = text_of(item, "Id")
        policy = item.find("AccessPolicy")
        start, expiry, permission = ("", "", "") if policy is None else (
            text_of(policy, "Start"), text_of(policy, "Expiry"), text_of(policy, "Permission"))
        if not 1 <= len(ident) <= 64 or any(p.id == ident for p in policies):
            raise invalid_xml("each signed identifier needs a unique Id of 1 to 64 characters")
        if any(t and not _ACL_TIME.match(t) for t in (start, expiry)) or not set(permission) <= set("rcwdl"):
            raise invalid_xml(f"the access policy of {ident} is not valid")
        policies.append(AccessPolicy(ident, start, expiry, permission))
    if len(policies) > 5:
        raise invalid_xml("a share has at most 5 signed identifiers")
    share = call.ctx.store.update_share(call.target.account, call.share, acl=tuple(policies),
                                        lease_id=lease_header(call.headers))
    return reply(call, 200, etag_headers(share.etag, share.last_modified))


_MAX_PERMISSION_BODY = 64 * 1024


async def create_permission(call: Call) -> web.StreamResponse:
    """Create Permission: JSON ``{"permission": ..., "format": "sddl" | "binary"}``; 201 with the key."""
    if (call.request.content_length or 0) > _MAX_PERMISSION_BODY:
        raise StorageError(413, "RequestBodyTooLarge")
    try:
        body = json.loads(await call.request.read())
        permission, kind = body["permission"], body.get("format")
        if not isinstance(permission, str) or not isinstance(kind, str | None):
            raise TypeError
    except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: nesting too deep to parse
        raise StorageError(400, "InvalidInput", 'The body must be JSON: {"permission": "<SDDL or base64>", '
                           '"format": "sddl" or "binary"}.') from None
    sddl = permission_text(permission, kind, "format")
    key = call.ctx.store.create_permission(call.target.account, call.share, sddl)
    return reply(call, 201, {"x-ms-file-permission-key": key})


async def get_permission(call: Call) -> web.StreamResponse:
    """Get Permission: the permission of ``x-ms-file-permission-key`` as SDDL, or as base64 of the binary
    descriptor when ``x-ms-file-permission-format: binary``."""
    key = required(call.headers, "x-ms-file-permission-key").strip()
    kind = call.headers.get("x-ms-file-permission-format", "sddl").strip().lower()
    if kind not in ("sddl", "binary"):
        raise header_error("x-ms-file-permission-format")
    sddl = call.ctx.store.get_permission(call.target.account, call.share, key)
    permission = sddl if kind == "sddl" else base64.b64encode(sddl_to_binary(sddl)).decode("ascii")
    body = json.dumps({"permission": permission, "format": "Sddl" if kind == "sddl" else "Binary"})
    return reply(call, 200, body=body.encode(), content_type="application/json")


# Standard (general-purpose v2) accounts, as the emulator's are: Premium is for premium accounts only.
_TIERS = {t.lower(): t for t in ("TransactionOptimized", "Hot", "Cool")}


def _access_tier(call: Call) -> str | None:
    raw = call.headers.get("x-ms-access-tier")
    if raw is None:
        return None
    tier = _TIERS.get(raw.strip().lower())
    if tier is None:
        raise header_error("x-ms-access-tier", message="A share on a standard account is "
                           "TransactionOptimized, Hot or Cool.")
    return tier
