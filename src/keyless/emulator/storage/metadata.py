"""File and share metadata in SQLite (``DIR/meta.sqlite3``, WAL journal): the schema and every query the
store makes (how a record maps to a row is in ``rows``). The store decides what to write and in which
order; this module knows how it is stored.

Threads: handlers call the store from the event loop and from worker threads. Each thread has its own
connection (SQLite connections must not be shared across threads mid-transaction); writers take
``BEGIN IMMEDIATE`` so two writers never deadlock upgrading a read lock, and a busy timeout makes them
queue. ``synchronous=NORMAL`` with WAL: a committed transaction survives a process crash (the WAL is in
the OS page cache and is replayed on open); only a power cut can lose the last commits, never corrupt
the database.

Lookups that find nothing raise :class:`StorageError` with the service's status and code, since this is
the one place that knows whether a parent, a share or a target exists.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from keyless.emulator.errors import StorageError
from keyless.emulator.storage.records import Node, ShareLease, ShareRecord, name_key
from keyless.emulator.storage.rows import (
    NODE_COLUMNS,
    SHARE_COLUMNS,
    dumps_metadata,
    node_from_row,
    node_values,
    share_from_row,
)
from keyless.emulator.storage.schema import MIGRATIONS, SCHEMA
from keyless.protocol import E_PARENT_NOT_FOUND, E_RESOURCE_NOT_FOUND, E_SHARE_NOT_FOUND

# Statements assembled once from the constant column lists above (no request data is ever interpolated).
_SELECT_NODE = f"SELECT {NODE_COLUMNS} FROM nodes"  # noqa: S608
_SELECT_NODE_KEY = f"SELECT {NODE_COLUMNS}, name_key FROM nodes"  # noqa: S608
_SELECT_SHARE = f"SELECT {SHARE_COLUMNS} FROM shares"  # noqa: S608
# Live shares and snapshots only: a soft-deleted share answers as if it did not exist (ShareNotFound).
_LIVE = "deleted_version=''"
# List Shares order within one name: deleted versions (oldest first), snapshots (oldest first), then the
# live share, as the service lists them; "!" sorts below every snapshot timestamp and "~" above.
_LIST_KEY = ("CASE WHEN deleted_version<>'' THEN '!' || deleted_version WHEN snapshot='' THEN '~' "
             "ELSE snapshot END")
_TREE_COLUMNS = ", ".join(f"n.{c.strip()}" for c in NODE_COLUMNS.split(","))
# A share's nodes, parents first (a renamed directory may be older than its new parent).
_SELECT_TREE = (
    "WITH RECURSIVE tree(id, depth) AS (SELECT id, 0 FROM nodes "  # noqa: S608
    "WHERE share_id=? AND parent_id IS NULL "
    "UNION ALL SELECT n.id, t.depth + 1 FROM nodes n JOIN tree t ON n.parent_id = t.id) "
    f"SELECT {_TREE_COLUMNS} FROM nodes n JOIN tree t ON n.id = t.id ORDER BY t.depth"
)
_INSERT_NODE = (f"INSERT INTO nodes ({NODE_COLUMNS}, name_key) "  # noqa: S608
                f"VALUES ({','.join('?' * (NODE_COLUMNS.count(',') + 2))})")


class MetadataDb:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        # The version this data directory had when opened (the store back-fills what migrations cannot).
        self.opened_at_version = self._migrate(self.conn())

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> int:
        """Create the base schema, then apply the migrations this data directory has not seen yet;
        returns the version it had."""
        conn.executescript(SCHEMA)
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise RuntimeError(f"{conn.execute('PRAGMA database_list').fetchone()[2]} was written by a newer "
                               f"emulator (schema {version}, this one knows {len(MIGRATIONS)}): "
                               "upgrade keyless or use another data directory")
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits first; BEGIN..COMMIT makes each step (and its version) atomic.
            conn.executescript(f"BEGIN IMMEDIATE; {step}; PRAGMA user_version={number}; COMMIT;")
        return version

    @property
    def schema_version(self) -> int:
        return int(self.conn().execute("PRAGMA user_version").fetchone()[0])

    # -- connections and transactions --

    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per operation.
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=OFF")
            self._local.conn = conn
            with self._conns_lock:
                self._all_conns.append(conn)
        return conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction; its COMMIT is the single point at which an operation takes effect."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._all_conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all_conns.clear()
        self._local = threading.local()

    @staticmethod
    def new_node_id() -> str:
        return str(secrets.randbits(63) | (1 << 62))  # 19-digit decimal ids like the service's FileId

    def referenced_blobs(self) -> set[str]:
        rows = self.conn().execute("SELECT blob FROM nodes WHERE blob IS NOT NULL")
        return {str(r[0]) for r in rows}

    def file_blobs(self) -> list[tuple[str, int]]:
        """(blob, committed length) of every file version, live and in snapshots."""
        rows = self.conn().execute("SELECT blob, content_length FROM nodes WHERE blob IS NOT NULL")
        return [(str(r[0]), int(r[1])) for r in rows]

    # -- written ranges (storage.ranges) --

    @staticmethod
    def ranges(conn: sqlite3.Connection, blob: str | None) -> list[tuple[int, int]]:
        if blob is None:
            return []
        row = conn.execute("SELECT ranges FROM blob_ranges WHERE blob=?", (blob,)).fetchone()
        return [] if row is None else [(int(a), int(b)) for a, b in json.loads(str(row[0]))]

    @staticmethod
    def set_ranges(conn: sqlite3.Connection, blob: str, ranges: list[tuple[int, int]]) -> None:
        conn.execute("INSERT OR REPLACE INTO blob_ranges (blob, ranges) VALUES (?, ?)",
                     (blob, json.dumps([list(r) for r in ranges])))

    @staticmethod
    def drop_ranges(conn: sqlite3.Connection, blobs: list[str]) -> None:
        conn.executemany("DELETE FROM blob_ranges WHERE blob=?", [(b,) for b in blobs])

    def sweep_ranges(self) -> None:
        """Forget the ranges of blobs no row names (a crash between a commit and the clean-up)."""
        with self.write() as conn:
            conn.execute("DELETE FROM blob_ranges WHERE blob NOT IN "
                         "(SELECT blob FROM nodes WHERE blob IS NOT NULL)")

    # -- shares --

    @staticmethod
    def share_exists(conn: sqlite3.Connection, account: str, name: str, snapshot: str = "") -> bool:
        row = conn.execute("SELECT 1 FROM shares WHERE account=? AND name=? AND snapshot=? "
                           "AND deleted_version=''", (account, name, snapshot)).fetchone()
        return row is not None

    @staticmethod
    def insert_share(conn: sqlite3.Connection, share: ShareRecord, root: Node) -> int:
        """Insert the share and its root directory; returns the share's row id."""
        cur = conn.execute(
            "INSERT INTO shares (account, name, snapshot, quota, metadata, etag, last_modified, created, "
            "root_id, access_tier, tier_changed) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (share.account, share.name, share.snapshot, share.quota, dumps_metadata(share.metadata),
             share.etag, share.last_modified, share.created, share.root_id, share.access_tier,
             share.tier_changed),
        )
        share_id = int(cur.lastrowid or 0)
        smb = root.smb
        conn.execute(
            "INSERT INTO nodes (id, share_id, parent_id, name, name_key, is_dir, metadata, etag, "
            "last_modified, attributes, creation_time, last_write_time, change_time, permission_key, "
            "file_id) "
            "VALUES (?,?,NULL,'','',1,?,?,?,?,?,?,?,?,?)",
            (root.id, share_id, dumps_metadata(root.metadata), root.etag, root.last_modified,
             smb.attributes, smb.creation_time, smb.last_write_time, smb.change_time, smb.permission_key,
             root.live_id),
        )
        return share_id

    def get_share(self, account: str, name: str, snapshot: str = "") -> ShareRecord:
        return self.share_in(self.conn(), account, name, snapshot)

    @staticmethod
    def share_in(conn: sqlite3.Connection, account: str, name: str, snapshot: str = "") -> ShareRecord:
        row = conn.execute(
            _SELECT_SHARE + f" WHERE account=? AND name=? AND snapshot=? AND {_LIVE}",
            (account, name, snapshot),
        ).fetchone()
        if row is None:
            if snapshot and MetadataDb.share_exists(conn, account, name):
                raise StorageError(404, "ShareSnapshotNotFound",
                                   "The specified share snapshot does not exist.")
            raise StorageError(404, E_SHARE_NOT_FOUND)
        return share_from_row(row)

    def list_shares(self, account: str, prefix: str, marker: tuple[str, str] | None, limit: int, *,
                    snapshots: bool = False, deleted: bool = False,
                    ) -> tuple[list[ShareRecord], tuple[str, str] | None]:
        """Shares by name; with ``snapshots`` each share's snapshots (oldest first) precede it, with
        ``deleted`` its soft-deleted versions (not their snapshots) precede those.

        Markers are (name, list key) pairs (``list_key``): a page may end between two entries of one name.
        """
        m_name, m_key = marker or ("", "")
        rows = self.conn().execute(
            _SELECT_SHARE + f" WHERE account=? AND substr(name,1,?)=? AND (?=1 OR snapshot='') "
            f"AND (?=1 OR deleted_version='') AND (deleted_version='' OR snapshot='') "
            f"AND (name, {_LIST_KEY}) >= (?, ?) ORDER BY name, {_LIST_KEY} LIMIT ?",
            (account, len(prefix), prefix, int(snapshots), int(deleted), m_name,
             m_key or ("~" if marker else ""), limit + 1),
        ).fetchall()
        shares = [share_from_row(r) for r in rows]
        if len(shares) > limit:
            nxt = shares[limit]
            return shares[:limit], (nxt.name, list_key(nxt))
        return shares, None

    @staticmethod
    def snapshots_of(conn: sqlite3.Connection, account: str, name: str) -> list[ShareRecord]:
        rows = conn.execute(_SELECT_SHARE + f" WHERE account=? AND name=? AND snapshot<>'' AND {_LIVE} "
                            "ORDER BY snapshot", (account, name)).fetchall()
        return [share_from_row(r) for r in rows]

    @staticmethod
    def share_nodes(conn: sqlite3.Connection, share_id: int) -> list[Node]:
        """Every node of a share, parents before children (ordered by depth from the root)."""
        rows = conn.execute(_SELECT_TREE, (share_id,)).fetchall()
        return [node_from_row(r) for r in rows]

    @staticmethod
    def save_share(conn: sqlite3.Connection, share: ShareRecord) -> None:
        conn.execute(
            "UPDATE shares SET quota=?, metadata=?, etag=?, last_modified=?, acl=?, access_tier=?, "
            "tier_changed=? WHERE id=?",
            (share.quota, dumps_metadata(share.metadata), share.etag, share.last_modified,
             json.dumps([[p.id, p.start, p.expiry, p.permission] for p in share.acl]), share.access_tier,
             share.tier_changed, share.id),
        )

    def service_properties(self, account: str) -> dict[str, str]:
        rows = self.conn().execute("SELECT element, xml FROM service_properties WHERE account=?", (account,))
        return {str(r[0]): str(r[1]) for r in rows}

    def set_service_properties(self, account: str, elements: dict[str, str]) -> None:
        with self.write() as conn:
            conn.executemany("INSERT OR REPLACE INTO service_properties (account, element, xml) "
                             "VALUES (?,?,?)", [(account, tag, xml) for tag, xml in elements.items()])

    @staticmethod
    def save_permission(conn: sqlite3.Connection, share_id: int, key: str, sddl: str) -> None:
        conn.execute("INSERT OR IGNORE INTO share_permissions (share_id, key, sddl) VALUES (?,?,?)",
                     (share_id, key, sddl))

    @staticmethod
    def permission(conn: sqlite3.Connection, share_id: int, key: str) -> str | None:
        row = conn.execute("SELECT sddl FROM share_permissions WHERE share_id=? AND key=?",
                           (share_id, key)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def copy_permissions(conn: sqlite3.Connection, from_share: int, to_share: int) -> None:
        conn.execute("INSERT INTO share_permissions (share_id, key, sddl) "
                     "SELECT ?, key, sddl FROM share_permissions WHERE share_id=?", (to_share, from_share))

    @staticmethod
    def set_share_lease(conn: sqlite3.Connection, share_id: int, lease: ShareLease) -> None:
        conn.execute("UPDATE shares SET lease_id=?, lease_duration=?, lease_expires=?, lease_broken_at=? "
                     "WHERE id=?", (lease.lease_id, lease.duration, lease.expires, lease.broken_at, share_id))

    @staticmethod
    def delete_share(conn: sqlite3.Connection, share_id: int) -> list[str]:
        """Delete the share's rows; returns the blobs they named (to unlink after the commit)."""
        blobs = [str(r[0]) for r in conn.execute(
            "SELECT blob FROM nodes WHERE share_id=? AND blob IS NOT NULL", (share_id,))]
        conn.execute("DELETE FROM nodes WHERE share_id=?", (share_id,))
        conn.execute("DELETE FROM share_permissions WHERE share_id=?", (share_id,))
        conn.execute("DELETE FROM shares WHERE id=?", (share_id,))
        return blobs

    # -- soft delete --

    @staticmethod
    def mark_deleted(conn: sqlite3.Connection, share_id: int, version: str, when: float, days: int) -> None:
        """Soft-delete one share or snapshot row: it keeps its tree and bytes, loses its lease."""
        conn.execute("UPDATE shares SET deleted_version=?, deleted_time=?, retention_days=?, lease_id=NULL, "
                     "lease_duration=-1, lease_expires=NULL, lease_broken_at=NULL WHERE id=?",
                     (version, when, days, share_id))

    @staticmethod
    def deleted_versions(conn: sqlite3.Connection, account: str, name: str) -> set[str]:
        rows = conn.execute("SELECT DISTINCT deleted_version FROM shares WHERE account=? AND name=? "
                            "AND deleted_version<>''", (account, name))
        return {str(r[0]) for r in rows}

    @staticmethod
    def deleted_share(conn: sqlite3.Connection, account: str, name: str, version: str) -> list[ShareRecord]:
        """A soft-deleted version's rows: the share first, then its snapshots (oldest first)."""
        rows = conn.execute(_SELECT_SHARE + " WHERE account=? AND name=? AND deleted_version=? "
                            "ORDER BY snapshot<>'', snapshot", (account, name, version)).fetchall()
        return [share_from_row(r) for r in rows]

    @staticmethod
    def mark_restored(conn: sqlite3.Connection, share_id: int) -> None:
        conn.execute("UPDATE shares SET deleted_version='', deleted_time=NULL, retention_days=NULL "
                     "WHERE id=?", (share_id,))

    @staticmethod
    def expired_shares(conn: sqlite3.Connection, now: float) -> list[int]:
        """Rows of soft-deleted shares whose retention has run out by ``now``."""
        rows = conn.execute("SELECT id FROM shares WHERE deleted_time IS NOT NULL "
                            "AND deleted_time + retention_days * 86400.0 <= ?", (now,))
        return [int(r[0]) for r in rows]

    def share_usage(self, share_id: int) -> int:
        row = self.conn().execute(
            "SELECT COALESCE(SUM(content_length),0) FROM nodes WHERE share_id=? AND is_dir=0", (share_id,)
        ).fetchone()
        return int(row[0])

    # -- path resolution --

    @staticmethod
    def child(conn: sqlite3.Connection, share_id: int, parent_id: str, name: str) -> Node | None:
        row = conn.execute(
            _SELECT_NODE + " WHERE share_id=? AND parent_id=? AND name_key=?",
            (share_id, parent_id, name_key(name)),
        ).fetchone()
        return None if row is None else node_from_row(row)

    @staticmethod
    def node_by_id(conn: sqlite3.Connection, node_id: str) -> Node:
        row = conn.execute(_SELECT_NODE + " WHERE id=?", (node_id,)).fetchone()
        if row is None:
            raise StorageError(404, E_RESOURCE_NOT_FOUND)
        return node_from_row(row)

    @staticmethod
    def node_with_blob(conn: sqlite3.Connection, node_id: str, blob: str) -> Node | None:
        """The node, if it still names ``blob`` (not deleted or replaced meanwhile)."""
        row = conn.execute(_SELECT_NODE + " WHERE id=? AND blob=?", (node_id, blob)).fetchone()
        return None if row is None else node_from_row(row)

    def parent_id(self, conn: sqlite3.Connection, share: ShareRecord, path: tuple[str, ...]) -> str:
        """Id of the directory that holds ``path[-1]``; 404 ParentNotFound if any ancestor is missing."""
        parent_id = share.root_id
        for part in path[:-1]:
            node = self.child(conn, share.id, parent_id, part)
            if node is None or not node.is_dir:
                raise StorageError(404, E_PARENT_NOT_FOUND)
            parent_id = node.id
        return parent_id

    def resolve(self, conn: sqlite3.Connection, account: str, share_name: str,
                path: tuple[str, ...], snapshot: str = "") -> tuple[ShareRecord, Node]:
        """(share, node); 404 when the node does not exist. The empty path is the root directory."""
        share = self.share_in(conn, account, share_name, snapshot)
        if not path:
            return share, self.node_by_id(conn, share.root_id)
        node = self.child(conn, share.id, self.parent_id(conn, share, path), path[-1])
        if node is None:
            raise StorageError(404, E_RESOURCE_NOT_FOUND)
        return share, node

    def is_inside(self, conn: sqlite3.Connection, directory_id: str, ancestor_id: str) -> bool:
        current: str | None = directory_id
        while current is not None:
            if current == ancestor_id:
                return True
            current = self.node_by_id(conn, current).parent_id
        return False

    @staticmethod
    def has_children(conn: sqlite3.Connection, directory_id: str) -> bool:
        return conn.execute("SELECT 1 FROM nodes WHERE parent_id=? LIMIT 1", (directory_id,)).fetchone() \
            is not None

    def list_children(self, conn: sqlite3.Connection, directory_id: str, prefix: str, marker: str | None,
                      limit: int) -> tuple[list[Node], str | None]:
        """Up to ``limit`` children in name-key order from ``marker``, and the next marker (or None)."""
        key_prefix = name_key(prefix)
        rows = conn.execute(
            _SELECT_NODE_KEY + " WHERE parent_id=? AND substr(name_key,1,?)=? "
            "AND name_key>=? ORDER BY name_key LIMIT ?",
            (directory_id, len(key_prefix), key_prefix, marker or "", limit + 1),
        ).fetchall()
        next_marker = str(rows[limit][-1]) if len(rows) > limit else None
        return [node_from_row(r) for r in rows[:limit]], next_marker

    # -- node rows --

    @staticmethod
    def insert(conn: sqlite3.Connection, node: Node) -> None:
        conn.execute(
            _INSERT_NODE,
            (*node_values(node), name_key(node.name)),
        )

    @staticmethod
    def save(conn: sqlite3.Connection, node: Node) -> None:
        """Rewrite every mutable column of ``node`` (one UPDATE; the row id never changes)."""
        c = node.content
        conn.execute(
            "UPDATE nodes SET metadata=?, etag=?, last_modified=?, content_length=?, content_type=?, "
            "content_encoding=?, content_language=?, content_disposition=?, cache_control=?, content_md5=?, "
            "attributes=?, creation_time=?, last_write_time=?, change_time=?, permission_key=?, blob=?, "
            "lease_id=?, copy_id=?, copy_source=?, copy_completion=?, copy_status=?, copy_progress=?, "
            "copy_status_description=? WHERE id=?",
            (
                dumps_metadata(node.metadata), node.etag, node.last_modified, node.content_length,
                c.content_type, c.content_encoding, c.content_language, c.content_disposition,
                c.cache_control, c.content_md5, node.smb.attributes, node.smb.creation_time,
                node.smb.last_write_time, node.smb.change_time, node.smb.permission_key, node.blob,
                node.lease_id, node.copy_id, node.copy_source, node.copy_completion, node.copy_status,
                node.copy_progress, node.copy_status_description, node.id,
            ),
        )

    @staticmethod
    def move(conn: sqlite3.Connection, node: Node) -> None:
        """Give ``node``'s row its (new) parent and name."""
        conn.execute("UPDATE nodes SET parent_id=?, name=?, name_key=? WHERE id=?",
                     (node.parent_id, node.name, name_key(node.name), node.id))

    @staticmethod
    def set_lease(conn: sqlite3.Connection, node_id: str, lease_id: str | None) -> None:
        conn.execute("UPDATE nodes SET lease_id=? WHERE id=?", (lease_id, node_id))

    @staticmethod
    def fail_pending_copies(conn: sqlite3.Connection, now: float, description: str) -> int:
        """Mark every copy still pending in a live share as failed (the copier that ran it is gone);
        returns how many. A share snapshot keeps the state it froze, as it keeps the bytes."""
        return conn.execute(
            "UPDATE nodes SET copy_status='failed', copy_status_description=?, copy_completion=? "
            "WHERE copy_status='pending' AND share_id IN (SELECT id FROM shares WHERE snapshot='')",
            (description, now),
        ).rowcount

    @staticmethod
    def delete_node(conn: sqlite3.Connection, node_id: str) -> None:
        conn.execute("DELETE FROM nodes WHERE id=?", (node_id,))


def list_key(share: ShareRecord) -> str:
    """Where ``share`` sorts among the entries of its name in List Shares (the SQL ``_LIST_KEY``)."""
    if share.deleted_version:
        return "!" + share.deleted_version
    return share.snapshot or "~"
