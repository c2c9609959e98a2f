"""AzCopy copying a file between two accounts with a SAS on each side (``--from-to FileFile``).

What AzCopy sends for Files to Files (seen in the emulator's audit log): Get File Properties of the source
with its SAS, Create File on the destination, then Put Range From URL with ``x-ms-copy-source`` carrying
the source's SAS; it does not use Copy File. The source's SAS is checked for the source's account
(read), and its signature never reaches the audit log in the clear.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.storage.fileshare import ShareFileClient, generate_share_sas

from e2e.test_azcopy_oracle import azcopy_binary
from keyless.testing import EmulatorProcess

WORLD = """
[[accounts]]
name = "azsrc"
shares = ["src"]

[[accounts]]
name = "azdst"
shares = ["dst"]
"""


def run_azcopy(emu: EmulatorProcess, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZCOPY_", "IDENTITY_", "IMDS_"))}
    env.update(SSL_CERT_FILE=emu.ca_cert, AZCOPY_LOG_LOCATION=str(tmp / "logs"),
               AZCOPY_JOB_PLAN_LOCATION=str(tmp / "plans"))
    hostport = emu.files_url.removeprefix("https://")
    cmd = [str(azcopy_binary()), *args, "--trusted-microsoft-suffixes", hostport, "--log-level", "ERROR"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)


def share_sas(emu: EmulatorProcess, account: str, share: str, permission: str) -> str:
    key = emu.account(account)["key"]
    return generate_share_sas(account, share, key, permission=permission,
                              expiry=datetime.now(UTC) + timedelta(hours=1))


def client(emu: EmulatorProcess, account: str, share: str, path: str) -> ShareFileClient:
    acct = emu.account(account)
    return ShareFileClient(acct["url"], share, path, connection_verify=emu.ca_cert,
                           credential={"account_name": acct["name"], "account_key": acct["key"]})


def test_azcopy_copies_between_accounts_with_sas_sources(
        emulator_factory: Callable[..., EmulatorProcess], tmp_path: Path) -> None:
    emu = emulator_factory(WORLD)
    data = os.urandom(5 * 1024 * 1024 + 3)  # two Put Range From URL calls
    client(emu, "azsrc", "src", "a.bin").upload_file(data)
    source_sas = share_sas(emu, "azsrc", "src", "rl")
    source = f"{emu.account('azsrc')['url']}/src/a.bin?{source_sas}"
    target = f"{emu.account('azdst')['url']}/dst/b.bin?{share_sas(emu, 'azdst', 'dst', 'rwcl')}"
    done = run_azcopy(emu, tmp_path, "copy", source, target, "--from-to", "FileFile")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    got = client(emu, "azdst", "dst", "b.bin").download_file().readall()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    rows = emu.audit("StorageFileLogs")
    from_url = [r for r in rows if r["OperationName"] == "PutRangeFromURL"]
    assert len(from_url) == 2 and all(r["StatusCode"] == "201" for r in from_url)
    sig = next(p.split("=", 1)[1] for p in source_sas.split("&") if p.startswith("sig="))
    assert sig not in json.dumps(rows)

    # A source SAS without read: AzCopy reports the failure and nothing is copied.
    write_only = f"{emu.account('azsrc')['url']}/src/a.bin?{share_sas(emu, 'azsrc', 'src', 'w')}"
    target2 = f"{emu.account('azdst')['url']}/dst/c.bin?{share_sas(emu, 'azdst', 'dst', 'rwcl')}"
    refused = run_azcopy(emu, tmp_path, "copy", write_only, target2, "--from-to", "FileFile")
    assert refused.returncode != 0
    assert not client(emu, "azdst", "dst", "c.bin").exists()
