"""Service-level operations: List Shares, Get / Set File Service Properties."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from keyless.emulator.errors import StorageError
from keyless.emulator.files.model import Call
from keyless.emulator.files.replies import XML_DECL, reply, service_endpoint, xml_reply
from keyless.emulator.files.urls import max_results
from keyless.emulator.files.xml_bodies import invalid_xml, read_xml, share_xml, text_of


async def list_shares(call: Call) -> web.StreamResponse:
    q = call.query
    limit = max_results(q)
    prefix = q.get("prefix", "")
    include = {p.strip().lower() for p in q.get("include", "").split(",") if p.strip()}
    marker = _decode_marker(q["marker"]) if q.get("marker") else None
    # include=deleted (version 2019-12-12 and later): soft-deleted shares too, each with <Deleted>,
    # <Version>, <DeletedTime> and <RemainingRetentionDays>.
    shares, next_marker = call.ctx.store.list_shares(call.target.account, prefix, marker, limit,
                                                     snapshots="snapshots" in include,
                                                     deleted="deleted" in include)
    parts = [XML_DECL, f"<EnumerationResults ServiceEndpoint={quoteattr(service_endpoint(call))}>"]
    if "prefix" in q:
        parts.append(f"<Prefix>{escape(prefix)}</Prefix>")
    if "marker" in q:
        parts.append(f"<Marker>{escape(q['marker'])}</Marker>")
    if "maxresults" in q:
        parts.append(f"<MaxResults>{limit}</MaxResults>")
    parts.append("<Shares>")
    for share in shares:
        parts.append(share_xml(share, "metadata" in include, call.ctx.clock.now()))
    nxt = "" if next_marker is None else ";".join(p for p in next_marker if p)
    parts.append(f"</Shares><NextMarker>{escape(nxt)}</NextMarker></EnumerationResults>")
    return xml_reply(call, "".join(parts))


def _decode_marker(marker: str) -> tuple[str, str]:
    """``name`` or ``name;key`` (share names hold no ';'; the key is a snapshot or a deleted version,
    see ``storage.metadata.list_key``): where the previous page stopped."""
    name, _, snapshot = marker.partition(";")
    return name, snapshot


# The top-level elements of StorageServiceProperties, in the order the service lists them, with what an
# account has before any Set File Service Properties (metrics off, no CORS rules; protocol settings and
# share soft delete appear once set).
_ELEMENTS = ("HourMetrics", "MinuteMetrics", "Cors", "ProtocolSettings", "ShareDeleteRetentionPolicy")
_DEFAULTS = {
    "HourMetrics": "<HourMetrics><Version>1.0</Version><Enabled>false</Enabled>"
                   "<RetentionPolicy><Enabled>false</Enabled></RetentionPolicy></HourMetrics>",
    "MinuteMetrics": "<MinuteMetrics><Version>1.0</Version><Enabled>false</Enabled>"
                     "<RetentionPolicy><Enabled>false</Enabled></RetentionPolicy></MinuteMetrics>",
    "Cors": "<Cors />",
}
_CORS_METHODS = frozenset({"DELETE", "GET", "HEAD", "MERGE", "POST", "OPTIONS", "PUT", "PATCH"})


async def get_service_properties(call: Call) -> web.StreamResponse:
    stored = call.ctx.store.service_properties(call.target.account)
    parts = [stored.get(tag, _DEFAULTS.get(tag, "")) for tag in _ELEMENTS]
    return xml_reply(call, f"{XML_DECL}<StorageServiceProperties>{''.join(parts)}</StorageServiceProperties>")


def share_retention_days(call: Call) -> int | None:
    """The account's share soft-delete retention in days, or None while ShareDeleteRetentionPolicy is
    not set or not enabled (Set File Service Properties; Delete Share is then permanent)."""
    stored = call.ctx.store.service_properties(call.target.account).get("ShareDeleteRetentionPolicy")
    if stored is None:
        return None
    policy = ET.fromstring(stored)  # noqa: S314 - our own XML, re-serialised from a validated element
    if text_of(policy, "Enabled") != "true":
        return None
    return int(text_of(policy, "Days"))


async def set_service_properties(call: Call) -> web.StreamResponse:
    """Set File Service Properties: the elements sent replace the stored ones, the rest keep theirs."""
    root = await read_xml(call, "StorageServiceProperties")
    elements: dict[str, str] = {}
    for child in root:
        if child.tag not in _ELEMENTS:
            raise invalid_xml(f"unknown element {child.tag}")
        _validate(child)
        elements[child.tag] = ET.tostring(child, encoding="unicode")
    call.ctx.store.set_service_properties(call.target.account, elements)
    return reply(call, 202)


def _node_value(name: str) -> StorageError:
    return StorageError(400, "InvalidXmlNodeValue", "The value for one of the XML nodes is not in the "
                        "correct format.", extra={"XmlNodeName": name})


def _validate(element: ET.Element) -> None:
    """The service's limits: CORS at most 5 rules with known methods and a numeric max age, retention
    between 1 and 365 days when enabled, booleans spelled true / false."""
    for node in element.iter("Enabled"):
        if (node.text or "").strip() not in ("true", "false"):
            raise _node_value("Enabled")
    if element.tag == "Cors":
        rules = element.findall("CorsRule")
        if len(rules) > 5:
            raise _node_value("CorsRule")
        for rule in rules:
            methods = {m.strip().upper() for m in text_of(rule, "AllowedMethods").split(",") if m.strip()}
            if not methods or not methods <= _CORS_METHODS:
                raise _node_value("AllowedMethods")
            if not text_of(rule, "AllowedOrigins"):
                raise _node_value("AllowedOrigins")
            age = text_of(rule, "MaxAgeInSeconds")
            if not (age.isascii() and age.isdigit()):
                raise _node_value("MaxAgeInSeconds")
    policy = element if element.tag == "ShareDeleteRetentionPolicy" else element.find("RetentionPolicy")
    if policy is not None and text_of(policy, "Enabled") == "true":
        days = text_of(policy, "Days")
        if not (days.isascii() and days.isdigit() and 1 <= int(days) <= 365):
            raise _node_value("Days")
