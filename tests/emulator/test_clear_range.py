"""Clear Range deallocates instead of writing zeros: measured in allocated blocks on large sparse blobs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from keyless.emulator.storage import blobs
from keyless.emulator.storage.blobs import BlobStore

MIB = 1024 * 1024


def allocated(path: str | Path) -> int:
    return os.stat(path).st_blocks * 512


@pytest.fixture(params=["punch-hole", "fallback"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BlobStore:
    """Both ways of clearing: the filesystem's hole punching, and the bounded zeroing used without it."""
    if request.param == "fallback":
        monkeypatch.setattr(blobs, "_fallocate", None)
    return BlobStore(tmp_path / "blobs")


def test_clearing_a_large_sparse_blob_allocates_nothing(store: BlobStore) -> None:
    size = 256 * MIB
    blob = store.new(size)
    store.write(blob, 0, b"a" * MIB)
    store.write(blob, 128 * MIB, b"b" * MIB)
    before = allocated(store.path(blob))
    assert before >= 2 * MIB  # the two written MiB are real data

    store.clear(blob, 0, size)

    # Punching frees the data; the fallback zeroes the 2 MiB of data in place and nothing else.
    assert allocated(store.path(blob)) <= before
    assert allocated(store.path(blob)) < 4 * MIB
    assert store.read(blob, size, 0, MIB) == bytes(MIB)
    assert store.read(blob, size, 128 * MIB, MIB) == bytes(MIB)
    assert os.path.getsize(store.path(blob)) == size  # the length is the file's, unchanged


def test_clearing_part_of_the_data_keeps_the_rest(store: BlobStore) -> None:
    size = 64 * MIB
    blob = store.new(size)
    store.write(blob, 0, b"x" * (2 * MIB))
    store.clear(blob, 4096, MIB)  # 4 KiB-aligned, like the service's 512-byte ranges in practice
    data = store.read(blob, size, 0, 2 * MIB)
    assert data[:4096] == b"x" * 4096
    assert data[4096:4096 + MIB] == bytes(MIB)
    assert data[4096 + MIB:] == b"x" * (MIB - 4096)


def test_clear_over_a_huge_mostly_empty_file_is_bounded(store: BlobStore) -> None:
    """4 TiB (the service's largest file) with one written page: a whole-file clear touches that page only."""
    size = 4 * 1024**4
    blob = store.new(size)
    store.write(blob, 3 * 1024**4, b"z" * 4096)
    store.clear(blob, 0, size)
    assert allocated(store.path(blob)) <= 64 * 1024
    assert store.read(blob, size, 3 * 1024**4, 4096) == bytes(4096)
