"""The whole rollout on a real emulator process, as issue "Rollout" tells it.

Two machines: A still on the account key (official SDK), B on its managed identity. ``scan`` finds A's
planted key without printing it; ``report`` says not ready and names A's address and user agent; ``finish``
refuses; A moves, and the report over the window after the move says ready; ``finish`` flips the account
through Resource Manager with the operator's managed identity; a Shared Key request then gets 403
``KeyBasedAuthenticationNotPermitted`` while B's identity keeps working, and a user delegation SAS minted by
``keyless sas`` still works (it holds no key).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import urllib3
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential as SdkManagedIdentityCredential
from azure.storage.fileshare import ShareClient, generate_file_sas

from keyless.testing import EmulatorProcess

MACHINE_B = "bbbbbbbb-0000-0000-0000-0000000000b2"
OPERATOR = "bbbbbbbb-0000-0000-0000-0000000000f1"
WORLD = f"""
[[accounts]]
name = "prodfiles"
shares = ["backup"]
[[identities]]
name = "machine-b"
type = "user"
client_id = "{MACHINE_B}"
[[identities]]
name = "operator"
type = "user"
client_id = "{OPERATOR}"
[[role_assignments]]
role = "Storage File Data Privileged Contributor"
principal = "machine-b"
scope = "prodfiles/backup"
[[role_assignments]]
role = "Storage Account Contributor"
principal = "operator"
scope = "prodfiles"
"""


def keyless(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "keyless.cli.main", *args], capture_output=True, text=True,
                          timeout=120, check=False, env=env)


def test_rollout_from_scan_to_shared_key_off(emulator_factory: Callable[..., EmulatorProcess], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    emu = emulator_factory(WORLD)
    acct = emu.account("prodfiles")
    key = acct["key"]
    audit_log = emu.info["audit_log"]
    emulator = ["--emulator", str(emu.data_dir)]

    # scan: machine A's configuration still holds the key; found, never printed.
    config = tmp_path / "machine-a" / "etc" / "backup"
    config.mkdir(parents=True)
    (config / "backup.env").write_text(f"AZURE_STORAGE_KEY={key}\nAZURE_STORAGE_ACCOUNT=prodfiles\n")
    found = keyless("migrate", "scan", str(tmp_path / "machine-a"), "--json")
    assert found.returncode == 1 and key not in found.stdout + found.stderr
    assert json.loads(found.stdout)["findings"][0]["path"].endswith("backup.env")

    # Machine A on the key (SDK), machine B on its managed identity (SDK too).
    a_share = ShareClient(account_url=acct["url"], share_name="backup", connection_verify=emu.ca_cert,
                          credential={"account_name": "prodfiles", "account_key": key})
    a_share.get_file_client("a.txt").upload_file(b"from machine A")
    for var in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_url)
    b_share = ShareClient(account_url=acct["url"], share_name="backup", connection_verify=emu.ca_cert,
                          credential=SdkManagedIdentityCredential(client_id=MACHINE_B), token_intent="backup")
    b_share.get_file_client("b.txt").upload_file(b"from machine B")

    # report: not ready, naming A by address and user agent.
    report = keyless("migrate", "report", audit_log, "--json")
    assert report.returncode == 1, report.stderr
    data = json.loads(report.stdout)
    callers = data["accounts"]["prodfiles"]["non_identity_callers"]
    (a_caller,) = [c for c in callers if c["key_signed_requests"]]
    assert a_caller["caller_ip"] == "127.0.0.1"
    assert a_caller["user_agent"].startswith("azsdk-python-storage-file-share/")

    # finish refuses while A still uses the key.
    rid = (f"/subscriptions/{emu.identity('operator')['resource_id'].split('/')[2]}/resourceGroups/"
           "keyless-emulator/providers/Microsoft.Storage/storageAccounts/prodfiles")
    finish = ["migrate", "finish", "--account", "prodfiles", "--resource-id", rid, "--client-id", OPERATOR,
              *emulator]
    early = keyless(*finish, "--log", audit_log)
    assert early.returncode == 1 and "not ready" in early.stderr
    assert a_share.get_file_client("a.txt").download_file().readall() == b"from machine A"

    # A moves; the window after the move is ready.
    time.sleep(0.05)
    cutoff = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    b_share.get_file_client("b.txt").download_file().readall()
    ready = keyless("migrate", "report", audit_log, "--since", cutoff)
    assert ready.returncode == 0 and "Verdict: ready" in ready.stdout

    # finish: verdict, PATCH through Resource Manager, verification (GET and a Shared Key probe).
    done = keyless(*finish, "--log", audit_log, "--since", cutoff, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["patched"] is True and outcome["allow_shared_key_after"] is False
    assert outcome["probe"] == "refused" and outcome["verdict"].startswith("ready")
    assert key not in done.stdout + done.stderr

    # Shared Key is now refused; the identity keeps working.
    with pytest.raises(HttpResponseError) as refused:
        a_share.get_file_client("a.txt").download_file().readall()
    assert refused.value.status_code == 403
    assert refused.value.error_code == "KeyBasedAuthenticationNotPermitted"
    assert b_share.get_file_client("a.txt").download_file().readall() == b"from machine A"

    # A consumer that needs a SAS gets a user delegation SAS: no key, so it still works.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDENTITY_", "MSI_", "IMDS_"))}
    minted = keyless("sas", f"{acct['url']}/backup/b.txt", "-p", "r", "--expiry", "15m", "--client-id",
                     MACHINE_B, *emulator, env=env)
    assert minted.returncode == 0, minted.stderr
    got = urllib3.PoolManager(ca_certs=emu.ca_cert).request("GET", minted.stdout.strip(), retries=False)
    assert got.status == 200 and got.data == b"from machine B"
    # A key-signed SAS is refused like Shared Key itself.
    key_sas = generate_file_sas("prodfiles", "backup", ["b.txt"], key, permission="r",
                                expiry=datetime.now(UTC) + timedelta(minutes=5))
    keyed = urllib3.PoolManager(ca_certs=emu.ca_cert).request("GET", f"{acct['url']}/backup/b.txt?{key_sas}",
                                                              retries=False)
    assert keyed.status == 403 and keyed.headers["x-ms-error-code"] == "KeyBasedAuthenticationNotPermitted"
