"""The store's records: what a share, a file or a directory is, as the handlers read and write them.

Plain frozen values with no behaviour, so the metadata database, the SMB and lease rules and the HTTP
handlers can all speak them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ContentSettings:
    """A file's content properties (the SDK's ``ContentSettings``); the handlers map them to headers."""

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
    permission: str | None = None  # an inline permission's SDDL (its key is permission_key); kept per share


@dataclass(frozen=True)
class ShareLease:
    """A share's lease as stored; ``storage.share_leases`` derives its state from these and the time."""

    lease_id: str | None = None
    duration: int = -1  # seconds, or -1 for infinite
    expires: float | None = None  # fixed leases
    broken_at: float | None = None  # set by a break: breaking until then, broken after


NO_LEASE = ShareLease()


@dataclass(frozen=True)
class AccessPolicy:
    """One signed identifier of a share's ACL; start and expiry as sent (ISO 8601), any may be empty."""

    id: str
    start: str = ""
    expiry: str = ""
    permission: str = ""


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
    snapshot: str = ""  # the x-ms-snapshot value of a share snapshot; "" for the live share
    lease: ShareLease = NO_LEASE
    acl: tuple[AccessPolicy, ...] = ()  # stored access policies (Set Share ACL), at most 5
    access_tier: str = "TransactionOptimized"
    tier_changed: float | None = None  # when access_tier was last set
    # Soft delete: the version List Shares include=deleted reports ("" while the share is live), when it
    # was deleted, and the retention days in force then (the share is purged that many days later).
    deleted_version: str = ""
    deleted_time: float | None = None
    retention_days: int | None = None


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
    content: ContentSettings
    smb: SmbProps
    blob: str | None
    lease_id: str | None
    copy_id: str | None
    copy_source: str | None
    copy_completion: float | None
    # The last Copy File onto this file: "pending", "success", "aborted" or "failed" (None with a copy_id:
    # a copy recorded before the status was stored, which always succeeded), "<copied>/<total>" bytes as
    # Get File Properties reports the progress, and why a copy failed or was aborted.
    copy_status: str | None = None
    copy_progress: str | None = None
    copy_status_description: str | None = None
    # On a share snapshot's copy: the FileIds of the live file or directory it was copied from and of
    # its parent, which the snapshot reports (Azure keeps FileIds across snapshots). None on live nodes.
    live_id: str | None = None
    live_parent_id: str | None = None

    @property
    def file_id(self) -> str:
        """The FileId the service reports (x-ms-file-id, <FileId>)."""
        return self.live_id or self.id

    @property
    def parent_file_id(self) -> str | None:
        """The parent directory's FileId (x-ms-file-parent-id); None for a share's root."""
        return self.live_parent_id or self.parent_id


@dataclass(frozen=True)
class Listing:
    directories: list[Node]
    files: list[Node]
    next_marker: str | None
    directory_id: str


def name_key(name: str) -> str:
    """Case-insensitive key, as NTFS compares names: per-character upper case (no 'ß' -> 'SS')."""
    if name.isascii():
        return name.upper()  # every ASCII letter upper-cases to one character: the same key, cheaper
    return "".join(u if len(u := ch.upper()) == 1 else ch for ch in name)
