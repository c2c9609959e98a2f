"""``sync``: make one side match the other by size and modification time, with names compared as the
service compares them (case-insensitive, case-preserving)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from keyless.files import localpaths
from keyless.files.errors import NotFound
from keyless.files.parallel import run_bounded
from keyless.files.sources import case_key
from keyless.files.times import parse_time
from keyless.files.transfer import (
    Progress,
    RemoteTree,
    TransferStats,
    download_tree,
    list_tree,
    local_files,
    remote_files,
    upload_tree,
)
from keyless.files.urls import join_path

if TYPE_CHECKING:
    from keyless.files.client import ShareClient


def _noop(_: int) -> None:
    pass


MTIME_TOLERANCE = 2.0  # seconds: SMB keeps 100 ns ticks, but some filesystems keep 1-2 s


def same_file(local_size: int, local_mtime: float, remote_size: int, remote_time: str) -> bool:
    """Size and modification time match (the service keeps the local mtime keyless uploads with)."""
    remote_mtime = parse_time(remote_time)
    return (
        local_size == remote_size
        and remote_mtime is not None
        and abs(remote_mtime - local_mtime) <= MTIME_TOLERANCE
    )


def sync_up(
    client: ShareClient,
    local_root: Path,
    remote_root: str,
    *,
    delete: bool = False,
    workers: int | None = None,
    progress: Progress = _noop,
) -> TransferStats:
    """Make ``remote_root`` match ``local_root``: upload new and changed files; with ``delete``, remove
    remote files that do not exist locally."""
    remote_root = join_path(remote_root)
    # Keyed as the service compares names: after a case-only local rename (Report.txt -> report.txt) the
    # remote Report.txt *is* the file report.txt writes to, so it is compared, and never deleted.
    try:
        remote = {
            case_key(rel): (size, mtime, full, rel)
            for rel, full, size, mtime in remote_files(client, remote_root)
        }
    except NotFound:
        remote = {}

    def skip(rel: str, path: Path) -> bool:
        known = remote.get(case_key(rel))
        if known is None or known[3] != rel:  # a case-only rename is uploaded, so the new name shows
            return False
        st = path.stat()
        return same_file(st.st_size, st.st_mtime, known[0], known[1])

    stats = upload_tree(client, local_root, remote_root, workers=workers, progress=progress, skip=skip)
    if delete:
        local = {case_key(rel) for rel, _ in local_files(local_root)}
        extra = [full for key, (_, _, full, _) in remote.items() if key not in local]
        run_bounded(client.delete_file, extra, workers or client.concurrency)
        stats.add(deleted=len(extra))
    return stats


def sync_down(
    client: ShareClient,
    remote_root: str,
    local_root: Path,
    *,
    delete: bool = False,
    workers: int | None = None,
    progress: Progress = _noop,
    tree: RemoteTree | None = None,
    platform: str | None = None,
) -> TransferStats:
    """Make ``local_root`` match ``remote_root``; with ``delete``, remove local files absent remotely.
    The remote tree is listed once (``tree``, when the caller has it already). ``platform``: whose local
    name rules apply (default: this machine's; see ``keyless.files.localpaths``)."""
    tree = tree or list_tree(client, remote_root)

    def skip(rel: str, target: Path, size: int, mtime: str) -> bool:
        try:
            st = target.stat()
        except FileNotFoundError:
            return False
        return same_file(st.st_size, st.st_mtime, size, mtime)

    stats = download_tree(
        client, remote_root, local_root, workers=workers, progress=progress, skip=skip, tree=tree,
        platform=platform,
    )
    if delete:
        remote = {rel for rel, _ in tree.files}
        by_case = {case_key(rel): rel for rel in remote}
        # Where the local file system ignores case, the local ``README.md`` *is* the remote ``Readme.md``
        # just downloaded over it: by the platform's rules, or found to be the same file on disk.
        local_keys = {localpaths.case_key(rel, platform) for rel in remote}
        for rel, path in list(local_files(local_root)):
            if rel in remote or localpaths.case_key(rel, platform) in local_keys:
                continue
            if not _same_local_file(path, local_root, by_case.get(case_key(rel))):
                path.unlink()
                stats.add(deleted=1)
    return stats


def _same_local_file(path: Path, local_root: Path, remote_rel: str | None) -> bool:
    """Whether ``path`` is the very file a remote name that differs only in case was written to: on a
    case-insensitive local filesystem (macOS, Windows) ``Report.txt`` and ``report.txt`` are one file, and
    deleting the "extra" name would delete what was just synced."""
    if remote_rel is None:
        return False
    try:
        return os.path.samefile(path, local_root.joinpath(*remote_rel.split("/")))
    except OSError:
        return False
