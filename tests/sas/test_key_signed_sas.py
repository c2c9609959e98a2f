"""Key-signed SAS (account SAS, share SAS, file SAS) on a real emulator process, minted by the official SDK.

The SDK's ``generate_*_sas`` is the oracle for the string-to-sign: a SAS it mints works, and the same SAS
altered, expired, not yet valid, from another address, over the wrong protocol or for an operation its
permissions do not cover is refused with Azure's code and message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import urllib3
from azure.core.exceptions import HttpResponseError
from azure.storage.fileshare import (
    AccessPolicy,
    AccountSasPermissions,
    ResourceTypes,
    ShareClient,
    ShareFileClient,
    ShareServiceClient,
    generate_account_sas,
    generate_file_sas,
    generate_share_sas,
)

from keyless.testing import EmulatorProcess, start_emulator


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with start_emulator(tmp_path_factory.mktemp("sas-key")) as started:
        acct = started.account()
        share = ShareClient(account_url=acct["url"], share_name="demo", connection_verify=started.ca_cert,
                            credential={"account_name": acct["name"], "account_key": acct["key"]})
        share.get_directory_client("docs").create_directory()
        share.get_file_client("docs/a.txt").upload_file(b"alpha")
        yield started
        assert "Traceback" not in started.stderr()


def soon(minutes: int = 30) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


def file_client(emu: EmulatorProcess, sas: str, path: str = "docs/a.txt") -> ShareFileClient:
    acct = emu.account()
    return ShareFileClient(account_url=acct["url"], share_name="demo", file_path=path, credential=sas,
                           connection_verify=emu.ca_cert)


def raw_get(emu: EmulatorProcess, path_and_query: str) -> urllib3.BaseHTTPResponse:
    pool = urllib3.PoolManager(ca_certs=emu.ca_cert)
    return pool.request("GET", f"{emu.account()['url']}/{path_and_query}", retries=False)


def detail(resp: urllib3.BaseHTTPResponse) -> str:
    found = re.search(r"<AuthenticationErrorDetail>(.*)</AuthenticationErrorDetail>", resp.data.decode(),
                      re.S)
    return found.group(1) if found else ""


def code(resp: urllib3.BaseHTTPResponse) -> str:
    return str(resp.headers.get("x-ms-error-code"))


def file_sas(emu: EmulatorProcess, **kw: Any) -> str:
    acct = emu.account()
    kw.setdefault("permission", "r")
    kw.setdefault("expiry", soon())
    return generate_file_sas(acct["name"], "demo", ["docs", "a.txt"], acct["key"], **kw)


def test_file_sas_reads_the_file_and_nothing_else(emu: EmulatorProcess) -> None:
    sas = file_sas(emu)
    assert file_client(emu, sas).download_file().readall() == b"alpha"
    # The signature names the file: used on another path it cannot match.
    other = raw_get(emu, f"demo/docs?restype=directory&comp=list&{sas}")
    assert other.status == 403 and code(other) == "AuthenticationFailed"
    assert detail(other).startswith("Signature did not match. String to sign used was r\n")
    # Read permission does not allow a write.
    with pytest.raises(HttpResponseError) as refused:
        file_client(emu, sas).upload_file(b"overwrite")
    assert refused.value.status_code == 403 and refused.value.error_code == "AuthorizationPermissionMismatch"
    assert file_client(emu, file_sas(emu)).download_file().readall() == b"alpha"


def test_share_sas_lists_writes_and_deletes_by_permission(emu: EmulatorProcess) -> None:
    acct = emu.account()
    sas = generate_share_sas(acct["name"], "demo", acct["key"], permission="rcwdl", expiry=soon())
    share = ShareClient(account_url=acct["url"], share_name="demo", credential=sas,
                        connection_verify=emu.ca_cert)
    share.get_file_client("docs/b.txt").upload_file(b"bravo")
    names = {item["name"] for item in share.get_directory_client("docs").list_directories_and_files()}
    assert {"a.txt", "b.txt"} <= names
    share.get_file_client("docs/b.txt").delete_file()
    read_only = generate_share_sas(acct["name"], "demo", acct["key"], permission="r", expiry=soon())
    listing = raw_get(emu, f"demo/docs?restype=directory&comp=list&{read_only}")
    assert listing.status == 403 and code(listing) == "AuthorizationPermissionMismatch"


def test_account_sas_by_service_and_resource_type(emu: EmulatorProcess) -> None:
    acct = emu.account()
    sas = generate_account_sas(acct["name"], acct["key"], ResourceTypes(service=True, container=True,
                                                                          object=True),
                               AccountSasPermissions(read=True, list=True), expiry=soon())
    service = ShareServiceClient(account_url=acct["url"], credential=sas, connection_verify=emu.ca_cert)
    assert "demo" in {s["name"] for s in service.list_shares()}
    assert file_client(emu, sas).download_file().readall() == b"alpha"
    objects_only = generate_account_sas(acct["name"], acct["key"], ResourceTypes(object=True),
                                        AccountSasPermissions(read=True, list=True), expiry=soon())
    listing = raw_get(emu, f"?comp=list&{objects_only}")
    assert listing.status == 403 and code(listing) == "AuthorizationResourceTypeMismatch"
    blob_only = generate_account_sas(acct["name"], acct["key"], ResourceTypes(object=True),
                                     AccountSasPermissions(read=True), expiry=soon(), services="b")
    refused = raw_get(emu, f"demo/docs/a.txt?{blob_only}")
    assert refused.status == 403 and code(refused) == "AuthorizationServiceMismatch"


def test_tampered_expired_and_future_sas_are_refused_with_azures_detail(emu: EmulatorProcess) -> None:
    sas = file_sas(emu)
    widened = sas.replace("sp=r", "sp=rw")
    tampered = raw_get(emu, f"demo/docs/a.txt?{widened}")
    assert tampered.status == 403 and code(tampered) == "AuthenticationFailed"
    assert detail(tampered).startswith("Signature did not match. String to sign used was rw\n")
    sig = re.search(r"sig=([^&]*)", sas)
    assert sig is not None and sig.group(1) not in tampered.data.decode()

    expired = raw_get(emu, f"demo/docs/a.txt?{file_sas(emu, expiry=soon(-5))}")
    assert expired.status == 403 and code(expired) == "AuthenticationFailed"
    assert re.fullmatch(r"Signed expiry time \[.* GMT\] has to be after signed start time \[.* GMT\]",
                        detail(expired))
    future = raw_get(emu, f"demo/docs/a.txt?{file_sas(emu, start=soon(10), expiry=soon(20))}")
    assert future.status == 403 and code(future) == "AuthenticationFailed"
    assert detail(future).startswith("Signature not valid in the specified time frame: Start [")
    garbage = raw_get(emu, "demo/docs/a.txt?sv=2025-05-05&sp=r&se=tomorrow&sr=f&sig=AAAA")
    assert garbage.status == 403 and code(garbage) == "AuthenticationFailed"
    assert detail(garbage) == "Signature did not match. String to sign used was " \
        "r\n\ntomorrow\n/file/devaccount/demo/docs/a.txt\n\n\n\n2025-05-05\n\n\n\n\n"


def test_ip_and_protocol_restrictions(emu: EmulatorProcess) -> None:
    elsewhere = raw_get(emu, f"demo/docs/a.txt?{file_sas(emu, ip='10.1.2.3-10.1.2.9')}")
    assert elsewhere.status == 403 and code(elsewhere) == "AuthorizationSourceIPMismatch"
    assert "using this source IP 127.0.0.1." in elsewhere.data.decode()
    here = file_sas(emu, ip="127.0.0.0-127.0.0.255", protocol="https")
    assert file_client(emu, here).download_file().readall() == b"alpha"


def test_sas_requests_are_audited_as_sas_with_a_key_hash(emu: EmulatorProcess) -> None:
    sas = file_sas(emu)
    file_client(emu, sas).get_file_properties()
    sig = re.search(r"sig=([^&]*)", sas)
    assert sig is not None
    rows = [r for r in emu.audit("StorageFileLogs") if r.get("AuthenticationType") == "SAS"]
    assert rows and all(r["Uri"].count("sig=XXXXX") == 1 for r in rows)
    ok = [r for r in rows if r["StatusText"] == "SASSuccess"]
    key_hash = r"key1\([0-9A-F]{64}\),SasSignature\([0-9A-F]{64}\)"
    assert ok and all(re.fullmatch(key_hash, r["AuthenticationHash"]) for r in ok)
    log_text = Path(emu.info["audit_log"]).read_text(encoding="utf-8")
    assert sig.group(1) not in log_text and emu.account()["key"] not in log_text


def test_a_percent_encoded_sig_key_is_redacted_too(emu: EmulatorProcess) -> None:
    # The query's names are percent-decoded before use, so "%73ig" (or "S%49G"-like spellings of it) is the
    # signature as much as "sig" is: it must never reach an audit line either.
    sas = file_sas(emu)
    sig = re.search(r"(?:^|&)sig=([^&]*)", sas)
    assert sig is not None
    resp = raw_get(emu, "demo/docs/a.txt?" + sas.replace("sig=", "%73ig=", 1))
    assert resp.status == 200 and resp.data == b"alpha"
    log_text = Path(emu.info["audit_log"]).read_text(encoding="utf-8")
    assert sig.group(1) not in log_text
    rows = [r for r in emu.audit("StorageFileLogs") if "%73ig=" in r["Uri"]]
    assert rows and all(r["Uri"].count("%73ig=XXXXX") == 1 for r in rows)


def test_stored_access_policy_grants_changes_and_revokes(emu: EmulatorProcess) -> None:
    acct = emu.account()
    owner = ShareClient(account_url=acct["url"], share_name="demo", connection_verify=emu.ca_cert,
                        credential={"account_name": acct["name"], "account_key": acct["key"]})
    owner.set_share_access_policy({"readers": AccessPolicy(permission="r", expiry=soon(), start=soon(-5))})
    got = owner.get_share_access_policy()["signed_identifiers"]
    assert [(p.id, p.access_policy.permission) for p in got] == [("readers", "r")]
    sas = generate_file_sas(acct["name"], "demo", ["docs", "a.txt"], acct["key"], policy_id="readers")
    assert "si=readers" in sas and "sp=" not in sas
    assert file_client(emu, sas).download_file().readall() == b"alpha"
    with pytest.raises(HttpResponseError) as refused:
        file_client(emu, sas).upload_file(b"no write in the policy")
    assert refused.value.error_code == "AuthorizationPermissionMismatch"
    # A field in both the SAS and the policy is refused.
    both = generate_file_sas(acct["name"], "demo", ["docs", "a.txt"], acct["key"], policy_id="readers",
                             permission="r")
    assert raw_get(emu, f"demo/docs/a.txt?{both}").status == 403
    # Changing the policy changes the SAS at once; removing it revokes the SAS.
    owner.set_share_access_policy({"readers": AccessPolicy(permission="r", expiry=soon(-1), start=soon(-5))})
    expired = raw_get(emu, f"demo/docs/a.txt?{sas}")
    assert expired.status == 403 and detail(expired).startswith("Signature not valid in the specified time")
    owner.set_share_access_policy({})
    revoked = raw_get(emu, f"demo/docs/a.txt?{sas}")
    assert revoked.status == 403 and code(revoked) == "AuthenticationFailed"
    assert owner.get_share_access_policy()["signed_identifiers"] == []


def test_a_recreated_share_does_not_inherit_policies(emu: EmulatorProcess) -> None:
    acct = emu.account()
    service = ShareServiceClient(account_url=acct["url"], connection_verify=emu.ca_cert,
                                 credential={"account_name": acct["name"], "account_key": acct["key"]})
    share = service.create_share("reborn")
    share.get_file_client("f.txt").upload_file(b"one")
    share.set_share_access_policy({"p": AccessPolicy(permission="r", expiry=soon())})
    sas = generate_file_sas(acct["name"], "reborn", ["f.txt"], acct["key"], policy_id="p")
    assert raw_get(emu, f"reborn/f.txt?{sas}").status == 200
    service.delete_share("reborn")
    service.create_share("reborn").get_file_client("f.txt").upload_file(b"two")
    assert raw_get(emu, f"reborn/f.txt?{sas}").status == 403
