"""Copy states in the store: a data directory from before copy statuses were stored still opens (its
copies read as the synchronous successes they were), and a copy left pending by a stopped process is
failed when the store opens again, never left pending nor made to look complete."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from keyless.emulator.clock import Clock
from keyless.emulator.errors import StorageError
from keyless.emulator.storage import ContentSettings, SmbUpdate, Store, copy_status
from keyless.emulator.storage.schema import MIGRATIONS, SCHEMA

ACCT = "devaccount"
COPY_STATUS_SINCE = 7  # the schema step that added nodes.copy_status


def _data_dir_before_copy_status(path: Path) -> None:
    """A data directory at schema 6 holding a file written by Copy File (copy id, source, completion)."""
    (path / "blobs").mkdir(parents=True)
    conn = sqlite3.connect(path / "meta.sqlite3")
    conn.executescript(SCHEMA)
    for number, step in enumerate(MIGRATIONS[:COPY_STATUS_SINCE - 1], start=1):
        conn.executescript(f"BEGIN; {step}; PRAGMA user_version={number}; COMMIT;")
    times = ("2025-01-01T00:00:00.0000000Z",) * 3
    conn.execute("INSERT INTO shares (id, account, name, quota, metadata, etag, last_modified, created, "
                 "root_id) VALUES (1, ?, 'old', 100, '[]', '\"0x1\"', 1.0, 1.0, '100')", (ACCT,))
    conn.execute("INSERT INTO nodes (id, share_id, parent_id, name, name_key, is_dir, metadata, etag, "
                 "last_modified, attributes, creation_time, last_write_time, change_time, permission_key) "
                 "VALUES ('100', 1, NULL, '', '', 1, '[]', '\"0x1\"', 1.0, 'Directory', ?, ?, ?, 'p')", times)
    conn.execute("INSERT INTO nodes (id, share_id, parent_id, name, name_key, is_dir, metadata, etag, "
                 "last_modified, content_length, attributes, creation_time, last_write_time, change_time, "
                 "permission_key, blob, copy_id, copy_source, copy_completion) VALUES ('101', 1, '100', "
                 "'c.bin', 'C.BIN', 0, '[]', '\"0x2\"', 1.0, 4, 'Archive', ?, ?, ?, 'p', 'b0', 'id-1', "
                 "'https://h/devaccount/old/a.bin', 2.0)", times)
    conn.commit()
    conn.close()
    (path / "blobs" / "b0").write_bytes(b"data")


def test_copies_recorded_before_copy_status_read_as_success(tmp_path: Path) -> None:
    _data_dir_before_copy_status(tmp_path)
    store = Store(tmp_path, Clock())
    node = store.get_node(ACCT, "old", ("c.bin",))
    assert (node.copy_id, copy_status(node), node.copy_status) == ("id-1", "success", None)
    assert store.read_range(node, 0, 4) == b"data"
    # No copy is pending: aborting one is refused as Azure refuses it.
    with pytest.raises(StorageError) as ended:
        store.abort_copy(ACCT, "old", ("c.bin",), "id-1", None)
    assert (ended.value.status, ended.value.code) == (409, "NoPendingCopyOperation")
    store.close()
    conn = sqlite3.connect(tmp_path / "meta.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()


def test_a_copy_pending_when_the_store_closed_is_failed_when_it_opens(tmp_path: Path) -> None:
    store = Store(tmp_path, Clock())
    store.create_share(ACCT, "s", 1, ())
    source = store.create_file(ACCT, "s", ("a",), 8, ContentSettings(), (), SmbUpdate(), b"abcdefgh")
    pending = store.start_copy(source, ACCT, "s", ("b",), copy_id="id-2", copy_source="u", metadata=None)
    assert store.copy_step(pending.id, "id-2", source, 0, 4)
    assert store.get_node(ACCT, "s", ("b",)).copy_progress == "4/8"
    stamp = store.create_snapshot(ACCT, "s", None).snapshot  # freezes the copy as it is
    store.close()

    again = Store(tmp_path, Clock())
    node = again.get_node(ACCT, "s", ("b",))
    assert (node.copy_status, node.copy_progress) == ("failed", "4/8")
    assert node.copy_completion is not None and "stopped" in (node.copy_status_description or "")
    # The copier of the old process is gone: a late step or finish changes nothing.
    assert not again.copy_step(node.id, "id-2", source, 4, 4)
    assert again.finish_copy(node.id, "id-2", source) is None
    assert again.get_node(ACCT, "s", ("b",)).copy_status == "failed"
    # A snapshot keeps what it froze: the state and the bytes of that moment.
    frozen = again.get_node(ACCT, "s", ("b",), snapshot=stamp)
    assert (frozen.copy_status, frozen.copy_progress) == ("pending", "4/8")
    assert again.read_range(frozen, 0, 8) == b"abcd\0\0\0\0"
    again.close()
