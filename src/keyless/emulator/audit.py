"""Audit log: Azure's ``StorageFileLogs`` for every Files request, plus token-issuance lines; never a secret.

Two layouts, both as Azure produces them, so ``keyless migrate report`` (and any tool written for Azure)
reads the emulator's log like a real export:

* ``audit.log`` (always): one JSON object per line with the column names and value vocabularies of the
  Log Analytics table ``StorageFileLogs``: ``TimeGenerated``, ``AccountName``, ``Location``, ``Protocol``,
  ``OperationName``, ``AuthenticationType`` (``AccountKey``, ``SAS``, ``OAuth``, ``Kerberos``,
  ``Anonymous``), ``StatusCode`` (a string, as the table types it), ``StatusText`` (``Success``,
  ``SASSuccess``, ``AnonymousSuccess`` or the error code), ``DurationMs``, ``ServerLatencyMs``, ``Uri``,
  ``CallerIpAddress`` (address and port), ``CorrelationId``, ``ClientRequestId``, ``UserAgentHeader``,
  ``RequesterObjectId``, ``RequesterTenantId``, ``RequesterAppId``, ``RequesterUpn``,
  ``RequesterAudience``, ``RequesterTokenIssuer``, ``AuthenticationHash``, ``ObjectKey``,
  ``RequestHeaderSize``, ``OperationVersion``, ``ServiceType``, ``TlsVersion``, ``Category``
  (``StorageRead`` / ``StorageWrite`` / ``StorageDelete``) and ``Type`` = ``StorageFileLogs``. Token
  issuance by the identity endpoints is logged in the same file with ``Type`` = ``TokenIssuance`` and
  the emulator's own field names, so nothing mistakes it for a storage request.
* the diagnostic-settings layout (when ``KEYLESS_EMULATOR_DIAGNOSTIC_LOGS=1`` is set for the emulator
  process): ``diagnostic-logs/insights-logs-storage{read,write,delete}/resourceId=/subscriptions/…/
  storageAccounts/<account>/fileServices/default/y=YYYY/m=MM/d=DD/h=HH/m=00/PT1H.json``, JSON lines with
  ``time``, ``resourceId``, ``category``, ``operationName``, ``statusCode``, ``statusText``,
  ``callerIpAddress``, ``identity.type``, ``identity.requester.objectId`` … and ``properties.*``.

Sources (Microsoft's public documentation):
  https://learn.microsoft.com/azure/azure-monitor/reference/tables/storagefilelogs (columns and types)
  https://learn.microsoft.com/azure/storage/common/monitor-storage-reference (diagnostic-settings schema:
    MicrosoftDocs/azure-docs articles/storage/common/monitor-storage-reference.md and
    includes/azure-storage-logs-properties-authentication.md: ``identity.tokenHash`` formats)
  https://learn.microsoft.com/azure/storage/common/shared-key-authorization-prevent (AuthenticationType
    ``AccountKey`` / ``SAS`` and the query Microsoft gives to find Shared Key callers)

Secrets: a bearer token is reduced to its SHA-256 (``AuthenticationHash``, as Azure logs it) and the claims
Azure logs (object id, tenant, app, UPN); a SAS ``sig=`` in a URI is replaced by ``sig=XXXXX`` as Azure's
logs do (under any spelling the service would read as ``sig``, such as ``%73ig=``). Fields whose name
says "secret" are refused outright.

Lines are appended with a single ``write`` on an ``O_APPEND`` descriptor, so concurrent writers never
interleave within a line and a crash loses at most the line being written.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, unquote_plus

import msgspec

from keyless.claims import decode_claims

if TYPE_CHECKING:
    from aiohttp import web

# Fields that must never reach the log even if a caller passes them by mistake.
_FORBIDDEN = frozenset({"token", "access_token", "authorization", "key", "account_key", "session_key",
                        "client_assertion", "signature"})

STORAGE_FILE_LOGS = "StorageFileLogs"
DIAGNOSTIC_ENV = "KEYLESS_EMULATOR_DIAGNOSTIC_LOGS"
DIAGNOSTIC_DIR = "diagnostic-logs"
# The emulator has no subscription; a fixed, obviously-local resource id keeps paths Azure-shaped.
EMULATOR_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
EMULATOR_RESOURCE_GROUP = "keyless-emulator"
EMULATOR_LOCATION = "local"

# The emulator's internal names for what the Files middleware hands over -> StorageFileLogs columns.
_COLUMN_OF = {
    "operation": "OperationName",
    "status": "StatusCode",
    "auth_type": "AuthenticationType",
    "object_id": "RequesterObjectId",
    "app_id": "RequesterAppId",
    "request_id": "CorrelationId",
    "client_request_id": "ClientRequestId",
    "version": "OperationVersion",
    "duration_ms": "DurationMs",
    "fault": "EmulatorFault",  # not an Azure column: which injected fault shaped this answer
}
# diagnostic-settings ``properties.*`` names -> StorageFileLogs columns
_PROPERTIES = (
    ("accountName", "AccountName"), ("userAgentHeader", "UserAgentHeader"),
    ("clientRequestId", "ClientRequestId"), ("serverLatencyMs", "ServerLatencyMs"),
    ("serviceType", "ServiceType"), ("objectKey", "ObjectKey"), ("requestHeaderSize", "RequestHeaderSize"),
    ("contentLengthHeader", "ContentLengthHeader"), ("tlsVersion", "TlsVersion"),
)


def _now() -> str:
    """UTC now as ``2026-01-02T03:04:05.123456Z``: the date and time of day are formatted once per second
    (every request logs a line), the microseconds on each call. The second and its text are one tuple,
    replaced whole, so a thread reading it while another moves it on never pairs one second with the
    other's text."""
    global _second_text
    micros = time.time_ns() // 1000
    second, fraction = divmod(micros, 1_000_000)
    cached = _second_text
    if cached[0] != second:
        cached = _second_text = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{fraction:06d}Z"


_second_text: tuple[int, str] = (-1, "")


def category_of(operation: str) -> str:
    """Diagnostic-settings category of an operation, as Azure files it (read, write or delete)."""
    if operation.startswith("Delete"):
        return "StorageDelete"
    if operation.startswith(("Get", "List", "Query")):
        return "StorageRead"
    return "StorageWrite"


def status_text(status: int, error_code: str | None, auth_type: str) -> str:
    """``StatusText``: success flavours per auth type, otherwise the error code (as since 2017-04-17)."""
    if 200 <= status < 400 and not error_code:
        return _SUCCESS_TEXT.get(auth_type, "Success")
    if error_code:
        return error_code
    return "ServerOtherError" if status >= 500 or status == 0 else "ClientOtherError"


# One compiled JSON encoder for every line: compact, UTF-8 as is, keys in the row's order; the same JSON
# values as json.dumps (only a float below 1e-4 is spelled 0.00001 instead of 1e-05), several times less
# CPU per line, and the line is written on every request.
_ENCODER = msgspec.json.Encoder()
_SUCCESS_TEXT = {"SAS": "SASSuccess", "DelegationSas": "SASSuccess", "Anonymous": "AnonymousSuccess"}


def _json_line(record: dict[str, Any]) -> bytes:
    """``record`` as one JSON line. Text a client sent as bytes that are not UTF-8 (a User-Agent, a Host,
    a raw path: aiohttp keeps such bytes as surrogate escapes) cannot be encoded as is; it is written
    as ``\\udcXX`` escapes instead, so a hostile request still gets its line, and its reply is no 500."""
    try:
        return _ENCODER.encode(record) + b"\n"
    except UnicodeEncodeError:
        return _ENCODER.encode(_escaped(record)) + b"\n"


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped(v) for v in value]
    return value


def redact_uri(uri: str) -> str:
    """``uri`` with the value of every query parameter that is the SAS signature replaced by ``XXXXX``.

    A parameter's name is percent-decoded (and ``+`` read as a space) before the service reads it, so
    ``%73ig=`` carries the signature as much as ``sig=`` does; the name is compared decoded, in any case."""
    base, sep, query = uri.partition("?")
    if not sep or ("%" not in query and "sig=" not in query.lower()):
        return uri  # the common case: nothing that could name the signature
    params = query.split("&")
    for i, param in enumerate(params):
        name, eq, _ = param.partition("=")
        if eq and unquote_plus(name).lower() == "sig":
            params[i] = f"{name}=XXXXX"
    return f"{base}?{'&'.join(params)}"


def _bearer_claims(header: str) -> tuple[str, dict[str, Any]]:
    """(SHA-256 of the token, its unverified claims): the token itself goes nowhere."""
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if not token:
        return "", {}
    digest = hashlib.sha256(token.encode()).hexdigest().upper()
    # A client sends one token for many requests: its claims are decoded once, kept by its hash.
    claims = _CLAIMS_BY_HASH.get(digest)
    if claims is None:
        if len(_CLAIMS_BY_HASH) >= _CLAIMS_KEPT:
            _CLAIMS_BY_HASH.clear()
        claims = _CLAIMS_BY_HASH[digest] = decode_claims(token)
    return digest, claims


_CLAIMS_KEPT = 256
_CLAIMS_BY_HASH: dict[str, dict[str, Any]] = {}


def _request_columns(now: str, request: web.Request, auth_type: str) -> dict[str, Any]:
    """A row's first columns: its time and type, then those only the HTTP request knows (who called,
    from where, with what, on which object)."""
    raw_path = request.raw_path
    path = raw_path.split("?", 1)[0]
    account_raw = path.split("/", 2)[1] if path.count("/") else ""
    account = (unquote(account_raw) if "%" in account_raw else account_raw) or None
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport else None
    ssl_object = transport.get_extra_info("ssl_object") if transport else None
    tls = ssl_object.version() if ssl_object is not None else None
    uri = f"{request.scheme}://{request.host}{raw_path}"
    raw_headers = request.raw_headers
    columns: dict[str, Any] = {
        "TimeGenerated": now,
        "Type": STORAGE_FILE_LOGS,
        "AccountName": account,
        "Location": EMULATOR_LOCATION,
        "Protocol": "HTTPS" if request.secure else "HTTP",
        "ServiceType": "file",
        "Uri": redact_uri(uri),
        "CallerIpAddress": f"{peer[0]}:{peer[1]}" if peer else None,
        "UserAgentHeader": request.headers.get("User-Agent"),
        "ObjectKey": (unquote(path) if "%" in path else path) if account else None,
        # name, ": ", value, CRLF per header: summed by C-level len over the flattened pairs
        "RequestHeaderSize": sum(map(len, chain.from_iterable(raw_headers))) + 4 * len(raw_headers)
        + len(raw_path) + 16,
        "ContentLengthHeader": request.content_length,
        "TlsVersion": tls.replace("TLSv", "TLS ") if tls else None,
    }
    if auth_type == "OAuth":
        digest, claims = _bearer_claims(request.headers.get("Authorization", ""))
        columns["AuthenticationHash"] = digest or None
        columns["RequesterTenantId"] = claims.get("tid")
        columns["RequesterUpn"] = claims.get("upn")
        columns["RequesterAudience"] = claims.get("aud")
        columns["RequesterTokenIssuer"] = claims.get("iss")
    return columns


def diagnostic_record(row: dict[str, Any]) -> dict[str, Any]:
    """One ``StorageFileLogs`` row in the diagnostic-settings (storage account / event hub) layout."""
    account = row.get("AccountName") or "unknown"
    requester = {k: row[c] for k, c in (("appId", "RequesterAppId"), ("audience", "RequesterAudience"),
                                         ("objectId", "RequesterObjectId"), ("tenantId", "RequesterTenantId"),
                                         ("tokenIssuer", "RequesterTokenIssuer"), ("upn", "RequesterUpn"))
                 if row.get(c)}
    identity: dict[str, Any] = {"type": row.get("AuthenticationType", "Anonymous")}
    if row.get("AuthenticationHash"):
        identity["tokenHash"] = row["AuthenticationHash"]
    if requester:
        identity["requester"] = requester
    status = row.get("StatusCode", "Unknown")
    properties = {k: row[c] for k, c in _PROPERTIES if row.get(c) is not None}
    return {
        "time": row["TimeGenerated"],
        "resourceId": resource_id(account),
        "category": row["Category"],
        "operationName": row.get("OperationName", "Unknown"),
        "operationVersion": row.get("OperationVersion"),
        "schemaVersion": "1.0",
        "statusCode": int(status) if str(status).isdigit() else status,
        "statusText": row.get("StatusText"),
        "durationMs": row.get("DurationMs"),
        "callerIpAddress": row.get("CallerIpAddress"),
        "correlationId": row.get("CorrelationId"),
        "identity": identity,
        "location": row.get("Location"),
        "properties": properties,
        "uri": row.get("Uri"),
        "protocol": row.get("Protocol"),
        "resourceType": "Microsoft.Storage/storageAccounts/fileServices",
    }


def resource_id(account: str) -> str:
    return (f"/subscriptions/{EMULATOR_SUBSCRIPTION}/resourceGroups/{EMULATOR_RESOURCE_GROUP}"
            f"/providers/Microsoft.Storage/storageAccounts/{account}/fileServices/default")


def diagnostic_path(root: Path, category: str, account: str, when: datetime) -> Path:
    """Where Azure's diagnostic settings put this hour's blob for ``category`` (read/write/delete)."""
    return (root / f"insights-logs-{category.lower()}" / f"resourceId={resource_id(account)}"
            / f"y={when:%Y}" / f"m={when:%m}" / f"d={when:%d}" / f"h={when:%H}" / "m=00" / "PT1H.json")


class AuditLog:
    def __init__(self, path: Path, *, diagnostic_settings: bool | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._lock = threading.Lock()
        if diagnostic_settings is None:
            diagnostic_settings = os.environ.get(DIAGNOSTIC_ENV, "").lower() in ("1", "true", "yes")
        self.diagnostic_root: Path | None = path.parent / DIAGNOSTIC_DIR if diagnostic_settings else None
        self._diagnostic_fds: dict[Path, int] = {}
        self._diagnostic_hour = -1

    def write(self, category: str, *, request: web.Request | None = None, **fields: Any) -> None:
        """Log one line. ``category`` is the table: ``StorageFileLogs`` or ``TokenIssuance``.

        For ``StorageFileLogs`` the middleware's fields (operation, status, auth_type, ...) become the
        table's columns, and ``request`` (when given) supplies caller address, user agent and the rest.
        """
        if not _FORBIDDEN.isdisjoint(map(str.lower, fields)):
            name = next(n for n in fields if n.lower() in _FORBIDDEN)
            raise ValueError(f"audit field {name!r} would record a secret; log an identifier instead")
        now = _now()
        if category == STORAGE_FILE_LOGS:
            record = self._storage_row(now, request, fields)
        else:
            record = {"TimeGenerated": now, "Type": category}
            record.update((k, v) for k, v in fields.items() if v is not None)
        self._append(record, diagnostic=category == STORAGE_FILE_LOGS)

    def files_request(self, request: web.Request, *, operation: str, status: int, error_code: str | None,
                      auth_type: str, object_id: str | None, app_id: str | None, request_id: str,
                      client_request_id: str | None, version: str | None, fault: str | None,
                      authentication_hash: str | None, duration_ms: float) -> None:
        """The ``StorageFileLogs`` line of one Files request: the same row, column for column and in the
        same order, as ``write("StorageFileLogs", request=..., ...)`` builds, assembled without the generic
        path's keyword dictionaries and name mapping because every Files request writes one."""
        auth_type = auth_type or "Anonymous"
        row = _request_columns(_now(), request, auth_type)
        row["OperationName"] = operation
        row["StatusCode"] = str(status) if status else "Unknown"
        row["AuthenticationType"] = auth_type
        if object_id is not None:
            row["RequesterObjectId"] = object_id
        if app_id is not None:
            row["RequesterAppId"] = app_id
        row["CorrelationId"] = request_id
        if client_request_id is not None:
            row["ClientRequestId"] = client_request_id
        if version is not None:
            row["OperationVersion"] = version
        if fault is not None:
            row["EmulatorFault"] = fault
        if authentication_hash is not None:
            row["AuthenticationHash"] = authentication_hash
        row["DurationMs"] = duration_ms
        row["Category"] = category_of(operation)
        row["StatusText"] = status_text(status, error_code, auth_type)
        row["ServerLatencyMs"] = duration_ms
        row["SchemaVersion"] = "1.0"
        self._append(row, diagnostic=True)

    def _append(self, record: dict[str, Any], *, diagnostic: bool) -> None:
        """Append ``record`` as one line (and, for a ``StorageFileLogs`` row with diagnostic settings on,
        to the diagnostic layout too)."""
        line = _json_line(record)
        with self._lock:
            if self._fd < 0:
                return  # closed at shutdown: a straggling request is not worth a crash
            os.write(self._fd, line)
            if diagnostic and self.diagnostic_root is not None:
                self._write_diagnostic(record)

    def _storage_row(self, now: str, request: web.Request | None, fields: dict[str, Any]) -> dict[str, Any]:
        auth_type = str(fields.get("auth_type") or "Anonymous")
        status = int(fields.get("status") or 0)
        operation = str(fields.get("operation") or "Unknown")
        row: dict[str, Any] = ({"TimeGenerated": now, "Type": STORAGE_FILE_LOGS} if request is None
                               else _request_columns(now, request, auth_type))
        for name, value in fields.items():
            if name in ("method", "error_code", "uri") or value is None:
                continue  # method and error code are folded into other columns; the URI comes whole below
            row[_COLUMN_OF.get(name, name)] = value
        if request is None and fields.get("uri"):
            row["Uri"] = redact_uri(str(fields["uri"]))
        row["AuthenticationType"] = auth_type
        row["OperationName"] = operation
        row["Category"] = category_of(operation)
        row["StatusCode"] = str(status) if status else "Unknown"
        row["StatusText"] = status_text(status, fields.get("error_code"), auth_type)
        if "DurationMs" in row:
            row["ServerLatencyMs"] = row["DurationMs"]
        row["SchemaVersion"] = "1.0"
        return row

    def _write_diagnostic(self, row: dict[str, Any]) -> None:
        assert self.diagnostic_root is not None
        when = datetime.fromisoformat(row["TimeGenerated"].replace("Z", "+00:00"))
        account = row.get("AccountName") or "unknown"
        target = diagnostic_path(self.diagnostic_root, row["Category"], account, when)
        fd = self._diagnostic_fds.get(target)
        if fd is None:
            if when.hour != self._diagnostic_hour:  # only the current hour's blobs stay open
                for old in self._diagnostic_fds.values():
                    os.close(old)
                self._diagnostic_fds.clear()
                self._diagnostic_hour = when.hour
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._diagnostic_fds[target] = fd
        os.write(fd, _json_line(diagnostic_record(row)))

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            for fd in self._diagnostic_fds.values():
                os.close(fd)
            self._diagnostic_fds.clear()
