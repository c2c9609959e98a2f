"""Where remote names land locally: ``root / name``, refusing any name that could land outside ``root``
(``..``, absolute paths, a symlinked directory pointing elsewhere) or that this system's file names cannot
hold (:mod:`keyless.files.localpaths`)."""

from __future__ import annotations

import os
from pathlib import Path

from keyless.files import localpaths
from keyless.files.errors import UnsafeName


def safe_local_path(root: Path, remote_relative: str, platform: str | None = None) -> Path:
    """``root / remote_relative``, refusing any name that could land outside ``root`` or that this system's
    file names cannot hold (``platform`` is injectable for tests)."""
    return LocalTargets(root, platform).path(remote_relative)


class LocalTargets:
    """:func:`safe_local_path` for the many names of one tree: the root, and each directory the names land
    in, resolved once (two ``realpath`` walks per file cost more than the file's download)."""

    __slots__ = ("_parents", "platform", "resolved_root", "root")

    def __init__(self, root: Path, platform: str | None) -> None:
        self.root = root
        self.platform = platform
        self.resolved_root = root.resolve()
        # Each directory names land in, by its share-relative name: its path, or None when it resolves
        # outside the root.
        self._parents: dict[str, Path | None] = {}

    def path(self, remote_relative: str) -> Path:
        return self.place(remote_relative)[0]

    def place(self, remote_relative: str) -> tuple[Path, Path]:
        """The local path of ``remote_relative`` and the directory it is in."""
        parts = localpaths.check_relative(remote_relative, self.platform)
        key = remote_relative.rpartition("/")[0]
        if key in self._parents:
            parent = self._parents[key]
        else:
            parent = self.root.joinpath(*parts[:-1])
            # A symlink already inside root could still point outside: check the resolved parent too.
            if not parent.resolve().is_relative_to(self.resolved_root):
                parent = None
            self._parents[key] = parent
        if parent is None:
            raise UnsafeName(f"refusing remote name {remote_relative!r}: it resolves outside {self.root}")
        target = parent / parts[-1]
        text = localpaths.os_path(target, self.platform)
        return (target if text == os.fspath(target) else Path(text)), parent
