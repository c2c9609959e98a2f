"""Data directories written by an older emulator still open: the schema migrations run in order, once,
and what they cannot derive (a blob's written ranges) is filled in from the data when the store opens."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from keyless.emulator.clock import Clock
from keyless.emulator.storage import ContentSettings, SmbUpdate, Store
from keyless.emulator.storage.schema import MIGRATIONS, SCHEMA

ACCT = "devaccount"


def _old_data_dir(path: Path) -> None:
    """A data directory as the first release wrote it: base schema only, user_version 0."""
    (path / "blobs").mkdir(parents=True)
    conn = sqlite3.connect(path / "meta.sqlite3")
    conn.executescript(SCHEMA)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    times = ("2025-01-01T00:00:00.0000000Z",) * 3
    conn.execute("INSERT INTO shares (id, account, name, quota, metadata, etag, last_modified, created, "
                 "root_id) VALUES (1, ?, 'old', 100, '[[\"k\", \"v\"]]', '\"0x1\"', 1.0, 1.0, '100')",
                 (ACCT,))
    conn.execute("INSERT INTO nodes (id, share_id, parent_id, name, name_key, is_dir, metadata, etag, "
                 "last_modified, attributes, creation_time, last_write_time, change_time, permission_key) "
                 "VALUES ('100', 1, NULL, '', '', 1, '[]', '\"0x1\"', 1.0, 'Directory', ?, ?, ?, 'p')", times)
    conn.execute("INSERT INTO nodes (id, share_id, parent_id, name, name_key, is_dir, metadata, etag, "
                 "last_modified, content_length, attributes, creation_time, last_write_time, change_time, "
                 "permission_key, blob) VALUES ('101', 1, '100', 'f.bin', 'F.BIN', 0, '[]', '\"0x2\"', 1.0, "
                 "1048576, 'Archive', ?, ?, ?, 'p', 'b0')", times)
    conn.commit()
    conn.close()
    with open(path / "blobs" / "b0", "wb") as blob:
        blob.truncate(1024 * 1024)
        blob.seek(512 * 1024)
        blob.write(b"d" * 10)


def test_an_old_data_directory_opens_and_gains_snapshots_and_ranges(tmp_path: Path) -> None:
    _old_data_dir(tmp_path)
    store = Store(tmp_path, Clock())
    share = store.get_share(ACCT, "old")
    assert (share.quota, share.metadata, share.snapshot) == (100, (("k", "v"),), "")
    node = store.get_node(ACCT, "old", ("f.bin",))
    assert store.read_range(node, 512 * 1024, 10) == b"d" * 10
    # The ranges of a file written before they were kept come from the blob's allocated extents.
    ranges = store.data_ranges(node, 0, node.content_length - 1)
    assert len(ranges) == 1 and ranges[0][0] <= 512 * 1024 <= ranges[0][1]
    snap = store.create_snapshot(ACCT, "old", None)
    frozen = store.get_node(ACCT, "old", ("f.bin",), snapshot=snap.snapshot)
    assert store.read_range(frozen, 512 * 1024, 10) == b"d" * 10
    store.close()

    conn = sqlite3.connect(tmp_path / "meta.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()
    # Opening again applies nothing twice and keeps what the first open did.
    again = Store(tmp_path, Clock())
    assert [s.snapshot for s in again.list_shares(ACCT, "old", None, 10, snapshots=True)[0]] == \
        [snap.snapshot, ""]
    again.close()


def test_a_new_data_directory_is_at_the_latest_version(tmp_path: Path) -> None:
    store = Store(tmp_path, Clock())
    store.create_share(ACCT, "fresh", 1, ())
    store.create_file(ACCT, "fresh", ("a",), 4096, ContentSettings(), (), SmbUpdate(), b"abc")
    node = store.get_node(ACCT, "fresh", ("a",))
    assert store.data_ranges(node, 0, 4095) == [(0, 511)]  # the 512-byte unit the write touched
    store.close()
    conn = sqlite3.connect(tmp_path / "meta.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()


def test_a_data_directory_from_a_newer_emulator_is_refused_by_name(tmp_path: Path) -> None:
    Store(tmp_path, Clock()).close()
    conn = sqlite3.connect(tmp_path / "meta.sqlite3")
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match=r"newer emulator.*another data directory"):
        Store(tmp_path, Clock())
    assert os.path.exists(tmp_path / "meta.sqlite3")
