"""OAuth on the FileService / FileShare management operations from x-ms-version 2024-11-04, with the
official SDK (sync and async) as a bearer client of a real emulator process.

Each operation needs a management action (fileServices/read|write, fileServices/shares/read|write|delete|
lease/action: Owner, Contributor, Storage Account Contributor; Reader for reads) *and* a backup-semantics
data action (Storage File Data Privileged Reader/Contributor); without either Azure answers 403
AuthorizationPermissionMismatch. The table and its sources are in keyless.emulator.management_actions.
Versions: 2024-11-04, 2025-05-05 and the SDK's default.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential
from azure.storage.fileshare import (
    AccessPolicy,
    Metrics,
    ShareClient,
    ShareSasPermissions,
    ShareServiceClient,
)
from azure.storage.fileshare.aio import ShareServiceClient as AsyncShareServiceClient

from keyless.testing import EmulatorProcess, start_emulator

ACCOUNT = "rbacacct"
FIXED = "fixed"  # created with the key; the refusal tests must leave it as it was
IDS = {name: f"cccccccc-0000-0000-0000-{i:012d}" for i, name in enumerate(
    ("admin", "reader", "dataonly", "mgmtonly", "scoped", "smbonly"), start=1)}
ROLES = [
    ("admin", "Storage Account Contributor", ACCOUNT),
    ("admin", "Storage File Data Privileged Contributor", ACCOUNT),
    ("reader", "Reader", ACCOUNT),
    ("reader", "Storage File Data Privileged Reader", ACCOUNT),
    ("dataonly", "Storage File Data Privileged Contributor", ACCOUNT),
    ("mgmtonly", "Owner", ACCOUNT),
    ("scoped", "Contributor", ACCOUNT),
    ("scoped", "Storage File Data Privileged Contributor", f"{ACCOUNT}/{FIXED}"),
    ("smbonly", "Contributor", ACCOUNT),
    ("smbonly", "Storage File Data SMB Share Elevated Contributor", ACCOUNT),
]
WORLD = f'[[accounts]]\nname = "{ACCOUNT}"\nshares = ["{FIXED}"]\n' + "".join(
    f'[[identities]]\nname = "{name}"\ntype = "user"\nclient_id = "{cid}"\n' for name, cid in IDS.items()
) + "".join(
    f'[[role_assignments]]\nrole = "{role}"\nprincipal = "{who}"\nscope = "{scope}"\n'
    for who, role, scope in ROLES
)
# None: the SDK's default version (its newest).
VERSIONS = ["2024-11-04", "2025-05-05", None]
DENIED = (403, "AuthorizationPermissionMismatch")


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with start_emulator(tmp_path_factory.mktemp("rbac"), WORLD) as started:
        yield started
        assert "Traceback" not in started.stderr()


@pytest.fixture(autouse=True)
def imds_env(emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_url)


def _kw(emu: EmulatorProcess, version: str | None) -> dict[str, Any]:
    kw: dict[str, Any] = {"token_intent": "backup", "connection_verify": emu.ca_cert}
    if version is not None:
        kw["api_version"] = version
    return kw


def service(emu: EmulatorProcess, who: str, version: str | None) -> ShareServiceClient:
    credential = ManagedIdentityCredential(client_id=IDS[who])
    return ShareServiceClient(emu.account(ACCOUNT)["url"], credential=credential, **_kw(emu, version))


def key_service(emu: EmulatorProcess) -> ShareServiceClient:
    acct = emu.account(ACCOUNT)
    return ShareServiceClient(acct["url"], credential={"account_name": ACCOUNT, "account_key": acct["key"]},
                              connection_verify=emu.ca_cert)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _policy() -> dict[str, AccessPolicy]:
    now = datetime.now(UTC).replace(microsecond=0)
    return {"readers": AccessPolicy(permission=ShareSasPermissions(read=True), start=now,
                                    expiry=now + timedelta(hours=1))}


def _denied(call: Callable[[], object]) -> None:
    with pytest.raises(HttpResponseError) as refused:
        call()
    assert (refused.value.status_code, refused.value.error_code) == DENIED, refused.value


def _reads(svc: ShareServiceClient, share: ShareClient) -> list[Callable[[], object]]:
    return [
        lambda: list(svc.list_shares(include_snapshots=True)),
        svc.get_service_properties,
        share.get_share_properties,
        share.get_share_stats,
        share.get_share_access_policy,
    ]


def _writes(svc: ShareServiceClient, share: ShareClient) -> list[Callable[[], object]]:
    return [
        lambda: svc.set_service_properties(minute_metrics=Metrics(enabled=False)),
        lambda: svc.create_share(_name("denied")),
        lambda: share.set_share_quota(7),
        lambda: share.set_share_metadata({"changed": "yes"}),
        lambda: share.set_share_access_policy(_policy()),
        share.create_snapshot,
        share.acquire_lease,
        share.delete_share,
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_storage_account_contributor_with_a_privileged_data_role_manages_shares(
        emu: EmulatorProcess, version: str | None) -> None:
    svc = service(emu, "admin", version)
    name = _name("admin")
    share = svc.create_share(name, quota=3, metadata={"made": "oauth"})
    share.set_share_quota(9)
    share.set_share_metadata({"set": "oauth"})
    share.set_share_access_policy(_policy())
    assert [i.id for i in share.get_share_access_policy()["signed_identifiers"]] == ["readers"]
    props = share.get_share_properties()
    assert (props.quota, props.metadata) == (9, {"set": "oauth"})
    assert share.get_share_stats() == 0
    snapshot = share.create_snapshot()["snapshot"]
    listed = {(s.name, s.snapshot) for s in svc.list_shares(include_snapshots=True)}
    assert (name, None) in listed and (name, snapshot) in listed
    lease = share.acquire_lease(lease_duration=15)
    lease.renew()
    lease.release()
    svc.set_service_properties(minute_metrics=Metrics(enabled=False))
    assert svc.get_service_properties()["minute_metrics"].enabled is False
    share.delete_share(delete_snapshots=True)
    assert name not in {s.name for s in key_service(emu).list_shares()}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("who", ["dataonly", "mgmtonly", "smbonly"])
def test_one_half_of_the_grant_is_refused_on_every_operation(
        emu: EmulatorProcess, who: str, version: str | None) -> None:
    """A data role alone (even Privileged Contributor on the whole account), a management role alone
    (even Owner), or a management role with an SMB data role (no backup semantics) manage nothing."""
    svc = service(emu, who, version)
    share = svc.get_share_client(FIXED)
    for call in _reads(svc, share) + _writes(svc, share):
        _denied(call)
    key = key_service(emu)
    props = key.get_share_client(FIXED).get_share_properties()
    assert props.metadata == {} and props.lease.state == "available"
    assert [s.name for s in key.list_shares(include_snapshots=True)] == [FIXED]


@pytest.mark.parametrize("version", VERSIONS)
def test_reader_with_privileged_reader_reads_but_changes_nothing(emu: EmulatorProcess,
                                                                 version: str | None) -> None:
    svc = service(emu, "reader", version)
    share = svc.get_share_client(FIXED)
    assert FIXED in {s.name for s in svc.list_shares()}
    assert svc.get_service_properties()["hour_metrics"] is not None
    assert share.get_share_properties().name == FIXED
    assert share.get_share_stats() == 0
    assert share.get_share_access_policy()["signed_identifiers"] == []
    for call in _writes(svc, share):
        _denied(call)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_share_scoped_data_role_manages_that_share_only(emu: EmulatorProcess, version: str | None) -> None:
    """Contributor on the account and Privileged Contributor on one share: that share's operations work;
    the account-level ones (list, service properties, creating another share) need the data action on the
    account and are refused."""
    svc = service(emu, "scoped", version)
    share = svc.get_share_client(FIXED)
    assert share.get_share_properties().name == FIXED
    share.set_share_metadata({"scoped": "yes"})
    share.set_share_metadata({})
    lease = share.acquire_lease(lease_duration=15)
    lease.release()
    _denied(lambda: list(svc.list_shares()))
    _denied(svc.get_service_properties)
    _denied(lambda: svc.create_share(_name("elsewhere")))


@pytest.mark.parametrize("version", VERSIONS)
def test_async_client_gets_the_same_answers(emu: EmulatorProcess, version: str | None) -> None:
    async def run() -> None:
        url = emu.account(ACCOUNT)["url"]
        async with AsyncManagedIdentityCredential(client_id=IDS["admin"]) as cred, \
                AsyncShareServiceClient(url, credential=cred, **_kw(emu, version)) as svc:
            name = _name("async")
            share = await svc.create_share(name)
            await share.set_share_metadata({"a": "b"})
            await share.set_share_access_policy(_policy())
            assert (await share.get_share_properties()).metadata == {"a": "b"}
            assert await share.get_share_stats() == 0
            snapshot = (await share.create_snapshot())["snapshot"]
            listed = {(s.name, s.snapshot) async for s in svc.list_shares(include_snapshots=True)}
            assert (name, snapshot) in listed
            lease = await share.acquire_lease()
            await lease.release()
            await svc.set_service_properties(minute_metrics=Metrics(enabled=False))
            assert (await svc.get_service_properties())["minute_metrics"].enabled is False
            await share.delete_share(delete_snapshots=True)
        async with AsyncManagedIdentityCredential(client_id=IDS["dataonly"]) as cred, \
                AsyncShareServiceClient(url, credential=cred, **_kw(emu, version)) as svc:
            share = svc.get_share_client(FIXED)
            for call in (share.get_share_properties, share.get_share_stats, share.get_share_access_policy,
                         share.create_snapshot, share.delete_share, share.acquire_lease,
                         lambda: share.set_share_metadata({"x": "y"}), svc.get_service_properties,
                         lambda: svc.create_share(_name("denied"))):
                with pytest.raises(HttpResponseError) as refused:
                    await call()
                assert (refused.value.status_code, refused.value.error_code) == DENIED
            with pytest.raises(HttpResponseError) as listing:
                [s async for s in svc.list_shares()]
            assert (listing.value.status_code, listing.value.error_code) == DENIED

    asyncio.run(run())
