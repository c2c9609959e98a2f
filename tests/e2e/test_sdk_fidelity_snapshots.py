"""Share snapshots, driven by the official SDK (sync and async) against the emulator as a real process.

Create Share Snapshot, List Shares with ``include=snapshots``, reads and listings at ``sharesnapshot=``,
Delete Share (one snapshot; with ``x-ms-delete-snapshots``), List Ranges with ``prevsharesnapshot=``,
and the service's errors: a missing snapshot is 404 ``ShareSnapshotNotFound`` (409
``PreviousSnapshotNotFound`` as ``prevsharesnapshot``), a write on a snapshot
400 ``ShareSnapshotOperationNotSupported``, deleting a share that has snapshots 409 ``ShareHasSnapshots``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.fileshare import ShareClient
from azure.storage.fileshare.aio import ShareServiceClient as AsyncShareServiceClient

from e2e.sdk_clients import key_service
from keyless.testing import EmulatorProcess

MISSING_SNAPSHOT = "2001-01-01T00:00:00.0000000Z"




@pytest.fixture
def share(emulator: EmulatorProcess) -> Iterator[ShareClient]:
    client = key_service(emulator).get_share_client(f"snap-{uuid.uuid4().hex[:12]}")
    client.create_share(metadata={"kind": "live"})
    yield client
    client.delete_share(delete_snapshots=True)


def at(emulator: EmulatorProcess, share: ShareClient, snapshot: str) -> ShareClient:
    return key_service(emulator).get_share_client(share.share_name, snapshot=snapshot)


def test_snapshot_freezes_content_and_tree(emulator: EmulatorProcess, share: ShareClient) -> None:
    share.get_directory_client("dir").create_directory()
    share.get_file_client("dir/a.txt").upload_file(b"before")
    snap = share.create_snapshot(metadata={"kind": "frozen"})
    stamp = snap["snapshot"]
    assert stamp.endswith("Z") and len(stamp) == len("2025-01-01T00:00:00.0000000Z")

    share.get_file_client("dir/a.txt").upload_file(b"after, and longer")
    share.get_file_client("dir/b.txt").upload_file(b"new")

    frozen = at(emulator, share, stamp).get_directory_client("dir")
    assert sorted(i["name"] for i in frozen.list_directories_and_files()) == ["a.txt"]
    assert frozen.get_file_client("a.txt").download_file().readall() == b"before"
    assert frozen.get_file_client("a.txt").get_file_properties().size == len(b"before")
    assert share.get_file_client("dir/a.txt").download_file().readall() == b"after, and longer"

    props = at(emulator, share, stamp).get_share_properties()
    assert props.snapshot == stamp
    assert props.metadata == {"kind": "frozen"}
    assert share.get_share_properties().metadata == {"kind": "live"}


def test_list_shares_includes_snapshots_oldest_first_and_pages(emulator: EmulatorProcess,
                                                               share: ShareClient) -> None:
    stamps = [share.create_snapshot()["snapshot"] for _ in range(3)]
    assert len(set(stamps)) == 3
    svc = key_service(emulator)
    listed = [(s.name, s.snapshot) for s in svc.list_shares(name_starts_with=share.share_name,
                                                            include_snapshots=True)]
    assert listed == [*((share.share_name, s) for s in sorted(stamps)), (share.share_name, None)]
    without = [s.name for s in svc.list_shares(name_starts_with=share.share_name)]
    assert without == [share.share_name]
    pages = svc.list_shares(name_starts_with=share.share_name, include_snapshots=True,
                            results_per_page=1).by_page()
    assert [(s.name, s.snapshot) for page in pages for s in page] == listed


def test_missing_snapshot_and_writes_on_a_snapshot_are_refused(emulator: EmulatorProcess,
                                                               share: ShareClient) -> None:
    share.get_file_client("f.txt").upload_file(b"x")
    with pytest.raises(ResourceNotFoundError) as missing:
        at(emulator, share, MISSING_SNAPSHOT).get_file_client("f.txt").download_file()
    assert missing.value.error_code == "ShareSnapshotNotFound"

    stamp = share.create_snapshot()["snapshot"]
    frozen = at(emulator, share, stamp).get_file_client("f.txt")
    with pytest.raises(HttpResponseError) as write:
        frozen.upload_range(b"y", offset=0, length=1)
    assert write.value.status_code == 400
    assert write.value.error_code == "ShareSnapshotOperationNotSupported"
    assert frozen.download_file().readall() == b"x"


def test_delete_snapshot_and_share_with_snapshots(emulator: EmulatorProcess) -> None:
    svc = key_service(emulator)
    client = svc.get_share_client(f"snapdel-{uuid.uuid4().hex[:10]}")
    client.create_share()
    first = client.create_snapshot()["snapshot"]
    second = client.create_snapshot()["snapshot"]
    with pytest.raises(HttpResponseError) as has:
        client.delete_share()
    assert has.value.status_code == 409 and has.value.error_code == "ShareHasSnapshots"

    svc.get_share_client(client.share_name, snapshot=first).delete_share()
    left = [s.snapshot for s in svc.list_shares(name_starts_with=client.share_name, include_snapshots=True)]
    assert left == [second, None]
    with pytest.raises(ResourceNotFoundError):
        svc.get_share_client(client.share_name, snapshot=first).get_share_properties()

    client.delete_share(delete_snapshots=True)
    assert list(svc.list_shares(name_starts_with=client.share_name, include_snapshots=True)) == []


def test_range_diff_against_a_previous_snapshot(emulator: EmulatorProcess, share: ShareClient) -> None:
    fc = share.get_file_client("big.bin")
    fc.create_file(64 * 1024)
    fc.upload_range(b"a" * 1024, offset=0, length=1024)
    fc.upload_range(b"b" * 1024, offset=32 * 1024, length=1024)
    before = share.create_snapshot()["snapshot"]

    fc.upload_range(b"c" * 512, offset=8192, length=512)  # new data
    fc.clear_range(offset=32 * 1024, length=4096)  # data cleared
    diff = [(r.start, r.end, r.cleared) for r in fc.list_ranges_diff(previous_sharesnapshot=before)]
    assert diff == [(8192, 8703, False), (32 * 1024, 32 * 1024 + 1023, True)]
    paged = fc.list_ranges_diff(previous_sharesnapshot=before, results_per_page=1).by_page()
    assert [(r.start, r.end, r.cleared) for page in paged for r in page] == diff
    with pytest.warns(DeprecationWarning):  # the older, still common, form of the same call
        changed, cleared = fc.get_ranges_diff(previous_sharesnapshot=before)
    assert (changed, cleared) == ([{"start": 8192, "end": 8703}], [{"start": 32 * 1024, "end": 33791}])

    unchanged = at(emulator, share, before).get_file_client("big.bin").list_ranges_diff(
        previous_sharesnapshot=before)
    assert list(unchanged) == []

    with pytest.raises(HttpResponseError) as missing:
        list(fc.list_ranges_diff(previous_sharesnapshot=MISSING_SNAPSHOT))
    assert (missing.value.status_code, missing.value.error_code) == (409, "PreviousSnapshotNotFound")


def test_restore_a_file_from_a_snapshot_by_copy(emulator: EmulatorProcess, share: ShareClient) -> None:
    fc = share.get_file_client("doc.txt")
    fc.upload_file(b"version 1")
    stamp = share.create_snapshot()["snapshot"]
    fc.upload_file(b"version 2")
    source = at(emulator, share, stamp).get_file_client("doc.txt")
    fc.start_copy_from_url(source.url)
    assert fc.download_file().readall() == b"version 1"


def test_async_client_snapshots(emulator: EmulatorProcess) -> None:
    acct = emulator.account()

    async def scenario() -> None:
        async with AsyncShareServiceClient(
            acct["url"], credential={"account_name": acct["name"], "account_key": acct["key"]},
            connection_verify=emulator.ca_cert,
        ) as svc:
            client = svc.get_share_client(f"snapaio-{uuid.uuid4().hex[:10]}")
            await client.create_share()
            await client.get_file_client("f.txt").upload_file(b"one")
            stamp = (await client.create_snapshot())["snapshot"]
            await client.get_file_client("f.txt").upload_file(b"two")
            frozen = svc.get_share_client(client.share_name, snapshot=stamp)
            download = await frozen.get_file_client("f.txt").download_file()
            assert await download.readall() == b"one"
            with pytest.raises(HttpResponseError) as has:
                await client.delete_share()
            assert has.value.error_code == "ShareHasSnapshots"
            await client.delete_share(delete_snapshots=True)

    asyncio.run(scenario())
