"""Part files: where unfinished transfers live until they are complete, and how their leftovers are found.

A download writes ``.<name>.<8 hex>.keyless-part`` next to its target and renames it over the target when
every range arrived; an upload does the same on the share. A part file is never data: tree uploads, tree
downloads and sync skip them. A running download holds an advisory lock on its part file (``flock``; a
killed process drops it), so the cleanup of a later download of the same target removes only the parts of
killed runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import stat
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


# A name component holds at most 255 characters on Azure Files and 255 bytes on Linux and most local file
# systems: a part name must fit both, whatever the target's length.
MAX_NAME = 255
_RANDOM_AND_SUFFIX = 1 + 8 + len(PART_SUFFIX)  # ".<8 hex>.keyless-part" after the stem


def part_stem(name: str) -> str:
    """The fixed start of every part name of ``name``: ``.<name>`` when that fits, else as much of the
    name as fits (in UTF-8 bytes) followed by ``~`` and a digest of the whole name, so a long name's parts
    are still recognisable as its own and no other's."""
    stem = f".{name}"
    if len(stem.encode()) + _RANDOM_AND_SUFFIX <= MAX_NAME:
        return stem
    digest = "~" + hashlib.sha256(name.encode()).hexdigest()[:16]
    room = MAX_NAME - _RANDOM_AND_SUFFIX - 1 - len(digest)
    kept = name.encode()[:room].decode("utf-8", "ignore")
    return f".{kept}{digest}"


def _part_name(name: str) -> str:
    return f"{part_stem(name)}.{secrets.token_hex(4)}{PART_SUFFIX}"


def stale_part_of(part: str, name: str) -> bool:
    """Whether ``part`` is a part file of a target called ``name`` (any run's)."""
    stem = part_stem(name) + "."
    middle = part[len(stem) : -len(PART_SUFFIX)]
    return part.startswith(stem) and part.endswith(PART_SUFFIX) and bool(_HEX8.fullmatch(middle))


def remote_part_name(remote: str) -> str:
    parent, _, name = join_path(remote).rpartition("/")
    part = _part_name(name)
    return f"{parent}/{part}" if parent else part


def local_part_path(target: str) -> str:
    """The part file of a local ``target`` (a path as text: a tree download makes one per file)."""
    head, tail = os.path.split(target)
    return os.path.join(head, _part_name(tail))


def lock_part(fd: int) -> None:
    """Mark a part file as in use for as long as this process holds it open (a killed process drops the
    lock), so that :func:`remove_stale_parts` leaves a running download's part alone."""
    if _PART_LOCKER is not None:
        _PART_LOCKER.try_lock(fd)


def part_names_in(directory: Path) -> list[str]:
    """The names of the part files in ``directory``, in one scan: a tree download checks every target it
    writes there against this list instead of scanning the directory again for each file (which made a
    download of n files into one directory cost n scans of n entries)."""
    try:
        with os.scandir(directory) as entries:
            return [entry.name for entry in entries if is_part_name(entry.name)]
    except OSError:
        return []


def remove_stale_parts(target: Path, part_names: list[str] | None = None) -> int:
    """Remove the part files that killed downloads of ``target`` left next to it; returns how many.
    ``part_names``: the part files of ``target``'s directory when the caller listed them already
    (:func:`part_names_in`); None lists them now."""
    if part_names is None:
        part_names = part_names_in(target.parent)
    removed = 0
    for name in part_names:
        # Exactly this target's parts (".<name>.<8 hex>.keyless-part"), not those of a longer name.
        if not stale_part_of(name, target.name):
            continue
        path = os.path.join(target.parent, name)
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue  # never opened: a FIFO would block, a symlink leads elsewhere
            fd = os.open(path, os.O_RDONLY | localos.NOFOLLOW | localos.BINARY_FLAGS)
        except OSError:
            continue
        try:
            if _PART_LOCKER is not None and not _PART_LOCKER.try_lock(fd):
                continue  # a download running right now holds it
            with contextlib.suppress(OSError):  # on Windows an open part cannot be removed: that is fine
                os.unlink(path)
                removed += 1
        finally:
            os.close(fd)
    return removed
