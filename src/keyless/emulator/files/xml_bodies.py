"""XML bodies of the list operations: shares of an account, entries of a directory.

Names XML cannot carry are percent-encoded with ``Encoded="true"``, as the service does; list markers are
opaque to the client (base64 of the store's name key).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import xml.etree.ElementTree as ET
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

from keyless.emulator.errors import StorageError
from keyless.emulator.files.model import Call
from keyless.emulator.files.replies import XML_DECL, http_date, service_endpoint, share_lease_headers
from keyless.emulator.storage import Listing, Node, ShareRecord


def share_xml(share: ShareRecord, with_metadata: bool, now: float) -> str:
    lease = share_lease_headers(share, now)
    duration = lease.get("x-ms-lease-duration")
    props = (
        f"<Properties><Last-Modified>{http_date(share.last_modified)}</Last-Modified>"
        f"<Etag>{escape(share.etag)}</Etag><Quota>{share.quota}</Quota>"
        f"<AccessTier>{share.access_tier}</AccessTier>"
        + (f"<AccessTierChangeTime>{http_date(share.tier_changed)}</AccessTierChangeTime>"
           if share.tier_changed is not None else "")
        + f"<LeaseStatus>{lease['x-ms-lease-status']}</LeaseStatus>"
        f"<LeaseState>{lease['x-ms-lease-state']}</LeaseState>"
        + (f"<LeaseDuration>{duration}</LeaseDuration>" if duration else "")
        + "<EnabledProtocols>SMB</EnabledProtocols>"
        + _deleted_properties(share, now)
        + "</Properties>"
    )
    meta = ""
    if with_metadata:
        meta = "<Metadata>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in share.metadata) + "</Metadata>"
    snapshot = f"<Snapshot>{share.snapshot}</Snapshot>" if share.snapshot else ""
    deleted = (f"<Deleted>true</Deleted><Version>{share.deleted_version}</Version>"
               if share.deleted_version else "")
    return f"<Share><Name>{escape(share.name)}</Name>{snapshot}{deleted}{props}{meta}</Share>"


def _deleted_properties(share: ShareRecord, now: float) -> str:
    """A soft-deleted share's <DeletedTime> and <RemainingRetentionDays>, where the service puts them:
    last in <Properties>, as in azure-sdk-for-python's recording
    tests/recordings/test_share.test_restore_to_existing_share.yaml. The days left count calendar days
    (UTC): the retention days less the days begun since the deletion day. That is what the recording
    shows under a one-day policy: 1 for shares deleted earlier that day, 0 for one deleted 20 hours
    before, on the previous day."""
    if not share.deleted_version or share.deleted_time is None:
        return ""
    elapsed = (_utc_date(now) - _utc_date(share.deleted_time)).days
    remaining = max(0, (share.retention_days or 0) - elapsed)
    return (f"<DeletedTime>{http_date(share.deleted_time)}</DeletedTime>"
            f"<RemainingRetentionDays>{remaining}</RemainingRetentionDays>")


def _utc_date(when: float) -> datetime.date:
    return datetime.datetime.fromtimestamp(when, datetime.UTC).date()


def encode_marker(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii").rstrip("=")


def decode_marker(marker: str) -> str:
    try:
        return base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        raise StorageError(400, "InvalidQueryParameterValue", "The specified marker is invalid.",
                           extra={"QueryParameterName": "marker"}) from None


def listing_xml(call: Call, listing: Listing, prefix: str, limit: int, include: set[str],
                extended: bool) -> str:
    q = call.query
    path = "/".join(call.target.path)
    parts = [
        XML_DECL,
        f"<EnumerationResults ServiceEndpoint={quoteattr(service_endpoint(call))} "
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
    next_marker = encode_marker(listing.next_marker) if listing.next_marker is not None else ""
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
        parts.append(f"<FileId>{node.file_id}</FileId>")
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


_MAX_XML_BODY = 64 * 1024


async def read_xml(call: Call, root: str, *, empty_ok: bool = False) -> ET.Element:
    """The request's XML body (at most 64 KiB), whose root must be ``root``; 400 InvalidXmlDocument when
    it is not well-formed or declares a DTD (no entity expansion is ever done). ``empty_ok``: no body
    reads as an empty ``root`` (Set Share ACL without a body clears the ACL)."""
    if (call.request.content_length or 0) > _MAX_XML_BODY:
        raise StorageError(413, "RequestBodyTooLarge")
    raw = await call.request.read()
    if len(raw) > _MAX_XML_BODY:
        raise StorageError(413, "RequestBodyTooLarge")
    if empty_ok and not raw.strip():
        return ET.Element(root)
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise invalid_xml("a DTD is not allowed")
    try:
        element = ET.fromstring(raw)  # noqa: S314 - bounded, and DTDs are refused above
    except ET.ParseError as err:
        raise invalid_xml(str(err)) from None
    if element.tag != root:
        raise invalid_xml(f"the root element must be {root}")
    return element


def invalid_xml(reason: str) -> StorageError:
    return StorageError(400, "InvalidXmlDocument", extra={"Reason": reason})


def text_of(element: ET.Element, tag: str) -> str:
    child = element.find(tag)
    return "" if child is None or child.text is None else child.text.strip()
