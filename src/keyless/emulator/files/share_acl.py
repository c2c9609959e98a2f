"""Set and Get Share ACL: a share's stored access policies (signed identifiers), which a service SAS names
with ``si=`` (REST "Set Share ACL", "Get Share ACL", "Define a stored access policy").

At most five identifiers per share, each an ``Id`` of at most 64 characters with an optional
``AccessPolicy`` (``Start``, ``Expiry``, ``Permission``). They are kept in ``DIR/share-acls.json`` keyed by
the share's root id, so a share deleted and created again under the same name does not inherit the old
policies (nor the SAS that name them). Changing or removing a policy changes or revokes every SAS that
names it, at once.
"""

from __future__ import annotations

import json
import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from keyless.emulator.errors import StorageError
from keyless.emulator.files.model import Call
from keyless.emulator.files.replies import XML_DECL, etag_headers, reply, xml_reply
from keyless.fsutil import atomic_write

if TYPE_CHECKING:
    from keyless.emulator.context import Emulator

FILE_NAME = "share-acls.json"
MAX_IDENTIFIERS = 5
MAX_ID_LENGTH = 64
MAX_BODY = 64 * 1024
_PERMISSIONS = re.compile(r"^[rcwdl]*$")
_lock = threading.Lock()


@dataclass(frozen=True)
class AccessPolicy:
    id: str
    start: str = ""
    expiry: str = ""
    permission: str = ""


def _path(ctx: Emulator) -> Path:
    return ctx.data_dir / FILE_NAME


def _load(ctx: Emulator) -> dict[str, Any]:
    try:
        doc = json.loads(_path(ctx).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (ValueError, UnicodeDecodeError):
        raise StorageError(500, "InternalError") from None
    return doc if isinstance(doc, dict) else {}


def policies(ctx: Emulator, account: str, share: str) -> list[AccessPolicy]:
    """The share's stored access policies (none when the share does not exist)."""
    try:
        record = ctx.store.get_share(account, share)
    except StorageError:
        return []
    with _lock:
        rows = _load(ctx).get(record.root_id, [])
    return [AccessPolicy(**row) for row in rows if isinstance(row, dict)]


def find(ctx: Emulator, account: str, share: str, identifier: str) -> AccessPolicy | None:
    return next((p for p in policies(ctx, account, share) if p.id == identifier), None)


def _bad_xml() -> StorageError:
    return StorageError(400, "InvalidXmlDocument", "XML specified is not syntactically valid.")


def parse_identifiers(body: bytes) -> list[AccessPolicy]:
    if b"<!DOCTYPE" in body.upper():
        raise _bad_xml()
    if not body.strip():
        return []
    try:
        # Bounded (MAX_BODY), no DOCTYPE, and expat >= 2.4 limits entity expansion.
        root = ET.fromstring(body)  # noqa: S314
    except ET.ParseError:
        raise _bad_xml() from None
    if root.tag != "SignedIdentifiers":
        raise _bad_xml()
    out: list[AccessPolicy] = []
    for item in root:
        if item.tag != "SignedIdentifier":
            raise _bad_xml()
        ident = (item.findtext("Id") or "").strip()
        if not ident or len(ident) > MAX_ID_LENGTH:
            raise StorageError(400, "InvalidXmlNodeValue",
                               "The value for one of the XML nodes is not in the correct format.",
                               extra={"XmlNodeName": "Id", "XmlNodeValue": ident[:64]})
        policy = item.find("AccessPolicy")
        fields = {"start": "", "expiry": "", "permission": ""}
        if policy is not None:
            for tag, name in (("Start", "start"), ("Expiry", "expiry"), ("Permission", "permission")):
                fields[name] = (policy.findtext(tag) or "").strip()
        if not _PERMISSIONS.match(fields["permission"]):
            raise StorageError(400, "InvalidXmlNodeValue",
                               "The value for one of the XML nodes is not in the correct format.",
                               extra={"XmlNodeName": "Permission", "XmlNodeValue": fields["permission"][:64]})
        out.append(AccessPolicy(ident, **fields))
    if len(out) > MAX_IDENTIFIERS:
        raise _bad_xml()
    return out


async def set_share_acl(call: Call) -> web.StreamResponse:
    body = await call.request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise StorageError(413, "RequestBodyTooLarge")
    identifiers = parse_identifiers(body)
    record = call.ctx.store.get_share(call.target.account, call.share)
    with _lock:
        doc = _load(call.ctx)
        doc[record.root_id] = [p.__dict__ for p in identifiers]
        atomic_write(_path(call.ctx), json.dumps(doc, indent=2).encode("utf-8"))
    return reply(call, 200, etag_headers(record.etag, record.last_modified))


async def get_share_acl(call: Call) -> web.StreamResponse:
    record = call.ctx.store.get_share(call.target.account, call.share)
    items = []
    for p in policies(call.ctx, call.target.account, call.share):
        policy = ""
        if p.start or p.expiry or p.permission:
            policy = ("<AccessPolicy>" + (f"<Start>{escape(p.start)}</Start>" if p.start else "")
                      + (f"<Expiry>{escape(p.expiry)}</Expiry>" if p.expiry else "")
                      + (f"<Permission>{escape(p.permission)}</Permission>" if p.permission else "")
                      + "</AccessPolicy>")
        items.append(f"<SignedIdentifier><Id>{escape(p.id)}</Id>{policy}</SignedIdentifier>")
    body = f"{XML_DECL}<SignedIdentifiers>{''.join(items)}</SignedIdentifiers>"
    response = xml_reply(call, body)
    response.headers.update(etag_headers(record.etag, record.last_modified))
    return response
