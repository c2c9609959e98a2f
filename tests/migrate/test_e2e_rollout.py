"""The rollout on a real emulator process: one machine still on the account key, one on a managed identity.

``scan`` finds the planted key without printing it; ``report`` over the emulator's own log (both layouts)
says "not ready" and names the key user's address and user agent; once that machine has moved, a report
over the window after it says ready.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.identity import ManagedIdentityCredential
from azure.storage.fileshare import ShareClient
from click.testing import CliRunner

from keyless.cli.migrate_cmd import migrate_group
from keyless.emulator.audit import DIAGNOSTIC_ENV
from keyless.testing import EmulatorProcess


def keyless(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "keyless.cli.main", *args], capture_output=True, timeout=120,
                          check=False)


def report(*args: str) -> tuple[int, dict[str, Any], str]:
    as_json = CliRunner().invoke(migrate_group, ["report", *args, "--json"])
    text = CliRunner().invoke(migrate_group, ["report", *args])
    assert as_json.exit_code == text.exit_code, text.output
    return as_json.exit_code, json.loads(as_json.stdout), text.stdout


def test_rollout_scan_report_and_ready(emulator_factory: Callable[..., EmulatorProcess], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DIAGNOSTIC_ENV, "1")
    emu = emulator_factory()
    acct = emu.account()
    key = acct["key"]

    # Machine A's configuration still holds the key.
    config = tmp_path / "machine-a" / "srv" / "backup"
    config.mkdir(parents=True)
    (config / "backup.env").write_text(
        f"AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=https;AccountName={acct['name']};"
        f"AccountKey={key};EndpointSuffix=core.windows.net\n")
    found = keyless("migrate", "scan", str(tmp_path / "machine-a"), "--json")
    assert found.returncode == 1, found.stderr
    assert key.encode() not in found.stdout + found.stderr and key[:20].encode() not in found.stdout
    (finding,) = json.loads(found.stdout)["findings"]
    assert finding["kind"] == "connection-string" and finding["account"] == acct["name"]
    assert finding["path"].endswith("backup.env") and finding["line"] == 1

    # Machine A uses the key through the official SDK; machine B its managed identity.
    key_share = ShareClient(account_url=acct["url"], share_name="demo", connection_verify=emu.ca_cert,
                            credential={"account_name": acct["name"], "account_key": key})
    key_share.get_file_client("from-key.txt").upload_file(b"written with the account key")
    assert key_share.get_file_client("from-key.txt").download_file().readall() == \
        b"written with the account key"
    for var in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_url)
    id_share = ShareClient(account_url=acct["url"], share_name="demo", connection_verify=emu.ca_cert,
                           credential=ManagedIdentityCredential(), token_intent="backup")
    id_share.get_file_client("from-identity.txt").upload_file(b"written with the identity")

    audit_log = emu.info["audit_log"]
    code, data, text = report(audit_log)
    assert code == 1 and data["ready"] is False and data["verdict"].startswith("not ready")
    info = data["accounts"][acct["name"]]
    (key_user,) = [c for c in info["non_identity_callers"] if c["key_signed_requests"]]
    assert key_user["caller_ip"] == "127.0.0.1"
    assert key_user["user_agent"].startswith("azsdk-python-storage-file-share/")
    assert {"CreateFile", "PutRange", "GetFile"} <= set(key_user["operations"])
    vm = emu.identity("demo-vm")
    (identity,) = info["identity_callers"]
    assert identity["object_id"] == vm["object_id"] and identity["tenant_id"] == emu.info["tenant_id"]
    assert identity["key_signed_requests"] == 0
    assert f"move: {acct['name']} <- 127.0.0.1 {key_user['user_agent']}" in text
    assert key not in text and key not in json.dumps(data)

    # The diagnostic-settings layout written alongside tells the same story.
    diag = Path(audit_log).parent / "diagnostic-logs"
    blobs = sorted(diag.rglob("PT1H.json"))
    assert {b.relative_to(diag).parts[0] for b in blobs} >= {"insights-logs-storageread",
                                                              "insights-logs-storagewrite"}
    assert all(f"storageAccounts/{acct['name']}/fileServices/default" in b.as_posix() for b in blobs)
    code, diag_data, _ = report(str(diag))
    assert code == 1
    diag_info = diag_data["accounts"][acct["name"]]
    assert diag_info["key_signed_requests"] == info["key_signed_requests"]
    assert diag_info["requests_by_authentication_type"] == info["requests_by_authentication_type"]

    # Machine A moves (it stops using the key); the window after it holds only identity requests.
    time.sleep(0.05)
    cutoff = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    id_share.get_file_client("from-key.txt").delete_file()
    id_share.get_file_client("from-identity.txt").download_file().readall()
    code, after, text = report(audit_log, "--since", cutoff)
    assert code == 0 and after["ready"] is True, text
    assert after["input"]["outside_window"] > 0
    assert after["accounts"][acct["name"]]["requests_by_authentication_type"] == {"OAuth": 2}
    assert "Verdict: ready" in text
    code, _, _ = report(str(diag), "--since", cutoff)
    assert code == 0
