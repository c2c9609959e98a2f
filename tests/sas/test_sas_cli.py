"""``keyless sas`` end to end: a user delegation SAS minted from the managed identity (no key anywhere)
works with the official SDK, AzCopy and curl, and stops working when it expires and when the delegator
loses its role. The SAS appears on stdout only: never on stderr, in the audit log or in an error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.fileshare import ShareClient, ShareFileClient

from keyless.testing import EmulatorProcess, start_emulator
from worlds import minter_world

REPO = Path(__file__).resolve().parents[2]
AZCOPY_GLOB = ".cache/azcopy/node_modules/@azure-tools/azcopy-linux/dist/bin/azcopy*"
CLIENT_ID = "bbbbbbbb-0000-0000-0000-0000000005c1"
WORLD = minter_world("cliacct", CLIENT_ID)
ROLE = {"role": "Storage File Data Privileged Contributor", "principal": "minter", "scope": "cliacct/data"}


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with start_emulator(tmp_path_factory.mktemp("sas-cli"), WORLD) as started:
        acct = started.account("cliacct")
        share = ShareClient(account_url=acct["url"], share_name="data", connection_verify=started.ca_cert,
                            credential={"account_name": acct["name"], "account_key": acct["key"]})
        share.get_directory_client("docs").create_directory()
        share.get_file_client("docs/a.txt").upload_file(b"alpha")
        yield started
        assert "Traceback" not in started.stderr()


def keyless_sas(emu: EmulatorProcess, *args: str,
                key_in_env: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDENTITY_", "MSI_", "IMDS_"))}
    if key_in_env:  # a key in the environment must not be used: the SAS is signed by the identity
        env["AZURE_STORAGE_KEY"] = emu.account("cliacct")["key"]
    return subprocess.run([sys.executable, "-m", "keyless.cli.main", "sas", *args, "--emulator",
                           str(emu.data_dir), "--client-id", CLIENT_ID],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def curl(emu: EmulatorProcess, url: str) -> tuple[int, str]:
    done = subprocess.run(["curl", "-sS", "--cacert", emu.ca_cert, "-o", "/dev/null", "-w", "%{http_code}",
                           url], capture_output=True, text=True, timeout=60, check=False)
    return int(done.stdout or 0), done.stderr


def azcopy(emu: EmulatorProcess, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    found = sorted(REPO.glob(AZCOPY_GLOB))
    assert found, "AzCopy is not installed: run scripts/install.sh --test (npm @azure-tools/azcopy-linux)"
    found[0].chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZCOPY_", "IDENTITY_", "IMDS_"))}
    env.update(SSL_CERT_FILE=emu.ca_cert, AZCOPY_LOG_LOCATION=str(tmp / "logs"),
               AZCOPY_JOB_PLAN_LOCATION=str(tmp / "plans"))
    return subprocess.run([str(found[0]), *args, "--log-level", "ERROR"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_file_sas_works_with_sdk_azcopy_and_curl(emu: EmulatorProcess, tmp_path: Path) -> None:
    remote = f"{emu.files_url}/cliacct/data/docs/a.txt"
    done = keyless_sas(emu, remote, "--permissions", "r", "--expiry", "1h", "--https-only")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    query = parse_qs(urlsplit(url).query)
    assert query["sr"] == ["f"] and query["sp"] == ["r"] and query["spr"] == ["https"]
    assert query["skoid"] == [emu.identity("minter")["object_id"]]
    assert query["sig"][0] not in done.stderr
    assert ShareFileClient.from_file_url(url, connection_verify=emu.ca_cert).download_file().readall() == \
        b"alpha"
    assert curl(emu, url)[0] == 200
    out = tmp_path / "a.txt"
    copied = azcopy(emu, tmp_path, "copy", url, str(out), "--from-to", "FileLocal")
    assert copied.returncode == 0, copied.stdout[-2000:] + copied.stderr[-2000:]
    assert out.read_bytes() == b"alpha"
    log = Path(emu.info["audit_log"]).read_text(encoding="utf-8")
    assert query["sig"][0] not in log
    # Only the identity signed: the key in the environment was not used.
    rows = [r for r in emu.audit("StorageFileLogs") if r["OperationName"] == "GetUserDelegationKey"]
    assert rows and rows[-1]["AuthenticationType"] == "OAuth" and rows[-1]["StatusCode"] == "200"


def test_share_sas_lets_azcopy_upload_and_list(emu: EmulatorProcess, tmp_path: Path) -> None:
    done = keyless_sas(emu, f"{emu.files_url}/cliacct/data", "-p", "rcwl", "--expiry", "30m")
    assert done.returncode == 0, done.stderr
    share_sas_url = done.stdout.strip()
    base, _, token = share_sas_url.partition("?")
    local = tmp_path / "up.bin"
    local.write_bytes(os.urandom(70_000))
    copied = azcopy(emu, tmp_path, "copy", str(local), f"{base}/docs/up.bin?{token}",
                    "--from-to", "LocalFile")
    assert copied.returncode == 0, copied.stdout[-2000:] + copied.stderr[-2000:]
    share = ShareClient.from_share_url(share_sas_url, connection_verify=emu.ca_cert)
    assert "up.bin" in {f["name"] for f in share.get_directory_client("docs").list_directories_and_files()}
    assert curl(emu, f"{base}/docs?restype=directory&comp=list&{token}")[0] == 200


def test_sas_stops_when_the_delegator_loses_its_role_and_when_it_expires(emu: EmulatorProcess) -> None:
    done = keyless_sas(emu, f"{emu.files_url}/cliacct/data/docs/a.txt", "-p", "r", "--expiry", "5m")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert curl(emu, url)[0] == 200
    emu.set_roles([])
    try:
        assert curl(emu, url)[0] == 403
        with pytest.raises(HttpResponseError) as refused:
            ShareFileClient.from_file_url(url, connection_verify=emu.ca_cert).download_file().readall()
        assert refused.value.error_code == "AuthorizationPermissionMismatch"
    finally:
        emu.set_roles([ROLE])
    assert curl(emu, url)[0] == 200
    emu.set_clock_offset(6 * 60)
    try:
        assert curl(emu, url)[0] == 403
        with pytest.raises(HttpResponseError) as expired:
            ShareFileClient.from_file_url(url, connection_verify=emu.ca_cert).download_file().readall()
        assert expired.value.error_code == "AuthenticationFailed"
    finally:
        emu.set_clock_offset(0)


def test_bad_inputs_are_named_without_a_traceback(emu: EmulatorProcess) -> None:
    remote = f"{emu.files_url}/cliacct/data/docs/a.txt"
    cases = [
        (["-p", "rl", "--expiry", "1h"], "--permissions"),
        (["-p", "r", "--expiry", "8d"], "at most 7 days"),
        (["-p", "r", "--expiry", "yesterday"], "ISO 8601"),
        (["-p", "r", "--expiry", "1h", "--ip", "not-an-ip"], "--ip"),
        (["-p", "r", "--expiry", "99999999999h"], "at most 7 days"),
        (["-p", "r", "--expiry", "99999999999d"], "at most 7 days"),
    ]
    for args, expected in cases:
        done = keyless_sas(emu, remote, *args)
        assert done.returncode != 0 and expected in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr and done.stdout == ""
