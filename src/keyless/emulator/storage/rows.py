"""How a stored record maps to a SQLite row and back: the column lists, in the order the metadata
queries select and insert them, and the conversions. Kept apart from the queries so a new column is one
edit here plus a schema step."""

from __future__ import annotations

import functools
import json
from typing import Any

from keyless.emulator.storage.records import (
    AccessPolicy,
    ContentSettings,
    Metadata,
    Node,
    ShareLease,
    ShareRecord,
    SmbProps,
)

NODE_COLUMNS = (
    "id, share_id, parent_id, name, is_dir, metadata, etag, last_modified, content_length, content_type, "
    "content_encoding, content_language, content_disposition, cache_control, content_md5, attributes, "
    "creation_time, last_write_time, change_time, permission_key, blob, lease_id, copy_id, copy_source, "
    "copy_completion, copy_status, copy_progress, copy_status_description, file_id, parent_file_id"
)
SHARE_COLUMNS = ("id, account, name, quota, metadata, etag, last_modified, created, root_id, snapshot, "
                  "lease_id, lease_duration, lease_expires, lease_broken_at, acl, access_tier, tier_changed, "
                  "deleted_version, deleted_time, retention_days")


def node_values(node: Node) -> tuple[object, ...]:
    """``node``'s values in ``NODE_COLUMNS`` order."""
    c = node.content
    return (
        node.id, node.share_id, node.parent_id, node.name, int(node.is_dir),
        dumps_metadata(node.metadata), node.etag, node.last_modified, node.content_length,
        c.content_type, c.content_encoding, c.content_language, c.content_disposition,
        c.cache_control, c.content_md5, node.smb.attributes, node.smb.creation_time,
        node.smb.last_write_time, node.smb.change_time, node.smb.permission_key, node.blob,
        node.lease_id, node.copy_id, node.copy_source, node.copy_completion, node.copy_status,
        node.copy_progress, node.copy_status_description, node.live_id, node.live_parent_id,
    )


def dumps_metadata(metadata: Metadata) -> str:
    if not metadata:
        return "[]"
    return json.dumps([list(pair) for pair in metadata], ensure_ascii=False)


def loads_metadata(text: str) -> Metadata:
    if text == "[]":
        return ()  # most rows: no metadata, no JSON parse
    return tuple((str(k), str(v)) for k, v in json.loads(text))


# Every Files request reads its share's row, which rarely changes: the same row gives back the same
# (frozen) record instead of decoding its metadata, lease and ACL again. Keyed by the whole row, so any
# change to the share is a different key and can never be answered with a stale record.
@functools.lru_cache(maxsize=1024, typed=True)
def share_from_row(row: tuple[object, ...]) -> ShareRecord:
    return ShareRecord(
        id=int(row[0]),  # type: ignore[call-overload]
        account=str(row[1]),
        name=str(row[2]),
        quota=int(row[3]),  # type: ignore[call-overload]
        metadata=loads_metadata(str(row[4])),
        etag=str(row[5]),
        last_modified=float(row[6]),  # type: ignore[arg-type]
        created=float(row[7]),  # type: ignore[arg-type]
        root_id=str(row[8]),
        snapshot=str(row[9]),
        lease=ShareLease(
            lease_id=opt(row[10]),
            duration=int(row[11]),  # type: ignore[call-overload]
            expires=None if row[12] is None else float(row[12]),  # type: ignore[arg-type]
            broken_at=None if row[13] is None else float(row[13]),  # type: ignore[arg-type]
        ),
        acl=() if row[14] == "[]" else tuple(AccessPolicy(*map(str, p)) for p in json.loads(str(row[14]))),
        access_tier=str(row[15]),
        tier_changed=None if row[16] is None else float(row[16]),  # type: ignore[arg-type]
        deleted_version=str(row[17]),
        deleted_time=None if row[18] is None else float(row[18]),  # type: ignore[arg-type]
        retention_days=None if row[19] is None else int(row[19]),  # type: ignore[call-overload]
    )


def node_from_row(row: tuple[Any, ...]) -> Node:
    # Every file request turns several rows into nodes: SQLite already gives TEXT columns as str (or
    # None) and REAL as float, so the values go in as they come, without a conversion call each.
    md5 = row[14]
    return Node(
        id=str(row[0]), share_id=int(row[1]), parent_id=row[2], name=row[3], is_dir=bool(row[4]),
        metadata=() if row[5] == "[]" else loads_metadata(row[5]),
        etag=row[6], last_modified=float(row[7]), content_length=int(row[8]),
        content=ContentSettings(
            content_type=row[9], content_encoding=row[10], content_language=row[11],
            content_disposition=row[12], cache_control=row[13],
            content_md5=bytes(md5) if isinstance(md5, bytes | bytearray | memoryview) else None,
        ),
        smb=SmbProps(attributes=row[15], creation_time=row[16], last_write_time=row[17],
                     change_time=row[18], permission_key=row[19]),
        blob=row[20], lease_id=row[21], copy_id=row[22], copy_source=row[23],
        copy_completion=None if row[24] is None else float(row[24]),
        copy_status=row[25], copy_progress=row[26], copy_status_description=row[27],
        live_id=row[28], live_parent_id=row[29],
    )


def opt(value: object) -> str | None:
    return None if value is None else str(value)
