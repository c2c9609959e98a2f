"""Share soft delete and Restore Share with the official SDK's async clients against the emulator as a real
process: the same service behaviour as test_sdk_fidelity_softdelete.py, through aiohttp transport."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.fileshare.aio import ShareServiceClient as AsyncShareServiceClient

from e2e.softdelete_support import own_emulator, properties_request
from keyless.testing import EmulatorProcess


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    yield from own_emulator(tmp_path_factory.mktemp("softdelete-async"))


def _client(world: EmulatorProcess) -> AsyncShareServiceClient:
    acct = world.account()
    return AsyncShareServiceClient(acct["url"], credential={"account_name": acct["name"],
                                                            "account_key": acct["key"]},
                                   connection_verify=world.ca_cert)


async def _set_retention(svc: AsyncShareServiceClient, days: int | None) -> None:
    response = await svc._client.send_request(properties_request(svc, days))  # the SDK has no parameter
    assert response.status_code == 202


def test_async_soft_delete_list_restore_and_errors(world: EmulatorProcess) -> None:
    async def scenario() -> None:
        async with _client(world) as svc:
            await _set_retention(svc, 5)
            name = f"aio-{uuid.uuid4().hex[:10]}"
            share = svc.get_share_client(name)
            await share.create_share(metadata={"a": "1"}, quota=9)
            await share.get_file_client("f.txt").upload_file(b"async bytes")
            snap = (await share.create_snapshot())["snapshot"]
            await share.delete_share(delete_snapshots=True)

            with pytest.raises(ResourceNotFoundError) as gone:
                await share.get_share_properties()
            assert gone.value.error_code == "ShareNotFound"
            assert name not in [s.name async for s in svc.list_shares()]
            deleted = [s async for s in svc.list_shares(name_starts_with=name, include_deleted=True)]
            assert [(s.deleted, s.remaining_retention_days, s.quota) for s in deleted] == [(True, 5, 9)]
            version = deleted[0].version

            with pytest.raises(ResourceNotFoundError) as unknown:
                await svc.undelete_share(name, "0000000000000001")
            assert unknown.value.error_code == "ShareNotFound"
            await share.create_share()
            with pytest.raises(ResourceExistsError) as taken:
                await svc.undelete_share(name, version)
            assert taken.value.error_code == "ShareAlreadyExists"
            await share.delete_share()

            restored = await svc.undelete_share(name, version)
            props = await restored.get_share_properties()
            assert (props.metadata, props.quota) == ({"a": "1"}, 9)
            data = await (await restored.get_file_client("f.txt").download_file()).readall()
            assert data == b"async bytes"
            frozen = svc.get_share_client(name, snapshot=snap).get_file_client("f.txt")
            assert await (await frozen.download_file()).readall() == b"async bytes"
            still_deleted = [s async for s in svc.list_shares(name_starts_with=name, include_deleted=True)
                             if s.deleted]
            assert len(still_deleted) == 1 and still_deleted[0].version != version  # the empty re-create

            await _set_retention(svc, None)
            await restored.delete_share(delete_snapshots=True)  # policy off: gone for good
            assert [s.version async for s in svc.list_shares(name_starts_with=name, include_deleted=True)
                    if s.deleted] == [still_deleted[0].version]

    asyncio.run(scenario())
