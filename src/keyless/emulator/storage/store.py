"""The emulator's file store: one facade over the metadata database, the blob bytes, and the lease and
SMB property rules. The handlers call only this.

Layout under the data directory::

    meta.sqlite3          shares and nodes (directories and files), WAL journal  (storage.metadata)
    blobs/<hex id>        the bytes of one file version; a node row names its blob (storage.blobs)

Crash safety (``kill -9`` at any instant leaves every operation either applied or not) is this module's
job, because it alone orders the byte work against the commit:

* The SQLite commit is the single point at which an operation takes effect. Byte work that must be
  visible *with* the commit is done *before* it, byte work that frees space is done *after* it:
  - create file / copy / overwrite: the new blob is written completely, then the row that names it is
    committed; the old blob (if any) is unlinked after the commit. A crash before the commit leaves an
    unreferenced blob, which the start-up sweep deletes.
  - delete file / directory / share: the rows go in one transaction, then the blobs are unlinked.
    A crash in between leaves orphans, swept at start. Purging an expired soft-deleted share is the
    same; soft-deleting and restoring a share only mark its rows (one transaction, no byte work).
  - rename: only rows change (blobs are keyed by id, never by path), so it is one transaction.
  - put range: the bytes are written in place, then etag / last-modified are committed. A crash in
    between leaves the old etag with (some of) the new bytes; this is the service's own contract for a
    PUT that never got its 201 (the range's content is undefined until the client retries it), and no
    metadata is ever half-updated.
  - resize: growing zero-fills the new region before the commit; shrinking commits first and truncates
    after, so a crash never loses bytes that are still inside the committed length.
  - pending copy: see ``storage.copies`` (progress committed step by step; failed at the next open).
* This emulator is a test tool, so it takes SQLite's faster ``synchronous=NORMAL`` and skips fsync on
  blobs too: a process crash loses nothing committed, only a power cut can lose the last commits.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from keyless.emulator.errors import StorageError
from keyless.emulator.storage.copies import CopyStore, refuse_if_copy_pending
from keyless.emulator.storage.leases import LeaseAction, check_lease, lease_transition
from keyless.emulator.storage.ranges import clip_ranges, ranges_cleared, ranges_written
from keyless.emulator.storage.records import (
    ContentSettings,
    Listing,
    Metadata,
    Node,
    SmbUpdate,
)
from keyless.emulator.storage.smb_rules import apply_smb, smb_time
from keyless.protocol import (
    E_DIRECTORY_NOT_EMPTY,
    E_INVALID_RANGE,
    E_RESOURCE_EXISTS,
    E_RESOURCE_NOT_FOUND,
)

if TYPE_CHECKING:
    import sqlite3

# A Put Range up to this size is written while holding the database's write transaction: a page-cache
# write of this size takes well under a millisecond, and it saves looking the file up a second time.
SMALL_RANGE_BYTES = 256 * 1024


class Store(CopyStore):
    """The handlers' one door: share-level work (``ShareStore``), Copy File (``CopyStore``), and the
    directories and files in a share."""

    # -- nodes --

    def get_node(self, account: str, share: str, path: tuple[str, ...], *,
                 is_dir: bool | None = None, snapshot: str = "") -> Node:
        """The node at ``path`` (in ``snapshot`` when given); ``is_dir`` demands a type (a mismatch is
        404 like the service)."""
        _, node = self._db.resolve(self._db.conn(), account, share, path, snapshot)
        if is_dir is not None and node.is_dir != is_dir:
            raise StorageError(404, E_RESOURCE_NOT_FOUND)
        return node

    def update_node(self, account: str, share_name: str, path: tuple[str, ...], *, is_dir: bool,
                    metadata: Metadata | None = None, smb: SmbUpdate | None = None,
                    content: ContentSettings | None = None, length: int | None = None,
                    lease_id: str | None = None) -> Node:
        """Set metadata / SMB properties / content properties / length (each None: unchanged)."""
        now = self.clock.now()
        etag = self.new_etag()
        with self._db.write() as conn:
            _, node = self._db.resolve(conn, account, share_name, path)
            if node.is_dir != is_dir:
                raise StorageError(404, E_RESOURCE_NOT_FOUND)
            if not is_dir:
                check_lease(node, lease_id, write=True)
                refuse_if_copy_pending(node)
            self._use_permission(conn, node.share_id, smb)
            new = replace(node, etag=etag, last_modified=now)
            if metadata is not None:
                new = replace(new, metadata=metadata)
            if content is not None:
                new = replace(new, content=content)
            if smb is not None:
                new = replace(new, smb=apply_smb(node.smb, smb, smb_time(now)))
            shrink_to: int | None = None
            if length is not None and length != node.content_length and node.blob is not None:
                if length > node.content_length:
                    self._blobs.grow(node.blob, node.content_length, length)  # before the commit
                else:
                    shrink_to = length  # after the commit
                    self._db.set_ranges(conn, node.blob, clip_ranges(self._db.ranges(conn, node.blob),
                                                                     0, length - 1))
                new = replace(new, content_length=length)
            self._db.save(conn, new)
        if shrink_to is not None and new.blob is not None:
            self._blobs.shrink(new.blob, shrink_to)
        return new

    # -- directories --

    def create_directory(self, account: str, share_name: str, path: tuple[str, ...], metadata: Metadata,
                         smb: SmbUpdate) -> Node:
        now = self.clock.now()
        etag = self.new_etag()
        with self._db.write() as conn:
            share = self._db.share_in(conn, account, share_name)
            if not path:
                raise StorageError(409, E_RESOURCE_EXISTS)
            parent_id = self._db.parent_id(conn, share, path)
            if self._db.child(conn, share.id, parent_id, path[-1]) is not None:
                raise StorageError(409, E_RESOURCE_EXISTS)
            self._use_permission(conn, share.id, smb)
            node = self._new_node(share.id, parent_id, path[-1], True, metadata, etag, now, smb,
                                  ContentSettings(), 0, None)
            self._db.insert(conn, node)
        return node

    def delete_directory(self, account: str, share_name: str, path: tuple[str, ...]) -> None:
        with self._db.write() as conn:
            _, node = self._db.resolve(conn, account, share_name, path)
            if not node.is_dir:
                raise StorageError(404, E_RESOURCE_NOT_FOUND)
            if not path:
                raise StorageError(400, "InvalidUri", "The root directory of a share cannot be deleted.")
            if self._db.has_children(conn, node.id):
                raise StorageError(409, E_DIRECTORY_NOT_EMPTY)
            self._db.delete_node(conn, node.id)

    def list_directory(self, account: str, share_name: str, path: tuple[str, ...], prefix: str,
                       marker: str | None, limit: int, snapshot: str = "") -> Listing:
        conn = self._db.conn()
        _, node = self._db.resolve(conn, account, share_name, path, snapshot)
        if not node.is_dir:
            raise StorageError(404, E_RESOURCE_NOT_FOUND)
        nodes, next_marker = self._db.list_children(conn, node.id, prefix, marker, limit)
        return Listing(
            directories=[n for n in nodes if n.is_dir],
            files=[n for n in nodes if not n.is_dir],
            next_marker=next_marker,
            directory_id=node.file_id,
        )

    # -- files --

    def create_file(self, account: str, share_name: str, path: tuple[str, ...], length: int,
                    content: ContentSettings, metadata: Metadata, smb: SmbUpdate,
                    body: bytes = b"", lease_id: str | None = None) -> Node:
        """Create or replace a file; the new (sparse, zero-filled) blob exists before the commit.

        A missing share or parent is found inside the transaction (the blob made for nothing is then
        unlinked): the usual case pays for one lookup of the share, not two."""
        blob = self._blobs.new(length)
        committed = False
        try:
            if body:
                self._blobs.write(blob, 0, body)
            now = self.clock.now()
            etag = self.new_etag()
            with self._db.write() as conn:
                share, parent_id, existing = self._file_slot(conn, account, share_name, path)
                self._use_permission(conn, share.id, smb)
                node = self._new_node(share.id, parent_id, path[-1], False, metadata, etag, now, smb,
                                      content, length, blob)
                if body:
                    self._db.set_ranges(conn, blob, ranges_written([], 0, len(body) - 1, length))
                node, old_blob = self._place_file(conn, node, existing, lease_id, keep_smb=False)
            committed = True
        finally:
            if not committed:
                self._blobs.unlink([blob])
        if old_blob:
            self._discard([old_blob])
        return node

    def write_range(self, account: str, share_name: str, path: tuple[str, ...], offset: int,
                    data: bytes | None, length: int, *, lease_id: str | None = None,
                    preserve_last_write_time: bool = False) -> Node:
        """Write ``data`` at ``offset`` (``None``: clear ``length`` bytes), then commit the new etag.

        The last write time becomes now, unless ``preserve_last_write_time`` keeps the stored one.
        A small range is written inside the transaction that finds the file, so the file is looked up
        once; a large one is written before it, so no other writer waits on the database for its bytes.
        Either way the bytes are in the blob before the COMMIT that gives the file its new etag.
        """
        if length <= SMALL_RANGE_BYTES:
            with self._db.write() as conn:
                _, node = self._db.resolve(conn, account, share_name, path)
                if node.is_dir:
                    raise StorageError(404, E_RESOURCE_NOT_FOUND)
                self._check_range_write(node, lease_id, offset + length)
                self._write_blob(node, offset, data, length)
                return self._commit_range(conn, node, offset, data, length, preserve_last_write_time)
        node = self.get_node(account, share_name, path, is_dir=False)
        self._check_range_write(node, lease_id, offset + length)
        self._write_blob(node, offset, data, length)
        with self._db.write() as conn:
            assert node.blob is not None  # _check_range_write refuses a file without one
            current = self._db.node_with_blob(conn, node.id, node.blob)
            if current is None:
                raise StorageError(404, E_RESOURCE_NOT_FOUND)
            refuse_if_copy_pending(current)
            return self._commit_range(conn, current, offset, data, length, preserve_last_write_time)

    @staticmethod
    def _check_range_write(node: Node, lease_id: str | None, end: int) -> None:
        check_lease(node, lease_id, write=True)
        refuse_if_copy_pending(node)
        if end > node.content_length or node.blob is None:
            raise StorageError(416, E_INVALID_RANGE)

    def _write_blob(self, node: Node, offset: int, data: bytes | None, length: int) -> None:
        assert node.blob is not None
        try:
            if data is None:
                self._blobs.clear(node.blob, offset, length)
            else:
                self._blobs.write(node.blob, offset, data)
        except FileNotFoundError:
            raise StorageError(404, E_RESOURCE_NOT_FOUND) from None  # deleted or replaced meanwhile

    def _commit_range(self, conn: sqlite3.Connection, current: Node, offset: int, data: bytes | None,
                      length: int, preserve_last_write_time: bool) -> Node:
        """Inside the write transaction: the new etag, times and written ranges of ``current``."""
        assert current.blob is not None
        now = self.clock.now()
        stamp = smb_time(now)
        written = current.smb.last_write_time if preserve_last_write_time else stamp
        smb = replace(current.smb, change_time=stamp, last_write_time=written)
        new = replace(current, etag=self.new_etag(), last_modified=now, smb=smb)
        self._db.save(conn, new)
        mark = ranges_cleared if data is None else ranges_written
        self._db.set_ranges(conn, current.blob, mark(self._db.ranges(conn, current.blob), offset,
                                                     offset + length - 1, current.content_length))
        return new

    def read_range(self, node: Node, offset: int, length: int) -> bytes:
        """Bytes ``[offset, offset+length)`` of ``node`` (clamped to its length; zero-padded)."""
        try:
            return self._blobs.read(node.blob, node.content_length, offset, length)
        except FileNotFoundError:
            raise StorageError(404, E_RESOURCE_NOT_FOUND) from None

    def data_ranges(self, node: Node, start: int, end: int) -> list[tuple[int, int]]:
        """The file's written ranges within ``[start, end]`` (storage.ranges), as List Ranges reports."""
        end = min(end, node.content_length - 1)
        return clip_ranges(self._db.ranges(self._db.conn(), node.blob), start, end)

    def diff_ranges(self, node: Node, previous: Node | None, start: int,
                    end: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(changed, cleared) ranges of ``node`` since ``previous``, its version in an earlier snapshot
        (None: the file did not exist then, so all its data is new)."""
        now = self.data_ranges(node, start, end)
        if previous is None:
            return now, []
        then = clip_ranges(self._db.ranges(self._db.conn(), previous.blob), start,
                           min(end, node.content_length - 1))
        return self._blobs.diff_ranges(node.blob, node.content_length, now, previous.blob,
                                       previous.content_length, then)

    def delete_file(self, account: str, share_name: str, path: tuple[str, ...],
                    lease_id: str | None = None) -> None:
        with self._db.write() as conn:
            _, node = self._db.resolve(conn, account, share_name, path)
            if node.is_dir:
                raise StorageError(404, E_RESOURCE_NOT_FOUND)
            check_lease(node, lease_id, write=True)
            self._db.delete_node(conn, node.id)
        if node.blob:
            self._discard([node.blob])

    def rename(self, account: str, share_name: str, source: tuple[str, ...], target: tuple[str, ...], *,
               is_dir: bool, replace_existing: bool, metadata: Metadata | None = None,
               smb: SmbUpdate | None = None, content_type: str | None = None,
               source_lease: str | None = None, target_lease: str | None = None) -> Node:
        """Move a file or directory within a share: rows only, one transaction."""
        now = self.clock.now()
        etag = self.new_etag()
        dropped: list[str] = []
        with self._db.write() as conn:
            share, node = self._db.resolve(conn, account, share_name, source)
            if not source or node.is_dir != is_dir:
                raise StorageError(404, E_RESOURCE_NOT_FOUND)
            if not target:
                raise StorageError(400, "InvalidInput", "The destination path is not valid.")
            if not is_dir:
                check_lease(node, source_lease, write=True)
            self._use_permission(conn, share.id, smb)
            # A rename within one directory (an upload's part file to its name) needs no second walk.
            parent_id = node.parent_id
            if target[:-1] != source[:-1] or parent_id is None:
                parent_id = self._db.parent_id(conn, share, target)
            if is_dir and self._db.is_inside(conn, parent_id, node.id):
                raise StorageError(400, "InvalidInput", "A directory cannot be moved into itself.")
            existing = self._db.child(conn, share.id, parent_id, target[-1])
            if existing is not None and existing.id != node.id:
                if not replace_existing:
                    raise StorageError(409, E_RESOURCE_EXISTS)
                if existing.is_dir:
                    # The service never replaces a directory by rename.
                    raise StorageError(409, E_RESOURCE_EXISTS if not is_dir else E_DIRECTORY_NOT_EMPTY)
                if is_dir:
                    raise StorageError(409, E_RESOURCE_EXISTS)
                check_lease(existing, target_lease, write=True)
                self._db.delete_node(conn, existing.id)
                if existing.blob:
                    dropped.append(existing.blob)
            changes: dict[str, object] = {
                "parent_id": parent_id, "name": target[-1], "etag": etag, "last_modified": now,
                "smb": apply_smb(node.smb, smb or SmbUpdate(), smb_time(now)),
            }
            if metadata is not None:
                changes["metadata"] = metadata
            if content_type is not None:
                changes["content"] = replace(node.content, content_type=content_type)
            new = replace(node, **changes)  # type: ignore[arg-type]
            self._db.move(conn, new)
            self._db.save(conn, new)
        self._discard(dropped)
        return new


    def lease(self, account: str, share_name: str, path: tuple[str, ...], action: LeaseAction,
              lease_id: str | None, proposed: str | None) -> Node:
        """File leases (always infinite): acquire, release, change, break."""
        with self._db.write() as conn:
            _, node = self._db.resolve(conn, account, share_name, path)
            if node.is_dir:
                raise StorageError(404, E_RESOURCE_NOT_FOUND)
            new_id = lease_transition(node, action, lease_id, proposed)
            self._db.set_lease(conn, node.id, new_id)
        return replace(node, lease_id=new_id)
