"""Share soft delete and Restore Share, driven by the official SDK (sync) against the emulator as a real
process: Delete Share under a ShareDeleteRetentionPolicy, List Shares ``include=deleted`` (the SDK's
``include_deleted``), Restore Share (``undelete_share``), the retention's expiry on the emulator's clock,
and the service's errors.

The service's answers these follow (REST docs "Delete Share", "Restore Share", "List Shares"; the
azure-sdk-for-python recording tests/recordings/test_share.test_restore_to_existing_share.yaml):

* a soft-deleted share answers 404 ShareNotFound to every operation and leaves plain listings;
* a new share may be created under the name of a soft-deleted one (the recording creates it 30 s after
  the delete and then lists one live and several deleted versions of the name); each delete of a share
  under the policy adds one deleted version;
* Restore Share answers 409 ShareAlreadyExists while a live share has the name, 404 ShareNotFound for a
  version that is not (or no longer) soft-deleted, 201 otherwise.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.storage.fileshare import ShareProperties, ShareServiceClient

from e2e.sdk_clients import key_service
from e2e.softdelete_support import blob_files, own_emulator, sas_service, set_retention
from keyless.files import errors as fe
from keyless.files.client import ShareClient as KeylessShareClient
from keyless.files.urls import share_url
from keyless.identity import ManagedIdentityCredential
from keyless.testing import EmulatorProcess

DAYS = 3
VERSION = re.compile(r"^[0-9A-F]{16}$")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    yield from own_emulator(tmp_path_factory.mktemp("softdelete"))


@pytest.fixture
def svc(world: EmulatorProcess) -> Iterator[ShareServiceClient]:
    client = key_service(world)
    set_retention(client, DAYS)
    yield client
    world.set_clock_offset(0)  # first: Shared Key requests are checked against the emulator's clock
    set_retention(client, None)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _deleted(svc: ShareServiceClient, name: str) -> list[ShareProperties]:
    return [s for s in svc.list_shares(name_starts_with=name, include_deleted=True) if s.deleted]


def test_soft_delete_hides_the_share_and_restore_brings_all_of_it_back(svc: ShareServiceClient) -> None:
    name = _name("soft")
    share = svc.get_share_client(name)
    share.create_share(metadata={"team": "blue"}, quota=7, access_tier="Cool")
    share.get_directory_client("dir").create_directory()
    share.get_file_client("dir/a.txt").upload_file(b"kept while deleted")
    snap = share.create_snapshot(metadata={"kind": "frozen"})["snapshot"]
    share.get_file_client("dir/a.txt").upload_file(b"changed after the snapshot")
    before = share.get_share_properties()

    share.delete_share(delete_snapshots=True)

    # Every operation answers as for a share that does not exist.
    for call in (share.get_share_properties, share.get_share_stats,
                 lambda: share.get_file_client("dir/a.txt").download_file().readall(),
                 lambda: svc.get_share_client(name, snapshot=snap).get_share_properties(),
                 lambda: share.set_share_metadata({"x": "y"})):
        with pytest.raises(ResourceNotFoundError) as gone:
            call()
        assert gone.value.error_code == "ShareNotFound"
    assert name not in [s.name for s in svc.list_shares(include_snapshots=True)]

    [entry] = _deleted(svc, name)
    assert entry.name == name and VERSION.match(entry.version)
    assert abs(entry.deleted_time - datetime.now(UTC)) < timedelta(minutes=2)
    assert entry.remaining_retention_days == DAYS
    assert entry.quota == 7 and not entry.metadata  # metadata only with include_metadata, as live
    with_meta = [s for s in svc.list_shares(name_starts_with=name, include_deleted=True,
                                            include_metadata=True, include_snapshots=True)]
    # The deleted share's snapshots are restored with it, not listed on their own.
    assert [(s.deleted, s.snapshot, s.metadata) for s in with_meta] == [(True, None, {"team": "blue"})]

    restored = svc.undelete_share(name, entry.version)
    props = restored.get_share_properties()
    assert (props.quota, props.metadata, props.access_tier) == (7, {"team": "blue"}, "Cool")
    assert props.etag == before.etag
    assert restored.get_file_client("dir/a.txt").download_file().readall() == b"changed after the snapshot"
    assert restored.get_share_stats() == len(b"changed after the snapshot")  # usage counts it again
    frozen = svc.get_share_client(name, snapshot=snap)
    assert frozen.get_share_properties().metadata == {"kind": "frozen"}
    assert frozen.get_file_client("dir/a.txt").download_file().readall() == b"kept while deleted"
    assert _deleted(svc, name) == []
    restored.delete_share(delete_snapshots=True)


def test_list_shares_include_deleted_xml_is_the_services(svc: ShareServiceClient) -> None:
    name = _name("xml")
    live = svc.get_share_client(name)
    live.create_share()
    live.delete_share()
    request = HttpRequest("GET", f"{svc.url}?comp=list&include=deleted&prefix={name}")
    response = svc._client.send_request(request)  # the raw body
    assert response.status_code == 200
    [share] = ET.fromstring(response.read()).iter("Share")  # noqa: S314 - the emulator's own reply
    # Name, Deleted, Version, then Properties ending with DeletedTime and RemainingRetentionDays, in the
    # order of the service's reply in the azure-sdk-for-python recording.
    assert [c.tag for c in share] == ["Name", "Deleted", "Version", "Properties"]
    assert share.findtext("Deleted") == "true" and VERSION.match(share.findtext("Version") or "")
    props = [c.tag for c in share.find("Properties") or []]
    assert props[-2:] == ["DeletedTime", "RemainingRetentionDays"]
    deleted_time = share.findtext("Properties/DeletedTime") or ""
    assert re.match(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$", deleted_time)
    assert share.findtext("Properties/RemainingRetentionDays") == str(DAYS)


def test_a_name_can_be_reused_and_each_delete_is_one_version(svc: ShareServiceClient) -> None:
    name = _name("again")
    share = svc.get_share_client(name)
    share.create_share(metadata={"generation": "1"})
    share.delete_share()
    share.create_share(metadata={"generation": "2"})  # allowed: the deleted version keeps its own row
    share.get_file_client("second.txt").upload_file(b"2")
    [first] = _deleted(svc, name)

    with pytest.raises(ResourceExistsError) as taken:
        svc.undelete_share(name, first.version)
    assert (taken.value.status_code, taken.value.error_code) == (409, "ShareAlreadyExists")

    share.delete_share()
    with pytest.raises(ResourceNotFoundError) as again:  # a second delete of the name: nothing live left
        share.delete_share()
    assert again.value.error_code == "ShareNotFound"
    versions = _deleted(svc, name)
    assert len(versions) == 2 and len({v.version for v in versions}) == 2
    second = next(v for v in versions if v.version != first.version)

    svc.undelete_share(name, second.version)
    assert share.get_share_properties().metadata == {"generation": "2"}
    assert share.get_file_client("second.txt").download_file().readall() == b"2"
    with pytest.raises(ResourceExistsError):
        svc.undelete_share(name, first.version)
    share.delete_share()
    svc.undelete_share(name, first.version)
    assert share.get_share_properties().metadata == {"generation": "1"}
    share.delete_share()


def test_restore_errors(svc: ShareServiceClient, world: EmulatorProcess) -> None:
    name = _name("errs")
    share = svc.get_share_client(name)
    share.create_share()
    share.delete_share()
    [entry] = _deleted(svc, name)

    with pytest.raises(ResourceNotFoundError) as unknown:
        svc.undelete_share(name, "01D0000000000000")
    assert (unknown.value.status_code, unknown.value.error_code) == (404, "ShareNotFound")
    with pytest.raises(ResourceNotFoundError):  # the version belongs to another name
        svc.undelete_share(_name("other"), entry.version)

    def raw(headers: dict[str, str], target: str = name) -> tuple[int, str, str]:
        request = HttpRequest("PUT", f"{svc.url.rstrip('/')}/{target}?restype=share&comp=undelete",
                              headers=headers)
        response = svc._client.send_request(request)  # headers the SDK would send right
        body = response.text()
        return response.status_code, response.headers.get("x-ms-error-code", ""), body

    status, code, body = raw({"x-ms-deleted-share-name": name})
    assert (status, code) == (400, "MissingRequiredHeader") and "x-ms-deleted-share-version" in body
    status, code, body = raw({"x-ms-deleted-share-name": name, "x-ms-deleted-share-version": "v1"})
    assert (status, code) == (400, "InvalidHeaderValue") and "x-ms-deleted-share-version" in body
    other = _name("renamed")
    status, code, body = raw({"x-ms-deleted-share-name": name, "x-ms-deleted-share-version": entry.version},
                             target=other)
    assert (status, code) == (400, "InvalidHeaderValue") and "x-ms-deleted-share-name" in body
    with pytest.raises(ResourceNotFoundError):
        svc.get_share_client(other).get_share_properties()
    # None of that touched the deleted share: it still restores.
    svc.undelete_share(name, entry.version).delete_share()


def test_without_the_policy_delete_is_permanent(svc: ShareServiceClient, world: EmulatorProcess) -> None:
    set_retention(svc, None)
    name = _name("hard")
    share = svc.get_share_client(name)
    share.create_share()
    share.get_file_client("f").upload_file(b"x" * 4096)
    files = blob_files(world)
    share.delete_share()
    assert _deleted(svc, name) == []
    assert len(blob_files(world)) == len(files) - 1  # the bytes went at once


def test_deleting_one_snapshot_is_permanent_and_leases_do_not_survive(svc: ShareServiceClient) -> None:
    name = _name("snaps")
    share = svc.get_share_client(name)
    share.create_share()
    snap = share.create_snapshot()["snapshot"]
    svc.get_share_client(name, snapshot=snap).delete_share()
    assert [s.snapshot for s in svc.list_shares(name_starts_with=name, include_snapshots=True,
                                                include_deleted=True)] == [None]
    with pytest.raises(HttpResponseError) as leased:
        lease = share.acquire_lease()
        share.delete_share()  # the usual rule still holds: a leased share needs its lease id
    assert leased.value.error_code == "LeaseIdMissing"
    share.delete_share(lease=lease)
    [entry] = _deleted(svc, name)
    assert entry.lease.state == "available"
    restored = svc.undelete_share(name, entry.version)
    assert restored.get_share_properties().lease.state == "available"
    restored.delete_share()


def test_retention_expiry_purges_the_share_and_frees_its_bytes(svc: ShareServiceClient,
                                                                world: EmulatorProcess) -> None:
    name = _name("expire")
    bystander = svc.get_share_client(_name("live"))
    bystander.create_share()
    bystander.get_file_client("stays.bin").upload_file(b"live")
    before = blob_files(world)
    share = svc.get_share_client(name)
    share.create_share()
    share.get_file_client("big.bin").upload_file(b"\x01" * (1024 * 1024))
    share.create_snapshot()
    with_share = blob_files(world)
    mine = with_share - before
    assert len(mine) == 2  # the file and its snapshot's copy
    share.delete_share(delete_snapshots=True)
    [entry] = _deleted(svc, name)
    assert blob_files(world) == with_share  # soft-deleted bytes stay on disk until the purge

    later = sas_service(world)  # requests the emulator still accepts with its clock days ahead
    world.set_clock_offset(86400 + 60)  # a day on: one calendar day fewer (two if that crossed midnight)
    [aged] = [s for s in later.list_shares(name_starts_with=name, include_deleted=True) if s.deleted]
    days_begun = ((datetime.now(UTC) + timedelta(seconds=86400 + 60)).date() - entry.deleted_time.date()).days
    assert days_begun in (1, 2) and aged.remaining_retention_days == DAYS - days_begun
    assert blob_files(world) == with_share

    world.set_clock_offset(DAYS * 86400 + 60)  # past the retention
    assert [s for s in later.list_shares(name_starts_with=name, include_deleted=True)] == []
    left = blob_files(world)
    assert not left & mine  # the purge freed the file and its snapshot's copy
    later_bystander = later.get_share_client(bystander.share_name).get_file_client("stays.bin")
    assert later_bystander.download_file().readall() == b"live"  # live shares are untouched
    with pytest.raises(ResourceNotFoundError) as expired:
        later.undelete_share(name, entry.version)
    assert expired.value.error_code == "ShareNotFound"


def test_share_snapshots_keep_the_live_file_ids(svc: ShareServiceClient) -> None:
    """Azure keeps a file's and a directory's FileId in share snapshots (x-ms-file-id, x-ms-file-parent-id
    and the extended listing's <FileId> are the live ones)."""
    share = svc.get_share_client(_name("ids"))
    share.create_share()
    share.get_directory_client("d").create_directory()
    live_file = share.get_file_client("d/f.txt")
    live_file.upload_file(b"x")
    snap = share.create_snapshot()["snapshot"]
    frozen = svc.get_share_client(share.share_name, snapshot=snap)

    root, snap_root = (c.get_directory_client("").get_directory_properties() for c in (share, frozen))
    directory, snap_directory = (c.get_directory_client("d").get_directory_properties()
                                 for c in (share, frozen))
    live, kept = live_file.get_file_properties(), frozen.get_file_client("d/f.txt").get_file_properties()
    assert snap_root.file_id == root.file_id
    assert (snap_directory.file_id, snap_directory.parent_id) == (directory.file_id, root.file_id)
    assert (kept.file_id, kept.parent_id) == (live.file_id, directory.file_id)
    listed = list(frozen.get_directory_client("d").list_directories_and_files(include_extended_info=True))
    assert [e.file_id for e in listed] == [live.file_id]
    share.delete_share(delete_snapshots=True)


def _keyless(world: EmulatorProcess, share: str) -> KeylessShareClient:
    return KeylessShareClient(share_url("devaccount", share, emulator_url=world.files_url),
                              ManagedIdentityCredential(source="imds", imds_host=world.imds_url),
                              ca_cert=world.ca_cert, emulator_url=world.files_url)


def test_keyless_client_beside_soft_deleted_shares(svc: ShareServiceClient, world: EmulatorProcess) -> None:
    """keyless's own client (and ``keyless doctor``, which uses it) never lists shares, so deleted
    entries never reach it; on a soft-deleted share it gets the service's ShareNotFound, and a live
    share created beside a deleted version of its name works as before. (The demo identity's role is
    on the demo share, so that is the share this test deletes and restores.)"""
    demo = svc.get_share_client("demo")
    demo.get_file_client("original.txt").upload_file(b"1")
    demo.delete_share()
    with pytest.raises(fe.ShareNotFound):
        list(_keyless(world, "demo").listdir(""))
    demo.create_share()
    demo.get_file_client("new.txt").upload_file(b"2")
    assert [e.name for e in _keyless(world, "demo").listdir("")] == ["new.txt"]
    demo.delete_share()
    original = min((v for v in _deleted(svc, "demo") if v.name == "demo"), key=lambda v: v.deleted_time)
    svc.undelete_share("demo", original.version)
    assert "original.txt" in [e.name for e in _keyless(world, "demo").listdir("")]
