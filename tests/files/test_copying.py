"""The copy rules of get/put/cp/mv, in the library, with the fewest requests: a remote tree is listed once,
"is it a directory" is one request."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from files_fake import BASE, FakeTransport, StaticCredential

from keyless.files import copying, sync
from keyless.files.client import ShareClient


def make() -> tuple[ShareClient, FakeTransport]:
    fake = FakeTransport()
    return ShareClient(BASE, StaticCredential("good"), transport=fake), fake


def listings(fake: FakeTransport) -> int:
    return sum(1 for method, url, _ in fake.requests if method == "GET" and "comp=list" in url)


def tree(client: ShareClient) -> dict[str, bytes]:
    files = {"d/top.txt": b"top", "d/a/one": os.urandom(1000), "d/a/b/two": b"2", "d/c/three": b"3"}
    client.mkdir("d/a/b", parents=True)
    client.mkdir("d/c", parents=True)
    for path, data in files.items():
        client.upload_bytes(path, data)
    return files


def test_is_dir_is_one_request() -> None:
    client, fake = make()
    client.mkdir("d")
    client.upload_bytes("d/f", b"x")
    for path, expected in (("d", True), ("d/f", False), ("nothing", False), ("", True)):
        before = len(fake.requests)
        assert client.is_dir(path) is expected
        assert len(fake.requests) == before + 1


def test_a_download_lists_the_remote_tree_once(tmp_path: Path) -> None:
    client, fake = make()
    files = tree(client)
    fake.requests.clear()
    list(client.walk("d"))
    one_walk = listings(fake)
    fake.requests.clear()
    plan = copying.plan_download(client, "d", tmp_path, recursive=True)
    assert plan.total_bytes == sum(len(v) for v in files.values())
    plan.run()
    assert listings(fake) == one_walk
    for path, data in files.items():
        assert (tmp_path / path).read_bytes() == data
    # sync with --delete: still one listing
    fake.requests.clear()
    (tmp_path / "d" / "stale").write_bytes(b"old")
    stats = sync.sync_down(client, "d", tmp_path / "d", delete=True)
    assert stats.deleted == 1 and stats.skipped == len(files)
    assert listings(fake) == one_walk


def test_a_remote_copy_lists_the_tree_once() -> None:
    client, fake = make()
    files = tree(client)
    fake.requests.clear()
    list(client.walk("d"))
    one_walk = listings(fake)
    fake.requests.clear()
    plan = copying.plan_copy(client, "d", client, "copy", recursive=True)
    plan.run()
    assert listings(fake) == one_walk
    assert plan.target == "copy"  # "copy" did not exist: the tree lands under that name
    assert client.read_bytes("copy/a/one") == files["d/a/one"]


def test_names_land_like_cp(tmp_path: Path) -> None:
    client, _ = make()
    client.mkdir("into")
    local = tmp_path / "a.txt"
    local.write_bytes(b"a")
    assert copying.plan_upload(client, local, "into").target == "into/a.txt"  # into a directory
    assert copying.plan_upload(client, local, "renamed.txt").target == "renamed.txt"
    assert copying.plan_upload(client, local, "").target == "a.txt"  # the share root is a directory
    folder = tmp_path / "folder"
    folder.mkdir()
    assert copying.plan_upload(client, folder, "into", recursive=True).target == "into/folder"
    assert copying.plan_upload(client, f"{folder}/", "into", recursive=True).target == "into"  # contents
    with pytest.raises(IsADirectoryError):
        copying.plan_upload(client, folder, "into")
    client.upload_bytes("into/f", b"f")
    assert copying.plan_download(client, "into/f", tmp_path).target == str(tmp_path / "f")
    with pytest.raises(IsADirectoryError):
        copying.plan_download(client, "into", tmp_path)
    assert copying.move_target(client, "into/f", "into") == "into/f"
    assert copying.move_target(client, "into/f", "g") == "g"
