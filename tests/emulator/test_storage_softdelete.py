"""The store's share soft delete: a data directory from before it (schema 6) opens with its shares,
leases, ACLs and snapshots intact and can soft-delete and restore them; a soft-deleted share survives a
restart; expiry follows the injected clock, also at start-up; deleted versions of one name never merge."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from keyless.emulator.clock import Clock
from keyless.emulator.errors import StorageError
from keyless.emulator.storage import ContentSettings, SmbUpdate, Store
from keyless.emulator.storage.schema import MIGRATIONS, SCHEMA

ACCT = "devaccount"
DAY = 86400.0
SOFT_DELETE_STEP = 7  # the schema version that brought soft delete


def _schema6_data_dir(path: Path) -> None:
    """A data directory as the emulator wrote it before soft delete: a leased share with an ACL, a tier,
    a file and a snapshot of it, at user_version 6."""
    (path / "blobs").mkdir(parents=True)
    conn = sqlite3.connect(path / "meta.sqlite3")
    conn.executescript(SCHEMA)
    for number, step in enumerate(MIGRATIONS[:SOFT_DELETE_STEP - 1], start=1):
        conn.executescript(f"BEGIN; {step}; PRAGMA user_version={number}; COMMIT;")
    times = ("2025-01-01T00:00:00.0000000Z",) * 3
    for share_id, snapshot, root, node, blob in ((1, "", "100", "101", "b0"),
                                                 (2, "2025-01-02T00:00:00.0000000Z", "200", "201", "b1")):
        conn.execute("INSERT INTO shares (id, account, name, snapshot, quota, metadata, etag, last_modified, "
                     "created, root_id, lease_id, lease_duration, acl, access_tier, tier_changed) VALUES "
                     "(?, ?, 'old', ?, 100, '[[\"k\", \"v\"]]', '\"0x1\"', 1.0, 1.0, ?, ?, -1, "
                     "'[[\"id1\", \"\", \"\", \"r\"]]', 'Cool', 2.0)",
                     (share_id, ACCT, snapshot, root, None if snapshot else "lease-1"))
        conn.execute("INSERT INTO nodes (id, share_id, parent_id, name, name_key, is_dir, metadata, etag, "
                     "last_modified, attributes, creation_time, last_write_time, change_time, "
                     "permission_key) VALUES (?, ?, NULL, '', '', 1, '[]', '\"0x1\"', 1.0, 'Directory', "
                     "?, ?, ?, 'p')",
                     (root, share_id, *times))
        conn.execute("INSERT INTO nodes (id, share_id, parent_id, name, name_key, is_dir, metadata, etag, "
                     "last_modified, content_length, attributes, creation_time, last_write_time, "
                     "change_time, permission_key, blob) VALUES (?, ?, ?, 'f.bin', 'F.BIN', 0, '[]', "
                     "'\"0x2\"', 1.0, 5, 'Archive', ?, ?, ?, 'p', ?)", (node, share_id, root, *times, blob))
        conn.execute("INSERT INTO blob_ranges (blob, ranges) VALUES (?, '[[0, 511]]')", (blob,))
        (path / "blobs" / blob).write_bytes(b"hello")
    conn.commit()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SOFT_DELETE_STEP - 1
    conn.close()


def test_a_schema6_data_directory_opens_and_soft_deletes(tmp_path: Path) -> None:
    _schema6_data_dir(tmp_path)
    clock = Clock()
    store = Store(tmp_path, clock)
    share = store.get_share(ACCT, "old")
    assert (share.quota, share.metadata, share.access_tier, share.tier_changed) == \
        (100, (("k", "v"),), "Cool", 2.0)
    assert share.lease.lease_id == "lease-1" and [p.id for p in share.acl] == ["id1"]
    assert (share.deleted_version, share.deleted_time) == ("", None)
    snap = "2025-01-02T00:00:00.0000000Z"
    # Snapshot files written before FileIds were kept report their own ids, as they always did.
    assert store.get_node(ACCT, "old", ("f.bin",), snapshot=snap).file_id == "201"

    store.delete_share(ACCT, "old", with_snapshots=True, lease_id="lease-1", retention_days=2)
    with pytest.raises(StorageError) as gone:
        store.get_share(ACCT, "old")
    assert (gone.value.status, gone.value.code) == (404, "ShareNotFound")
    store.close()

    reopened = Store(tmp_path, clock)  # the soft-deleted share survives a restart
    [deleted] = reopened.list_shares(ACCT, "old", None, 10, deleted=True)[0]
    assert deleted.retention_days == 2 and deleted.lease.lease_id is None  # its lease ended with it
    restored = reopened.restore_share(ACCT, "old", deleted.deleted_version)
    assert (restored.quota, restored.access_tier, [p.id for p in restored.acl]) == (100, "Cool", ["id1"])
    node = reopened.get_node(ACCT, "old", ("f.bin",), snapshot=snap)
    assert reopened.read_range(node, 0, 5) == b"hello"
    reopened.close()
    conn = sqlite3.connect(tmp_path / "meta.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()


def test_expiry_follows_the_clock_and_runs_at_start_up(tmp_path: Path) -> None:
    clock = Clock()
    store = Store(tmp_path, clock)
    store.create_share(ACCT, "keep", 1, ())
    store.create_file(ACCT, "keep", ("f",), 3, ContentSettings(), (), SmbUpdate(), b"abc")
    store.delete_share(ACCT, "keep", retention_days=1)
    blobs = {p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()}
    assert len(blobs) == 1
    clock.offset = DAY - 60
    assert store.purge_expired() == 0
    store.close()

    clock.offset = DAY + 1
    Store(tmp_path, clock).close()  # opening the store purges what expired while it was closed
    assert not any(p.is_file() for p in (tmp_path / "blobs").rglob("*"))
    again = Store(tmp_path, clock)
    assert again.list_shares(ACCT, "keep", None, 10, deleted=True)[0] == []
    again.close()


def test_deleted_versions_of_one_name_stay_apart(tmp_path: Path) -> None:
    clock = Clock()
    store = Store(tmp_path, clock)
    versions = []
    for generation in range(3):
        created = store.create_share(ACCT, "same", 1, (("g", str(generation)),))
        # The same creation tick for all three: the version is bumped, never shared.
        with store._db.write() as conn:  # forcing the rare collision through the store's own database
            conn.execute("UPDATE shares SET created=1000.0 WHERE id=?", (created.id,))
        store.delete_share(ACCT, "same", retention_days=7)
    listed, _ = store.list_shares(ACCT, "same", None, 10, deleted=True)
    versions = [s.deleted_version for s in listed]
    assert len(set(versions)) == 3 and versions == sorted(versions)
    assert [dict(s.metadata)["g"] for s in listed] == ["0", "1", "2"]
    page, marker = store.list_shares(ACCT, "same", None, 2, deleted=True)
    assert marker is not None
    rest, end = store.list_shares(ACCT, "same", marker, 2, deleted=True)
    assert [s.deleted_version for s in page + rest] == versions and end is None
    store.close()
