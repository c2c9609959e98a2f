"""Audit log, fault injector, CA and atomic writes: the emulator's small supporting parts."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import stat
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiohttp.test_utils import make_mocked_request
from cryptography import x509

from keyless.emulator.audit import AuditLog, _now
from keyless.emulator.ca import ensure_tls
from keyless.emulator.config import fault_from_dict
from keyless.emulator.errors import StorageError
from keyless.emulator.faults import DropConnection, FaultInjector
from keyless.fsutil import atomic_write


def test_audit_lines_are_json_and_private(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    log.write("StorageFileLogs", operation="GetFile", status=200, auth_type="OAuth", object_id="oid-1",
              skipped=None)
    log.write("TokenIssuance", source="imds", status=200)
    log.close()
    lines = [json.loads(x) for x in (tmp_path / "audit.log").read_text().splitlines()]
    assert [r["Type"] for r in lines] == ["StorageFileLogs", "TokenIssuance"]
    assert lines[0]["OperationName"] == "GetFile" and "skipped" not in lines[0]
    assert lines[0]["StatusCode"] == "200" and lines[0]["StatusText"] == "Success"
    assert lines[0]["Category"] == "StorageRead" and lines[0]["RequesterObjectId"] == "oid-1"
    assert lines[1]["source"] == "imds" and lines[1]["status"] == 200
    assert lines[0]["TimeGenerated"].endswith("Z")
    assert stat.S_IMODE(os.stat(tmp_path / "audit.log").st_mode) == 0o600


def test_audit_refuses_secret_fields(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    with pytest.raises(ValueError, match="secret"):
        log.write("x", access_token="eyJ...")
    log.close()
    assert (tmp_path / "audit.log").read_text() == ""


class _Req:
    def __init__(self, method: str = "GET") -> None:
        self.method = method
        self.store: dict[str, Any] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        self.store[key] = value


def _apply(inj: FaultInjector, target: str, method: str = "GET") -> Any:
    return asyncio.run(inj.apply(_Req(method), target))  # type: ignore[arg-type]


def test_fault_count_then_normal() -> None:
    inj = FaultInjector([fault_from_dict({"target": "files", "status": 503, "count": 2})])
    for _ in range(2):
        with pytest.raises(StorageError) as info:
            _apply(inj, "files")
        assert (info.value.status, info.value.code) == (503, "ServerBusy")
    assert _apply(inj, "files") is None
    assert inj.describe()[0]["fired"] == 2


def test_fault_targets_and_methods_are_separate() -> None:
    inj = FaultInjector([fault_from_dict({"target": "imds", "status": 429, "retry_after": 3, "count": 1}),
                         fault_from_dict({"target": "files", "action": "drop", "method": "put"})])
    assert _apply(inj, "files", "GET") is None
    with pytest.raises(DropConnection):
        _apply(inj, "files", "PUT")
    resp = _apply(inj, "imds")
    assert resp.status == 429 and resp.headers["Retry-After"] == "3"
    assert json.loads(resp.text)["error"] == "too_many_requests"
    assert _apply(inj, "imds") is None


def test_fault_rate_is_seeded() -> None:
    rule = fault_from_dict({"target": "files", "status": 500, "rate": 0.5})

    def run() -> list[bool]:
        inj = FaultInjector([rule], seed=7)
        hits = []
        for _ in range(200):
            try:
                _apply(inj, "files")
                hits.append(False)
            except StorageError:
                hits.append(True)
        return hits

    first = run()
    assert first == run()
    assert 60 < sum(first) < 140


def test_ca_is_kept_and_server_cert_verifies(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path, ["127.0.0.1"])
    ca_before = files.ca_cert.read_bytes()
    again = ensure_tls(tmp_path, ["127.0.0.1"])
    assert again.ca_cert.read_bytes() == ca_before
    assert stat.S_IMODE(os.stat(tmp_path / "ca-key.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(files.server_key).st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    ctx = ssl.create_default_context(cafile=str(files.ca_cert))  # the CA loads as a trust anchor
    assert ctx.cert_store_stats()["x509_ca"] == 1


def test_atomic_write_replaces_whole_and_private(tmp_path: Path) -> None:
    target = tmp_path / "secret.json"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret.json"]


def _files_call(transport_ssl: bool, auth: str) -> dict[str, Any]:
    """One Files request's audit fields, as the Files middleware passes them."""
    token = ("Bearer eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiJ0ZW5hbnQiLCJ1cG4iOiJ1QGV4YW1wbGUiLCJhdWQiOiJodHRwczovL3"
             "N0b3JhZ2UuYXp1cmUuY29tIiwiaXNzIjoiaHR0cHM6Ly9pc3N1ZXIifQ.c2ln")
    headers = {"Host": "127.0.0.1:4443", "User-Agent": "azsdk-python-storage-file-share/12.20.0",
               "x-ms-client-request-id": "crid-1", "x-ms-version": "2025-05-05", "Content-Length": "8192"}
    if auth == "OAuth":
        headers["Authorization"] = token
    path = ("/acct/share/d%20ir/f.bin?comp=range" if auth != "SAS"
            else "/acct/share/f.bin?sv=2025-05-05&sig=c2VjcmV0c2ln&sp=r")
    transport = mock.Mock()
    ssl_object = mock.Mock()
    ssl_object.version.return_value = "TLSv1.3"
    extra = {"peername": ("127.0.0.1", 51234), "ssl_object": ssl_object if transport_ssl else None}
    transport.get_extra_info.side_effect = extra.get
    request = make_mocked_request("PUT", path, headers=headers, transport=transport,
                                  sslcontext=ssl.create_default_context() if transport_ssl else None)
    return {
        "request": request, "operation": "PutRange" if auth != "Anonymous" else "GetFile",
        "status": 201 if auth != "Anonymous" else 404,
        "error_code": None if auth != "Anonymous" else "ResourceNotFound",
        "auth_type": auth, "object_id": "oid-1" if auth == "OAuth" else None,
        "app_id": "app-1" if auth == "OAuth" else None, "request_id": "rid-1",
        "client_request_id": "crid-1", "version": "2025-05-05",
        "fault": "slow" if auth == "Anonymous" else None,
        "authentication_hash": "system-1(ABCDEF)" if auth == "SAS" else None, "duration_ms": 1.5,
    }


@pytest.mark.parametrize(("transport_ssl", "auth"), [(True, "OAuth"), (True, "SAS"), (False, "Anonymous")])
def test_files_request_line_is_the_generic_storage_row(tmp_path: Path, transport_ssl: bool,
                                                       auth: str) -> None:
    """The Files middleware's dedicated writer logs exactly the row (columns, values and order) that the
    generic ``write("StorageFileLogs", request=...)`` builds, in both the flat and the diagnostic layout."""
    fast, generic = AuditLog(tmp_path / "a" / "audit.log", diagnostic_settings=True), \
        AuditLog(tmp_path / "b" / "audit.log", diagnostic_settings=True)
    call = _files_call(transport_ssl, auth)
    request = call.pop("request")
    fast.files_request(request, **call)
    # the keywords in the order the Files middleware passed them to the generic writer
    fields = {k: v for k, v in call.items() if k not in ("authentication_hash", "duration_ms")}
    generic.write("StorageFileLogs", request=request, method="PUT", uri=request.raw_path, **fields,
                  AuthenticationHash=call["authentication_hash"], duration_ms=call["duration_ms"])
    fast.close()
    generic.close()

    def rows(root: Path) -> list[list[tuple[str, Any]]]:
        found = [root / "audit.log", *sorted((root / "diagnostic-logs").rglob("PT1H.json"))]
        return [[(k, v) for k, v in json.loads(line).items() if k not in ("TimeGenerated", "time")]
                for f in found for line in f.read_text().splitlines()]

    got, want = rows(tmp_path / "a"), rows(tmp_path / "b")
    assert got == want and len(got) == 2
    row = dict(got[0])
    assert row["AuthenticationType"] == auth and row["CallerIpAddress"] == "127.0.0.1:51234"
    assert "c2VjcmV0c2ln" not in json.dumps(got)  # the SAS signature is redacted in both layouts
    assert (row["TlsVersion"] == "TLS 1.3") is transport_ssl
    assert auth != "OAuth" or (row["RequesterUpn"] == "u@example" and len(row["AuthenticationHash"]) == 64)


def test_audit_time_is_utc_now_to_the_microsecond() -> None:
    """TimeGenerated formats the second once and the microseconds every call; both must stay current."""
    for _ in range(3):
        before = datetime.now(UTC)
        text = _now()
        after = datetime.now(UTC)
        assert len(text) == len("2026-01-02T03:04:05.123456Z") and text.endswith("Z")
        assert before <= datetime.fromisoformat(text.replace("Z", "+00:00")) <= after
        time.sleep(0.6)  # the second changes between some of these calls
