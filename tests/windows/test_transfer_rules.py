"""The Windows path rules wired into downloads and sync (an in-memory share; ``platform`` injected)."""

from __future__ import annotations

from pathlib import Path

import pytest

from files.files_fake import BASE, FakeTransport, StaticCredential
from keyless.files import errors as fe
from keyless.files import localpaths as lp
from keyless.files import transfer
from keyless.files.client import ShareClient
from keyless.files.retry import RetryPolicy


def client() -> ShareClient:
    return ShareClient(BASE, StaticCredential("good"), transport=FakeTransport(),  # type: ignore[arg-type]
                       retry=RetryPolicy(total=2, backoff_factor=0.001, backoff_max=0.002))


def put(c: ShareClient, tmp: Path, remote: str, data: bytes) -> None:
    local = tmp / "upload.tmp"
    local.write_bytes(data)
    parent = remote.rpartition("/")[0]
    if parent:
        c.mkdir(parent, parents=True, exist_ok=True)
    transfer.upload_file(c, local, remote)


def test_a_tree_with_a_windows_reserved_name_writes_nothing(tmp_path: Path) -> None:
    c = client()
    put(c, tmp_path, "tree/ok.txt", b"fine")
    put(c, tmp_path, "tree/sub/aux.log", b"device")
    out = tmp_path / "out"
    with pytest.raises(fe.UnsafeName, match=r"'sub/aux\.log'.*reserved device name"):
        transfer.download_tree(c, "tree", out, platform=lp.WINDOWS)
    assert list(out.rglob("*")) == []  # refused before any directory or file was made
    transfer.download_tree(c, "tree", out, platform=lp.POSIX)
    assert (out / "sub" / "aux.log").read_bytes() == b"device"


def test_sync_down_delete_keeps_a_file_that_differs_only_in_case(tmp_path: Path) -> None:
    """On Windows the local README.md *is* the remote Readme.md: --delete must not remove it."""
    c = client()
    put(c, tmp_path, "docs/Readme.md", b"remote")
    local = tmp_path / "local"
    local.mkdir()
    (local / "README.md").write_bytes(b"old")
    stats = transfer.sync_down(c, "docs", local, delete=True, platform=lp.WINDOWS)
    assert stats.deleted == 0 and (local / "README.md").exists()
    stats = transfer.sync_down(c, "docs", local, delete=True, platform=lp.POSIX)
    assert stats.deleted == 1 and not (local / "README.md").exists()  # on Linux they are two files
