"""Read ``StorageFileLogs`` as people export it, one normalised request at a time, in bounded memory.

Accepted inputs (detected per file from its first bytes; ``.gz`` files are read through gzip):

* JSON lines, each object either a Log Analytics row (``TimeGenerated``, ``AuthenticationType``,
  ``CallerIpAddress``, ``UserAgentHeader``, ``RequesterObjectId``, ...) or a diagnostic-settings record
  (``time``, ``category``, ``operationName``, ``callerIpAddress``, ``identity.type``,
  ``identity.requester.objectId``, ``properties.userAgentHeader``, ...): the ``PT1H.json`` blobs under
  ``insights-logs-storageread|storagewrite|storagedelete``, and the emulator's ``audit.log``.
* a JSON array of row objects (``az monitor log-analytics query`` output, the portal's JSON export),
  streamed element by element; and the query API's ``{"tables": [{"columns": [...], "rows": [...]}]}``.
* CSV with a header row (the portal's "Export to CSV"; a ``TimeGenerated [UTC]`` header is understood).

Column names and vocabularies follow Microsoft's documentation:
  https://learn.microsoft.com/azure/azure-monitor/reference/tables/storagefilelogs
  https://learn.microsoft.com/azure/storage/common/monitor-storage-reference (diagnostic-settings schema)
  MicrosoftDocs/azure-docs includes/azure-storage-logs-properties-authentication.md (``identity.type`` is
  written ``Account Key`` / ``SAS Key`` there and ``AccountKey`` / ``SAS`` in the table: both are read;
  ``tokenHash`` is ``key1(<hash>)`` for Shared Key and ``key1(<hash>),SasSignature(<hash>)`` for a SAS
  signed with an account key).

A line that is not a request record (the emulator's ``TokenIssuance`` lines, other tables) is counted as
skipped; a line that cannot be read is counted as malformed with its place, and reading goes on.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

CHUNK = 1 << 20
# One JSON array element larger than this is not a log row: the file is abandoned as malformed there.
MAX_ELEMENT = 16 << 20
MAX_EXAMPLES = 20


@dataclass(slots=True)
class Request:
    """One storage request, whatever file shape it came from."""

    time: datetime
    account: str
    share: str
    auth_type: str  # canonical: AccountKey, SAS, DelegationSas, OAuth, Kerberos, Anonymous, or as logged
    auth_hash: str
    caller_ip: str
    user_agent: str
    operation: str
    status: str
    object_id: str
    tenant_id: str
    app_id: str
    upn: str


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


def canonical_auth(value: str) -> str:
    return _AUTH_TYPES.get(value.strip().lower(), value.strip())


_SLOW_FORMATS = ("%Y/%m/%d %H:%M:%S", "%m/%d/%Y, %I:%M:%S %p", "%m/%d/%Y %I:%M:%S %p",
                 "%m/%d/%Y, %H:%M:%S", "%m/%d/%Y %H:%M:%S")


def parse_time(value: Any) -> datetime:
    """ISO 8601 (7 fraction digits too), ``2018/11/08 21:09:36.69`` or ``12/1/2026, 9:07:56.123 PM``."""
    text = str(value).strip()
    if not text:
        raise Malformed("no time")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = _parse_time_slow(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


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


def from_row(row: dict[str, Any]) -> Request | None:
    """A Log Analytics row or a diagnostic-settings record; None when it is not a storage request."""
    if "identity" in row or "operationName" in row:
        return _from_diagnostic(row)
    kind = row.get("Type")
    if kind is not None and kind not in ("StorageFileLogs", "StorageBlobLogs", "StorageQueueLogs",
                                         "StorageTableLogs"):
        return None
    if "TimeGenerated" not in row and "AuthenticationType" not in row:
        return None
    auth = str(row.get("AuthenticationType") or "")
    if not auth:
        raise Malformed("no AuthenticationType")
    account = str(row.get("AccountName") or "")
    return Request(
        time=parse_time(row.get("TimeGenerated", "")),
        account=account,
        share=share_of(str(row.get("ObjectKey") or ""), str(row.get("Uri") or ""), account),
        auth_type=canonical_auth(auth),
        auth_hash=str(row.get("AuthenticationHash") or ""),
        caller_ip=caller_host(str(row.get("CallerIpAddress") or "")),
        user_agent=str(row.get("UserAgentHeader") or "").strip('"'),
        operation=str(row.get("OperationName") or ""),
        status=str(row.get("StatusCode") or ""),
        object_id=str(row.get("RequesterObjectId") or ""),
        tenant_id=str(row.get("RequesterTenantId") or ""),
        app_id=str(row.get("RequesterAppId") or ""),
        upn=str(row.get("RequesterUpn") or ""),
    )


def _from_diagnostic(row: dict[str, Any]) -> Request:
    identity = row.get("identity") or {}
    props = row.get("properties") or {}
    if not isinstance(identity, dict) or not isinstance(props, dict):
        raise Malformed("identity or properties is not an object")
    requester = identity.get("requester") or {}
    if not isinstance(requester, dict):
        requester = {}
    auth = str(identity.get("type") or "")
    if not auth:
        raise Malformed("no identity.type")
    uri = str(row.get("uri") or props.get("requestUrl") or "")
    account = str(props.get("accountName") or _account_from_resource(str(row.get("resourceId") or "")))
    return Request(
        time=parse_time(row.get("time", "")),
        account=account,
        share=share_of(str(props.get("objectKey") or ""), uri, account),
        auth_type=canonical_auth(auth),
        auth_hash=str(identity.get("tokenHash") or ""),
        caller_ip=caller_host(str(row.get("callerIpAddress") or "")),
        user_agent=str(props.get("userAgentHeader") or "").strip('"'),
        operation=str(row.get("operationName") or ""),
        status=str(row.get("statusCode") or ""),
        object_id=str(requester.get("objectId") or ""),
        tenant_id=str(requester.get("tenantId") or ""),
        app_id=str(requester.get("appId") or ""),
        upn=str(requester.get("upn") or ""),
    )


def _account_from_resource(resource_id: str) -> str:
    parts = resource_id.split("/")
    lowered = [p.lower() for p in parts]
    if "storageaccounts" in lowered:
        index = lowered.index("storageaccounts") + 1
        if index < len(parts):
            return parts[index]
    return ""


# --- files -----------------------------------------------------------------------------------------------


def read_logs(paths: list[Path], stats: ReadStats) -> Iterator[Request]:
    """Every request in ``paths`` (directories are walked for ``*.json``, ``*.csv``, ``*.log``, ``*.gz``)."""
    for path in _expand(paths, stats):
        try:
            handle = _open(path)
        except OSError as err:
            stats.unreadable.append(f"{path}: {err.strerror or err}")
            continue
        stats.files += 1
        try:
            with handle:
                yield from _read_one(path, handle, stats)
        except (OSError, EOFError, UnicodeDecodeError) as err:
            stats.unreadable.append(f"{path}: {err}")


def _expand(paths: list[Path], stats: ReadStats) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file()
                           and p.suffix.lower() in (".json", ".csv", ".log", ".gz", ".jsonl"))
            yield from found
        elif path.exists():
            yield path
        else:
            stats.unreadable.append(f"{path}: no such file")


def _open(path: Path) -> IO[str]:
    raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 - handed to the caller, closed there
    if path.suffix.lower() == ".gz":
        raw = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def _read_one(path: Path, handle: IO[str], stats: ReadStats) -> Iterator[Request]:
    head = handle.readline(CHUNK)
    while head and not head.strip():
        head = handle.readline(CHUNK)
    first = head.lstrip()[:1]
    if first == "[":
        yield from _read_array(path, head, handle, stats)
    elif first == "{":
        try:
            json.loads(head)
        except ValueError:
            yield from _read_document(path, head + handle.read(), stats)  # a pretty-printed document
        else:
            yield from _read_lines(path, itertools.chain([head], handle), stats)
    elif first:
        yield from _read_csv(path, itertools.chain([head], handle), stats)


def _count(stats: ReadStats, where: str, obj: Any) -> Request | None:
    if not isinstance(obj, dict):
        stats.bad(where, "not a JSON object")
        return None
    try:
        request = from_row(obj)
    except (Malformed, ValueError, TypeError) as err:
        stats.bad(where, str(err) or type(err).__name__)
        return None
    if request is None:
        stats.skipped += 1
        return None
    stats.records += 1
    return request


def _read_lines(path: Path, lines: Iterator[str], stats: ReadStats) -> Iterator[Request]:
    loads = json.loads
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = loads(line)
        except ValueError:
            stats.bad(f"{path}:{number}", "not JSON")
            continue
        request = _count(stats, f"{path}:{number}", obj)
        if request is not None:
            yield request


def _read_array(path: Path, buf: str, handle: IO[str], stats: ReadStats) -> Iterator[Request]:
    decoder = json.JSONDecoder()
    pos = buf.index("[") + 1
    index = 0
    eof = False
    while True:
        while True:  # skip separators, refilling as needed
            while pos < len(buf) and buf[pos] in " \t\r\n,":
                pos += 1
            if pos < len(buf) or eof:
                break
            chunk = handle.read(CHUNK)
            eof = not chunk
            buf, pos = buf[pos:] + chunk, 0
        if pos >= len(buf):
            stats.bad(f"{path}[{index}]", "the array is not closed")
            return
        if buf[pos] == "]":
            return
        try:
            obj, end = decoder.raw_decode(buf, pos)
        except ValueError:
            if eof or len(buf) - pos > MAX_ELEMENT:
                stats.bad(f"{path}[{index}]", "not JSON; the rest of the file is skipped")
                return
            chunk = handle.read(CHUNK)
            eof = not chunk
            buf, pos = buf[pos:] + chunk, 0
            continue
        pos = end
        request = _count(stats, f"{path}[{index}]", obj)
        index += 1
        if request is not None:
            yield request


def _read_document(path: Path, text: str, stats: ReadStats) -> Iterator[Request]:
    """A single JSON object: the query API's ``tables`` answer, or one pretty-printed record."""
    try:
        doc = json.loads(text)
    except ValueError:
        stats.bad(str(path), "not JSON lines, not a JSON document")
        return
    tables = doc.get("tables") if isinstance(doc, dict) else None
    if not isinstance(tables, list):
        request = _count(stats, str(path), doc)
        if request is not None:
            yield request
        return
    for table in tables:
        columns = [str(c.get("name")) for c in table.get("columns", []) if isinstance(c, dict)]
        for index, row in enumerate(table.get("rows", [])):
            where = f"{path}:{table.get('name', 'table')}[{index}]"
            if not isinstance(row, list) or len(row) != len(columns):
                stats.bad(where, "row does not match the columns")
                continue
            request = _count(stats, where, dict(zip(columns, row, strict=True)))
            if request is not None:
                yield request


def _read_csv(path: Path, lines: Iterator[str], stats: ReadStats) -> Iterator[Request]:
    reader = csv.reader(lines)
    try:
        header = [h.strip() for h in next(reader)]
    except (StopIteration, csv.Error):
        stats.bad(f"{path}:1", "no CSV header")
        return
    # The portal's CSV export names the time column "TimeGenerated [UTC]".
    header = [h.partition(" [")[0] for h in header]
    if "AuthenticationType" not in header and "TimeGenerated" not in header:
        stats.bad(f"{path}:1", "not a StorageFileLogs export (no TimeGenerated or AuthenticationType column)")
        return
    width = len(header)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            stats.bad(f"{path}:{reader.line_num}", f"CSV: {err}")
            continue
        if not row:
            continue
        where = f"{path}:{reader.line_num}"
        if len(row) != width:
            stats.bad(where, f"{len(row)} fields, the header has {width}")
            continue
        request = _count(stats, where, dict(zip(header, row, strict=True)))
        if request is not None:
            yield request
