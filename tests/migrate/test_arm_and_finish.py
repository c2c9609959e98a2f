"""The emulator's Azure Resource Manager surface and ``keyless migrate finish``, on real processes.

ARM: bearer tokens for ``https://management.azure.com`` only, management-plane RBAC (a data role is not
enough: 403 ``AuthorizationFailed`` with ARM's error JSON), and a patched ``allowSharedKeyAccess`` that
applies to the Files side at once and survives a restart.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import urllib3
from azure.core.exceptions import HttpResponseError
from azure.storage.fileshare import ShareClient

from keyless.emulator.config import ConfigError, load_config
from keyless.identity import ManagedIdentityCredential
from keyless.migrate.finish import FinishError, account_resource_id
from keyless.testing import EmulatorProcess

ADMIN = "bbbbbbbb-0000-0000-0000-00000000a4a1"
DATA_ONLY = "bbbbbbbb-0000-0000-0000-00000000a4a2"
WORLD = f"""
[[accounts]]
name = "armacct"
shares = ["data"]
[[identities]]
name = "admin"
type = "user"
client_id = "{ADMIN}"
[[identities]]
name = "dataonly"
type = "user"
client_id = "{DATA_ONLY}"
[[role_assignments]]
role = "Storage Account Contributor"
principal = "admin"
scope = "armacct"
[[role_assignments]]
role = "Storage File Data Privileged Contributor"
principal = "admin"
scope = "armacct/data"
[[role_assignments]]
role = "Storage File Data Privileged Contributor"
principal = "dataonly"
scope = "armacct/data"
"""


def token(emu: EmulatorProcess, client_id: str, resource: str = "https://management.azure.com") -> str:
    cred = ManagedIdentityCredential(source="imds", imds_host=emu.imds_url, client_id=client_id)
    return cred.get_token(f"{resource}/.default").token


def account_path(emu: EmulatorProcess, name: str = "armacct") -> str:
    sub = emu.identity("admin")["resource_id"].split("/")[2]
    return (f"/subscriptions/{sub}/resourceGroups/keyless-emulator/providers/Microsoft.Storage/"
            f"storageAccounts/{name}")


def arm(emu: EmulatorProcess, method: str, path: str, bearer: str | None, body: Any = None,
        api_version: str | None = "2023-05-01") -> tuple[int, dict[str, Any]]:
    url = emu.info["arm_url"] + path + (f"?api-version={api_version}" if api_version else "")
    headers = {"Content-Type": "application/json"}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    resp = urllib3.PoolManager(ca_certs=emu.ca_cert).request(
        method, url, headers=headers, body=None if body is None else json.dumps(body).encode(), retries=False)
    return resp.status, json.loads(resp.data or b"{}")


def key_share(emu: EmulatorProcess) -> ShareClient:
    acct = emu.account("armacct")
    return ShareClient(account_url=acct["url"], share_name="data", connection_verify=emu.ca_cert,
                       credential={"account_name": acct["name"], "account_key": acct["key"]})


def test_arm_surface_auth_rbac_and_errors(emulator_factory: Callable[..., EmulatorProcess]) -> None:
    emu = emulator_factory(WORLD)
    path = account_path(emu)
    admin = token(emu, ADMIN)
    status, doc = arm(emu, "GET", path, admin)
    assert status == 200 and doc["properties"]["allowSharedKeyAccess"] is True and doc["id"] == path
    assert arm(emu, "GET", path, None)[1]["error"]["code"] == "AuthenticationFailed"
    storage_token = token(emu, ADMIN, "https://storage.azure.com")
    status, doc = arm(emu, "GET", path, storage_token)
    assert status == 401 and doc["error"]["code"] == "InvalidAuthenticationTokenAudience"
    status, doc = arm(emu, "GET", path, admin, api_version=None)
    assert status == 400 and doc["error"]["code"] == "MissingApiVersionParameter"
    status, doc = arm(emu, "GET", account_path(emu, "nosuch"), admin)
    assert status == 404 and doc["error"]["code"] == "ResourceNotFound"
    status, doc = arm(emu, "GET", path.replace("keyless-emulator", "other-rg"), admin)
    assert status == 404 and doc["error"]["code"] == "ResourceGroupNotFound"
    # A data role does not reach the management plane.
    data_only = token(emu, DATA_ONLY)
    status, doc = arm(emu, "PATCH", path, data_only, {"properties": {"allowSharedKeyAccess": False}})
    assert status == 403 and doc["error"]["code"] == "AuthorizationFailed"
    assert "'Microsoft.Storage/storageAccounts/write'" in doc["error"]["message"]
    assert emu.identity("dataonly")["object_id"] in doc["error"]["message"]
    status, doc = arm(emu, "PATCH", path, admin, {"properties": {"allowSharedKeyAccess": "no"}})
    assert status == 400 and doc["error"]["code"] == "InvalidRequestContent"
    nested = b'{"a":' * 5000 + b"1" + b"}" * 5000  # deeper than the JSON parser recurses
    resp = urllib3.PoolManager(ca_certs=emu.ca_cert).request(
        "PATCH", emu.info["arm_url"] + path + "?api-version=2023-05-01", body=nested, retries=False,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {admin}"})
    assert resp.status == 400 and json.loads(resp.data)["error"]["code"] == "InvalidRequestContent"
    assert arm(emu, "GET", path, admin)[1]["properties"]["allowSharedKeyAccess"] is True


def test_patch_applies_to_files_at_once_and_survives_restart(
        emulator_factory: Callable[..., EmulatorProcess]) -> None:
    emu = emulator_factory(WORLD)
    key_share(emu).get_file_client("before.txt").upload_file(b"with the key")
    status, doc = arm(emu, "PATCH", account_path(emu), token(emu, ADMIN),
                      {"properties": {"allowSharedKeyAccess": False}})
    assert status == 200 and doc["properties"]["allowSharedKeyAccess"] is False
    info = json.loads((emu.data_dir / "emulator.json").read_text())
    assert [a["allow_shared_key"] for a in info["accounts"] if a["name"] == "armacct"] == [False]
    with pytest.raises(HttpResponseError) as refused:
        key_share(emu).get_file_client("before.txt").download_file().readall()
    assert refused.value.status_code == 403
    assert refused.value.error_code == "KeyBasedAuthenticationNotPermitted"
    emu.stop()
    emu.start()
    after = arm(emu, "GET", account_path(emu), token(emu, ADMIN))[1]
    assert after["properties"]["allowSharedKeyAccess"] is False
    assert emu.account("armacct")["allow_shared_key"] is False
    with pytest.raises(HttpResponseError):
        key_share(emu).get_file_client("before.txt").download_file().readall()


def test_management_roles_are_validated_in_the_config(tmp_path: Path) -> None:
    bad = WORLD.replace('scope = "armacct"\n', 'scope = "armacct/data"\n', 1)
    config = tmp_path / "bad.toml"
    config.write_text(bad)
    with pytest.raises(ConfigError, match=r"role_assignments\[0\]\.scope: 'Storage Account Contributor' is a "
                                          r"management-plane role"):
        load_config(config)


def keyless(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "keyless.cli.main", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_finish_refuses_without_a_ready_verdict_and_names_missing_roles(
        emulator_factory: Callable[..., EmulatorProcess]) -> None:
    emu = emulator_factory(WORLD)
    key_share(emu).get_file_client("k.txt").upload_file(b"key user")
    rid = account_path(emu)
    base = ["migrate", "finish", "--account", "armacct", "--resource-id", rid,
            "--emulator", str(emu.data_dir)]
    refused = keyless(*base, "--client-id", ADMIN, "--log", emu.info["audit_log"])
    assert refused.returncode == 1 and "not ready" in refused.stderr and "127.0.0.1" in refused.stderr
    no_logs = keyless(*base, "--client-id", ADMIN)
    assert no_logs.returncode == 1 and "no logs given" in no_logs.stderr
    denied = keyless(*base, "--client-id", DATA_ONLY, "--force")
    assert denied.returncode == 3 and "AuthorizationFailed" in denied.stderr
    assert "Storage Account Contributor" in denied.stderr
    wrong = keyless(*base[:4], "--resource-id", rid.replace("armacct", "other"),
                    "--emulator", str(emu.data_dir))
    assert wrong.returncode == 2 and "not --account" in wrong.stderr
    key = emu.account("armacct")["key"]
    for out in (refused, no_logs, denied, wrong):
        assert key not in out.stdout + out.stderr and "Traceback" not in out.stderr
    # Nothing changed: the key still works.
    assert key_share(emu).get_file_client("k.txt").download_file().readall() == b"key user"


def test_account_resource_id_from_parts_or_whole() -> None:
    rid = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/acct"
    assert account_resource_id("acct", "s1", "rg1", None) == rid
    assert account_resource_id("acct", None, None, rid + "/") == rid
    for args, expected in [(("acct", None, "rg1", None), "--subscription and --resource-group"),
                           (("acct", None, None, "/subscriptions/s1"), "expected /subscriptions/"),
                           (("other", None, None, rid), "not --account 'other'")]:
        with pytest.raises(FinishError, match=expected):
            account_resource_id(*args)
