"""Share leases (Lease Share, every action) and x-ms-lease-id on share operations, driven by the official
SDK (sync and async) against the emulator as a real process, error paths included."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.fileshare import ShareClient, ShareLeaseClient
from azure.storage.fileshare.aio import ShareServiceClient as AsyncShareServiceClient

from e2e.sdk_clients import key_service
from keyless.testing import EmulatorProcess


@pytest.fixture
def share(emulator: EmulatorProcess) -> Iterator[ShareClient]:
    client = key_service(emulator).get_share_client(f"lease-{uuid.uuid4().hex[:12]}")
    client.create_share()
    yield client
    props = client.get_share_properties()
    if props.lease.state in ("leased", "breaking"):
        ShareLeaseClient(client).break_lease(lease_break_period=0)
    client.delete_share(delete_snapshots="include-leased")


def _code(excinfo: pytest.ExceptionInfo[HttpResponseError]) -> tuple[int | None, str | None]:
    return excinfo.value.status_code, excinfo.value.error_code


def test_infinite_lease_guards_delete_and_writes(share: ShareClient) -> None:
    lease = share.acquire_lease()
    props = share.get_share_properties()
    assert (props.lease.status, props.lease.state, props.lease.duration) == ("locked", "leased", "infinite")

    with pytest.raises(HttpResponseError) as missing:
        share.delete_share()
    assert _code(missing) == (412, "LeaseIdMissing")
    wrong = str(uuid.uuid4())
    with pytest.raises(HttpResponseError) as mismatch:
        share.set_share_metadata({"a": "b"}, lease=wrong)
    assert _code(mismatch) == (412, "LeaseIdMismatchWithContainerOperation")
    with pytest.raises(HttpResponseError) as read_mismatch:
        share.get_share_properties(lease=wrong)
    assert _code(read_mismatch) == (412, "LeaseIdMismatchWithContainerOperation")

    share.set_share_metadata({"a": "b"}, lease=lease)  # with the id: allowed
    share.set_share_metadata({"c": "d"})  # without: allowed, only delete needs it
    share.set_share_quota(7, lease=lease)
    assert share.get_share_properties(lease=lease).quota == 7

    with pytest.raises(HttpResponseError) as taken:
        ShareLeaseClient(share).acquire()
    assert _code(taken) == (409, "LeaseAlreadyPresent")

    lease.renew()
    new_id = str(uuid.uuid4())
    lease.change(new_id)
    assert lease.id == new_id
    assert share.get_share_properties().lease.state == "leased"
    lease.release()
    props = share.get_share_properties()
    assert (props.lease.status, props.lease.state) == ("unlocked", "available")
    with pytest.raises(HttpResponseError) as lost:
        share.set_share_metadata({}, lease=new_id)
    assert _code(lost) == (412, "LeaseNotPresentWithContainerOperation")
    with pytest.raises(HttpResponseError) as gone:
        ShareLeaseClient(share, lease_id=new_id).renew()
    assert _code(gone) == (409, "LeaseNotPresentWithLeaseOperation")


def test_fixed_lease_break_and_reacquire(share: ShareClient) -> None:
    lease = share.acquire_lease(lease_duration=60)
    assert share.get_share_properties().lease.duration == "fixed"
    other = ShareLeaseClient(share)
    with pytest.raises(HttpResponseError) as mismatch:
        other.release()
    assert _code(mismatch) == (409, "LeaseIdMismatchWithLeaseOperation")

    remaining = other.break_lease(lease_break_period=30)  # any caller may break
    assert remaining == 30
    props = share.get_share_properties()
    assert (props.lease.status, props.lease.state) == ("locked", "breaking")
    with pytest.raises(HttpResponseError) as breaking:
        lease.change(str(uuid.uuid4()))
    assert _code(breaking) == (409, "LeaseIsBreakingAndCannotBeChanged")
    with pytest.raises(HttpResponseError) as renew:
        lease.renew()
    assert _code(renew) == (409, "LeaseIsBrokenAndCannotBeRenewed")

    assert other.break_lease(lease_break_period=0) == 0
    assert share.get_share_properties().lease.state == "broken"
    share.delete_share()  # a broken lease no longer guards the share
    share.create_share()
    again = share.acquire_lease(lease_duration=15)
    assert share.get_share_properties().lease.state == "leased"
    again.release()


def test_bad_lease_requests_are_refused_by_name(share: ShareClient) -> None:
    with pytest.raises(HttpResponseError) as bad_duration:
        share.acquire_lease(lease_duration=5)
    assert _code(bad_duration) == (400, "InvalidHeaderValue")
    assert "x-ms-lease-duration" in str(bad_duration.value)
    with pytest.raises(HttpResponseError) as no_lease:
        ShareLeaseClient(share).break_lease()
    assert _code(no_lease) == (409, "LeaseNotPresentWithLeaseOperation")


def test_leased_snapshot_blocks_deleting_the_share_unless_include_leased(emulator: EmulatorProcess,
                                                                         share: ShareClient) -> None:
    stamp = share.create_snapshot()["snapshot"]
    snap = key_service(emulator).get_share_client(share.share_name, snapshot=stamp)
    snap_lease = snap.acquire_lease()
    assert snap.get_share_properties().lease.state == "leased"
    assert share.get_share_properties().lease.state == "available"  # the live share is not leased
    with pytest.raises(HttpResponseError) as leased:
        share.delete_share(delete_snapshots=True)
    assert _code(leased) == (409, "DeleteShareWhenSnapshotLeased")
    with pytest.raises(HttpResponseError) as needs_id:
        snap.delete_share()
    assert _code(needs_id) == (412, "LeaseIdMissing")
    snap_lease.release()
    listed = [s for s in key_service(emulator).list_shares(name_starts_with=share.share_name,
                                                       include_snapshots=True)]
    assert [(s.snapshot, s.lease.state) for s in listed] == [(stamp, "available"), (None, "available")]


def test_async_share_lease(emulator: EmulatorProcess) -> None:
    acct = emulator.account()

    async def scenario() -> None:
        async with AsyncShareServiceClient(
            acct["url"], credential={"account_name": acct["name"], "account_key": acct["key"]},
            connection_verify=emulator.ca_cert,
        ) as svc:
            client = svc.get_share_client(f"leaseaio-{uuid.uuid4().hex[:10]}")
            await client.create_share()
            lease = await client.acquire_lease(lease_duration=20)
            with pytest.raises(HttpResponseError) as missing:
                await client.delete_share()
            assert missing.value.error_code == "LeaseIdMissing"
            await lease.renew()
            await client.delete_share(lease=lease)

    asyncio.run(scenario())
