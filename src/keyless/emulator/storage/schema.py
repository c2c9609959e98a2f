"""The metadata database's schema: the first release's tables, and every change since as a numbered
migration (``PRAGMA user_version`` counts those applied). ``metadata`` applies them when it opens a data
directory, so data written by an older emulator keeps opening.
"""

from __future__ import annotations

SCHEMA = """
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

# Schema changes after the first release, applied in order to any data directory whose
# ``PRAGMA user_version`` is lower (an older emulator's data keeps opening). Never edit a shipped step.
MIGRATIONS: tuple[str, ...] = (
    # 1: share snapshots. A snapshot is a share row with a non-empty ``snapshot`` (its x-ms-snapshot
    # value) and its own copy of the tree; UNIQUE (account, name) becomes UNIQUE (account, name,
    # snapshot), which SQLite can only do by rebuilding the table.
    """
    CREATE TABLE shares_v1 (
        id INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        name TEXT NOT NULL,
        snapshot TEXT NOT NULL DEFAULT '',
        quota INTEGER NOT NULL,
        metadata TEXT NOT NULL,
        etag TEXT NOT NULL,
        last_modified REAL NOT NULL,
        created REAL NOT NULL,
        root_id TEXT NOT NULL,
        UNIQUE (account, name, snapshot)
    );
    INSERT INTO shares_v1 (id, account, name, quota, metadata, etag, last_modified, created, root_id)
        SELECT id, account, name, quota, metadata, etag, last_modified, created, root_id FROM shares;
    DROP TABLE shares;
    ALTER TABLE shares_v1 RENAME TO shares;
    """,
    # 2: each blob's written ranges (storage.ranges), as JSON [[start, end], ...]. Data directories from
    # before have them filled in from the blobs' allocated extents when the store opens.
    """
    CREATE TABLE blob_ranges (blob TEXT PRIMARY KEY, ranges TEXT NOT NULL);
    """,
    # 3: share leases (records.ShareLease).
    """
    ALTER TABLE shares ADD COLUMN lease_id TEXT;
    ALTER TABLE shares ADD COLUMN lease_duration INTEGER NOT NULL DEFAULT -1;
    ALTER TABLE shares ADD COLUMN lease_expires REAL;
    ALTER TABLE shares ADD COLUMN lease_broken_at REAL;
    """,
    # 4: the share's permissions (Create Permission, and inline x-ms-file-permission), SDDL by key.
    """
    CREATE TABLE share_permissions (
        share_id INTEGER NOT NULL, key TEXT NOT NULL, sddl TEXT NOT NULL, PRIMARY KEY (share_id, key)
    );
    """,
    # 5: File service properties per account (one row per top-level element, its XML as sent) and each
    # share's stored access policies (Set Share ACL), as JSON [[id, start, expiry, permission], ...].
    """
    CREATE TABLE service_properties (
        account TEXT NOT NULL, element TEXT NOT NULL, xml TEXT NOT NULL, PRIMARY KEY (account, element)
    );
    ALTER TABLE shares ADD COLUMN acl TEXT NOT NULL DEFAULT '[]';
    """,
    # 6: the share's access tier and when it last changed.
    """
    ALTER TABLE shares ADD COLUMN access_tier TEXT NOT NULL DEFAULT 'TransactionOptimized';
    ALTER TABLE shares ADD COLUMN tier_changed REAL;
    """,
    # 7: asynchronous Copy File (records.Node.copy_status): a copy's status, progress and failure text.
    # Rows from before keep NULL status; their copies were synchronous and always succeeded.
    """
    ALTER TABLE nodes ADD COLUMN copy_status TEXT;
    ALTER TABLE nodes ADD COLUMN copy_progress TEXT;
    ALTER TABLE nodes ADD COLUMN copy_status_description TEXT;
    """,
    # 8: share soft delete. A soft-deleted share (and its snapshots) keeps its rows, marked with the
    # version List Shares include=deleted reports (``deleted_version``; '' while live), when it was
    # deleted and the retention days then in force. Several deleted versions of one name and a live
    # share of that name coexist, so UNIQUE (account, name, snapshot) gains deleted_version: a rebuild.
    """
    CREATE TABLE shares_v8 (
        id INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        name TEXT NOT NULL,
        snapshot TEXT NOT NULL DEFAULT '',
        quota INTEGER NOT NULL,
        metadata TEXT NOT NULL,
        etag TEXT NOT NULL,
        last_modified REAL NOT NULL,
        created REAL NOT NULL,
        root_id TEXT NOT NULL,
        lease_id TEXT,
        lease_duration INTEGER NOT NULL DEFAULT -1,
        lease_expires REAL,
        lease_broken_at REAL,
        acl TEXT NOT NULL DEFAULT '[]',
        access_tier TEXT NOT NULL DEFAULT 'TransactionOptimized',
        tier_changed REAL,
        deleted_version TEXT NOT NULL DEFAULT '',
        deleted_time REAL,
        retention_days INTEGER,
        UNIQUE (account, name, snapshot, deleted_version)
    );
    INSERT INTO shares_v8 (id, account, name, snapshot, quota, metadata, etag, last_modified, created,
                           root_id, lease_id, lease_duration, lease_expires, lease_broken_at, acl,
                           access_tier, tier_changed)
        SELECT id, account, name, snapshot, quota, metadata, etag, last_modified, created, root_id,
               lease_id, lease_duration, lease_expires, lease_broken_at, acl, access_tier, tier_changed
        FROM shares;
    DROP TABLE shares;
    ALTER TABLE shares_v8 RENAME TO shares;
    CREATE INDEX shares_deleted ON shares (deleted_time) WHERE deleted_time IS NOT NULL;
    """,
    # 9: a share snapshot's files and directories report the live FileIds they were copied from (Azure
    # keeps x-ms-file-id across snapshots); the snapshot's own rows still need ids of their own, as ids
    # are the node table's key. NULL on live nodes: their id is their FileId.
    """
    ALTER TABLE nodes ADD COLUMN file_id TEXT;
    ALTER TABLE nodes ADD COLUMN parent_file_id TEXT;
    """,
)
RANGES_SINCE = 2  # the schema version that brought blob_ranges
