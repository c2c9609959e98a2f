"""Share lease error codes with the official async SDK, over a bearer token from version 2024-11-04 as well as
the account key: every error path answers with the code and status Azure answers for shares (the
``...WithContainerOperation`` codes on share operations, as azure-sdk-for-net's recorded ShareClientTests
expect; the lease-operation codes on Lease Share). The sync paths are in test_sdk_fidelity_share_leases.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity.aio import ManagedIdentityCredential
from azure.storage.fileshare.aio import ShareClient, ShareLeaseClient, ShareServiceClient

from keyless.testing import start_emulator

CLIENT_ID = "dddddddd-0000-0000-0000-000000000001"
WORLD = f"""
[[accounts]]
name = "leaseacct"
[[identities]]
name = "operator"
type = "user"
client_id = "{CLIENT_ID}"
[[role_assignments]]
role = "Storage Account Contributor"
principal = "operator"
scope = "leaseacct"
[[role_assignments]]
role = "Storage File Data Privileged Contributor"
principal = "operator"
scope = "leaseacct"
"""


async def _refused(call: Callable[[], Awaitable[Any]]) -> tuple[int | None, str | None]:
    with pytest.raises(HttpResponseError) as refused:
        await call()
    return refused.value.status_code, refused.value.error_code


async def _walk(svc: ShareServiceClient) -> None:
    share: ShareClient = await svc.create_share(f"codes-{uuid.uuid4().hex[:12]}")
    wrong = str(uuid.uuid4())
    # No lease yet: a lease id on a share operation, and lease actions that need one.
    assert await _refused(lambda: share.set_share_metadata({}, lease=wrong)) == \
        (412, "LeaseNotPresentWithContainerOperation")
    assert await _refused(lambda: share.get_share_properties(lease=wrong)) == \
        (412, "LeaseNotPresentWithContainerOperation")
    for action in ("renew", "release", "break_lease"):
        assert await _refused(getattr(ShareLeaseClient(share, lease_id=wrong), action)) == \
            (409, "LeaseNotPresentWithLeaseOperation"), action
    assert await _refused(lambda: ShareLeaseClient(share, lease_id=wrong).change(str(uuid.uuid4()))) == \
        (409, "LeaseNotPresentWithLeaseOperation")

    lease = await share.acquire_lease(lease_duration=60)
    assert await _refused(share.delete_share) == (412, "LeaseIdMissing")
    assert await _refused(lambda: share.delete_share(lease=wrong)) == \
        (412, "LeaseIdMismatchWithContainerOperation")
    assert await _refused(lambda: share.set_share_quota(9, lease=wrong)) == \
        (412, "LeaseIdMismatchWithContainerOperation")
    assert await _refused(lambda: ShareLeaseClient(share).acquire(lease_duration=15)) == \
        (409, "LeaseAlreadyPresent")
    for action in ("renew", "release"):
        assert await _refused(getattr(ShareLeaseClient(share, lease_id=wrong), action)) == \
            (409, "LeaseIdMismatchWithLeaseOperation"), action
    assert await _refused(lambda: ShareLeaseClient(share, lease_id=wrong).change(str(uuid.uuid4()))) == \
        (409, "LeaseIdMismatchWithLeaseOperation")

    assert await ShareLeaseClient(share).break_lease(lease_break_period=30) == 30
    assert await _refused(lambda: ShareLeaseClient(share, lease_id=lease.id).acquire(lease_duration=15)) == \
        (409, "LeaseIsBreakingAndCannotBeAcquired")
    assert await _refused(lambda: ShareLeaseClient(share).acquire(lease_duration=15)) == \
        (409, "LeaseAlreadyPresent")
    assert await _refused(lambda: lease.change(str(uuid.uuid4()))) == \
        (409, "LeaseIsBreakingAndCannotBeChanged")
    assert await _refused(lease.renew) == (409, "LeaseIsBrokenAndCannotBeRenewed")
    await ShareLeaseClient(share).break_lease(lease_break_period=0)
    assert await _refused(lease.renew) == (409, "LeaseIsBrokenAndCannotBeRenewed")
    assert await _refused(lambda: lease.change(str(uuid.uuid4()))) == \
        (409, "LeaseNotPresentWithLeaseOperation")
    assert await _refused(lambda: share.set_share_metadata({}, lease=lease.id)) == \
        (412, "LeaseNotPresentWithContainerOperation")
    await share.delete_share()


@pytest.mark.parametrize("auth", ["key", "bearer"])
def test_every_share_lease_error_path_has_azures_code(tmp_path_factory: pytest.TempPathFactory,
                                                      monkeypatch: pytest.MonkeyPatch, auth: str) -> None:
    with start_emulator(tmp_path_factory.mktemp("lease-codes"), WORLD) as emu:
        acct = emu.account("leaseacct")

        async def run() -> None:
            if auth == "key":
                async with ShareServiceClient(acct["url"], connection_verify=emu.ca_cert,
                                              credential={"account_name": acct["name"],
                                                          "account_key": acct["key"]}) as svc:
                    await _walk(svc)
                return
            for var in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "IMDS_ENDPOINT"):
                monkeypatch.delenv(var, raising=False)
            monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_url)
            async with ManagedIdentityCredential(client_id=CLIENT_ID) as cred, \
                    ShareServiceClient(acct["url"], credential=cred, token_intent="backup",
                                       api_version="2024-11-04", connection_verify=emu.ca_cert) as svc:
                await _walk(svc)

        asyncio.run(run())
        assert "Traceback" not in emu.stderr()
