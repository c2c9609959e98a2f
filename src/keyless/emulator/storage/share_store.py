"""The share-level half of the store: the store's own set-up (etags, start-up sweeps, back-fills) and
shares, their snapshots and their leases. :class:`~keyless.emulator.storage.store.Store` extends it
with directories and files; the crash-safety rules in that module's docstring apply here too.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from keyless.emulator.errors import StorageError
from keyless.emulator.storage.blobs import BlobStore
from keyless.emulator.storage.leases import LeaseAction
from keyless.emulator.storage.metadata import MetadataDb
from keyless.emulator.storage.records import (
    AccessPolicy,
    ContentSettings,
    Metadata,
    Node,
    ShareLease,
    ShareRecord,
    SmbUpdate,
)
from keyless.emulator.storage.schema import RANGES_SINCE
from keyless.emulator.storage.share_leases import check_share_lease, lease_active, share_lease_transition
from keyless.emulator.storage.smb_rules import (
    DEFAULT_PERMISSION,
    DEFAULT_PERMISSION_KEY,
    new_smb_props,
    permission_key_for,
    smb_time,
)
from keyless.protocol import E_SHARE_EXISTS, E_SHARE_NOT_FOUND

if TYPE_CHECKING:
    from keyless.emulator.clock import Clock
    from keyless.emulator.config import EmulatorConfig

_DOTNET_EPOCH_TICKS = 621355968000000000  # .NET ticks at 1970-01-01, the base of Azure's etags
_FILETIME_EPOCH_TICKS = 116444736000000000  # Windows FILETIME (100 ns since 1601) at 1970-01-01


class ShareStore:
    def __init__(self, data_dir: Path, clock: Clock) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self._blobs = BlobStore(data_dir / "blobs")
        self._db = MetadataDb(data_dir / "meta.sqlite3")
        self._etag_lock = threading.Lock()
        self._last_ticks = 0
        self.sweep_orphans()
        if self._db.opened_at_version < RANGES_SINCE:
            self._backfill_ranges()
        self.purge_expired()

    def close(self) -> None:
        self._db.close()

    def new_etag(self) -> str:
        """``"0x8DC..."``: .NET ticks of now, strictly increasing so two writes never share an etag."""
        ticks = int(self.clock.now() * 10_000_000) + _DOTNET_EPOCH_TICKS
        with self._etag_lock:
            ticks = max(ticks, self._last_ticks + 1)
            self._last_ticks = ticks
        return f'"0x{ticks:X}"'

    def sweep_orphans(self) -> int:
        """Delete blobs no row names (left by a crash between byte work and commit). Start-up only."""
        removed = self._blobs.sweep(self._db.referenced_blobs())
        self._db.sweep_ranges()
        return removed

    def _backfill_ranges(self) -> None:
        """A data directory from before written ranges were kept: take each blob's allocated extents."""
        with self._db.write() as conn:
            for blob, length in self._db.file_blobs():
                self._db.set_ranges(conn, blob, self._blobs.data_ranges(blob, length, 0, length - 1))

    def _discard(self, blobs: list[str]) -> None:
        """After a commit that let go of ``blobs``: forget their ranges, then delete their bytes."""
        if not blobs:
            return
        with self._db.write() as conn:
            self._db.drop_ranges(conn, blobs)
        self._blobs.unlink(blobs)

    # -- shares --

    def ensure_shares(self, config: EmulatorConfig) -> None:
        """Create the configured shares that do not exist yet (idempotent, safe on every start)."""
        for account in config.accounts:
            for share in account.shares:
                with contextlib.suppress(StorageError):
                    self.create_share(account.name, share.name, share.quota_gib, ())

    def create_share(self, account: str, name: str, quota: int, metadata: Metadata,
                     access_tier: str | None = None) -> ShareRecord:
        now = self.clock.now()
        etag = self.new_etag()
        root = Node(
            id=self._db.new_node_id(), share_id=0, parent_id=None, name="", is_dir=True, metadata=(),
            etag=etag, last_modified=now, content_length=0, content=ContentSettings(),
            smb=new_smb_props(SmbUpdate(), now, is_dir=True), blob=None, lease_id=None, copy_id=None,
            copy_source=None, copy_completion=None,
        )
        share = ShareRecord(0, account, name, quota, metadata, etag, now, now, root.id)
        if access_tier is not None:
            share = replace(share, access_tier=access_tier, tier_changed=now)
        self.purge_expired()
        with self._db.write() as conn:
            if self._db.share_exists(conn, account, name):
                raise StorageError(409, E_SHARE_EXISTS)
            share_id = self._db.insert_share(conn, share, root)
        return replace(share, id=share_id)

    def get_share(self, account: str, name: str, snapshot: str = "", *,
                  lease_id: str | None = None) -> ShareRecord:
        """The share (or one snapshot); a lease id given must be its active lease's (412 otherwise)."""
        share = self._db.get_share(account, name, snapshot)
        check_share_lease(share.lease, lease_id, self.clock.now(), required=False)
        return share

    def list_shares(self, account: str, prefix: str, marker: tuple[str, str] | None, limit: int, *,
                    snapshots: bool = False, deleted: bool = False,
                    ) -> tuple[list[ShareRecord], tuple[str, str] | None]:
        self.purge_expired()
        return self._db.list_shares(account, prefix, marker, limit, snapshots=snapshots, deleted=deleted)

    def update_share(self, account: str, name: str, *, quota: int | None = None,
                     metadata: Metadata | None = None, acl: tuple[AccessPolicy, ...] | None = None,
                     access_tier: str | None = None, lease_id: str | None = None) -> ShareRecord:
        now = self.clock.now()
        etag = self.new_etag()
        with self._db.write() as conn:
            share = self._db.share_in(conn, account, name)
            check_share_lease(share.lease, lease_id, now, required=False)
            new = replace(
                share,
                quota=share.quota if quota is None else quota,
                metadata=share.metadata if metadata is None else metadata,
                acl=share.acl if acl is None else acl,
                access_tier=share.access_tier if access_tier is None else access_tier,
                tier_changed=share.tier_changed if access_tier is None else now,
                etag=etag,
                last_modified=now,
            )
            self._db.save_share(conn, new)
        return new

    def create_snapshot(self, account: str, name: str, metadata: Metadata | None) -> ShareRecord:
        """A read-only, point-in-time copy of the share: its rows and a copy of every blob.

        The copy runs inside the write transaction, so no row changes meanwhile; the copied blobs exist
        before the commit and are unlinked if it fails (the same order as create file). Snapshot nodes
        get ids of their own (ids are the node table's key) and report the live FileIds they were copied
        from, as the service does (a snapshot's x-ms-file-id is the live file's).
        """
        now = self.clock.now()
        etag = self.new_etag()
        copies: list[str] = []
        try:
            with self._db.write() as conn:
                share = self._db.share_in(conn, account, name)
                stamp = smb_time(now)  # x-ms-snapshot has the same 100 ns form
                while self._db.share_exists(conn, account, name, stamp):
                    now += 1e-7  # one tick later: two snapshots in one tick still get distinct names
                    stamp = smb_time(now)  # x-ms-snapshot has the same 100 ns form
                nodes = self._db.share_nodes(conn, share.id)
                ids = {n.id: self._db.new_node_id() for n in nodes}
                root = replace(nodes[0], id=ids[nodes[0].id], live_id=nodes[0].file_id)
                snap = replace(share, id=0, snapshot=stamp, etag=etag, last_modified=now, root_id=root.id,
                               metadata=share.metadata if metadata is None else metadata, lease=ShareLease())
                snap_id = self._db.insert_share(conn, snap, root)
                self._db.copy_permissions(conn, share.id, snap_id)
                for node in nodes[1:]:
                    blob = None
                    if node.blob is not None:
                        blob = self._blobs.new(node.content_length)
                        copies.append(blob)
                        self._blobs.copy(node.blob, node.content_length, blob)
                        self._db.set_ranges(conn, blob, self._db.ranges(conn, node.blob))
                    self._db.insert(conn, replace(node, id=ids[node.id], share_id=snap_id,
                                                  parent_id=ids[node.parent_id or ""], blob=blob,
                                                  lease_id=None, live_id=node.file_id,
                                                  live_parent_id=node.parent_file_id))
        except BaseException:
            self._blobs.unlink(copies)
            raise
        return replace(snap, id=snap_id)

    def delete_share(self, account: str, name: str, *, snapshot: str = "", with_snapshots: bool = False,
                     with_leased: bool = False, lease_id: str | None = None,
                     retention_days: int | None = None) -> None:
        """Delete the share (and, when asked, its snapshots) or one snapshot, and everything in it.

        A share with snapshots is kept unless ``with_snapshots`` (409 ShareHasSnapshots, as the service
        answers a Delete Share without x-ms-delete-snapshots), and snapshots under an active lease unless
        ``with_leased`` too (409 DeleteShareWhenSnapshotLeased; x-ms-delete-snapshots: include-leased).
        A leased share (or snapshot) needs its lease id.

        With ``retention_days`` (the account's share delete retention policy) a share is soft-deleted
        instead: it and the snapshots deleted with it keep their rows and bytes under one deleted
        version until Restore Share or :meth:`purge_expired`. One snapshot deleted on its own is gone at
        once: soft delete protects shares ("Enable soft delete on Azure file shares"), not snapshots.
        """
        now = self.clock.now()
        self.purge_expired()
        blobs: list[str] = []
        with self._db.write() as conn:
            share = self._db.share_in(conn, account, name, snapshot)
            check_share_lease(share.lease, lease_id, now, required=True)
            doomed = [share]
            if not snapshot:
                snapshots = self._db.snapshots_of(conn, account, name)
                if snapshots and not with_snapshots:
                    raise StorageError(409, "ShareHasSnapshots",
                                       "The share has snapshots and the operation requires no snapshots.")
                if not with_leased and any(lease_active(s.lease, now) for s in snapshots):
                    raise StorageError(409, "DeleteShareWhenSnapshotLeased", "Unable to delete share "
                                       "because one or more share snapshots have active leases.")
                doomed += snapshots
            if retention_days is not None and not snapshot:
                version = self._deleted_version(conn, share)
                for record in doomed:
                    self._db.mark_deleted(conn, record.id, version, now, retention_days)
                return
            for record in doomed:
                blobs += self._db.delete_share(conn, record.id)
        self._discard(blobs)

    def _deleted_version(self, conn: sqlite3.Connection, share: ShareRecord) -> str:
        """The Version List Shares reports for a soft-deleted share, formed as the service's: 16 hex
        digits of a Windows FILETIME, the share's creation time (``01D627C59E076480`` for a share created
        at 18:54:36.73 in azure-sdk-for-python's recording
        tests/recordings/test_share.test_restore_to_existing_share.yaml). One tick later while that
        collides with another deleted version of the name: two versions must never merge."""
        taken = self._db.deleted_versions(conn, share.account, share.name)
        ticks = int(share.created * 10_000_000) + _FILETIME_EPOCH_TICKS
        while f"{ticks:016X}" in taken:
            ticks += 1
        return f"{ticks:016X}"

    def restore_share(self, account: str, name: str, version: str) -> ShareRecord:
        """Restore Share: the soft-deleted ``version`` of ``name`` with its data, metadata, properties and
        snapshots. 409 ShareAlreadyExists while a live share has the name (Restore Share: "If a share
        already exists with this name, the operation fails"); 404 ShareNotFound for a version that is not
        (or no longer, past its retention) soft-deleted, as azure-sdk-for-net's ServiceClientTests
        UndeleteShareAsync_Error expects for an unknown version. Azure needs some seconds after a delete
        before the share can be restored (that test's sibling waits 30 s); the emulator restores at once."""
        self.purge_expired()
        with self._db.write() as conn:
            if self._db.share_exists(conn, account, name):
                raise StorageError(409, E_SHARE_EXISTS)
            rows = self._db.deleted_share(conn, account, name, version)
            if not rows:
                raise StorageError(404, E_SHARE_NOT_FOUND)
            for record in rows:
                self._db.mark_restored(conn, record.id)
        return replace(rows[0], deleted_version="", deleted_time=None, retention_days=None)

    def purge_expired(self) -> int:
        """Delete for good the soft-deleted shares whose retention days have passed (by the emulator's
        clock), freeing their bytes; returns how many share and snapshot rows went. Runs at start-up and
        before the share operations that list, create, delete or restore shares, so an expired share is
        never seen and its name's versions stay exact without a background timer."""
        if not self._db.expired_shares(self._db.conn(), self.clock.now()):
            return 0  # the common case answers from a read, without taking the write lock
        blobs: list[str] = []
        with self._db.write() as conn:
            expired = self._db.expired_shares(conn, self.clock.now())
            for share_id in expired:
                blobs += self._db.delete_share(conn, share_id)
        self._discard(blobs)
        return len(expired)

    def share_usage(self, account: str, name: str, snapshot: str = "") -> int:
        return self._db.share_usage(self.get_share(account, name, snapshot).id)

    # -- File service properties (per account: the top-level elements last set, as XML) --

    def service_properties(self, account: str) -> dict[str, str]:
        return self._db.service_properties(account)

    def set_service_properties(self, account: str, elements: dict[str, str]) -> None:
        """Replace the given top-level elements; the others keep theirs (Set File Service Properties)."""
        self._db.set_service_properties(account, elements)

    # -- permissions (Create / Get Permission; keys on files and directories) --

    def create_permission(self, account: str, name: str, sddl: str) -> str:
        """Keep ``sddl`` on the share; returns its key (the same SDDL always gets the same key)."""
        key = permission_key_for(sddl)
        with self._db.write() as conn:
            share = self._db.share_in(conn, account, name)
            self._db.save_permission(conn, share.id, key, sddl)
        return key

    def get_permission(self, account: str, name: str, key: str) -> str:
        share = self._db.get_share(account, name)
        if key == DEFAULT_PERMISSION_KEY:
            return DEFAULT_PERMISSION
        sddl = self._db.permission(self._db.conn(), share.id, key)
        if sddl is None:
            raise _unknown_permission_key()
        return sddl

    def _use_permission(self, conn: sqlite3.Connection, share_id: int, smb: SmbUpdate | None) -> None:
        """An inline permission is kept on the share; a permission key must name one kept there."""
        if smb is None or smb.permission_key is None:
            return
        if smb.permission is not None:
            self._db.save_permission(conn, share_id, smb.permission_key, smb.permission)
        elif smb.permission_key != DEFAULT_PERMISSION_KEY \
                and self._db.permission(conn, share_id, smb.permission_key) is None:
            raise _unknown_permission_key()

    def lease_share(self, account: str, name: str, snapshot: str, action: LeaseAction, *,
                    lease_id: str | None, proposed: str | None, duration: int,
                    break_period: int | None) -> tuple[ShareRecord, int | None]:
        """Lease Share on the share or one snapshot; returns it and, for a break, the lease time."""
        now = self.clock.now()
        with self._db.write() as conn:
            share = self._db.share_in(conn, account, name, snapshot)
            lease, lease_time = share_lease_transition(share.lease, action, now, lease_id=lease_id,
                                                       proposed=proposed, duration=duration,
                                                       break_period=break_period)
            self._db.set_share_lease(conn, share.id, lease)
        return replace(share, lease=lease), lease_time


def _unknown_permission_key() -> StorageError:
    return StorageError(400, "FileInvalidPermissionKey",
                        "The specified file permission key doesn't exist in the share.")
