"""What each request and each small file costs the client stays bounded, without losing behaviour: a tree
download looks for killed runs' part files once per directory (not once per file, which made a download of
n files in one directory cost n directory scans), and still removes them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keyless.files import ShareClient, transfer
from keyless.files.urls import share_url
from keyless.identity import ManagedIdentityCredential
from keyless.testing import EmulatorProcess

PART_SUFFIX = ".keyless-part"


@pytest.fixture
def client(emulator: EmulatorProcess) -> Iterator[ShareClient]:
    cred = ManagedIdentityCredential(source="imds", imds_host=emulator.imds_url)
    url = share_url("devaccount", "demo", emulator_url=emulator.files_url)
    with ShareClient(url, cred, ca_cert=emulator.ca_cert, emulator_url=emulator.files_url) as c:
        yield c


def _upload_small_tree(client: ShareClient, tmp_path: Path, count: int) -> tuple[str, dict[str, bytes]]:
    src = tmp_path / "src"
    src.mkdir()
    sub = src / "sub"
    sub.mkdir()
    files = {f"f{i:02d}.bin": os.urandom(100 + i) for i in range(count)}
    for name, data in files.items():
        (src / name).write_bytes(data)
        (sub / name).write_bytes(data)
    remote = f"percall-{uuid.uuid4().hex[:8]}"
    transfer.upload_tree(client, src, remote)
    return remote, files


def test_a_tree_download_scans_each_directory_once_for_stale_parts(
    client: ShareClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote, files = _upload_small_tree(client, tmp_path, 20)
    out = tmp_path / "out"
    scanned: list[str] = []
    real_scandir = os.scandir

    def counting_scandir(path: Any = ".") -> Any:
        scanned.append(os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", counting_scandir)
    stats = transfer.download_tree(client, remote, out)
    monkeypatch.undo()
    assert stats.files == 2 * len(files)
    for name, data in files.items():
        assert (out / name).read_bytes() == data
        assert (out / "sub" / name).read_bytes() == data
    # One scan per local directory at most, however many files land in it.
    assert sorted(scanned) == sorted({str(out), str(out / "sub")}), scanned


def test_a_tree_download_still_removes_killed_runs_parts_and_nothing_else(
    client: ShareClient, tmp_path: Path
) -> None:
    remote, files = _upload_small_tree(client, tmp_path, 3)
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    stale = [out / f".f00.bin.0123abcd{PART_SUFFIX}", out / "sub" / f".f02.bin.89abcdef{PART_SUFFIX}"]
    for path in stale:
        path.write_bytes(b"partial")
    kept = [
        out / ".f00.bin.notapart",
        out / f".f00.bin.x.0123abcd{PART_SUFFIX}",  # a part of "f00.bin.x", which is not downloaded
        out / f".other.bin.0123abcd{PART_SUFFIX}",
    ]
    for path in kept:
        path.write_bytes(b"keep")

    transfer.download_tree(client, remote, out)

    assert not [p for p in stale if p.exists()]
    assert all(p.read_bytes() == b"keep" for p in kept)
    assert (out / "f00.bin").read_bytes() == files["f00.bin"]
    assert (out / "sub" / "f02.bin").read_bytes() == files["f02.bin"]
