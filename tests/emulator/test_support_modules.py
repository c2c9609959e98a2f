"""Audit log, fault injector, CA and atomic writes: the emulator's small supporting parts."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from keyless.emulator.audit import AuditLog
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
