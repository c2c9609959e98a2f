"""``get`` of many files and whole-file reads against the emulator: the local directory scans a ``get`` costs,
and the memory a whole read peaks at (traced with tracemalloc, never timed)."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from keyless.fsspec import AzureFilesFileSystem

MIB = 1024 * 1024


def _count_scans(monkeypatch: pytest.MonkeyPatch, directory: Path) -> list[int]:
    """Counts ``os.scandir`` of ``directory`` (how the stale part files of killed downloads are found)."""
    scans = [0]
    real = os.scandir

    def counting(path: Any = ".") -> Any:
        if os.path.abspath(path) == str(directory):
            scans[0] += 1
        return real(path)

    monkeypatch.setattr(os, "scandir", counting)
    return scans


def test_get_of_many_files_scans_the_local_directory_once(azfs: AzureFilesFileSystem, root: str,
                                                           tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    files = {f"{root}/many/f{i:03}.txt": f"file {i}\n".encode() for i in range(200)}
    azfs.pipe(files)
    target = tmp_path / "out"
    target.mkdir()
    # A killed earlier download of one of them left its part file: the get still removes it.
    stale = target / ".f007.txt.0123abcd.keyless-part"
    stale.write_bytes(b"half")
    scans = _count_scans(monkeypatch, target)
    azfs.get(f"{root}/many/", str(target) + "/", recursive=True)
    assert scans[0] == 1, f"{scans[0]} scans of the target directory for 200 files"
    assert sorted(p.name for p in target.iterdir()) == sorted(n.rpartition("/")[2] for n in files)
    for name, data in files.items():
        assert (target / name.rpartition("/")[2]).read_bytes() == data
    assert not stale.exists()


def test_get_file_alone_still_removes_stale_parts(azfs: AzureFilesFileSystem, root: str,
                                                  tmp_path: Path) -> None:
    azfs.pipe_file(f"{root}/one.txt", b"one")
    stale = tmp_path / ".one.txt.0123abcd.keyless-part"
    stale.write_bytes(b"half")
    azfs.get_file(f"{root}/one.txt", str(tmp_path / "one.txt"))
    assert (tmp_path / "one.txt").read_bytes() == b"one"
    assert not stale.exists()


def _peak_of(action: Callable[[], bytes]) -> tuple[bytes, int]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        data = action()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return data, peak


@pytest.fixture(scope="module")
def big() -> bytes:
    return os.urandom(64 * MIB)


@pytest.mark.parametrize("how", ["cat_file", "open_read"])
def test_a_whole_read_allocates_the_file_once(azfs: AzureFilesFileSystem, root: str, big: bytes,
                                             how: str) -> None:
    path = f"{root}/big.bin"
    azfs.pipe_file(path, big)

    def read() -> bytes:
        if how == "cat_file":
            return azfs.cat_file(path)
        with azfs.open(path, "rb") as f:
            data: bytes = f.read()
            return data

    data, peak = _peak_of(read)
    assert isinstance(data, bytes)
    assert data == big
    # The file once (10% for everything else), plus, for a file object, its read-ahead window: at most
    # max_concurrency + 1 blocks of 4 MiB held. A buffer and a copy of it would be twice the size.
    window = (azfs.max_concurrency + 1) * 4 * MIB if how == "open_read" else 0
    bound = int(1.1 * len(big)) + window
    assert peak <= bound, f"{how} peaked at {peak / MIB:.1f} MiB for {len(big) / MIB:.0f} MiB (bound "\
                          f"{bound / MIB:.1f})"
