"""The emulator's file store: metadata in SQLite, file bytes in plain (sparse) files.

Layout under the data directory::

    meta.sqlite3          shares and nodes (directories and files), WAL journal
    blobs/<hex id>        the bytes of one file version; a node row names its blob

Crash safety (``kill -9`` at any instant leaves every operation either applied or not):

* The SQLite commit is the single point at which an operation takes effect. Byte work that must be
  visible *with* the commit is done *before* it, byte work that frees space is done *after* it:
  - create file / copy / overwrite: the new blob is written completely, then the row that names it is
    committed; the old blob (if any) is unlinked after the commit. A crash before the commit leaves an
    unreferenced blob, which the start-up sweep deletes.
  - delete file / directory / share: the rows go in one transaction, then the blobs are unlinked.
    A crash in between leaves orphans, swept at start.
  - rename: only rows change (blobs are keyed by id, never by path), so it is one transaction.
  - put range: the bytes are written in place, then etag / last-modified are committed. A crash in
    between leaves the old etag with (some of) the new bytes; this is the service's own contract for a
    PUT that never got its 201 (the range's content is undefined until the client retries it), and no
    metadata is ever half-updated.
  - resize: growing zero-fills the new region (truncate down to the old size, then up) before the
    commit; shrinking commits first and truncates after, so a crash never loses bytes that are still
    inside the committed length. Reads never go past the committed length and pad a short blob with
    zeros.
* ``synchronous=NORMAL`` with WAL: a committed transaction survives a process crash (the WAL is in the
  OS page cache and is replayed on open); only a power cut can lose the last commits, never corrupt the
  database. This emulator is a test tool, so we take the faster setting and skip fsync on blobs too.

Threads: handlers call the store from the event loop and from worker threads. Each thread has its own
connection (SQLite connections must not be shared across threads mid-transaction); writers take
``BEGIN IMMEDIATE`` so two writers never deadlock upgrading a read lock, and a busy timeout makes them
queue. Byte writes to one blob are serialised by a striped lock so a resize cannot interleave with a
range write on the same file.

Errors are raised as :class:`StorageError` with the service's status and code, since the store is the
one place that knows whether a parent, a share or a target exists.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from keyless.emulator.errors import StorageError
from keyless.protocol import (
    E_DIRECTORY_NOT_EMPTY,
    E_INVALID_RANGE,
    E_PARENT_NOT_FOUND,
    E_RESOURCE_EXISTS,
    E_RESOURCE_NOT_FOUND,
    E_SHARE_EXISTS,
    E_SHARE_NOT_FOUND,
)

if TYPE_CHECKING:
    from keyless.emulator.clock import Clock
    from keyless.emulator.config import EmulatorConfig

Metadata = tuple[tuple[str, str], ...]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shares (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    quota INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    etag TEXT NOT NULL,
    last_modified REAL NOT NULL,
    created REAL NOT NULL,
    root_id TEXT NOT NULL,
    UNIQUE (account, name)
);
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY,
    share_id INTEGER NOT NULL,
    parent_id TEXT,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    is_dir INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    etag TEXT NOT NULL,
    last_modified REAL NOT NULL,
    content_length INTEGER NOT NULL DEFAULT 0,
    content_type TEXT,
    content_encoding TEXT,
    content_language TEXT,
    content_disposition TEXT,
    cache_control TEXT,
    content_md5 BLOB,
    attributes TEXT NOT NULL,
    creation_time TEXT NOT NULL,
    last_write_time TEXT NOT NULL,
    change_time TEXT NOT NULL,
    permission_key TEXT NOT NULL,
    blob TEXT,
    lease_id TEXT,
    copy_id TEXT,
    copy_source TEXT,
    copy_completion REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS nodes_by_name ON nodes (share_id, parent_id, name_key);
CREATE INDEX IF NOT EXISTS nodes_by_blob ON nodes (blob);
"""

_NODE_COLUMNS = (
    "id, share_id, parent_id, name, is_dir, metadata, etag, last_modified, content_length, content_type, "
    "content_encoding, content_language, content_disposition, cache_control, content_md5, attributes, "
    "creation_time, last_write_time, change_time, permission_key, blob, lease_id, copy_id, copy_source, "
    "copy_completion"
)
_SHARE_COLUMNS = "id, account, name, quota, metadata, etag, last_modified, created, root_id"
# Statements assembled once from the constant column lists above (no request data is ever interpolated).
_SELECT_NODE = f"SELECT {_NODE_COLUMNS} FROM nodes"  # noqa: S608
_SELECT_NODE_KEY = f"SELECT {_NODE_COLUMNS}, name_key FROM nodes"  # noqa: S608
_SELECT_SHARE = f"SELECT {_SHARE_COLUMNS} FROM shares"  # noqa: S608
_INSERT_NODE = f"INSERT INTO nodes ({_NODE_COLUMNS}, name_key) VALUES ({','.join('?' * 26)})"  # noqa: S608
_LOCK_STRIPES = 64
_COPY_CHUNK = 4 * 1024 * 1024
_DOTNET_EPOCH_TICKS = 621355968000000000  # .NET ticks at 1970-01-01, the base of Azure's etags


# --- records -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContentHeaders:
    content_type: str | None = None
    content_encoding: str | None = None
    content_language: str | None = None
    content_disposition: str | None = None
    cache_control: str | None = None
    content_md5: bytes | None = None


@dataclass(frozen=True)
class SmbProps:
    """SMB properties as the service reports them (times are ISO 8601 with 7 fractional digits)."""

    attributes: str
    creation_time: str
    last_write_time: str
    change_time: str
    permission_key: str


@dataclass(frozen=True)
class SmbUpdate:
    """What a request asks for; ``None`` means default on create and keep on update."""

    attributes: str | None = None
    creation_time: str | None = None
    last_write_time: str | None = None
    change_time: str | None = None
    permission_key: str | None = None


@dataclass(frozen=True)
class ShareRecord:
    id: int
    account: str
    name: str
    quota: int
    metadata: Metadata
    etag: str
    last_modified: float
    created: float
    root_id: str


@dataclass(frozen=True)
class Node:
    id: str
    share_id: int
    parent_id: str | None
    name: str
    is_dir: bool
    metadata: Metadata
    etag: str
    last_modified: float
    content_length: int
    content: ContentHeaders
    smb: SmbProps
    blob: str | None
    lease_id: str | None
    copy_id: str | None
    copy_source: str | None
    copy_completion: float | None


@dataclass(frozen=True)
class Listing:
    directories: list[Node]
    files: list[Node]
    next_marker: str | None
    directory_id: str


# --- helpers -------------------------------------------------------------------------------------------


def name_key(name: str) -> str:
    """Case-insensitive key, as NTFS compares names: per-character upper case (no 'ß' -> 'SS')."""
    return "".join(u if len(u := ch.upper()) == 1 else ch for ch in name)


def smb_time(ts: float) -> str:
    """``2025-01-02T03:04:05.1234567Z``: the 100 ns resolution the service reports."""
    whole = int(ts)
    ticks = round((ts - whole) * 10_000_000)
    if ticks >= 10_000_000:
        whole, ticks = whole + 1, ticks - 10_000_000
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ticks:07d}Z"


def permission_key_for(permission: str) -> str:
    """A stable key for an SDDL string, shaped like the service's ``<decimal>*<decimal>`` keys."""
    digest = hashlib.sha256(permission.encode("utf-8")).digest()
    return f"{int.from_bytes(digest[:8], 'big')}*{int.from_bytes(digest[8:16], 'big')}"


DEFAULT_PERMISSION_KEY = permission_key_for("O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x1301bf;;;AU)")


def _dumps_metadata(metadata: Metadata) -> str:
    return json.dumps([list(pair) for pair in metadata], ensure_ascii=False)


def _loads_metadata(text: str) -> Metadata:
    return tuple((str(k), str(v)) for k, v in json.loads(text))


def _share_from_row(row: tuple[object, ...]) -> ShareRecord:
    return ShareRecord(
        id=int(row[0]),  # type: ignore[call-overload]
        account=str(row[1]),
        name=str(row[2]),
        quota=int(row[3]),  # type: ignore[call-overload]
        metadata=_loads_metadata(str(row[4])),
        etag=str(row[5]),
        last_modified=float(row[6]),  # type: ignore[arg-type]
        created=float(row[7]),  # type: ignore[arg-type]
        root_id=str(row[8]),
    )


def _node_from_row(row: tuple[object, ...]) -> Node:
    md5 = row[14]
    return Node(
        id=str(row[0]),
        share_id=int(row[1]),  # type: ignore[call-overload]
        parent_id=None if row[2] is None else str(row[2]),
        name=str(row[3]),
        is_dir=bool(row[4]),
        metadata=_loads_metadata(str(row[5])),
        etag=str(row[6]),
        last_modified=float(row[7]),  # type: ignore[arg-type]
        content_length=int(row[8]),  # type: ignore[call-overload]
        content=ContentHeaders(
            content_type=_opt(row[9]),
            content_encoding=_opt(row[10]),
            content_language=_opt(row[11]),
            content_disposition=_opt(row[12]),
            cache_control=_opt(row[13]),
            content_md5=bytes(md5) if isinstance(md5, bytes | bytearray | memoryview) else None,
        ),
        smb=SmbProps(
            attributes=str(row[15]),
            creation_time=str(row[16]),
            last_write_time=str(row[17]),
            change_time=str(row[18]),
            permission_key=str(row[19]),
        ),
        blob=_opt(row[20]),
        lease_id=_opt(row[21]),
        copy_id=_opt(row[22]),
        copy_source=_opt(row[23]),
        copy_completion=None if row[24] is None else float(row[24]),  # type: ignore[arg-type]
    )


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _check_lease(node: Node, lease_id: str | None, *, write: bool) -> None:
    """The service's lease rules for files: writes need the lease id, reads may omit it."""
    if node.lease_id is None:
        if lease_id is not None and write:
            raise StorageError(412, "LeaseNotPresentWithFileOperation",
                               "There is currently no lease on the file.")
        return
    if lease_id is None:
        if write:
            raise StorageError(412, "LeaseIdMissing",
                               "There is currently a lease on the file and no lease ID was specified "
                               "in the request.")
        return
    if lease_id.lower() != node.lease_id.lower():
        raise StorageError(412, "LeaseIdMismatchWithFileOperation",
                           "The lease ID specified did not match the lease ID for the file.")


# --- the store -----------------------------------------------------------------------------------------


class Store:
    def __init__(self, data_dir: Path, clock: Clock) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.blob_dir = data_dir / "blobs"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = data_dir / "meta.sqlite3"
        self._local = threading.local()
        self._all_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._etag_lock = threading.Lock()
        self._last_ticks = 0
        self._stripes = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        conn = self._conn()
        conn.executescript(_SCHEMA)
        self.sweep_orphans()

    # -- connections and transactions --

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per operation.
            conn = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=OFF")
            self._local.conn = conn
            with self._conns_lock:
                self._all_conns.append(conn)
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
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

    # -- small utilities --

    def new_etag(self) -> str:
        """``"0x8DC..."``: .NET ticks of now, strictly increasing so two writes never share an etag."""
        ticks = int(self.clock.now() * 10_000_000) + _DOTNET_EPOCH_TICKS
        with self._etag_lock:
            ticks = max(ticks, self._last_ticks + 1)
            self._last_ticks = ticks
        return f'"0x{ticks:X}"'

    def blob_path(self, blob: str) -> Path:
        return self.blob_dir / blob

    def _stripe(self, blob: str) -> threading.Lock:
        return self._stripes[hash(blob) % _LOCK_STRIPES]

    @staticmethod
    def _new_node_id() -> str:
        return str(secrets.randbits(63) | (1 << 62))  # 19-digit decimal ids like the service's FileId

    def _new_blob(self, length: int) -> str:
        """Create an empty sparse blob of ``length`` bytes: instant even for a 4 TiB file."""
        blob = uuid.uuid4().hex
        fd = os.open(self.blob_path(blob), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, length)
        finally:
            os.close(fd)
        return blob

    def _unlink_blobs(self, blobs: list[str]) -> None:
        for blob in blobs:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.blob_path(blob))

    def sweep_orphans(self) -> int:
        """Delete blobs no row names (left by a crash between byte work and commit). Start-up only."""
        rows = self._conn().execute("SELECT blob FROM nodes WHERE blob IS NOT NULL")
        referenced = {str(r[0]) for r in rows}
        removed = 0
        for entry in os.scandir(self.blob_dir):
            if entry.name not in referenced:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                removed += 1
        return removed

    # -- shares --

    def ensure_shares(self, config: EmulatorConfig) -> None:
        """Create the configured shares that do not exist yet (idempotent, safe on every start)."""
        for account in config.accounts:
            for share in account.shares:
                with contextlib.suppress(StorageError):
                    self.create_share(account.name, share.name, share.quota_gib, ())

    def create_share(self, account: str, name: str, quota: int, metadata: Metadata) -> ShareRecord:
        now = self.clock.now()
        etag = self.new_etag()
        root_id = self._new_node_id()
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM shares WHERE account=? AND name=?", (account, name)).fetchone():
                raise StorageError(409, E_SHARE_EXISTS)
            cur = conn.execute(
                "INSERT INTO shares (account, name, quota, metadata, etag, last_modified, created, root_id) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (account, name, quota, _dumps_metadata(metadata), etag, now, now, root_id),
            )
            share_id = int(cur.lastrowid or 0)
            stamp = smb_time(now)
            conn.execute(
                "INSERT INTO nodes (id, share_id, parent_id, name, name_key, is_dir, metadata, etag, "
                "last_modified, attributes, creation_time, last_write_time, change_time, permission_key) "
                "VALUES (?,?,NULL,'','',1,'[]',?,?,'Directory',?,?,?,?)",
                (root_id, share_id, etag, now, stamp, stamp, stamp, DEFAULT_PERMISSION_KEY),
            )
        return ShareRecord(share_id, account, name, quota, metadata, etag, now, now, root_id)

    def get_share(self, account: str, name: str) -> ShareRecord:
        row = self._conn().execute(
            _SELECT_SHARE + " WHERE account=? AND name=?", (account, name)
        ).fetchone()
        if row is None:
            raise StorageError(404, E_SHARE_NOT_FOUND)
        return _share_from_row(row)

    def list_shares(self, account: str, prefix: str, marker: str | None,
                    limit: int) -> tuple[list[ShareRecord], str | None]:
        rows = self._conn().execute(
            _SELECT_SHARE + " WHERE account=? AND substr(name,1,?)=? AND name>=? "
            "ORDER BY name LIMIT ?",
            (account, len(prefix), prefix, marker or "", limit + 1),
        ).fetchall()
        shares = [_share_from_row(r) for r in rows]
        if len(shares) > limit:
            return shares[:limit], shares[limit].name
        return shares, None

    def update_share(self, account: str, name: str, *, quota: int | None = None,
                     metadata: Metadata | None = None) -> ShareRecord:
        now = self.clock.now()
        etag = self.new_etag()
        with self._write() as conn:
            share = self._share_in(conn, account, name)
            new = replace(
                share,
                quota=share.quota if quota is None else quota,
                metadata=share.metadata if metadata is None else metadata,
                etag=etag,
                last_modified=now,
            )
            conn.execute(
                "UPDATE shares SET quota=?, metadata=?, etag=?, last_modified=? WHERE id=?",
                (new.quota, _dumps_metadata(new.metadata), etag, now, share.id),
            )
        return new

    def delete_share(self, account: str, name: str) -> None:
        """Deletes the share and everything in it, as the service does."""
        with self._write() as conn:
            share = self._share_in(conn, account, name)
            blobs = [str(r[0]) for r in conn.execute(
                "SELECT blob FROM nodes WHERE share_id=? AND blob IS NOT NULL", (share.id,))]
            conn.execute("DELETE FROM nodes WHERE share_id=?", (share.id,))
            conn.execute("DELETE FROM shares WHERE id=?", (share.id,))
        self._unlink_blobs(blobs)

    def share_usage(self, account: str, name: str) -> int:
        share = self.get_share(account, name)
        row = self._conn().execute(
            "SELECT COALESCE(SUM(content_length),0) FROM nodes WHERE share_id=? AND is_dir=0", (share.id,)
        ).fetchone()
        return int(row[0])

    @staticmethod
    def _share_in(conn: sqlite3.Connection, account: str, name: str) -> ShareRecord:
        row = conn.execute(
            _SELECT_SHARE + " WHERE account=? AND name=?", (account, name)
        ).fetchone()
        if row is None:
            raise StorageError(404, E_SHARE_NOT_FOUND)
        return _share_from_row(row)

    # -- path resolution --

    def _child(self, conn: sqlite3.Connection, share_id: int, parent_id: str, name: str) -> Node | None:
        row = conn.execute(
            _SELECT_NODE + " WHERE share_id=? AND parent_id=? AND name_key=?",
            (share_id, parent_id, name_key(name)),
        ).fetchone()
        return None if row is None else _node_from_row(row)

    def _node_by_id(self, conn: sqlite3.Connection, node_id: str) -> Node:
        row = conn.execute(_SELECT_NODE + " WHERE id=?", (node_id,)).fetchone()
        if row is None:
            raise StorageError(404, E_RESOURCE_NOT_FOUND)
        return _node_from_row(row)

    def _parent_id(self, conn: sqlite3.Connection, share: ShareRecord, path: tuple[str, ...]) -> str:
        """Id of the directory that holds ``path[-1]``; 404 ParentNotFound if any ancestor is missing."""
        parent_id = share.root_id
        for part in path[:-1]:
            node = self._child(conn, share.id, parent_id, part)
            if node is None or not node.is_dir:
                raise StorageError(404, E_PARENT_NOT_FOUND)
            parent_id = node.id
        return parent_id

    def _resolve(self, conn: sqlite3.Connection, account: str, share_name: str,
                 path: tuple[str, ...]) -> tuple[ShareRecord, Node]:
        """(share, node); 404 when the node does not exist. The empty path is the root directory."""
        share = self._share_in(conn, account, share_name)
        if not path:
            return share, self._node_by_id(conn, share.root_id)
        node = self._child(conn, share.id, self._parent_id(conn, share, path), path[-1])
        if node is None:
            raise StorageError(404, E_RESOURCE_NOT_FOUND)
        return share, node

    def get_node(self, account: str, share: str, path: tuple[str, ...], *,
                 is_dir: bool | None = None) -> Node:
        """The node at ``path``; ``is_dir`` demands a type (a mismatch is 404 like the service)."""
        _, node = self._resolve(self._conn(), account, share, path)
        if is_dir is not None and node.is_dir != is_dir:
            raise StorageError(404, E_RESOURCE_NOT_FOUND)
        return node

    # -- directories --

    def create_directory(self, account: str, share_name: str, path: tuple[str, ...], metadata: Metadata,
                         smb: SmbUpdate) -> Node:
        now = self.clock.now()
        etag = self.new_etag()
        with self._write() as conn:
            share = self._share_in(conn, account, share_name)
            if not path:
                raise StorageError(409, E_RESOURCE_EXISTS)
            parent_id = self._parent_id(conn, share, path)
            if self._child(conn, share.id, parent_id, path[-1]) is not None:
                raise StorageError(409, E_RESOURCE_EXISTS)
            node = self._new_node(share.id, parent_id, path[-1], True, metadata, etag, now, smb,
                                  ContentHeaders(), 0, None)
            self._insert(conn, node)
        return node

    def _new_node(self, share_id: int, parent_id: str, name: str, is_dir: bool, metadata: Metadata,
                  etag: str, now: float, smb: SmbUpdate, content: ContentHeaders, length: int,
                  blob: str | None) -> Node:
        stamp = smb_time(now)
        attributes = smb.attributes or ("Directory" if is_dir else "Archive")
        return Node(
            id=self._new_node_id(), share_id=share_id, parent_id=parent_id, name=name, is_dir=is_dir,
            metadata=metadata, etag=etag, last_modified=now, content_length=length, content=content,
            smb=SmbProps(
                attributes=attributes,
                creation_time=smb.creation_time or stamp,
                last_write_time=smb.last_write_time or stamp,
                change_time=smb.change_time or stamp,
                permission_key=smb.permission_key or DEFAULT_PERMISSION_KEY,
            ),
            blob=blob, lease_id=None, copy_id=None, copy_source=None, copy_completion=None,
        )

    @staticmethod
    def _insert(conn: sqlite3.Connection, node: Node) -> None:
        c = node.content
        conn.execute(
            _INSERT_NODE,
            (
                node.id, node.share_id, node.parent_id, node.name, int(node.is_dir),
                _dumps_metadata(node.metadata), node.etag, node.last_modified, node.content_length,
                c.content_type, c.content_encoding, c.content_language, c.content_disposition,
                c.cache_control, c.content_md5, node.smb.attributes, node.smb.creation_time,
                node.smb.last_write_time, node.smb.change_time, node.smb.permission_key, node.blob,
                node.lease_id, node.copy_id, node.copy_source, node.copy_completion, name_key(node.name),
            ),
        )

    @staticmethod
    def _save(conn: sqlite3.Connection, node: Node) -> None:
        """Rewrite every mutable column of ``node`` (one UPDATE; the row id never changes)."""
        c = node.content
        conn.execute(
            "UPDATE nodes SET metadata=?, etag=?, last_modified=?, content_length=?, content_type=?, "
            "content_encoding=?, content_language=?, content_disposition=?, cache_control=?, content_md5=?, "
            "attributes=?, creation_time=?, last_write_time=?, change_time=?, permission_key=?, blob=?, "
            "lease_id=?, copy_id=?, copy_source=?, copy_completion=? WHERE id=?",
            (
                _dumps_metadata(node.metadata), node.etag, node.last_modified, node.content_length,
                c.content_type, c.content_encoding, c.content_language, c.content_disposition,
                c.cache_control, c.content_md5, node.smb.attributes, node.smb.creation_time,
                node.smb.last_write_time, node.smb.change_time, node.smb.permission_key, node.blob,
                node.lease_id, node.copy_id, node.copy_source, node.copy_completion, node.id,
            ),
        )

    def delete_directory(self, account: str, share_name: str, path: tuple[str, ...]) -> None:
        with self._write() as conn:
            _, node = self._resolve(conn, account, share_name, path)
            if not node.is_dir:
                raise StorageError(404, E_RESOURCE_NOT_FOUND)
            if not path:
                raise StorageError(400, "InvalidUri", "The root directory of a share cannot be deleted.")
            if conn.execute("SELECT 1 FROM nodes WHERE parent_id=? LIMIT 1", (node.id,)).fetchone():
                raise StorageError(409, E_DIRECTORY_NOT_EMPTY)
            conn.execute("DELETE FROM nodes WHERE id=?", (node.id,))

    def update_node(self, account: str, share_name: str, path: tuple[str, ...], *, is_dir: bool,
                    metadata: Metadata | None = None, smb: SmbUpdate | None = None,
                    content: ContentHeaders | None = None, length: int | None = None,
                    lease_id: str | None = None) -> Node:
        """Set metadata / SMB properties / content headers / length (each None: unchanged)."""
        now = self.clock.now()
        etag = self.new_etag()
        with self._write() as conn:
            _, node = self._resolve(conn, account, share_name, path)
            if node.is_dir != is_dir:
                raise StorageError(404, E_RESOURCE_NOT_FOUND)
            if not is_dir:
                _check_lease(node, lease_id, write=True)
            new = replace(node, etag=etag, last_modified=now)
            if metadata is not None:
                new = replace(new, metadata=metadata)
            if content is not None:
                new = replace(new, content=content)
            if smb is not None:
                new = replace(new, smb=_apply_smb(node.smb, smb, smb_time(now)))
            shrink_to: int | None = None
            if length is not None and length != node.content_length and node.blob is not None:
                if length > node.content_length:
                    # Zero the grown region before the commit (stale bytes may sit past the old end).
                    with self._stripe(node.blob):
                        os.truncate(self.blob_path(node.blob), node.content_length)
                        os.truncate(self.blob_path(node.blob), length)
                else:
                    shrink_to = length
                new = replace(new, content_length=length)
            self._save(conn, new)
        if shrink_to is not None and new.blob is not None:
            with self._stripe(new.blob), contextlib.suppress(FileNotFoundError):
                os.truncate(self.blob_path(new.blob), shrink_to)
        return new

    def list_directory(self, account: str, share_name: str, path: tuple[str, ...], prefix: str,
                       marker: str | None, limit: int) -> Listing:
        conn = self._conn()
        _, node = self._resolve(conn, account, share_name, path)
        if not node.is_dir:
            raise StorageError(404, E_RESOURCE_NOT_FOUND)
        key_prefix = name_key(prefix)
        rows = conn.execute(
            _SELECT_NODE_KEY + " WHERE parent_id=? AND substr(name_key,1,?)=? "
            "AND name_key>=? ORDER BY name_key LIMIT ?",
            (node.id, len(key_prefix), key_prefix, marker or "", limit + 1),
        ).fetchall()
        next_marker = str(rows[limit][-1]) if len(rows) > limit else None
        nodes = [_node_from_row(r) for r in rows[:limit]]
        return Listing(
            directories=[n for n in nodes if n.is_dir],
            files=[n for n in nodes if not n.is_dir],
            next_marker=next_marker,
            directory_id=node.id,
        )

    # -- files --

    def create_file(self, account: str, share_name: str, path: tuple[str, ...], length: int,
                    content: ContentHeaders, metadata: Metadata, smb: SmbUpdate,
                    body: bytes = b"", lease_id: str | None = None) -> Node:
        """Create or replace a file; the new (sparse, zero-filled) blob exists before the commit."""
        self.get_share(account, share_name)  # fail fast before touching the disk
        blob = self._new_blob(length)
        committed = False
        try:
            if body:
                self._pwrite(blob, 0, body)
            now = self.clock.now()
            etag = self.new_etag()
            old_blob: str | None = None
            with self._write() as conn:
                share = self._share_in(conn, account, share_name)
                if not path:
                    raise StorageError(409, E_RESOURCE_EXISTS)
                parent_id = self._parent_id(conn, share, path)
                existing = self._child(conn, share.id, parent_id, path[-1])
                node = self._new_node(share.id, parent_id, path[-1], False, metadata, etag, now, smb,
                                      content, length, blob)
                if existing is None:
                    self._insert(conn, node)
                elif existing.is_dir:
                    raise StorageError(409, E_RESOURCE_EXISTS)
                else:
                    _check_lease(existing, lease_id, write=True)
                    # Replace in place: same FileId and name, new bytes; the lease carries over.
                    node = replace(node, id=existing.id, name=existing.name, lease_id=existing.lease_id)
                    old_blob = existing.blob
                    self._save(conn, node)
            committed = True
        finally:
            if not committed:
                self._unlink_blobs([blob])
        if old_blob:
            self._unlink_blobs([old_blob])
        return node

    def _pwrite(self, blob: str, offset: int, data: bytes) -> None:
        fd = os.open(self.blob_path(blob), os.O_WRONLY)
        try:
            view = memoryview(data)
            while view:
                written = os.pwrite(fd, view, offset)
                view, offset = view[written:], offset + written
        finally:
            os.close(fd)

    def write_range(self, account: str, share_name: str, path: tuple[str, ...], offset: int,
                    data: bytes | None, length: int, *, lease_id: str | None = None,
                    last_write_time: str | None = None) -> Node:
        """Write ``data`` at ``offset`` (``None``: clear ``length`` bytes), then commit the new etag."""
        node = self.get_node(account, share_name, path, is_dir=False)
        _check_lease(node, lease_id, write=True)
        end = offset + length
        if end > node.content_length or node.blob is None:
            raise StorageError(416, E_INVALID_RANGE)
        try:
            with self._stripe(node.blob):
                if data is None:
                    self._punch(node.blob, offset, length)
                else:
                    self._pwrite(node.blob, offset, data)
        except FileNotFoundError:
            raise StorageError(404, E_RESOURCE_NOT_FOUND) from None  # deleted or replaced meanwhile
        now = self.clock.now()
        etag = self.new_etag()
        with self._write() as conn:
            row = conn.execute(_SELECT_NODE + " WHERE id=? AND blob=?",
                               (node.id, node.blob)).fetchone()
            if row is None:
                raise StorageError(404, E_RESOURCE_NOT_FOUND)
            current = _node_from_row(row)
            stamp = smb_time(now)
            if last_write_time == "preserve":
                written = current.smb.last_write_time
            else:
                written = last_write_time or stamp
            smb = replace(current.smb, change_time=stamp, last_write_time=written)
            new = replace(current, etag=etag, last_modified=now, smb=smb)
            self._save(conn, new)
        return new

    def _punch(self, blob: str, offset: int, length: int) -> None:
        """Clear a range: zero it (hole punching would be nicer but is not portable from Python)."""
        fd = os.open(self.blob_path(blob), os.O_WRONLY)
        try:
            zeros = bytes(min(length, _COPY_CHUNK))
            pos, end = offset, offset + length
            while pos < end:
                n = min(len(zeros), end - pos)
                os.pwrite(fd, zeros[:n] if n < len(zeros) else zeros, pos)
                pos += n
        finally:
            os.close(fd)

    def read_range(self, node: Node, offset: int, length: int) -> bytes:
        """Bytes ``[offset, offset+length)`` of ``node`` (clamped to its length; zero-padded)."""
        length = max(0, min(length, node.content_length - offset))
        if length == 0 or node.blob is None:
            return b""
        try:
            fd = os.open(self.blob_path(node.blob), os.O_RDONLY)
        except FileNotFoundError:
            raise StorageError(404, E_RESOURCE_NOT_FOUND) from None
        try:
            chunks: list[bytes] = []
            pos, end = offset, offset + length
            while pos < end:
                chunk = os.pread(fd, end - pos, pos)
                if not chunk:
                    break
                chunks.append(chunk)
                pos += len(chunk)
        finally:
            os.close(fd)
        data = b"".join(chunks)
        return data + bytes(length - len(data)) if len(data) < length else data

    def data_ranges(self, node: Node, start: int, end: int) -> list[tuple[int, int]]:
        """Inclusive ranges holding data within ``[start, end]``, 512-aligned like the service's.

        Uses SEEK_DATA/SEEK_HOLE on the sparse blob; where unsupported, the whole file counts as data.
        """
        end = min(end, node.content_length - 1)
        if node.blob is None or end < start:
            return []
        ranges: list[tuple[int, int]] = []
        try:
            fd = os.open(self.blob_path(node.blob), os.O_RDONLY)
        except FileNotFoundError:
            return []
        try:
            pos = start
            while pos <= end:
                try:
                    data = os.lseek(fd, pos, os.SEEK_DATA)
                except OSError as exc:
                    if exc.errno == errno.ENXIO:  # no data after pos
                        break
                    raise
                if data > end:
                    break
                hole = os.lseek(fd, data, os.SEEK_HOLE)
                lo = data - data % 512
                hi = min(-(-hole // 512) * 512, node.content_length) - 1
                ranges.append((max(lo, start), min(hi, end)))
                pos = hole
        except (AttributeError, OSError):
            ranges = [(start, end)]
        finally:
            os.close(fd)
        return _merge(ranges)

    def delete_file(self, account: str, share_name: str, path: tuple[str, ...],
                    lease_id: str | None = None) -> None:
        with self._write() as conn:
            _, node = self._resolve(conn, account, share_name, path)
            if node.is_dir:
                raise StorageError(404, E_RESOURCE_NOT_FOUND)
            _check_lease(node, lease_id, write=True)
            conn.execute("DELETE FROM nodes WHERE id=?", (node.id,))
        if node.blob:
            self._unlink_blobs([node.blob])

    def rename(self, account: str, share_name: str, source: tuple[str, ...], target: tuple[str, ...], *,
               is_dir: bool, replace_existing: bool, metadata: Metadata | None = None,
               smb: SmbUpdate | None = None, content_type: str | None = None,
               source_lease: str | None = None, target_lease: str | None = None) -> Node:
        """Move a file or directory within a share: rows only, one transaction."""
        now = self.clock.now()
        etag = self.new_etag()
        dropped: list[str] = []
        with self._write() as conn:
            share, node = self._resolve(conn, account, share_name, source)
            if not source or node.is_dir != is_dir:
                raise StorageError(404, E_RESOURCE_NOT_FOUND)
            if not target:
                raise StorageError(400, "InvalidInput", "The destination path is not valid.")
            if not is_dir:
                _check_lease(node, source_lease, write=True)
            parent_id = self._parent_id(conn, share, target)
            if is_dir and self._is_inside(conn, parent_id, node.id):
                raise StorageError(400, "InvalidInput", "A directory cannot be moved into itself.")
            existing = self._child(conn, share.id, parent_id, target[-1])
            if existing is not None and existing.id != node.id:
                if not replace_existing:
                    raise StorageError(409, E_RESOURCE_EXISTS)
                if existing.is_dir:
                    # The service never replaces a directory by rename.
                    raise StorageError(409, E_RESOURCE_EXISTS if not is_dir else E_DIRECTORY_NOT_EMPTY)
                if is_dir:
                    raise StorageError(409, E_RESOURCE_EXISTS)
                _check_lease(existing, target_lease, write=True)
                conn.execute("DELETE FROM nodes WHERE id=?", (existing.id,))
                if existing.blob:
                    dropped.append(existing.blob)
            new = replace(node, parent_id=parent_id, name=target[-1], etag=etag, last_modified=now)
            if metadata is not None:
                new = replace(new, metadata=metadata)
            if content_type is not None:
                new = replace(new, content=replace(new.content, content_type=content_type))
            new = replace(new, smb=_apply_smb(new.smb, smb or SmbUpdate(), smb_time(now)))
            conn.execute("UPDATE nodes SET parent_id=?, name=?, name_key=? WHERE id=?",
                         (parent_id, new.name, name_key(new.name), new.id))
            self._save(conn, new)
        self._unlink_blobs(dropped)
        return new

    def _is_inside(self, conn: sqlite3.Connection, directory_id: str, ancestor_id: str) -> bool:
        current: str | None = directory_id
        while current is not None:
            if current == ancestor_id:
                return True
            current = self._node_by_id(conn, current).parent_id
        return False

    def copy_file(self, source: Node, account: str, share_name: str, target: tuple[str, ...], *,
                  copy_id: str, copy_source: str, metadata: Metadata | None,
                  lease_id: str | None = None) -> Node:
        """Synchronous same-account copy: copy the bytes into a new blob, then commit the target row."""
        length = source.content_length
        blob = self._new_blob(length)
        try:
            self._copy_bytes(source, blob)
            content = source.content
            node = self.create_file_from_blob(
                account, share_name, target, blob, length, content,
                source.metadata if metadata is None else metadata, copy_id, copy_source, lease_id,
            )
        except BaseException:
            self._unlink_blobs([blob])
            raise
        return node

    def _copy_bytes(self, source: Node, blob: str) -> None:
        if source.blob is None:
            return
        for start, end in self.data_ranges(source, 0, source.content_length - 1):
            pos = start
            while pos <= end:
                n = min(_COPY_CHUNK, end - pos + 1)
                self._pwrite(blob, pos, self.read_range(source, pos, n))
                pos += n

    def create_file_from_blob(self, account: str, share_name: str, path: tuple[str, ...], blob: str,
                              length: int, content: ContentHeaders, metadata: Metadata, copy_id: str,
                              copy_source: str, lease_id: str | None) -> Node:
        now = self.clock.now()
        etag = self.new_etag()
        old_blob: str | None = None
        with self._write() as conn:
            share = self._share_in(conn, account, share_name)
            if not path:
                raise StorageError(409, E_RESOURCE_EXISTS)
            parent_id = self._parent_id(conn, share, path)
            existing = self._child(conn, share.id, parent_id, path[-1])
            node = self._new_node(share.id, parent_id, path[-1], False, metadata, etag, now, SmbUpdate(),
                                  content, length, blob)
            node = replace(node, copy_id=copy_id, copy_source=copy_source, copy_completion=now)
            if existing is None:
                self._insert(conn, node)
            elif existing.is_dir:
                raise StorageError(409, E_RESOURCE_EXISTS)
            else:
                _check_lease(existing, lease_id, write=True)
                node = replace(node, id=existing.id, name=existing.name, lease_id=existing.lease_id,
                               smb=existing.smb)
                old_blob = existing.blob
                self._save(conn, node)
        if old_blob:
            self._unlink_blobs([old_blob])
        return node

    # -- leases --

    def lease(self, account: str, share_name: str, path: tuple[str, ...], action: str,
              lease_id: str | None, proposed: str | None) -> Node:
        """File leases (always infinite): acquire, release, change, break."""
        with self._write() as conn:
            _, node = self._resolve(conn, account, share_name, path)
            if node.is_dir:
                raise StorageError(404, E_RESOURCE_NOT_FOUND)
            new_id = _lease_transition(node, action, lease_id, proposed)
            conn.execute("UPDATE nodes SET lease_id=? WHERE id=?", (new_id, node.id))
        return replace(node, lease_id=new_id)


def _lease_transition(node: Node, action: str, lease_id: str | None, proposed: str | None) -> str | None:
    current = node.lease_id
    if action == "acquire":
        wanted = proposed or str(uuid.uuid4())
        if current is not None and current.lower() != wanted.lower():
            raise StorageError(409, "LeaseAlreadyPresent", "There is already a lease present.")
        return wanted
    if action == "break":
        if current is None:
            raise StorageError(409, "LeaseNotPresentWithLeaseOperation",
                               "There is currently no lease on the file.")
        return None
    if current is None:
        raise StorageError(409, "LeaseNotPresentWithLeaseOperation",
                           "There is currently no lease on the file.")
    if lease_id is None or lease_id.lower() != current.lower():
        if action == "change" and proposed is not None and lease_id is not None \
                and proposed.lower() == current.lower():
            return current  # a repeated change is idempotent, as in the service
        raise StorageError(409, "LeaseIdMismatchWithLeaseOperation",
                           "The lease ID specified did not match the lease ID for the file.")
    if action == "release":
        return None
    if action == "change":
        if proposed is None:
            raise StorageError(400, "MissingRequiredHeader", extra={"HeaderName": "x-ms-proposed-lease-id"})
        return proposed
    raise StorageError(400, "InvalidHeaderValue", extra={"HeaderName": "x-ms-lease-action"})


def _apply_smb(current: SmbProps, update: SmbUpdate, now_stamp: str) -> SmbProps:
    """Update SMB properties; any property change also moves the change time, as NTFS does."""
    return SmbProps(
        attributes=update.attributes or current.attributes,
        creation_time=update.creation_time or current.creation_time,
        last_write_time=update.last_write_time or current.last_write_time,
        change_time=update.change_time or now_stamp,
        permission_key=update.permission_key or current.permission_key,
    )


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged
