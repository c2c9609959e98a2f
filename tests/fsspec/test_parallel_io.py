"""Parallel reads and writes of ``azfiles`` files against the emulator: the bytes, the requests they cost,
and the memory bound (counted on the requests a transport sees, never timed)."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from keyless.files.parts import PART_SUFFIX
from keyless.files.transport import HttpTransport, Response
from keyless.fsspec import AzureFilesFileSystem
from keyless.fsspec_readahead import MIN_FETCH, ParallelReadAhead
from keyless.testing import EmulatorProcess

KIB, MIB = 1024, 1024 * 1024


class CountingTransport:
    """Passes every request to the real transport and records it, with how many range reads and writes
    (the requests that hold 4 MiB each) were in flight at once."""

    streams_bodies = True  # a pass-through: ranges still go straight into the caller's buffer

    def __init__(self, inner: HttpTransport) -> None:
        self.inner = inner
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None = None,
                **kwargs: Any) -> Response:
        data = "x-ms-range" in headers
        with self.lock:
            self.in_flight += data
            self.peak = max(self.peak, self.in_flight)
            self.calls.append({"method": method, "url": url, "range": headers.get("x-ms-range"),
                               "length": headers.get("x-ms-content-length")})
        try:
            return self.inner.request(method, url, headers, body, **kwargs)  # type: ignore[call-arg]
        finally:
            with self.lock:
                self.in_flight -= data

    def range_reads(self) -> list[tuple[int, int]]:
        out = []
        for call in self.calls:
            if call["method"] == "GET" and call["range"]:
                lo, hi = call["range"].removeprefix("bytes=").split("-")
                out.append((int(lo), int(hi) + 1))
        return out

    def range_writes(self) -> int:
        return sum(1 for c in self.calls if c["method"] == "PUT" and "comp=range" in c["url"])

    def resizes(self) -> int:
        return sum(1 for c in self.calls if c["method"] == "PUT" and "comp=properties" in c["url"])


def counted(azfs: AzureFilesFileSystem, path: str) -> CountingTransport:
    client, _ = azfs._resolve(path)
    counter = CountingTransport(client._pipeline.transport)
    client._pipeline.transport = counter
    return counter


@pytest.fixture
def data() -> bytes:
    return os.urandom(5 * MIB + 12345)


def test_sequential_reads_stream_through_a_bounded_window(azfs: AzureFilesFileSystem, root: str,
                                                          data: bytes) -> None:
    path = f"{root}/seq.bin"
    azfs.pipe_file(path, data)
    counter = counted(azfs, path)
    with azfs.open(path, "rb", block_size=256 * KIB) as f:
        assert isinstance(f.cache, ParallelReadAhead)
        got = bytearray()
        while chunk := f.read(100_000):
            got += chunk
        peak = f.cache.peak_blocks
    assert bytes(got) == data
    reads = counter.range_reads()
    # Each byte fetched once, in blocks of the block size, read ahead of the reader but never more than
    # max_concurrency + 1 blocks held, and never more requests in flight than max_concurrency.
    assert sorted(reads) == [(lo, min(lo + 256 * KIB, len(data))) for lo in range(0, len(data), 256 * KIB)]
    assert 1 < peak <= azfs.max_concurrency + 1
    assert counter.peak <= azfs.max_concurrency


def test_read_of_a_whole_large_file_is_parallel_ranges(azfs: AzureFilesFileSystem, root: str) -> None:
    big = os.urandom(9 * MIB)  # three 4 MiB ranges: 4 + 4 + 1
    azfs.pipe_file(f"{root}/big.bin", big)
    counter = counted(azfs, f"{root}/big.bin")
    with azfs.open(f"{root}/big.bin", "rb") as f:
        assert f.read() == big
    assert sorted(counter.range_reads()) == [(0, 4 * MIB), (4 * MIB, 8 * MIB), (8 * MIB, 9 * MIB)]
    assert azfs.cat_file(f"{root}/big.bin") == big


def test_random_small_reads_do_not_over_fetch(azfs: AzureFilesFileSystem, root: str, data: bytes) -> None:
    path = f"{root}/footer.bin"
    azfs.pipe_file(path, data)
    counter = counted(azfs, path)
    size = len(data)
    with azfs.open(path, "rb") as f:  # the parquet pattern: the footer length, then the footer
        f.seek(size - 8)
        assert f.read(8) == data[-8:]
        f.seek(size - 3000)
        assert f.read(2000) == data[size - 3000 : size - 1000]
        f.seek(1_000_000)  # a column chunk in the middle
        assert f.read(500) == data[1_000_000:1_000_500]
        assert f.read(100) == data[1_000_500:1_000_600]  # inside what was fetched: no request
        assert f.cache.peak_blocks == 0  # no read-ahead window was started
    reads = counter.range_reads()
    assert len(reads) == 3
    assert sum(hi - lo for lo, hi in reads) <= 3 * MIN_FETCH


def test_a_file_replaced_while_read_fails_the_read(azfs: AzureFilesFileSystem, root: str,
                                                   data: bytes) -> None:
    path = f"{root}/moving.bin"
    azfs.pipe_file(path, data)
    with azfs.open(path, "rb", block_size=64 * KIB) as f:
        assert f.read(64 * KIB) == data[: 64 * KIB]
        azfs.pipe_file(path, os.urandom(len(data)))
        with pytest.raises(OSError, match="changed on the service"):
            f.read()


def test_writes_are_parallel_ranges_in_a_file_grown_by_doubling(azfs: AzureFilesFileSystem, root: str,
                                                                data: bytes) -> None:
    path = f"{root}/w.bin"
    counter = counted(azfs, path)
    with azfs.open(path, "wb", block_size=256 * KIB) as f:
        for i in range(0, len(data), 100_000):
            f.write(data[i : i + 100_000])
        assert not azfs.exists(path)
    assert azfs.cat_file(path) == data
    # Three writes of 100,000 bytes fill a 256 KiB block: each flush of 300,000 bytes is one range.
    assert counter.range_writes() == -(-len(data) // 300_000)
    assert counter.resizes() <= 6  # 512 KiB doubled up to 8 MiB, then cut to the exact size
    assert counter.peak <= azfs.max_concurrency
    assert not [p for p in azfs.find(root) if p.endswith(PART_SUFFIX)]


def test_one_large_write_goes_out_whole_blocks_directly(azfs: AzureFilesFileSystem, root: str,
                                                        data: bytes) -> None:
    path = f"{root}/direct.bin"
    counter = counted(azfs, path)
    with azfs.open(path, "wb") as f:
        f.write(data)  # 5 MiB + a bit: the whole 4 MiB block straight out, only the rest buffered
        assert (f.offset, f.buffer.tell()) == (4 * MIB, len(data) - 4 * MIB)
    assert azfs.cat_file(path) == data
    assert counter.range_writes() == 2


def test_a_small_write_costs_three_requests(azfs: AzureFilesFileSystem, root: str,
                                            emulator: EmulatorProcess) -> None:
    azfs.mkdir(f"{root}/d")
    mark = len(emulator.audit("StorageFileLogs"))
    with azfs.open(f"{root}/d/small.txt", "wb") as f:
        f.write(b"hello")
    azfs.pipe_file(f"{root}/d/piped.txt", b"world")
    ops = [r["OperationName"] for r in emulator.audit("StorageFileLogs")[mark:]]
    assert ops == ["CreateFile", "PutRange", "RenameFile"] * 2
    assert azfs.cat(f"{root}/d/small.txt") == b"hello" and azfs.cat(f"{root}/d/piped.txt") == b"world"


def test_a_failed_parallel_write_leaves_nothing(azfs: AzureFilesFileSystem, root: str,
                                               emulator: EmulatorProcess, data: bytes) -> None:
    path = f"{root}/fails.bin"
    azfs.pipe_file(path, b"old")
    f = azfs.open(path, "wb", block_size=256 * KIB)
    f.write(data[: MIB])  # four blocks sent to the part file
    assert len([p for p in azfs.find(root) if p.endswith(PART_SUFFIX)]) == 1
    # From now on every range write is refused (400 is not retried).
    emulator.set_faults([{"target": "files", "action": "status", "status": 400, "method": "PUT"}])
    try:
        with pytest.raises(OSError):
            f.write(data[MIB:])
            f.close()
    finally:
        emulator.set_faults([])
    assert f.closed
    assert azfs.cat_file(path) == b"old"
    assert not [p for p in azfs.find(root) if p.endswith(PART_SUFFIX)]
