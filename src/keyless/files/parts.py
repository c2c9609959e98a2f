"""Part files: where unfinished transfers live until they are complete, and how their leftovers are found.

A download writes ``.<name>.<8 hex>.keyless-part`` next to its target and renames it over the target when
every range arrived; an upload does the same on the share. A part file is never data: tree uploads, tree
downloads and sync skip them. A running download holds an advisory lock on its part file (``flock``; a
killed process drops it), so the cleanup of a later download of the same target removes only the parts of
killed runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path

from keyless import localos
from keyless.files.urls import join_path

# POSIX only: on Windows an open file cannot be deleted, which protects a running download's part anyway.
_PART_LOCKER = localos.FlockLocker(localos.FCNTL) if localos.FCNTL is not None else None

PART_SUFFIX = ".keyless-part"
_HEX8 = re.compile(r"[0-9a-f]{8}")
_PART_NAME = re.compile(r"\..+\.[0-9a-f]{8}" + re.escape(PART_SUFFIX) + r"\Z", re.DOTALL)


def is_part_name(name: str) -> bool:
    """Whether ``name`` (the last component) is one of keyless's hidden part files."""
    return bool(_PART_NAME.match(name))


def remote_part_name(remote: str) -> str:
    parent, _, name = join_path(remote).rpartition("/")
    return join_path(parent, f".{name}.{secrets.token_hex(4)}{PART_SUFFIX}")


def local_part_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}{PART_SUFFIX}")


def lock_part(fd: int) -> None:
    """Mark a part file as in use for as long as this process holds it open (a killed process drops the
    lock), so that :func:`remove_stale_parts` leaves a running download's part alone."""
    if _PART_LOCKER is not None:
        _PART_LOCKER.try_lock(fd)


def remove_stale_parts(target: Path) -> int:
    """Remove the part files that killed downloads of ``target`` left next to it; returns how many."""
    prefix = f".{target.name}."
    removed = 0
    try:
        siblings = list(os.scandir(target.parent))
    except OSError:
        return 0
    for entry in siblings:
        name = entry.name
        # Exactly this target's parts (".<name>.<8 hex>.keyless-part"), not those of a longer name.
        middle = name[len(prefix) : -len(PART_SUFFIX)]
        if not (name.startswith(prefix) and name.endswith(PART_SUFFIX) and _HEX8.fullmatch(middle)):
            continue
        if not entry.is_file(follow_symlinks=False):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | localos.NOFOLLOW | localos.BINARY_FLAGS)
        except OSError:
            continue
        try:
            if _PART_LOCKER is not None and not _PART_LOCKER.try_lock(fd):
                continue  # a download running right now holds it
            with contextlib.suppress(OSError):  # on Windows an open part cannot be removed: that is fine
                os.unlink(entry.path)
                removed += 1
        finally:
            os.close(fd)
    return removed
