"""One ``StorageFileLogs`` record, in either of its published shapes, reduced to what a report needs.

Column names and vocabularies follow Microsoft's documentation:
  https://learn.microsoft.com/azure/azure-monitor/reference/tables/storagefilelogs
  https://learn.microsoft.com/azure/storage/common/monitor-storage-reference (diagnostic-settings schema)
  MicrosoftDocs/azure-docs includes/azure-storage-logs-properties-authentication.md (``identity.type`` is
  written ``Account Key`` / ``SAS Key`` there and ``AccountKey`` / ``SAS`` in the table: both are read;
  ``tokenHash`` is ``key1(<hash>)`` for Shared Key and ``key1(<hash>),SasSignature(<hash>)`` for a SAS
  signed with an account key).

Reading files of them (formats, streaming, malformed lines) is ``keyless.migrate.logs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec

MAX_EXAMPLES = 20


# What a report needs of one request, as a plain tuple (built once per record, so kept cheap):
# (account, share, AuthenticationType, SAS-by-delegation flag, caller host, user agent, operation,
#  requester object id, tenant id, app id, UPN). Requests with equal keys are counted together.
Key = tuple[str, str, str, bool, str, str, str, str, str, str, str]
ACCOUNT: Final = 0
SHARE: Final = 1
AUTH: Final = 2
DELEGATED: Final = 3
IP: Final = 4
AGENT: Final = 5
OPERATION: Final = 6
OBJECT_ID: Final = 7
TENANT: Final = 8
APP: Final = 9
UPN: Final = 10
Request = tuple[datetime, Key]


@dataclass
class ReadStats:
    files: int = 0
    records: int = 0
    skipped: int = 0  # well-formed lines that are not storage requests (token issuance, other tables)
    malformed: int = 0
    examples: list[str] = field(default_factory=list)  # "file:line: reason", the first few
    unreadable: list[str] = field(default_factory=list)  # "file: reason"

    def bad(self, where: str, reason: str) -> None:
        self.malformed += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{where}: {reason}")

    def merge(self, other: ReadStats) -> None:
        self.files += other.files
        self.records += other.records
        self.skipped += other.skipped
        self.malformed += other.malformed
        self.examples.extend(other.examples[:MAX_EXAMPLES - len(self.examples)])
        self.unreadable.extend(other.unreadable)


class Malformed(ValueError):
    """A record that looks like a log row but lacks what a report needs."""


# --- vocabularies ----------------------------------------------------------------------------------------

_AUTH_TYPES = {
    "accountkey": "AccountKey", "account key": "AccountKey",
    "sharedkey": "AccountKey", "shared key": "AccountKey",
    "sas": "SAS", "sas key": "SAS", "saskey": "SAS",
    "delegationsas": "DelegationSas", "userdelegationsas": "DelegationSas",
    "user delegation sas": "DelegationSas",
    "oauth": "OAuth", "kerberos": "Kerberos", "anonymous": "Anonymous", "anonymouspreflight": "Anonymous",
}


REQUEST_TABLES = frozenset({"StorageFileLogs", "StorageBlobLogs", "StorageQueueLogs", "StorageTableLogs"})
# attribute -> JSON key: the table's PascalCase columns, and the diagnostic layout's camelCase ``d_`` fields
ROW_NAMES = {
    "time_generated": "TimeGenerated", "type": "Type", "account_name": "AccountName",
    "authentication_type": "AuthenticationType", "authentication_hash": "AuthenticationHash",
    "caller_ip_address": "CallerIpAddress", "user_agent_header": "UserAgentHeader",
    "operation_name": "OperationName", "status_code": "StatusCode",
    "requester_object_id": "RequesterObjectId",
    "requester_tenant_id": "RequesterTenantId", "requester_app_id": "RequesterAppId",
    "requester_upn": "RequesterUpn", "object_key": "ObjectKey", "uri": "Uri",
    "d_time": "time", "d_resource_id": "resourceId", "d_operation_name": "operationName",
    "d_status_code": "statusCode", "d_caller_ip_address": "callerIpAddress", "d_uri": "uri",
    "d_identity": "identity", "d_properties": "properties",
}


def canonical_auth(value: str) -> str:
    return _AUTH_TYPES.get(value.strip().lower(), value.strip())


_SLOW_FORMATS = ("%Y/%m/%d %H:%M:%S", "%m/%d/%Y, %I:%M:%S %p", "%m/%d/%Y %I:%M:%S %p",
                 "%m/%d/%Y, %H:%M:%S", "%m/%d/%Y %H:%M:%S")


def parse_time(value: Any) -> datetime:
    """ISO 8601 (7 fraction digits too), ``2018/11/08 21:09:36.69`` or ``12/1/2026, 9:07:56.123 PM``."""
    if type(value) is str:
        try:  # the common case first: an ISO time ending in Z is already in UTC
            parsed = _fromisoformat(value)
            if parsed.tzinfo is UTC:
                return parsed
        except ValueError:
            pass
    text = str(value).strip()
    if not text:
        raise Malformed("no time")
    try:
        parsed = _fromisoformat(text)
    except ValueError:
        parsed = _parse_time_slow(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


_fromisoformat = datetime.fromisoformat


def _parse_time_slow(text: str) -> datetime:
    if "/" in text[:5] or "," in text:
        head, _, frac = text.partition(".")
        suffix = ""
        if frac and " " in frac:  # "12/1/2026, 9:07:56.123 PM"
            frac, _, suffix = frac.partition(" ")
        for fmt in _SLOW_FORMATS:
            try:
                parsed = datetime.strptime(f"{head} {suffix}".strip() if suffix else head, fmt)
            except ValueError:
                continue
            micro = int((frac + "000000")[:6]) if frac.isdigit() else 0
            return parsed.replace(microsecond=micro)
    raise Malformed(f"unrecognised time {text[:40]!r}")


def caller_host(address: str) -> str:
    """``CallerIpAddress`` without the port: ``10.1.2.3:50112`` -> ``10.1.2.3``, ``[::1]:443`` -> ``::1``."""
    address = address.strip()
    if address.startswith("["):
        return address[1:].partition("]")[0]
    if address.count(":") == 1:
        return address.partition(":")[0]
    return address


def share_of(object_key: str, uri: str, account: str) -> str:
    """The share a request touched: from ``ObjectKey`` (``/account/share/path``) or else the URI."""
    if object_key:
        parts = object_key.strip('"').split("/")
        if len(parts) > 2 and parts[1] == account:
            return parts[2]
        if len(parts) > 1 and parts[1] != account:
            return parts[1]
        return ""
    if uri:
        path = urlsplit(uri).path.split("/")[1:]
        if path and path[0] == account:  # the emulator's path-style URLs: /account/share/...
            path = path[1:]
        return path[0] if path and path[0] else ""
    return ""


# --- one object -> Request -------------------------------------------------------------------------------


class _Requester(msgspec.Struct, rename="camel"):
    app_id: Any = None
    object_id: Any = None
    tenant_id: Any = None
    upn: Any = None


class _Identity(msgspec.Struct, rename="camel"):
    type: Any = None
    token_hash: Any = None
    requester: _Requester | None = None


class _Properties(msgspec.Struct, rename="camel"):
    account_name: Any = None
    user_agent_header: Any = None
    object_key: Any = None
    request_url: Any = None


class Row(msgspec.Struct, rename=ROW_NAMES):
    """The fields a report needs, in either layout; everything else in a line is never materialised."""

    # Log Analytics columns
    time_generated: Any = None
    type: str | None = None
    account_name: str | None = None
    authentication_type: str | None = None
    authentication_hash: str | None = None
    caller_ip_address: str | None = None
    user_agent_header: str | None = None
    operation_name: str | None = None
    status_code: Any = None
    requester_object_id: str | None = None
    requester_tenant_id: str | None = None
    requester_app_id: str | None = None
    requester_upn: str | None = None
    object_key: str | None = None
    uri: str | None = None
    # diagnostic-settings fields
    d_time: Any = None
    d_resource_id: str | None = None
    d_operation_name: str | None = None
    d_status_code: Any = None
    d_caller_ip_address: str | None = None
    d_uri: str | None = None
    d_identity: _Identity | None = None
    d_properties: _Properties | None = None


ROW_DECODER = msgspec.json.Decoder(Row)


def _s(value: Any) -> str:
    if type(value) is str:
        return value
    return "" if value is None else str(value)


def from_row(row: dict[str, Any]) -> Request | None:
    """A Log Analytics row or a diagnostic-settings record (as a dict); None when it is not a request."""
    try:
        parsed = msgspec.convert(row, Row, strict=False)
    except msgspec.ValidationError as err:
        raise Malformed(str(err)) from None
    return from_struct(parsed)


def from_struct(row: Row) -> Request | None:
    """The hot path: one call per record, so string fields are used as decoded, without helpers."""
    if row.d_identity is not None or row.d_operation_name is not None:
        return _from_diagnostic(row)
    kind = row.type
    if kind and kind not in REQUEST_TABLES:
        return None
    auth = row.authentication_type
    if not auth:
        if not row.time_generated:
            return None
        raise Malformed("no AuthenticationType")
    auth = _AUTH_TYPES.get(auth.lower(), auth)
    account = row.account_name or ""
    agent = row.user_agent_header or ""
    ip = row.caller_ip_address or ""
    host = _HOSTS.get(ip)
    if host is None:
        host = _remember_host(ip)
    return parse_time(row.time_generated), (
        account,
        share_of(row.object_key or "", row.uri or "", account),
        auth,
        auth == "SAS" and "delegation" in (row.authentication_hash or "").lower(),
        host,
        agent.strip('"') if agent[:1] == '"' else agent,
        row.operation_name or "",
        row.requester_object_id or "",
        row.requester_tenant_id or "",
        row.requester_app_id or "",
        row.requester_upn or "",
    )


_HOSTS: dict[str, str] = {}


def _remember_host(address: str) -> str:
    """``caller_host`` memoised: a connection's address:port repeats for every request on it."""
    if len(_HOSTS) > 100_000:
        _HOSTS.clear()
    host = _HOSTS[address] = caller_host(address)
    return host


def _from_diagnostic(row: Row) -> Request:
    identity = row.d_identity or _Identity()
    props = row.d_properties or _Properties()
    requester = identity.requester or _Requester()
    auth = _s(identity.type)
    if not auth:
        raise Malformed("no identity.type")
    auth = canonical_auth(auth)
    uri = _s(row.d_uri) or _s(props.request_url)
    account = _s(props.account_name) or _account_from_resource(_s(row.d_resource_id))
    return parse_time(row.d_time), (
        account,
        share_of(_s(props.object_key), uri, account),
        auth,
        auth == "SAS" and "delegation" in _s(identity.token_hash).lower(),
        caller_host(_s(row.d_caller_ip_address)),
        _s(props.user_agent_header).strip('"'),
        _s(row.d_operation_name),
        _s(requester.object_id),
        _s(requester.tenant_id),
        _s(requester.app_id),
        _s(requester.upn),
    )


def _account_from_resource(resource_id: str) -> str:
    parts = resource_id.split("/")
    lowered = [p.lower() for p in parts]
    if "storageaccounts" in lowered:
        index = lowered.index("storageaccounts") + 1
        if index < len(parts):
            return parts[index]
    return ""
