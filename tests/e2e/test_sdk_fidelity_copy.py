"""Copy File with a SAS-authorised source (same or another account), pending copies and Abort Copy File,
with the official SDK (sync and async) against a real emulator process hosting two accounts.

Azure's behaviour these tests pin (REST "Copy File", "Abort Copy File", "Get File Properties"):
* a source URL carrying a SAS of any kind is authorised by that SAS for the source's account; a bad,
  expired or insufficient one is ``CannotVerifyCopySource`` with the source's status, and the source's
  own status and code in ``x-ms-copy-source-status-code`` / ``x-ms-copy-source-error-code``;
* a pending copy answers 202 ``x-ms-copy-status: pending``; Get File Properties reports its id, source,
  progress and status; its destination cannot be written meanwhile (409 PendingCopyOperation);
* Abort Copy File leaves a zero-length destination with full metadata, status ``aborted``; an ended copy
  is 409 NoPendingCopyOperation, another copy's id 409 CopyIdMismatch.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
import urllib3
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.storage.fileshare import (
    AccessPolicy,
    AccountSasPermissions,
    FileSasPermissions,
    ResourceTypes,
    ShareFileClient,
    ShareServiceClient,
    generate_account_sas,
    generate_file_sas,
    generate_share_sas,
)
from azure.storage.fileshare.aio import ShareFileClient as AsyncShareFileClient

from keyless.testing import EmulatorProcess, start_emulator

CLIENT_ID = "bbbbbbbb-0000-0000-0000-00000000c0b1"
WORLD = f"""
[[accounts]]
name = "srcacct"
shares = ["src", "norole"]

[[accounts]]
name = "dstacct"
shares = ["dst"]

[[identities]]
name = "delegator"
type = "user"
client_id = "{CLIENT_ID}"

[[role_assignments]]
role = "Storage File Data Privileged Reader"
principal = "delegator"
scope = "srcacct/src"
"""
DATA = bytes(range(256)) * 160  # 40 KiB


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with start_emulator(tmp_path_factory.mktemp("copy"), WORLD) as started:
        source = file_client(started, "srcacct", "src", "data.bin")
        source.upload_file(DATA, metadata={"origin": "srcacct"})
        yield started
        assert "Traceback" not in started.stderr()


@pytest.fixture(autouse=True)
def no_copy_rate(emu: EmulatorProcess) -> Iterator[None]:
    yield
    emu.set_copy_rate(None)


def file_client(emu: EmulatorProcess, account: str, share: str, path: str) -> ShareFileClient:
    acct = emu.account(account)
    return ShareFileClient(acct["url"], share, path, connection_verify=emu.ca_cert,
                           credential={"account_name": acct["name"], "account_key": acct["key"]})


def expiry(minutes: int = 30) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=minutes)


def file_sas(emu: EmulatorProcess, permission: str = "r", **kw: Any) -> str:
    acct = emu.account("srcacct")
    kw.setdefault("expiry", expiry())
    return generate_file_sas("srcacct", "src", ["data.bin"], acct["key"],
                             permission=FileSasPermissions.from_string(permission), **kw)


def wait_for_copy(client: ShareFileClient, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        props = client.get_file_properties()
        if props.copy.status != "pending" or time.monotonic() > deadline:
            return props
        time.sleep(0.05)


def copy_headers(client: ShareFileClient) -> dict[str, str]:
    """Get File Properties' x-ms-copy-* headers as sent (the SDK drops x-ms-copy-completion-time: its
    ``CopyProperties`` reads the key "x-ms-copy-completion_time", azure-storage-file-share _models.py)."""
    seen: dict[str, str] = {}

    def hook(response: Any) -> None:
        seen.update({k.lower(): v for k, v in response.http_response.headers.items()
                     if k.lower().startswith("x-ms-copy-")})

    client.get_file_properties(raw_response_hook=hook)
    return seen


def source_url(emu: EmulatorProcess, sas: str) -> str:
    return f"{file_client(emu, 'srcacct', 'src', 'data.bin').url}?{sas}"


def sig_of(sas: str) -> str:
    return next(p.split("=", 1)[1] for p in sas.split("&") if p.startswith("sig="))


def user_delegation_sas(emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, share: str = "src") -> str:
    for var in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_url)
    service = ShareServiceClient(emu.account("srcacct")["url"], connection_verify=emu.ca_cert,
                                 credential=ManagedIdentityCredential(client_id=CLIENT_ID),
                                 token_intent="backup")
    now = datetime.now(UTC).replace(microsecond=0)
    key = service.get_user_delegation_key(start=now - timedelta(minutes=1), expiry=expiry())
    return generate_file_sas("srcacct", share, ["data.bin"], permission="r", expiry=expiry(),
                             user_delegation_key=key)


def test_copy_from_another_account_with_every_kind_of_sas(emu: EmulatorProcess,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    acct = emu.account("srcacct")
    policy_share = ShareServiceClient(acct["url"], connection_verify=emu.ca_cert, credential={
        "account_name": acct["name"], "account_key": acct["key"]}).get_share_client("src")
    policy_share.set_share_access_policy({"readers": AccessPolicy(permission="r", expiry=expiry())})
    kinds = {
        "service (file)": file_sas(emu),
        "service (share)": generate_share_sas("srcacct", "src", acct["key"], permission="r",
                                              expiry=expiry()),
        "account": generate_account_sas("srcacct", acct["key"], ResourceTypes(object=True),
                                         AccountSasPermissions(read=True), expiry()),
        "stored policy": generate_file_sas("srcacct", "src", ["data.bin"], acct["key"],
                                           policy_id="readers"),
        "user delegation": user_delegation_sas(emu, monkeypatch),
    }
    for number, (kind, sas) in enumerate(kinds.items()):
        target = file_client(emu, "dstacct", "dst", f"copy-{number}.bin")
        started = target.start_copy_from_url(source_url(emu, sas))
        # A copy from another account is asynchronous: answered before its bytes have moved.
        assert started["copy_status"] == "pending", kind
        props = wait_for_copy(target)
        assert props.copy.status == "success", kind
        assert props.copy.id == started["copy_id"]
        assert props.copy.progress == f"{len(DATA)}/{len(DATA)}"
        assert "x-ms-copy-completion-time" in copy_headers(target)
        # The source is reported without its query: the signature is never echoed.
        assert props.copy.source == file_client(emu, "srcacct", "src", "data.bin").url, kind
        assert props.metadata == {"origin": "srcacct"} and props.size == len(DATA)
        assert target.download_file().readall() == DATA, kind


def test_copy_within_an_account_with_a_sas_source_and_a_bearer_header(emu: EmulatorProcess) -> None:
    # Same account: the SAS authorises the source, the destination request its own key.
    src = file_client(emu, "srcacct", "src", "data.bin")
    target = file_client(emu, "srcacct", "src", "same-account.bin")
    started = target.start_copy_from_url(f"{src.url}?{file_sas(emu)}")
    assert started["copy_status"] == "success"
    assert target.download_file().readall() == DATA
    # Copy File defines no x-ms-copy-source-authorization (the SDK's start_copy never sends one): a
    # source in another account named without a SAS stays unverifiable whatever that header says.
    other = file_client(emu, "dstacct", "dst", "no-sas.bin")
    with pytest.raises(HttpResponseError) as refused:
        other.start_copy_from_url(src.url, headers={"x-ms-copy-source-authorization": "Bearer x.y.z"})
    assert (refused.value.status_code, refused.value.error_code) == (403, "CannotVerifyCopySource")


@pytest.mark.parametrize(("case", "status", "source_code"), [
    ("wrong signature", 403, "AuthenticationFailed"),
    ("expired", 403, "AuthenticationFailed"),
    ("write only", 403, "AuthorizationPermissionMismatch"),
    ("missing source", 404, "ResourceNotFound"),
    ("unknown policy", 403, "AuthenticationFailed"),
])
def test_a_source_sas_that_does_not_read_the_source_is_cannot_verify_copy_source(
        emu: EmulatorProcess, case: str, status: int, source_code: str) -> None:
    acct = emu.account("srcacct")
    url = source_url(emu, file_sas(emu))
    if case == "wrong signature":
        sas = file_sas(emu)
        url = source_url(emu, sas.replace(f"sig={sig_of(sas)}", f"sig={quote('A' * 43 + '=', safe='')}"))
    elif case == "expired":
        url = source_url(emu, file_sas(emu, expiry=datetime.now(UTC) - timedelta(minutes=5)))
    elif case == "write only":
        url = source_url(emu, file_sas(emu, permission="w"))
    elif case == "missing source":
        sas = generate_share_sas("srcacct", "src", acct["key"], permission="r", expiry=expiry())
        url = f"{file_client(emu, 'srcacct', 'src', 'nope.bin').url}?{sas}"
    else:
        url = source_url(emu, generate_file_sas("srcacct", "src", ["data.bin"], acct["key"],
                                                policy_id="no-such-policy"))
    sig = sig_of(url.split("?", 1)[1])
    target = file_client(emu, "dstacct", "dst", f"refused-{case.replace(' ', '-')}.bin")
    before = len(emu.audit("StorageFileLogs"))
    with pytest.raises(HttpResponseError) as refused:
        target.start_copy_from_url(url)
    err = refused.value
    assert (err.status_code, err.error_code) == (status, "CannotVerifyCopySource")
    assert err.response is not None
    assert err.response.headers["x-ms-copy-source-status-code"] == str(status)
    assert err.response.headers["x-ms-copy-source-error-code"] == source_code
    # The signature never comes back in the reply nor lands in the audit log.
    body = err.response.text()
    rows = json.dumps(emu.audit("StorageFileLogs")[before:])
    for form in (sig, quote(sig, safe=""), sig.replace("%2B", "+").replace("%2F", "/").replace("%3D", "=")):
        assert form not in body and form not in rows
    assert '"CopyFile"' in rows
    with pytest.raises(HttpResponseError) as absent:
        target.get_file_properties()
    assert absent.value.status_code == 404  # nothing was created


def test_a_user_delegation_sas_is_only_as_strong_as_its_delegators_role(
        emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    # The delegator reads srcacct/src only: its SAS for a file in srcacct/norole verifies nothing.
    file_client(emu, "srcacct", "norole", "data.bin").upload_file(b"no role here")
    url = f"{file_client(emu, 'srcacct', 'norole', 'data.bin').url}?" \
          f"{user_delegation_sas(emu, monkeypatch, share='norole')}"
    with pytest.raises(HttpResponseError) as refused:
        file_client(emu, "dstacct", "dst", "from-norole.bin").start_copy_from_url(url)
    err = refused.value
    assert (err.status_code, err.error_code) == (403, "CannotVerifyCopySource")
    assert err.response is not None
    assert err.response.headers["x-ms-copy-source-error-code"] == "AuthorizationPermissionMismatch"


def test_pending_copy_blocks_writes_and_abort_leaves_zero_length_with_metadata(emu: EmulatorProcess) -> None:
    emu.set_copy_rate(0)  # every copy holds still while pending
    src = file_client(emu, "srcacct", "src", "data.bin")
    target = file_client(emu, "srcacct", "src", "held.bin")
    started = target.start_copy_from_url(src.url, metadata={"set": "by-copy"})
    assert started["copy_status"] == "pending"
    props = target.get_file_properties()
    assert (props.copy.status, props.copy.id) == ("pending", started["copy_id"])
    assert props.copy.progress == f"0/{len(DATA)}"
    assert "x-ms-copy-completion-time" not in copy_headers(target)
    assert props.size == len(DATA) and props.metadata == {"set": "by-copy"}
    # Reads are served (the bytes so far, with the copy's state as Get File reports it); writes belong to
    # the copy until it ends.
    download = target.download_file()
    assert (download.properties.copy.status, download.properties.copy.id) == ("pending", started["copy_id"])
    assert len(download.readall()) == len(DATA)
    for write in (lambda: target.upload_range(b"x" * 512, offset=0, length=512),
                  lambda: target.set_file_metadata({"k": "v"}),
                  lambda: target.resize_file(10),
                  lambda: target.start_copy_from_url(src.url)):
        with pytest.raises(HttpResponseError) as blocked:
            write()
        assert (blocked.value.status_code, blocked.value.error_code) == (409, "PendingCopyOperation")

    with pytest.raises(HttpResponseError) as mismatch:
        target.abort_copy("00000000-0000-0000-0000-000000000000")
    assert (mismatch.value.status_code, mismatch.value.error_code) == (409, "CopyIdMismatch")
    target.abort_copy(props)  # the SDK takes the properties and sends their copy id
    aborted = target.get_file_properties()
    assert aborted.copy.status == "aborted" and aborted.copy.id == started["copy_id"]
    assert aborted.size == 0 and aborted.metadata == {"set": "by-copy"}
    assert aborted.copy.status_description
    assert "x-ms-copy-completion-time" in copy_headers(target)
    with pytest.raises(HttpResponseError) as ended:
        target.abort_copy(started["copy_id"])
    assert (ended.value.status_code, ended.value.error_code) == (409, "NoPendingCopyOperation")
    target.upload_file(b"writable again")  # an ended copy no longer holds the file
    assert target.download_file().readall() == b"writable again"


def test_a_pending_copy_progresses_at_the_set_rate_and_completes(emu: EmulatorProcess) -> None:
    emu.set_copy_rate(0)
    src = file_client(emu, "srcacct", "src", "data.bin")
    target = file_client(emu, "dstacct", "dst", "paced.bin")
    started = target.start_copy_from_url(f"{src.url}?{file_sas(emu)}")
    assert target.get_file_properties().copy.progress == f"0/{len(DATA)}"
    emu.set_copy_rate(64 * 1024)  # about 3 KiB a step: the 40 KiB take several steps
    seen: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        props = target.get_file_properties()
        seen.append(int(props.copy.progress.split("/")[0]))
        if props.copy.status != "pending":
            break
        time.sleep(0.02)
    assert props.copy.status == "success" and props.copy.id == started["copy_id"]
    assert seen == sorted(seen) and seen[-1] == len(DATA)
    assert any(0 < n < len(DATA) for n in seen)  # seen part-way
    assert target.download_file().readall() == DATA
    # A finished copy cannot be aborted.
    with pytest.raises(HttpResponseError) as ended:
        target.abort_copy(started["copy_id"])
    assert ended.value.error_code == "NoPendingCopyOperation"


def test_a_source_modified_while_pending_fails_the_copy(emu: EmulatorProcess) -> None:
    src = file_client(emu, "srcacct", "src", "changing.bin")
    src.upload_file(DATA)
    emu.set_copy_rate(0)
    target = file_client(emu, "srcacct", "src", "from-changing.bin")
    started = target.start_copy_from_url(src.url)
    src.upload_range(b"n" * 512, offset=0, length=512)  # the source changes mid-copy
    emu.set_copy_rate(None)
    props = wait_for_copy(target)
    # Never a success holding a mix of two versions of the source.
    assert (props.copy.status, props.copy.id) == ("failed", started["copy_id"])
    assert "modified" in props.copy.status_description
    assert "x-ms-copy-completion-time" in copy_headers(target)


def test_deleting_a_pending_destination_ends_its_copy(emu: EmulatorProcess) -> None:
    emu.set_copy_rate(0)
    target = file_client(emu, "srcacct", "src", "deleted-while-pending.bin")
    target.start_copy_from_url(file_client(emu, "srcacct", "src", "data.bin").url)
    target.delete_file()
    emu.set_copy_rate(None)
    time.sleep(0.3)  # the copier's next steps find no destination and stop
    with pytest.raises(HttpResponseError) as gone:
        target.get_file_properties()
    assert gone.value.status_code == 404


def test_put_range_from_url_accepts_a_sas_source_in_another_account(emu: EmulatorProcess) -> None:
    target = file_client(emu, "dstacct", "dst", "ranged.bin")
    target.create_file(1024)
    target.upload_range_from_url(source_url(emu, file_sas(emu)), offset=0, length=1024, source_offset=512)
    assert target.download_file().readall() == DATA[512:1536]
    with pytest.raises(HttpResponseError) as refused:
        target.upload_range_from_url(source_url(emu, file_sas(emu, permission="w")), offset=0, length=512,
                                     source_offset=0)
    assert (refused.value.status_code, refused.value.error_code) == (403, "CannotVerifyCopySource")


def test_abort_on_a_leased_destination_needs_the_lease(emu: EmulatorProcess) -> None:
    target = file_client(emu, "srcacct", "src", "leased.bin")
    target.upload_file(b"before")
    lease = target.acquire_lease()
    emu.set_copy_rate(0)
    started = target.start_copy_from_url(file_client(emu, "srcacct", "src", "data.bin").url, lease=lease)
    assert started["copy_status"] == "pending"
    with pytest.raises(HttpResponseError) as no_lease:
        target.abort_copy(started["copy_id"])
    assert (no_lease.value.status_code, no_lease.value.error_code) == (412, "LeaseIdMissing")
    target.abort_copy(started["copy_id"], lease=lease)
    assert target.get_file_properties().copy.status == "aborted"
    lease.release()


def test_abort_copy_refuses_a_missing_copy_id_and_a_missing_file(emu: EmulatorProcess) -> None:
    target = file_client(emu, "srcacct", "src", "data.bin")
    with pytest.raises(HttpResponseError) as no_pending:
        target.abort_copy("11111111-1111-1111-1111-111111111111")
    assert (no_pending.value.status_code, no_pending.value.error_code) == (409, "NoPendingCopyOperation")
    with pytest.raises(HttpResponseError) as missing:
        file_client(emu, "srcacct", "src", "nope.bin").abort_copy("11111111-1111-1111-1111-111111111111")
    assert missing.value.status_code == 404


def test_abort_copy_without_its_id_or_action_is_400(emu: EmulatorProcess) -> None:
    acct = emu.account("srcacct")
    sas = generate_file_sas("srcacct", "src", ["data.bin"], acct["key"], permission="w", expiry=expiry())
    url = f"{file_client(emu, 'srcacct', 'src', 'data.bin').url}?comp=copy&{sas}"
    http = urllib3.PoolManager(ca_certs=emu.ca_cert)
    headers = {"x-ms-version": "2025-05-05", "x-ms-copy-action": "abort"}
    no_id = http.request("PUT", url, headers=headers, retries=False)
    assert no_id.status == 400 and no_id.headers["x-ms-error-code"] == "MissingRequiredQueryParameter"
    assert b"<QueryParameterName>copyid</QueryParameterName>" in no_id.data
    no_action = http.request("PUT", f"{url}&copyid=x", headers={"x-ms-version": "2025-05-05"}, retries=False)
    assert no_action.status == 400 and no_action.headers["x-ms-error-code"] == "MissingRequiredHeader"
    wrong_action = http.request("PUT", f"{url}&copyid=x", headers={**headers, "x-ms-copy-action": "stop"},
                                retries=False)
    assert wrong_action.status == 400 and wrong_action.headers["x-ms-error-code"] == "InvalidHeaderValue"


@pytest.mark.parametrize("body", [b'{"bytes_per_second": -1}', b'{"bytes_per_second": "fast"}',
                                  b'{"bytes_per_second": true}', b'{"bytes_per_second": 1.5}', b"{}", b"[]"])
def test_the_copy_control_refuses_values_it_cannot_use(emu: EmulatorProcess, body: bytes) -> None:
    control = emu.info["control"]
    headers = {"X-Keyless-Control": control["secret"], "Content-Type": "application/json"}
    resp = urllib3.request("POST", f"{control['url']}/copy", body=body, headers=headers, retries=False,
                           timeout=10)
    assert resp.status == 400 and "bytes_per_second" in resp.json()["error"], resp.data
    state = urllib3.request("GET", f"{control['url']}/copy", headers=headers, retries=False, timeout=10)
    assert state.json()["bytes_per_second"] is None  # unchanged


def test_async_client_copies_waits_and_aborts(emu: EmulatorProcess) -> None:
    acct = emu.account("dstacct")
    url = source_url(emu, file_sas(emu))

    async def scenario() -> None:
        async with AsyncShareFileClient(acct["url"], "dst", "async.bin", connection_verify=emu.ca_cert,
                                        credential={"account_name": acct["name"],
                                                    "account_key": acct["key"]}) as target:
            started = await target.start_copy_from_url(url)
            assert started["copy_status"] == "pending"
            props = await target.get_file_properties()
            while props.copy.status == "pending":
                await asyncio.sleep(0.05)
                props = await target.get_file_properties()
            assert props.copy.status == "success"
            assert await (await target.download_file()).readall() == DATA
            emu.set_copy_rate(0)
            held = await target.start_copy_from_url(url)
            await target.abort_copy(held["copy_id"])
            props = await target.get_file_properties()
            assert (props.copy.status, props.size) == ("aborted", 0)
            with pytest.raises(HttpResponseError) as ended:
                await target.abort_copy(held["copy_id"])
            assert ended.value.error_code == "NoPendingCopyOperation"

    asyncio.run(scenario())


def test_a_copy_pending_when_the_emulator_stops_is_failed_at_restart(tmp_path: Any) -> None:
    with start_emulator(tmp_path, WORLD) as emu:
        file_client(emu, "srcacct", "src", "data.bin").upload_file(DATA)
        emu.set_copy_rate(0)
        target = file_client(emu, "srcacct", "src", "interrupted.bin")
        started = target.start_copy_from_url(file_client(emu, "srcacct", "src", "data.bin").url)
        assert started["copy_status"] == "pending"
        assert emu.stop() == 0
        emu.start()
        target = file_client(emu, "srcacct", "src", "interrupted.bin")
        props = target.get_file_properties()
        # Its bytes never all arrived: failed, never success, and never pending for ever.
        assert (props.copy.status, props.copy.id) == ("failed", started["copy_id"])
        assert "stopped" in props.copy.status_description
        assert "x-ms-copy-completion-time" in copy_headers(target)
        target.upload_file(b"usable")  # a failed copy no longer holds the file
        assert "Traceback" not in emu.stderr()
