"""Large-file paths against the emulator as a real process: uploads read every range into a buffer each
worker reuses, downloads allocate the part file up front (with a fallback where the file system cannot)
and say plainly when the disk is too small, and every byte is still checked on the way."""

from __future__ import annotations

import ctypes
import errno
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from test_e2e_integrity import make_client

from keyless import localos
from keyless.files import errors as fe
from keyless.files import range_buffers, transfer
from keyless.files.client import ShareClient
from keyless.files.parallel import RANGE_SIZE
from keyless.testing import EmulatorProcess

MIB = 1024 * 1024


def _patterned(size: int) -> bytes:
    """Every 4 MiB range different from every other (a range sent from another range's buffer shows), with
    an all-zero range in the middle (skipped on upload, read back as zeros)."""
    ranges = []
    for index in range(-(-size // RANGE_SIZE)):
        length = min(RANGE_SIZE, size - index * RANGE_SIZE)
        ranges.append(bytes(length) if index == 2 else os.urandom(length))
    return b"".join(ranges)


def _failing_fallocate(code: int, calls: list[int]) -> Any:
    def fake(fd: int, mode: int, offset: int, length: int) -> int:
        calls.append(length)
        ctypes.set_errno(code)
        return -1

    return fake


def test_ranges_from_reused_buffers_round_trip_byte_for_byte(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    client, transport = make_client(emulator)
    data = _patterned(5 * RANGE_SIZE + 12_345)  # a short last range, a zero range, three workers
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    name = f"reuse-{uuid.uuid4().hex[:8]}.bin"
    transfer.upload_file(client, src, name, concurrency=3)
    puts = [h["x-ms-range"] for m, u, h in transport.sent if m == "PUT" and "comp=range" in u]
    assert len(puts) == 5 and f"bytes={2 * RANGE_SIZE}-{3 * RANGE_SIZE - 1}" not in puts  # zeros skipped
    out = tmp_path / "out.bin"
    transfer.download_file(client, name, out, concurrency=3)
    assert out.read_bytes() == data


def test_a_multi_range_copy_through_reused_buffers_is_byte_identical(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    client, transport = make_client(emulator)
    data = _patterned(4 * RANGE_SIZE + 777)
    name = f"copy-src-{uuid.uuid4().hex[:8]}.bin"
    transfer.upload_file(client, _write(tmp_path / "src.bin", data), name)
    copied = f"copy-dst-{uuid.uuid4().hex[:8]}.bin"
    sent_before = len(transport.sent)
    transfer.copy_file(client, name, client, copied, concurrency=2)
    puts = [h for m, u, h in transport.sent[sent_before:] if m == "PUT" and "comp=range" in u]
    assert len(puts) == 4  # five ranges, the all-zero one skipped
    transfer.download_file(client, copied, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data


def test_a_multi_range_copy_corrupted_on_the_way_down_publishes_nothing(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    client, transport = make_client(emulator)
    name = f"copy-bad-{uuid.uuid4().hex[:8]}.bin"
    transfer.upload_file(client, _write(tmp_path / "src.bin", os.urandom(2 * RANGE_SIZE + 9)), name)
    copied = f"copy-bad-dst-{uuid.uuid4().hex[:8]}.bin"
    transport.corrupt_download = True
    with pytest.raises(fe.IntegrityError, match="CRC64 mismatch"):
        transfer.copy_file(client, name, client, copied)
    transport.corrupt_download = False
    assert not client.exists(copied)


def test_a_file_that_shrinks_during_the_upload_is_refused(emulator: EmulatorProcess, tmp_path: Path) -> None:
    client, _ = make_client(emulator)
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(2 * RANGE_SIZE + 100))
    name = f"shrink-{uuid.uuid4().hex[:8]}.bin"
    real = localos.pread_into

    def shrinking(fd: int, view: memoryview, offset: int) -> int:
        os.truncate(src, RANGE_SIZE + 10)  # as another writer cutting the file under the upload
        return real(fd, view, offset)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(localos, "pread_into", shrinking)
        with pytest.raises(fe.IntegrityError, match="changed size during the upload"):
            transfer.upload_file(client, src, name, concurrency=1)
    assert not client.exists(name)


def test_a_multi_range_download_corrupted_on_the_way_is_detected(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    client, transport = make_client(emulator)
    data = os.urandom(2 * RANGE_SIZE + 1)
    name = f"bad-big-{uuid.uuid4().hex[:8]}.bin"
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    transfer.upload_file(client, src, name)
    transport.corrupt_download = True
    out = tmp_path / "out.bin"
    with pytest.raises(fe.IntegrityError, match="CRC64 mismatch"):
        transfer.download_file(client, name, out)
    assert not out.exists() and not list(tmp_path.glob(".*keyless-part"))


def test_a_multi_range_upload_corrupted_on_the_way_is_refused(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    client, transport = make_client(emulator)
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(2 * RANGE_SIZE + 100))
    name = f"bad-big-up-{uuid.uuid4().hex[:8]}.bin"
    transport.corrupt_upload = True
    with pytest.raises(fe.IntegrityError, match="another CRC64"):
        transfer.upload_file(client, src, name)
    assert not client.exists(name)


def test_a_download_gets_its_blocks_before_the_first_range(emulator: EmulatorProcess, tmp_path: Path) -> None:
    client, _ = make_client(emulator)
    data = os.urandom(3 * RANGE_SIZE)
    name = f"alloc-{uuid.uuid4().hex[:8]}.bin"
    transfer.upload_file(client, _write(tmp_path / "src.bin", data), name)
    seen: list[tuple[int, int]] = []
    real = localos.preallocate

    def recording(fd: int, size: int) -> bool:
        allocated = real(fd, size)
        st = os.fstat(fd)
        seen.append((st.st_size, st.st_blocks * 512 if allocated else size))
        return allocated

    out = tmp_path / "out.bin"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(localos, "preallocate", recording)
        transfer.download_file(client, name, out)
    # Sized (and, where the file system allocates, given its blocks) before any range was written.
    assert seen and seen[0][0] == len(data) and seen[0][1] >= len(data)
    assert out.read_bytes() == data


def test_where_the_file_system_cannot_allocate_the_file_is_only_sized(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    client, _ = make_client(emulator)
    name, data = _uploaded_two_ranges(client, tmp_path, "noalloc")
    calls: list[int] = []
    out = tmp_path / "out.bin"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(localos, "_fallocate", [_failing_fallocate(errno.EOPNOTSUPP, calls)])
        transfer.download_file(client, name, out)
    assert calls == [len(data)]  # asked once, then sized with ftruncate instead
    assert out.read_bytes() == data


def test_a_disk_too_small_is_named_before_any_range_is_fetched(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    client, transport = make_client(emulator)
    name, data = _uploaded_two_ranges(client, tmp_path, "nospace")
    target_dir = tmp_path / "small-disk"
    target_dir.mkdir()
    out = target_dir / "out.bin"
    sent_before = len(transport.sent)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(localos, "_fallocate", [_failing_fallocate(errno.ENOSPC, [])])
        with pytest.raises(fe.NotEnoughSpace) as info:
            transfer.download_file(client, name, out)
    message = str(info.value)
    assert f"not enough space for {out} ({len(data)} bytes) on {target_dir}" in message
    assert "What to do: Free space there" in message
    assert isinstance(info.value, OSError)  # callers catching OSError still catch it
    ranges = [u for m, u, h in transport.sent[sent_before:] if m == "GET" and "x-ms-range" in h]
    assert ranges == []  # not one range fetched for nothing
    assert list(target_dir.iterdir()) == []  # the part file is gone


def test_a_disk_that_fills_during_the_download_is_named_too(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    # Where nothing could be allocated up front (the fallback), ENOSPC comes from a write instead.
    client, _ = make_client(emulator)
    name, _ = _uploaded_two_ranges(client, tmp_path, "fills")
    out = tmp_path / "down" / "out.bin"
    out.parent.mkdir()

    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(localos, "_fallocate", [_failing_fallocate(errno.EOPNOTSUPP, [])])
        patch.setattr(localos, "pwrite", full)
        with pytest.raises(fe.NotEnoughSpace, match=r"not enough space for .*out\.bin \(4194309 bytes\)"):
            transfer.download_file(client, name, out)
    assert list(out.parent.iterdir()) == []


def test_preallocate_allocates_or_sizes(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        allocated = localos.preallocate(fd, 3 * MIB)
        st = os.fstat(fd)
        assert st.st_size == 3 * MIB
        if allocated:  # the file system gave the blocks: they are counted now, before any write
            assert st.st_blocks * 512 >= 3 * MIB
        assert os.pread(fd, 16, MIB) == bytes(16)  # reads as zeros either way
    finally:
        os.close(fd)


@pytest.mark.parametrize("code", [errno.EOPNOTSUPP, errno.ENOSYS, errno.EPERM, errno.EINVAL])
def test_preallocate_falls_back_to_sizing_where_allocation_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(localos, "_fallocate", [_failing_fallocate(code, calls)])
    fd = os.open(tmp_path / "f.bin", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert localos.preallocate(fd, 5 * MIB) is False
        assert calls == [5 * MIB] and os.fstat(fd).st_size == 5 * MIB
    finally:
        os.close(fd)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_preallocate_reports_a_lack_of_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    monkeypatch.setattr(localos, "_fallocate", [_failing_fallocate(code, [])])
    fd = os.open(tmp_path / "f.bin", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError) as info:
            localos.preallocate(fd, 5 * MIB)
        assert info.value.errno == code
    finally:
        os.close(fd)


def test_pread_into_fills_a_reused_buffer_and_stops_at_the_end(tmp_path: Path) -> None:
    path = _write(tmp_path / "f.bin", b"abcdefgh")
    buf = memoryview(bytearray(b"\xff" * 6))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert localos.pread_into(fd, buf, 1) == 6 and bytes(buf) == b"bcdefg"
        assert localos.pread_into(fd, buf, 5) == 3 and bytes(buf[:3]) == b"fgh"
    finally:
        os.close(fd)


def test_pread_into_without_preadv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Windows has no preadv: the same contract through pread (seek and read there).
    path = _write(tmp_path / "f.bin", b"abcdefgh")
    monkeypatch.delattr(os, "preadv")
    buf = memoryview(bytearray(6))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert localos.pread_into(fd, buf, 5) == 3 and bytes(buf[:3]) == b"fgh"
    finally:
        os.close(fd)


def test_each_worker_thread_reuses_one_buffer_no_bigger_than_the_file() -> None:
    buffers = range_buffers.RangeBuffers(RANGE_SIZE + 10)
    data, view = buffers.take(RANGE_SIZE)
    assert isinstance(data, bytearray) and len(data) == RANGE_SIZE and view.obj is data
    tail, tail_view = buffers.take(10)
    assert isinstance(tail, memoryview) and tail.obj is data and len(tail_view) == 10  # the same buffer
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(buffers.take(5)[0]))
    thread.start()
    thread.join()
    assert isinstance(other[0], memoryview) and other[0].obj is not data  # another thread, another buffer
    small, _ = range_buffers.RangeBuffers(100).take(100)
    assert len(small) == 100  # a small file never costs a 4 MiB buffer


def test_the_zero_check_reads_views_and_buffers_alike() -> None:
    assert range_buffers.all_zero(bytearray(RANGE_SIZE))
    assert range_buffers.all_zero(memoryview(bytearray(RANGE_SIZE))[:100])
    inside = bytearray(RANGE_SIZE)
    inside[RANGE_SIZE // 2] = 1
    assert not range_buffers.all_zero(inside)
    assert not range_buffers.all_zero(memoryview(inside)[: RANGE_SIZE - 1])


def _uploaded_two_ranges(client: ShareClient, tmp_path: Path, prefix: str) -> tuple[str, bytes]:
    """A file of two ranges (the second of 5 bytes) uploaded under a fresh name: ``(name, content)``."""
    data = os.urandom(RANGE_SIZE + 5)
    name = f"{prefix}-{uuid.uuid4().hex[:8]}.bin"
    transfer.upload_file(client, _write(tmp_path / "src.bin", data), name)
    return name, data


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
