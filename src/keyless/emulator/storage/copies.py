"""Copy File in the store: a copy that finishes before the reply, and the steps of a pending one (its
destination committed first, its bytes moved step by step, its end committed as success, failed or
aborted). ``keyless.emulator.copy_engine`` drives the steps; ``store.Store`` adds the rest of a file's life.

A pending copy's crash order: the destination row (status pending, a sparse blob) is committed first; each
step writes its bytes and records the progress in one transaction; success is committed after the last
byte. A copy left pending by a process that stopped is failed when the store next opens, never success.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from keyless.emulator.errors import StorageError
from keyless.emulator.storage.leases import check_lease
from keyless.emulator.storage.ranges import clip_ranges
from keyless.emulator.storage.records import ContentSettings, Metadata, Node, ShareRecord, SmbUpdate
from keyless.emulator.storage.share_store import ShareStore
from keyless.emulator.storage.smb_rules import new_smb_props
from keyless.protocol import E_RESOURCE_EXISTS, E_RESOURCE_NOT_FOUND

if TYPE_CHECKING:
    from keyless.emulator.clock import Clock

# Copy File states (the copy status REST "Get File Properties" reports) and Azure's codes for a destination
# whose copy is pending (StorageErrorCode in azure-storage-file-share: PENDING_COPY_OPERATION,
# NO_PENDING_COPY_OPERATION, COPY_ID_MISMATCH).
COPY_PENDING, COPY_SUCCESS, COPY_ABORTED, COPY_FAILED = "pending", "success", "aborted", "failed"
E_PENDING_COPY = "PendingCopyOperation"
E_NO_PENDING_COPY = "NoPendingCopyOperation"
E_COPY_ID_MISMATCH = "CopyIdMismatch"
RESTART_FAILURE = "The copy was interrupted: the emulator stopped while it was pending."


def copy_status(node: Node) -> str | None:
    """The file's copy status; a copy recorded before statuses were stored was synchronous: success."""
    if node.copy_id is None:
        return None
    return node.copy_status or COPY_SUCCESS


def refuse_if_copy_pending(node: Node) -> None:
    """A destination whose copy is still pending cannot be written (409 PendingCopyOperation): its bytes
    belong to the copy until it ends or is aborted."""
    if copy_status(node) == COPY_PENDING:
        raise StorageError(409, E_PENDING_COPY, "There is currently a pending copy operation.")


class CopyStore(ShareStore):
    """Share-level work (``ShareStore``) plus Copy File; ``Store`` builds on it."""

    def __init__(self, data_dir: Path, clock: Clock) -> None:
        super().__init__(data_dir, clock)
        # Nothing copies in the background of a process that just started: a copy left pending by the
        # previous one would never finish, so it is failed (its bytes are incomplete), never left looking
        # pending forever nor made to look complete.
        with self._db.write() as conn:
            self._db.fail_pending_copies(conn, self.clock.now(), RESTART_FAILURE)

    def _new_node(self, share_id: int, parent_id: str, name: str, is_dir: bool, metadata: Metadata,
                  etag: str, now: float, smb: SmbUpdate, content: ContentSettings, length: int,
                  blob: str | None) -> Node:
        """A new directory or file row (a copy's destination, and ``Store``'s creates)."""
        return Node(
            id=self._db.new_node_id(), share_id=share_id, parent_id=parent_id, name=name, is_dir=is_dir,
            metadata=metadata, etag=etag, last_modified=now, content_length=length, content=content,
            smb=new_smb_props(smb, now, is_dir=is_dir),
            blob=blob, lease_id=None, copy_id=None, copy_source=None, copy_completion=None,
        )

    def _file_slot(self, conn: sqlite3.Connection, account: str, share_name: str,
                   path: tuple[str, ...]) -> tuple[ShareRecord, str, Node | None]:
        """Where a file created at ``path`` goes: its share, its parent's id and what is there now."""
        share = self._db.share_in(conn, account, share_name)
        if not path:
            raise StorageError(409, E_RESOURCE_EXISTS)
        parent_id = self._db.parent_id(conn, share, path)
        return share, parent_id, self._db.child(conn, share.id, parent_id, path[-1])

    def _place_file(self, conn: sqlite3.Connection, node: Node, existing: Node | None,
                    lease_id: str | None, *, keep_smb: bool) -> tuple[Node, str | None]:
        """Insert ``node``, or replace the file ``existing`` in place: same FileId and name, new bytes,
        the lease carried over (``keep_smb``: its SMB properties too, as a copy onto it keeps them).
        Returns the stored node and the blob it replaced, to discard after the commit."""
        if existing is None:
            self._db.insert(conn, node)
            return node, None
        if existing.is_dir:
            raise StorageError(409, E_RESOURCE_EXISTS)
        check_lease(existing, lease_id, write=True)
        refuse_if_copy_pending(existing)
        node = replace(node, id=existing.id, name=existing.name, lease_id=existing.lease_id,
                       smb=existing.smb if keep_smb else node.smb)
        self._db.save(conn, node)
        return node, existing.blob

    # -- copies --

    def copy_file(self, source: Node, account: str, share_name: str, target: tuple[str, ...], *,
                  copy_id: str, copy_source: str, metadata: Metadata | None,
                  lease_id: str | None = None) -> Node:
        """Synchronous same-account copy: copy the bytes into a new blob, then commit the target row."""
        length = source.content_length
        blob = self._blobs.new(length)
        try:
            try:
                self._blobs.copy(source.blob, length, blob)
            except FileNotFoundError:
                raise StorageError(404, E_RESOURCE_NOT_FOUND) from None
            node = self._commit_copy(
                account, share_name, target, blob, length, source.content,
                source.metadata if metadata is None else metadata, copy_id, copy_source, lease_id,
                source.blob,
            )
        except BaseException:
            self._blobs.unlink([blob])
            raise
        return node

    def _commit_copy(self, account: str, share_name: str, path: tuple[str, ...], blob: str,
                     length: int, content: ContentSettings, metadata: Metadata, copy_id: str,
                     copy_source: str, lease_id: str | None, source_blob: str | None,
                     pending: bool = False) -> Node:
        now = self.clock.now()
        etag = self.new_etag()
        with self._db.write() as conn:
            share, parent_id, existing = self._file_slot(conn, account, share_name, path)
            node = self._new_node(share.id, parent_id, path[-1], False, metadata, etag, now, SmbUpdate(),
                                  content, length, blob)
            node = replace(node, copy_id=copy_id, copy_source=copy_source, copy_completion=now,
                           copy_status=COPY_PENDING if pending else COPY_SUCCESS,
                           copy_progress=f"{0 if pending else length}/{length}")
            if pending:
                node = replace(node, copy_completion=None)
            else:
                self._db.set_ranges(conn, blob, clip_ranges(self._db.ranges(conn, source_blob), 0,
                                                            length - 1))
            node, old_blob = self._place_file(conn, node, existing, lease_id, keep_smb=True)
        if old_blob:
            self._discard([old_blob])
        return node

    # -- pending copies (driven by keyless.emulator.copy_engine, one step at a time) --

    def start_copy(self, source: Node, account: str, share_name: str, target: tuple[str, ...], *,
                   copy_id: str, copy_source: str, metadata: Metadata | None,
                   lease_id: str | None = None) -> Node:
        """Commit the destination of a pending copy: the source's length, properties and metadata (or
        ``metadata``), zero bytes so far (a sparse blob), status pending. ``copy_step`` fills it."""
        length = source.content_length
        blob = self._blobs.new(length)
        try:
            return self._commit_copy(
                account, share_name, target, blob, length, source.content,
                source.metadata if metadata is None else metadata, copy_id, copy_source, lease_id,
                source.blob, pending=True,
            )
        except BaseException:
            self._blobs.unlink([blob])
            raise

    def copy_step(self, node_id: str, copy_id: str, source: Node, offset: int, length: int) -> bool:
        """Copy bytes ``[offset, offset+length)`` of ``source`` into the pending copy ``copy_id`` and
        record the progress; False when that copy is no longer pending (aborted, replaced, deleted).

        The bytes are written inside the transaction, so an abort (which also takes the write lock) sees
        either the whole step or none of it and never races a late write past its truncation.
        """
        with self._db.write() as conn:
            node = self._pending(conn, node_id, copy_id)
            if node is None or node.blob is None:
                return False
            # The copy is of the source as it was when the copy started: a source written, replaced or
            # deleted since would give a mix of two versions, so the copy fails instead.
            current = self._db.node_with_blob(conn, source.id, source.blob) if source.blob else None
            if current is None or current.etag != source.etag:
                raise StorageError(412, "CannotVerifyCopySource", "The copy source was modified or "
                                   "deleted while the copy was pending.")
            try:
                data = self._blobs.read(source.blob, source.content_length, offset, length)
            except FileNotFoundError:
                raise StorageError(404, "CannotVerifyCopySource", "The copy source was deleted or "
                                   "replaced while the copy was pending.") from None
            if data.count(0) != len(data):
                self._blobs.write(node.blob, offset, data)
            self._db.save(conn, replace(node, copy_progress=f"{offset + len(data)}/{node.content_length}"))
        return True

    def finish_copy(self, node_id: str, copy_id: str, source: Node) -> Node | None:
        """The last step of a pending copy: status success, the source's written ranges, a new ETag."""
        now = self.clock.now()
        etag = self.new_etag()
        with self._db.write() as conn:
            node = self._pending(conn, node_id, copy_id)
            if node is None or node.blob is None:
                return None
            length = node.content_length
            self._db.set_ranges(conn, node.blob, clip_ranges(self._db.ranges(conn, source.blob), 0,
                                                             length - 1))
            done = replace(node, etag=etag, last_modified=now, copy_status=COPY_SUCCESS,
                           copy_progress=f"{length}/{length}", copy_completion=now)
            self._db.save(conn, done)
        return done

    def fail_copy(self, node_id: str, copy_id: str, description: str) -> None:
        """End a pending copy as failed (its content is incomplete; the description says why)."""
        now = self.clock.now()
        with self._db.write() as conn:
            node = self._pending(conn, node_id, copy_id)
            if node is not None:
                self._db.save(conn, replace(node, copy_status=COPY_FAILED, copy_completion=now,
                                            copy_status_description=description))

    def abort_copy(self, account: str, share_name: str, path: tuple[str, ...], copy_id: str,
                   lease_id: str | None) -> Node:
        """Abort Copy File: the pending copy ``copy_id`` ends as aborted, leaving "a destination file
        with zero length and full metadata" (REST "Abort Copy File")."""
        now = self.clock.now()
        with self._db.write() as conn:
            _, node = self._db.resolve(conn, account, share_name, path)
            if node.is_dir:
                raise StorageError(404, E_RESOURCE_NOT_FOUND)
            if copy_status(node) != COPY_PENDING:
                raise StorageError(409, E_NO_PENDING_COPY, "There is currently no pending copy operation.")
            if node.copy_id != copy_id:
                raise StorageError(409, E_COPY_ID_MISMATCH, "The specified copy ID did not match the copy "
                                   "ID for the pending copy operation.")
            check_lease(node, lease_id, write=True)
            copied = (node.copy_progress or "0/0").split("/", 1)[0]
            aborted = replace(node, content_length=0, copy_status=COPY_ABORTED, copy_completion=now,
                              copy_progress=f"{copied}/{node.content_length}",
                              copy_status_description="The copy was aborted (Abort Copy File).")
            if node.blob is not None:
                self._db.set_ranges(conn, node.blob, [])
            self._db.save(conn, aborted)
        if node.blob is not None:
            self._blobs.shrink(node.blob, 0)  # after the commit, as every shrink
        return aborted

    def _pending(self, conn: sqlite3.Connection, node_id: str, copy_id: str) -> Node | None:
        """The node ``node_id`` if its copy ``copy_id`` is still the pending one, else None."""
        try:
            node = self._db.node_by_id(conn, node_id)
        except StorageError:
            return None
        if node.copy_id != copy_id or copy_status(node) != COPY_PENDING:
            return None
        return node

    # -- leases --
