"""The emulator's store: persistence across restarts, crash safety, orphan sweep, names, concurrency."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from keyless.emulator.clock import Clock
from keyless.emulator.config import default_config
from keyless.emulator.errors import StorageError
from keyless.emulator.storage import ContentSettings, SmbUpdate, Store, name_key, smb_time
from keyless.emulator.storage.store import SMALL_RANGE_BYTES

ACCT = "devaccount"


def _store(path: Path) -> Store:
    store = Store(path, Clock())
    store.ensure_shares(default_config())
    return store


def _file(store: Store, path: tuple[str, ...], data: bytes) -> None:
    store.create_file(ACCT, "demo", path, len(data), ContentSettings(content_type="text/plain"),
                      (("k", "v"),), SmbUpdate())
    store.write_range(ACCT, "demo", path, 0, data, len(data))


def test_everything_survives_a_restart(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.create_directory(ACCT, "demo", ("d",), (("Owner", "me"),), SmbUpdate())
    _file(store, ("d", "f.bin"), b"hello world")
    store.create_share(ACCT, "second", 10, (("a", "b"),))
    before = store.get_node(ACCT, "demo", ("d", "f.bin"))
    store.close()

    again = _store(tmp_path)  # ensure_shares again: idempotent, "demo" is not recreated
    node = again.get_node(ACCT, "demo", ("d", "f.bin"))
    assert node == before
    assert again.read_range(node, 0, 100) == b"hello world"
    assert again.get_node(ACCT, "demo", ("d",)).metadata == (("Owner", "me"),)
    assert again.get_share(ACCT, "second").metadata == (("a", "b"),)
    assert [s.name for s in again.list_shares(ACCT, "", None, 10)[0]] == ["demo", "second"]
    again.close()


def _crash(tmp_path: Path, setup: str, patch: str, action: str) -> None:
    """Run ``action`` in a child process that dies with ``os._exit`` at the patched point (a kill -9)."""
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from keyless.emulator.clock import Clock
        from keyless.emulator.config import default_config
        from keyless.emulator.storage import ContentSettings, SmbUpdate, Store
        from keyless.emulator.storage.blobs import BlobStore
        from keyless.emulator.storage.metadata import MetadataDb
        store = Store(Path({str(tmp_path)!r}), Clock())
        store.ensure_shares(default_config())
        A = "devaccount"
        {setup}
        {patch}
        {action}
        raise SystemExit("the crash point was never reached")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr


def test_crash_inside_create_leaves_no_file_and_the_orphan_is_swept(tmp_path: Path) -> None:
    _crash(
        tmp_path,
        setup="pass",
        patch="MetadataDb.insert = staticmethod(lambda conn, node: os._exit(9))",
        action='store.create_file(A, "demo", ("new.bin",), 5, ContentSettings(), (), SmbUpdate(), b"abcde")',
    )
    assert len(os.listdir(tmp_path / "blobs")) == 1  # the blob was written before the (lost) commit
    store = _store(tmp_path)
    assert os.listdir(tmp_path / "blobs") == []
    with pytest.raises(StorageError) as err:
        store.get_node(ACCT, "demo", ("new.bin",))
    assert err.value.code == "ResourceNotFound"
    store.close()


@pytest.mark.parametrize("length", [2, SMALL_RANGE_BYTES + 1])  # written inside / before the transaction
def test_crash_between_range_write_and_commit_keeps_the_old_metadata(tmp_path: Path, length: int) -> None:
    store = _store(tmp_path)
    _file(store, ("f",), b"0123456789" * (SMALL_RANGE_BYTES // 10 + 1))
    before = store.get_node(ACCT, "demo", ("f",))
    store.close()
    _crash(
        tmp_path,
        setup="pass",
        patch="MetadataDb.save = staticmethod(lambda conn, node: os._exit(9))",
        action=f'store.write_range(A, "demo", ("f",), 0, b"X" * {length}, {length})',
    )
    store = _store(tmp_path)
    after = store.get_node(ACCT, "demo", ("f",))
    assert (after.etag, after.last_modified, after.content_length) == (
        before.etag, before.last_modified, before.content_length)
    store.close()


def test_crash_after_delete_commit_sweeps_the_data_file(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _file(store, ("gone",), b"x" * 100)
    store.close()
    _crash(
        tmp_path,
        setup="pass",
        patch="BlobStore.unlink = lambda self, blobs: os._exit(9)",
        action='store.delete_file(A, "demo", ("gone",))',
    )
    assert len(os.listdir(tmp_path / "blobs")) == 1
    store = _store(tmp_path)
    assert os.listdir(tmp_path / "blobs") == []
    with pytest.raises(StorageError):
        store.get_node(ACCT, "demo", ("gone",))
    store.close()


def test_crash_during_rename_is_all_or_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _file(store, ("a",), b"abc")
    store.close()
    _crash(
        tmp_path,
        setup="pass",
        patch="MetadataDb.save = staticmethod(lambda conn, node: os._exit(9))",
        action='store.rename(A, "demo", ("a",), ("b",), is_dir=False, replace_existing=False)',
    )
    store = _store(tmp_path)
    node = store.get_node(ACCT, "demo", ("a",))
    assert store.read_range(node, 0, 3) == b"abc"
    with pytest.raises(StorageError):
        store.get_node(ACCT, "demo", ("b",))
    store.close()


def test_resize_zero_fills_and_shrink_keeps_prefix(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _file(store, ("f",), b"abcdef")
    store.update_node(ACCT, "demo", ("f",), is_dir=False, length=3)
    node = store.update_node(ACCT, "demo", ("f",), is_dir=False, length=8)
    assert store.read_range(node, 0, 100) == b"abc" + bytes(5)
    store.close()


def test_huge_sparse_file_is_instant_and_ranges_follow_data(tmp_path: Path) -> None:
    store = _store(tmp_path)
    size = 1024**4  # 1 TiB
    store.create_file(ACCT, "demo", ("big",), size, ContentSettings(), (), SmbUpdate())
    node = store.write_range(ACCT, "demo", ("big",), 1024 * 1024, b"z" * 10, 10)
    assert node.content_length == size
    ranges = store.data_ranges(node, 0, size - 1)
    assert len(ranges) == 1 and ranges[0][0] <= 1024 * 1024 <= ranges[0][1]
    assert store.read_range(node, 1024 * 1024 - 1, 12) == b"\0" + b"z" * 10 + b"\0"
    store.close()


def test_names_are_case_insensitive_and_case_preserving(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.create_directory(ACCT, "demo", ("Dir",), (), SmbUpdate())
    with pytest.raises(StorageError) as err:
        store.create_directory(ACCT, "demo", ("DIR",), (), SmbUpdate())
    assert err.value.code == "ResourceAlreadyExists"
    assert store.get_node(ACCT, "demo", ("dir",)).name == "Dir"
    assert name_key("straße") == "STRAßE"  # no 'ß' -> 'SS' folding: NTFS keeps them distinct
    store.close()


def test_delete_rules(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.create_directory(ACCT, "demo", ("d",), (), SmbUpdate())
    _file(store, ("d", "f"), b"1")
    with pytest.raises(StorageError) as err:
        store.delete_directory(ACCT, "demo", ("d",))
    assert (err.value.status, err.value.code) == (409, "DirectoryNotEmpty")
    with pytest.raises(StorageError) as err:
        store.create_directory(ACCT, "demo", ("nope", "x"), (), SmbUpdate())
    assert (err.value.status, err.value.code) == (404, "ParentNotFound")
    store.delete_share(ACCT, "demo")  # a share goes with everything in it
    assert os.listdir(tmp_path / "blobs") == []
    store.close()


def test_concurrent_writers_and_readers(tmp_path: Path) -> None:
    store = _store(tmp_path)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            path = (f"file{i}",)
            store.create_file(ACCT, "demo", path, 4096, ContentSettings(), (), SmbUpdate())
            for j in range(20):
                store.write_range(ACCT, "demo", path, j * 100, bytes([i]) * 100, 100)
                node = store.get_node(ACCT, "demo", path)
                assert store.read_range(node, j * 100, 100) == bytes([i]) * 100
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    etags = {store.get_node(ACCT, "demo", (f"file{i}",)).etag for i in range(8)}
    assert len(etags) == 8
    store.close()


def test_smb_time_format() -> None:
    assert smb_time(0.5) == "1970-01-01T00:00:00.5000000Z"
    assert smb_time(1.99999999) == "1970-01-01T00:00:02.0000000Z"


def test_share_records_follow_every_change_to_the_share(tmp_path: Path) -> None:
    """Share records are shared between requests while the share's row is unchanged, never after."""
    store = _store(tmp_path)
    first = store.get_share(ACCT, "demo")
    assert store.get_share(ACCT, "demo") is first
    store.update_share(ACCT, "demo", quota=7, metadata=(("k", "v"),))
    changed = store.get_share(ACCT, "demo")
    assert (changed.quota, changed.metadata) == (7, (("k", "v"),)) and changed.etag != first.etag
    store.close()
