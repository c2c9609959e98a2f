"""Service-level operations: List Shares, Get File Service Properties."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from keyless.emulator.files.model import Call
from keyless.emulator.files.replies import XML_DECL, service_endpoint, xml_reply
from keyless.emulator.files.urls import max_results
from keyless.emulator.files.xml_bodies import share_xml


async def list_shares(call: Call) -> web.StreamResponse:
    q = call.query
    limit = max_results(q)
    prefix = q.get("prefix", "")
    include = {p.strip().lower() for p in q.get("include", "").split(",") if p.strip()}
    marker = _decode_marker(q["marker"]) if q.get("marker") else None
    shares, next_marker = call.ctx.store.list_shares(call.target.account, prefix, marker, limit,
                                                     snapshots="snapshots" in include)
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
    """``name`` or ``name;snapshot`` (share names hold no ';'): where the previous page stopped."""
    name, _, snapshot = marker.partition(";")
    return name, snapshot


async def get_service_properties(call: Call) -> web.StreamResponse:
    body = (
        f"{XML_DECL}<StorageServiceProperties>"
        "<HourMetrics><Version>1.0</Version><Enabled>false</Enabled>"
        "<RetentionPolicy><Enabled>false</Enabled></RetentionPolicy></HourMetrics>"
        "<MinuteMetrics><Version>1.0</Version><Enabled>false</Enabled>"
        "<RetentionPolicy><Enabled>false</Enabled></RetentionPolicy></MinuteMetrics>"
        "<Cors /></StorageServiceProperties>"
    )
    return xml_reply(call, body)
