"""What a copy between a local path and a share (or two shares) does with names, as ``cp`` does.

- A directory is copied only when asked to copy recursively; otherwise :class:`IsADirectoryError`.
- Into an existing directory, the source keeps its name (``put a.txt dir`` writes ``dir/a.txt``); a
  directory source given with a trailing ``/`` copies its contents instead (rsync's rule).
- Anything else names the target itself.

A plan is made first (with the fewest requests: one to learn what the source is, one to learn whether the
target is a directory, one listing of a remote tree), so the caller knows the total size before running it,
for progress; running it never lists or asks again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from keyless.backoff import backoff_delay
from keyless.files import errors as fe
from keyless.files import localpaths, transfer
from keyless.files.transfer import Progress, TransferStats
from keyless.files.urls import join_path

if TYPE_CHECKING:
    from keyless.files.client import ShareClient


def _noop(_: int) -> None:
    return None


# Polling a pending Copy File: the first look after 50 ms, then doubling (with jitter) up to 5 s, so a
# copy that ends at once costs one extra request and a long one a request every few seconds.
COPY_POLL_FIRST_SECONDS = 0.05
COPY_POLL_MAX_SECONDS = 5.0


def wait_for_server_copy(client: ShareClient, path: str, status: str, *, source: str,
                         sleep: Callable[[float], None] = time.sleep) -> None:
    """Wait until the Copy File onto ``path`` that answered ``status`` has ended.

    Azure may answer a Copy File before its bytes have moved (``x-ms-copy-status: pending``, REST "Copy
    File"); its end shows on Get File Properties as ``success``, ``failed`` or ``aborted``. Anything but
    success is raised as :class:`~keyless.files.errors.FilesError` naming the status and Azure's
    ``x-ms-copy-status-description``, so a copy that did not finish is never reported as done.
    """
    description = ""
    polls = 0
    while status == "pending":
        sleep(backoff_delay(polls, backoff_factor=COPY_POLL_FIRST_SECONDS, backoff_max=COPY_POLL_MAX_SECONDS))
        polls += 1
        resp = client.send("HEAD", path, operation="get copy status")
        status = resp.header("x-ms-copy-status")
        description = resp.header("x-ms-copy-status-description")
    if status in ("", "success"):
        return
    reason = f": {description}" if description else ""
    raise fe.FilesError(f"copy of {source} to {path} ended {status}{reason}", code=f"Copy{status.title()}")


@dataclass(frozen=True, slots=True)
class CopyPlan:
    """A copy ready to run: what it moves (for progress) and how."""

    name: str  # the source's name, for progress labels
    total_bytes: int
    target: str  # where it lands: a share path, or a local path
    _run: Callable[[Progress], TransferStats]

    def run(self, progress: Progress = _noop) -> TransferStats:
        return self._run(progress)


def _into(client: ShareClient, target: str, name: str) -> str:
    """``target/name`` when ``target`` is an existing directory (the share root always is), else
    ``target``."""
    target = join_path(target)
    return join_path(target, name) if not target or client.is_dir(target) else target


def _contents_only(source: str) -> bool:
    return localpaths.ends_with_separator(source)


def _local_size(path: Path) -> int:
    return sum(
        p.stat().st_size
        for p in path.rglob("*")
        if p.is_file() and not p.is_symlink() and not transfer.is_part_name(p.name)
    )


def plan_upload(
    client: ShareClient,
    local: str | Path,
    remote: str,
    *,
    recursive: bool = False,
    workers: int | None = None,
) -> CopyPlan:
    """Upload a local file, or with ``recursive`` a directory, to ``remote`` on ``client``'s share."""
    source = Path(local)
    transfer.check_uploadable(source)  # before any request: a FIFO or a device is refused by name
    if source.is_dir():
        if not recursive:
            raise IsADirectoryError(f"{local} is a directory: copy it recursively")
        name = source.resolve().name
        target = join_path(remote)
        if not _contents_only(str(local)) and client.is_dir(target):
            target = join_path(target, name)
        return CopyPlan(
            name,
            _local_size(source),
            target,
            lambda progress: transfer.upload_tree(client, source, target, workers=workers, progress=progress),
        )
    target = _into(client, remote, source.name)
    size = source.stat().st_size

    def run(progress: Progress) -> TransferStats:
        stats = TransferStats()
        stats.add(files=1, nbytes=transfer.upload_file(client, source, target, progress=progress))
        return stats

    return CopyPlan(source.name, size, target, run)


def _remote_name(path: str) -> str:
    return join_path(path).rsplit("/", 1)[-1]


def plan_download(
    client: ShareClient,
    remote: str,
    local: str | Path,
    *,
    recursive: bool = False,
    contents_only: bool = False,
    workers: int | None = None,
) -> CopyPlan:
    """Download a remote file, or with ``recursive`` a directory, to ``local``. ``contents_only``: the
    source was given with a trailing ``/``."""
    props = client.properties(remote)
    name = _remote_name(remote)
    target = Path(local)
    if props.is_dir:
        if not recursive:
            raise IsADirectoryError(f"{remote} is a directory: copy it recursively")
        if target.is_dir() and not contents_only:
            target = target / name
        tree = transfer.list_tree(client, remote)
        root = target
        return CopyPlan(
            name,
            tree.total_size,
            str(root),
            lambda progress: transfer.download_tree(
                client, remote, root, workers=workers, progress=progress, tree=tree
            ),
        )
    if target.is_dir():
        target = transfer.safe_local_path(target, name)
    dest = localpaths.for_os(target)

    def run(progress: Progress) -> TransferStats:
        stats = TransferStats()
        stats.add(
            files=1, nbytes=transfer.download_file(client, remote, dest, props=props, progress=progress)
        )
        return stats

    return CopyPlan(name, props.size, str(dest), run)


def plan_copy(
    src: ShareClient,
    src_path: str,
    dst: ShareClient,
    dst_path: str,
    *,
    recursive: bool = False,
    contents_only: bool = False,
    workers: int | None = None,
) -> CopyPlan:
    """Copy a remote file, or with ``recursive`` a directory, to another place on any share."""
    props = src.properties(src_path)
    name = _remote_name(src_path)
    if props.is_dir and not recursive:
        raise IsADirectoryError(f"{src_path} is a directory: copy it recursively")
    target = join_path(dst_path)
    dst_is_dir = dst.is_dir(target)
    if props.is_dir:
        if dst_is_dir and not contents_only:
            target = join_path(target, name)
        tree = transfer.list_tree(src, src_path)
        root = target
        return CopyPlan(
            name,
            tree.total_size,
            root,
            lambda progress: transfer.copy_tree(
                src, src_path, dst, root, workers=workers, progress=progress, tree=tree
            ),
        )
    if dst_is_dir:
        target = join_path(target, name)
    dest = target

    def run(progress: Progress) -> TransferStats:
        stats = TransferStats()
        stats.add(
            files=1, nbytes=transfer.copy_file(src, src_path, dst, dest, progress=progress, props=props)
        )
        return stats

    return CopyPlan(name, props.size, dest, run)


def move_target(client: ShareClient, source: str, dest: str) -> str:
    """Where a rename of ``source`` to ``dest`` within one share lands (into ``dest`` when it is a
    directory)."""
    target = join_path(dest)
    return join_path(target, _remote_name(source)) if client.is_dir(target) else target
