"""SMB property rules: timestamps at the service's resolution, permission keys, defaults and updates.

What a new file or directory gets when the request names no SMB property, and how an update merges
with what is stored (any property change also moves the change time, as NTFS does).
"""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime

from keyless.emulator.storage.records import SmbProps, SmbUpdate


def smb_time(ts: float) -> str:
    """``2025-01-02T03:04:05.1234567Z``: the 100 ns resolution the service reports."""
    whole = int(ts)
    ticks = round((ts - whole) * 10_000_000)
    if ticks >= 10_000_000:
        whole, ticks = whole + 1, ticks - 10_000_000
    return _smb_second(whole) + f".{ticks:07d}Z"


@functools.lru_cache(maxsize=1024)
def _smb_second(whole: int) -> str:
    # Creates and writes stamp several times per request: the few seconds in play are formatted once.
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def permission_key_for(permission: str) -> str:
    """A stable key for an SDDL string, shaped like the service's ``<decimal>*<decimal>`` keys."""
    digest = hashlib.sha256(permission.encode("utf-8")).digest()
    return f"{int.from_bytes(digest[:8], 'big')}*{int.from_bytes(digest[8:16], 'big')}"


DEFAULT_PERMISSION = "O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x1301bf;;;AU)"
DEFAULT_PERMISSION_KEY = permission_key_for(DEFAULT_PERMISSION)


def new_smb_props(update: SmbUpdate, now: float, *, is_dir: bool) -> SmbProps:
    """A new node's SMB properties: what the request asked for, the service's defaults for the rest."""
    stamp = smb_time(now)
    return SmbProps(
        attributes=update.attributes or ("Directory" if is_dir else "Archive"),
        creation_time=update.creation_time or stamp,
        last_write_time=update.last_write_time or stamp,
        change_time=update.change_time or stamp,
        permission_key=update.permission_key or DEFAULT_PERMISSION_KEY,
    )


def apply_smb(current: SmbProps, update: SmbUpdate, now_stamp: str) -> SmbProps:
    """Update SMB properties; any property change also moves the change time, as NTFS does."""
    return SmbProps(
        attributes=update.attributes or current.attributes,
        creation_time=update.creation_time or current.creation_time,
        last_write_time=update.last_write_time or current.last_write_time,
        change_time=update.change_time or now_stamp,
        permission_key=update.permission_key or current.permission_key,
    )
