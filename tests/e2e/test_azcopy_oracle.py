"""AzCopy, Microsoft's own transfer tool, as a third independent checker of the emulator.

AzCopy logs in with a managed identity (``AZCOPY_AUTO_LOGIN_TYPE=MSI``) through the emulator's App Service
endpoint (Go's azidentity has no IMDS host override), trusts the emulator's CA through ``SSL_CERT_FILE``,
and may send its token to the emulator's host because ``--trusted-microsoft-suffixes`` names it.
``scripts/install.sh --test`` installs it from the npm package ``@azure-tools/azcopy-linux``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from azure.storage.fileshare import ShareClient

from keyless.testing import EmulatorProcess, start_emulator

REPO = Path(__file__).resolve().parents[2]
AZCOPY_GLOB = ".cache/azcopy/node_modules/@azure-tools/azcopy-linux/dist/bin/azcopy*"
CLIENT_ID = "bbbbbbbb-0000-0000-0000-0000000a2c01"
WORLD = f"""
[[accounts]]
name = "azcopyacct"
shares = ["data", "locked"]
[[identities]]
name = "copier"
type = "user"
client_id = "{CLIENT_ID}"
[[role_assignments]]
role = "Storage File Data Privileged Contributor"
principal = "copier"
scope = "azcopyacct/data"
"""


def azcopy_binary() -> Path:
    found = sorted(REPO.glob(AZCOPY_GLOB))
    assert found, "AzCopy is not installed: run scripts/install.sh --test (npm @azure-tools/azcopy-linux)"
    found[0].chmod(0o755)  # the npm package ships it without the execute bit
    return found[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> EmulatorProcess:
    with start_emulator(tmp_path_factory.mktemp("azcopy"), WORLD) as emu:
        yield emu  # type: ignore[misc]


def azcopy(emu: EmulatorProcess, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    app = emu.info["app_service"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZCOPY_", "IDENTITY_", "IMDS_"))}
    env.update(AZCOPY_AUTO_LOGIN_TYPE="MSI", AZCOPY_MSI_CLIENT_ID=CLIENT_ID,
               IDENTITY_ENDPOINT=app["IDENTITY_ENDPOINT"], IDENTITY_HEADER=app["IDENTITY_HEADER"],
               SSL_CERT_FILE=emu.ca_cert, AZCOPY_LOG_LOCATION=str(tmp / "logs"),
               AZCOPY_JOB_PLAN_LOCATION=str(tmp / "plans"))
    hostport = emu.files_url.removeprefix("https://")
    cmd = [str(azcopy_binary()), *args, "--trusted-microsoft-suffixes", hostport, "--log-level", "ERROR"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)


def sdk_share(emu: EmulatorProcess, share: str = "data") -> ShareClient:
    acct = emu.account("azcopyacct")
    return ShareClient(account_url=acct["url"], share_name=share, connection_verify=emu.ca_cert,
                       credential={"account_name": acct["name"], "account_key": acct["key"]})


def test_azcopy_upload_is_read_back_by_the_sdk(world: EmulatorProcess, tmp_path: Path) -> None:
    local = tmp_path / "big.bin"
    data = os.urandom(9 * 1024 * 1024 + 7)
    local.write_bytes(data)
    url = f"{world.files_url}/azcopyacct/data/from-azcopy.bin"
    done = azcopy(world, tmp_path, "copy", str(local), url, "--from-to", "LocalFile")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    got = sdk_share(world).get_file_client("from-azcopy.bin").download_file().readall()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    oauth = [r for r in world.audit("StorageFileLogs") if r.get("OperationName") == "PutRange"
             and r.get("AuthenticationType") == "OAuth"]
    assert oauth and all(r["RequesterAppId"] == CLIENT_ID for r in oauth)


def test_azcopy_downloads_a_tree_the_sdk_wrote(world: EmulatorProcess, tmp_path: Path) -> None:
    share = sdk_share(world)
    share.get_directory_client("tree").create_directory()
    share.get_directory_client("tree/sub").create_directory()
    files = {"tree/a.txt": b"alpha", "tree/sub/b.bin": os.urandom(70_000), "tree/sub/empty": b""}
    for name, body in files.items():
        share.get_file_client(name).upload_file(body)
    out = tmp_path / "out"
    out.mkdir()
    done = azcopy(world, tmp_path, "copy", f"{world.files_url}/azcopyacct/data/tree", str(out),
                  "--from-to", "FileLocal", "--recursive")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for name, body in files.items():
        assert (out / name).read_bytes() == body


def test_azcopy_is_refused_where_the_role_does_not_reach(world: EmulatorProcess, tmp_path: Path) -> None:
    local = tmp_path / "x.txt"
    local.write_bytes(b"x")
    done = azcopy(world, tmp_path, "copy", str(local), f"{world.files_url}/azcopyacct/locked/x.txt",
                  "--from-to", "LocalFile")
    assert done.returncode != 0
    denied = [r for r in world.audit("StorageFileLogs") if "/azcopyacct/locked/" in r.get("Uri", "")]
    assert denied and {r["StatusText"] for r in denied} == {"AuthorizationPermissionMismatch"}
