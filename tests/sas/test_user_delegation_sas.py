"""User delegation SAS: Get User Delegation Key on the Files endpoint, SAS signed with the key, and the
delegator's role checked at request time. The official SDK (≥ 12.24) is the oracle: keyless's SAS for the
same key and inputs is the same string, and both work.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import urllib3
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential as SdkManagedIdentityCredential
from azure.storage.fileshare import ShareClient as SdkShareClient
from azure.storage.fileshare import ShareFileClient, ShareServiceClient, generate_file_sas, generate_share_sas
from azure.storage.fileshare import UserDelegationKey as SdkUserDelegationKey
from click.testing import CliRunner

from keyless.cli.migrate_cmd import migrate_group
from keyless.files import sas
from keyless.files.client import ShareClient
from keyless.files.urls import share_url
from keyless.identity import ManagedIdentityCredential
from keyless.testing import EmulatorProcess, start_emulator
from worlds import minter_world

CLIENT_ID = "bbbbbbbb-0000-0000-0000-0000000005a5"
WORLD = minter_world("sasacct", CLIENT_ID, extra_identities="""
[[identities]]
name = "bystander"
type = "user"
client_id = "bbbbbbbb-0000-0000-0000-0000000005a6"
""")
ROLE = {"role": "Storage File Data Privileged Contributor", "principal": "minter", "scope": "sasacct/data"}


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with start_emulator(tmp_path_factory.mktemp("sas-ud"), WORLD) as started:
        acct = started.account("sasacct")
        share = SdkShareClient(account_url=acct["url"], share_name="data", connection_verify=started.ca_cert,
                               credential={"account_name": acct["name"], "account_key": acct["key"]})
        share.get_directory_client("docs").create_directory()
        share.get_file_client("docs/a.txt").upload_file(b"alpha")
        yield started
        assert "Traceback" not in started.stderr()


@pytest.fixture
def sdk_identity(emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> SdkManagedIdentityCredential:
    for var in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_url)
    return SdkManagedIdentityCredential(client_id=CLIENT_ID)


def keyless_client(emu: EmulatorProcess, client_id: str = CLIENT_ID) -> ShareClient:
    cred = ManagedIdentityCredential(source="imds", imds_host=emu.imds_url, client_id=client_id)
    return ShareClient(share_url("sasacct", "data", emulator_url=emu.files_url), cred, ca_cert=emu.ca_cert,
                       emulator_url=emu.files_url)


def window(minutes: int = 30) -> tuple[datetime, datetime]:
    now = datetime.now(UTC).replace(microsecond=0)
    return now - timedelta(minutes=1), now + timedelta(minutes=minutes)


def as_sdk_key(key: sas.UserDelegationKey) -> SdkUserDelegationKey:
    out = SdkUserDelegationKey()
    out.signed_oid, out.signed_tid = key.signed_oid, key.signed_tid
    out.signed_start, out.signed_expiry = key.signed_start, key.signed_expiry
    out.signed_service, out.signed_version, out.value = key.signed_service, key.signed_version, key.value
    return out


def get(url: str, emu: EmulatorProcess) -> urllib3.BaseHTTPResponse:
    return urllib3.PoolManager(ca_certs=emu.ca_cert).request("GET", url, retries=False)


def test_sdk_gets_a_key_without_the_intent_header_and_its_sas_works(
        emu: EmulatorProcess, sdk_identity: SdkManagedIdentityCredential) -> None:
    acct = emu.account("sasacct")
    service = ShareServiceClient(account_url=acct["url"], credential=sdk_identity, token_intent="backup",
                                 connection_verify=emu.ca_cert)
    start, expiry = window()
    key = service.get_user_delegation_key(start=start, expiry=expiry)
    assert key.signed_oid == emu.identity("minter")["object_id"] and key.signed_service == "f"
    token = generate_file_sas("sasacct", "data", ["docs", "a.txt"], permission="r", expiry=expiry,
                              user_delegation_key=key)
    reader = ShareFileClient(account_url=acct["url"], share_name="data", file_path="docs/a.txt",
                             credential=token, connection_verify=emu.ca_cert)
    assert reader.download_file().readall() == b"alpha"
    rows = [r for r in emu.audit("StorageFileLogs") if r["OperationName"] == "GetFile"
            and r["AuthenticationType"] == "SAS"]
    assert rows and re.fullmatch(r"UserDelegationKey\([0-9A-F]{64}\),SasSignature\([0-9A-F]{64}\)",
                                 rows[-1]["AuthenticationHash"])
    assert rows[-1]["RequesterObjectId"] == key.signed_oid
    # The raw call as the SDK makes it: no x-ms-file-request-intent header on Get User Delegation Key.
    got = [r for r in emu.audit("StorageFileLogs") if r["OperationName"] == "GetUserDelegationKey"]
    assert got and got[-1]["StatusCode"] == "200" and got[-1]["AuthenticationType"] == "OAuth"


def test_keyless_sas_is_the_sdks_string_and_both_work(emu: EmulatorProcess) -> None:
    client = keyless_client(emu)
    start, expiry = window()
    key = sas.get_user_delegation_key(client, start, expiry)
    assert "value" not in repr(key).replace("value=<redacted>", "") and key.value not in repr(key)
    target = client.url("docs/a.txt")
    cases: list[dict[str, Any]] = [
        {"permissions": "r", "start": None, "ip": None, "https_only": False},
        {"permissions": "rw", "start": start, "ip": "127.0.0.1", "https_only": True},
        {"permissions": "rcwd", "start": start, "ip": "127.0.0.0-127.0.0.255", "https_only": False},
    ]
    for case in cases:
        mine = sas.user_delegation_sas(key, target, expiry=expiry, is_file=True, **case)
        theirs = generate_file_sas("sasacct", "data", ["docs", "a.txt"], permission=case["permissions"],
                                   expiry=expiry, start=case["start"], ip=case["ip"],
                                   protocol="https" if case["https_only"] else None,
                                   user_delegation_key=as_sdk_key(key))
        assert mine == theirs
        assert get(sas.sas_url(target, mine, is_file=True), emu).data == b"alpha"
    share_token = sas.user_delegation_sas(key, client.url(""), permissions="rl", expiry=expiry, is_file=False)
    assert share_token == generate_share_sas("sasacct", "data", permission="rl", expiry=expiry,
                                             user_delegation_key=as_sdk_key(key))
    listing = get(f"{client.target.share_url}/docs?restype=directory&comp=list&{share_token}", emu)
    assert listing.status == 200 and b"<Name>a.txt</Name>" in listing.data


def test_delegation_sas_follows_the_delegators_current_role(emu: EmulatorProcess) -> None:
    client = keyless_client(emu)
    start, expiry = window()
    key = sas.get_user_delegation_key(client, start, expiry)
    target = client.url("docs/a.txt")
    url = sas.sas_url(target, sas.user_delegation_sas(key, target, permissions="r", expiry=expiry,
                                                      is_file=True), is_file=True)
    assert get(url, emu).status == 200
    emu.set_roles([])
    try:
        refused = get(url, emu)
        assert refused.status == 403
        assert refused.headers["x-ms-error-code"] == "AuthorizationPermissionMismatch"
    finally:
        emu.set_roles([ROLE])
    assert get(url, emu).status == 200


def test_tampered_or_forged_delegation_sas_is_refused(emu: EmulatorProcess) -> None:
    client = keyless_client(emu)
    start, expiry = window()
    key = sas.get_user_delegation_key(client, start, expiry)
    target = client.url("docs/a.txt")
    token = sas.user_delegation_sas(key, target, permissions="r", expiry=expiry, is_file=True)
    # Another identity's object id with the same signature: the key (and so the signature) differs.
    bystander = emu.identity("bystander")["object_id"]
    forged = get(sas.sas_url(target, token.replace(key.signed_oid, bystander), is_file=True), emu)
    assert forged.status == 403 and forged.headers["x-ms-error-code"] == "AuthenticationFailed"
    assert b"Signature did not match." in forged.data and key.value.encode() not in forged.data
    # A write with a read-only SAS.
    writer = ShareFileClient.from_file_url(sas.sas_url(target, token, is_file=True),
                                           connection_verify=emu.ca_cert)
    with pytest.raises(HttpResponseError) as refused:
        writer.upload_file(b"nope")
    assert refused.value.error_code == "AuthorizationPermissionMismatch"


def test_expired_delegation_sas_and_bad_key_requests(emu: EmulatorProcess) -> None:
    client = keyless_client(emu)
    start, expiry = window()
    key = sas.get_user_delegation_key(client, start, expiry)
    target = client.url("docs/a.txt")
    url = sas.sas_url(target, sas.user_delegation_sas(key, target, permissions="r", expiry=start + timedelta(
        seconds=90), is_file=True), is_file=True)
    assert get(url, emu).status == 200
    emu.set_clock_offset(120)
    try:
        expired = get(url, emu)
        assert expired.status == 403 and expired.headers["x-ms-error-code"] == "AuthenticationFailed"
        assert b"has to be after signed start time" in expired.data
    finally:
        emu.set_clock_offset(0)
    with pytest.raises(Exception, match="InvalidXmlNodeValue"):
        sas.get_user_delegation_key(client, start, start + timedelta(days=8))
    bystander = keyless_client(emu, "bbbbbbbb-0000-0000-0000-0000000005a6")
    with pytest.raises(Exception, match="AuthorizationPermissionMismatch"):
        sas.get_user_delegation_key(bystander, start, expiry)
    acct = emu.account("sasacct")
    keyed = urllib3.PoolManager(ca_certs=emu.ca_cert).request(
        "POST", f"{acct['url']}/?restype=service&comp=userdelegationkey", body=b"<KeyInfo/>",
        headers={"Authorization": f"SharedKey sasacct:{'A' * 44}", "x-ms-version": "2025-11-05"},
        retries=False)
    assert keyed.status == 403 and keyed.headers["x-ms-error-code"] == "AuthenticationFailed"


def test_migrate_report_tells_delegation_sas_from_key_signed_sas(emu: EmulatorProcess) -> None:
    client = keyless_client(emu)
    start, expiry = window()
    key = sas.get_user_delegation_key(client, start, expiry)
    target = client.url("docs/a.txt")
    ud_url = sas.sas_url(target, sas.user_delegation_sas(key, target, permissions="r", expiry=expiry,
                                                         is_file=True), is_file=True)
    time.sleep(0.05)
    cutoff = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    assert get(ud_url, emu).status == 200
    log = emu.info["audit_log"]
    ready = CliRunner().invoke(migrate_group, ["report", log, "--since", cutoff, "--json"])
    data = json.loads(ready.stdout)
    assert ready.exit_code == 0 and data["ready"] is True, ready.stdout
    assert data["accounts"]["sasacct"]["requests_by_authentication_type"] == {"SAS": 1}
    # The same file read with a key-signed SAS is a key user the report names.
    acct = emu.account("sasacct")
    key_sas = generate_file_sas("sasacct", "data", ["docs", "a.txt"], acct["key"], permission="r",
                                expiry=expiry)
    assert get(f"{acct['url']}/data/docs/a.txt?{key_sas}", emu).status == 200
    not_ready = CliRunner().invoke(migrate_group, ["report", log, "--since", cutoff, "--json"])
    data = json.loads(not_ready.stdout)
    assert not_ready.exit_code == 1 and data["accounts"]["sasacct"]["key_signed_requests"] == 1
