"""What an upload accepts from the local side: regular files only, under names the service can keep apart.

* FIFOs, devices, sockets and pseudo-files that report size 0 but have content (``/proc``) are refused by
  name, never read as empty or waited on forever.
* Azure Files compares names case-insensitively and keeps their case: two local names that differ only in
  case would be one remote file, so they are refused before anything is uploaded.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from keyless import localos
from keyless.files.errors import NameCollision, NotRegularFile
from keyless.files.parts import is_part_name

log = logging.getLogger(__name__)


def case_key(path: str) -> str:
    """How the service compares names: case-insensitively, one character at a time (like NTFS's upcase
    table, so no ``ß`` -> ``SS`` expansion), keeping the name as given."""
    upper = path.upper()  # str.upper maps one character at a time: the same, unless one of them expanded
    if len(upper) == len(path):
        return upper
    return "".join(u if len(u := c.upper()) == 1 else c for c in path)


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
        stat.S_ISDIR: "a directory",
    }
    return next((label for test, label in kinds.items() if test(mode)), "not a regular file")


def _not_regular(local: Path, mode: int) -> str:
    return f"{local} is {_kind(mode)}: only regular files and directories are uploaded"


def special_kind(local: Path) -> str:
    """What ``local`` is when it is not a regular file, as a message says it ("a FIFO is not uploaded")."""
    try:
        mode = os.lstat(local).st_mode
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    return f"{_kind(mode)}, not uploaded"


def check_uploadable(local: Path) -> None:
    """Refuse what is neither a regular file nor a directory, before any request is made."""
    st = os.stat(local)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise NotRegularFile(_not_regular(local, st.st_mode))


def open_regular(local: Path) -> tuple[int, os.stat_result]:
    """Open ``local`` for reading without blocking (a FIFO with no writer would block ``open``), and refuse
    anything but a regular file whose size is what ``stat`` says."""
    fd = os.open(local, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | localos.BINARY_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(_not_regular(local, st.st_mode))
        if st.st_size == 0 and localos.pread(fd, 1, 0):
            raise NotRegularFile(
                f"{local} reports a size of 0 but has content (a /proc or /sys file?): its size is not known "
                "in advance, so it is not uploaded"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def check_case_collisions(rels: list[str]) -> None:
    """Refuse names the service would take for one file (``A.txt`` and ``a.txt``), naming them."""
    seen: dict[str, str] = {}
    clashes: list[str] = []
    for rel in rels:
        other = seen.setdefault(case_key(rel), rel)
        if other != rel:
            clashes.append(f"{other!r} and {rel!r}")
    if clashes:
        shown = "; ".join(clashes[:5]) + (f"; and {len(clashes) - 5} more" if len(clashes) > 5 else "")
        raise NameCollision(
            f"names that differ only in letter case would be one file on the share: {shown}; nothing uploaded"
        )


def local_files(root: Path) -> Iterator[tuple[str, Path]]:
    """``(relative posix path, path)`` of every regular file under ``root``; symlinks are not followed."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        # One relative prefix per directory and one lstat per file: this runs for every file of a tree.
        rel_dir = base.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for name in sorted(filenames):
            try:
                mode = os.lstat(os.path.join(dirpath, name)).st_mode
            except OSError:
                mode = 0  # gone or unreadable: reported below, as special_kind says
            if stat.S_ISLNK(mode):
                continue
            path = base / name
            if not stat.S_ISREG(mode):
                # As rsync does ("skipping non-regular file"): said, not silently dropped, and never read.
                log.warning("skipping %r: %s", str(path), special_kind(path))
            elif not is_part_name(name):
                # Part files are unfinished downloads (keyless's own, possibly another run's): never data.
                yield prefix + name, path


def local_dirs(root: Path) -> list[str]:
    """The relative posix paths of every directory under ``root``, sorted (parents before children)."""
    out = []
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            out.append((Path(dirpath) / d).relative_to(root).as_posix())
    return sorted(out)
