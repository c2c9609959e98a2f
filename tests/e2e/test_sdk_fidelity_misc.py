"""Smaller fidelity items with the official SDK (sync and async): the share access tier, lease ids on
reads, rename replacing an existing file, names XML cannot carry (Encoded="true"), and handles on the
share root."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.fileshare import ShareClient
from azure.storage.fileshare.aio import ShareClient as AsyncShareClient

from e2e.sdk_clients import key_service
from keyless.testing import EmulatorProcess


@pytest.fixture
def share(emulator: EmulatorProcess) -> Iterator[ShareClient]:
    client = key_service(emulator).get_share_client(f"misc-{uuid.uuid4().hex[:12]}")
    client.create_share()
    yield client
    client.delete_share()


def test_access_tier_is_set_and_reported(emulator: EmulatorProcess) -> None:
    svc = key_service(emulator)
    client = svc.get_share_client(f"tier-{uuid.uuid4().hex[:10]}")
    client.create_share(access_tier="Cool")
    try:
        seen: dict[str, str] = {}
        props = client.get_share_properties(raw_response_hook=lambda r: seen.update(r.http_response.headers))
        assert props.access_tier == "Cool"
        assert seen.get("x-ms-access-tier-change-time", "").endswith("GMT")
        client.set_share_properties(access_tier="Hot")
        assert client.get_share_properties().access_tier == "Hot"
        listed = [s for s in svc.list_shares(name_starts_with=client.share_name)]
        assert listed[0].access_tier == "Hot"
        with pytest.raises(HttpResponseError) as premium:
            client.set_share_properties(access_tier="Premium")
        assert (premium.value.status_code, premium.value.error_code) == (400, "InvalidHeaderValue")
    finally:
        client.delete_share()
    plain = svc.get_share_client(f"tier-{uuid.uuid4().hex[:10]}")
    plain.create_share()
    assert plain.get_share_properties().access_tier == "TransactionOptimized"
    plain.delete_share()


def test_lease_ids_on_reads(share: ShareClient) -> None:
    fc = share.get_file_client("leased.txt")
    fc.upload_file(b"data")
    with pytest.raises(HttpResponseError) as none:
        fc.download_file(lease=str(uuid.uuid4()))
    assert (none.value.status_code, none.value.error_code) == (412, "LeaseNotPresentWithFileOperation")
    lease = fc.acquire_lease()
    assert fc.download_file(lease=lease).readall() == b"data"
    assert fc.download_file().readall() == b"data"  # reads may omit it
    with pytest.raises(HttpResponseError) as wrong:
        fc.get_file_properties(lease=str(uuid.uuid4()))
    assert wrong.value.status_code == 412
    assert fc.get_file_properties(lease=lease).size == 4
    lease.release()
    fc.delete_file()


def test_rename_overwrite_replaces_an_existing_file(share: ShareClient) -> None:
    share.get_file_client("a.txt").upload_file(b"A")
    share.get_file_client("b.txt").upload_file(b"B")
    with pytest.raises(ResourceExistsError):
        share.get_file_client("a.txt").rename_file("b.txt")
    renamed = share.get_file_client("a.txt").rename_file("b.txt", overwrite=True)
    assert renamed.download_file().readall() == b"A"
    assert [i["name"] for i in share.get_directory_client("").list_directories_and_files()] == ["b.txt"]
    renamed.delete_file()


def test_names_xml_cannot_carry_are_listed_encoded(share: ShareClient) -> None:
    name = "odd\ufffename.txt"
    share.get_file_client(name).upload_file(b"x")
    listed = [i["name"] for i in share.get_directory_client("").list_directories_and_files()]
    assert listed == [name]  # the SDK decoded Encoded="true"
    share.get_file_client(name).delete_file()


def test_handles_on_the_share_root(share: ShareClient) -> None:
    root = share.get_directory_client("")
    assert list(root.list_handles(recursive=True)) == []
    assert root.close_all_handles(recursive=True) == {"closed_handles_count": 0, "failed_handles_count": 0}


def test_async_client_tier_and_root_handles(emulator: EmulatorProcess) -> None:
    acct = emulator.account()

    async def scenario() -> None:
        async with AsyncShareClient(acct["url"], f"misc-{uuid.uuid4().hex[:10]}",
                                    credential={"account_name": acct["name"], "account_key": acct["key"]},
                                    connection_verify=emulator.ca_cert) as client:
            await client.create_share(access_tier="Cool")
            assert (await client.get_share_properties()).access_tier == "Cool"
            assert [h async for h in client.get_directory_client("").list_handles()] == []
            await client.delete_share()

    asyncio.run(scenario())
