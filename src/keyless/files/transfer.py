"""Parallel transfers with bounded memory: files, trees and copies (``sync`` builds on them).

* Upload: create a hidden part file ``.<name>.<random>.keyless-part`` next to the target at its full size
  (the service zero-fills it), send ranges of at most 4 MiB in parallel, each read with ``os.pread`` by the
  worker that sends it, then rename the part over the target (Rename File with replace). So the target never
  exists half-written: a killed upload leaves only a part file, which ``sync`` does not take for the real
  file, and two uploads of one file never mix their ranges. All-zero ranges are skipped: the file is already
  zero there. Memory: at most ``concurrency`` ranges in flight (each worker reads into its own reused
  buffer). Missing parent directories are created.
* A single-file upload also checks, just before publishing, that the target is still the file it found at
  the start (its ETag); if another upload replaced it meanwhile, this one fails and publishes nothing.
* Only regular files are uploaded: FIFOs, devices, sockets and pseudo-files that report size 0 but have
  content (``/proc``) are refused by name, never read as empty or waited on forever.
* Names are compared as the service compares them (case-insensitive, case-preserving): two local names that
  differ only in case are refused before anything is uploaded, and ``sync --delete`` never deletes a remote
  file that a local file with a case-only different name maps to.
* Download: write ranges at their offsets (``os.pwrite``) into ``.<name>.<random>.keyless-part`` next to the
  target (allocated at its full size first where the file system can, so a disk too small is refused
  before the first range: ``NotEnoughSpace``), fsync, then rename over the target only when every
  range arrived; any failure removes the temporary file, so an interrupted download never leaves a
  truncated file under the real name. Part files a killed download left for the same target are removed
  on the next download of it (a part file still locked by a running download is left alone). Each range's
  MD5 is checked when the service sends one, the ETag of every range must match the one the download
  started with, and the whole-file ``Content-MD5`` is checked when the file has one.
* Remote names are refused on download when they could escape the target directory (``..``, absolute paths,
  backslashes, NUL, drive letters).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from keyless import localos
from keyless.files import localpaths
from keyless.files.errors import AlreadyExists, ChangedDuringUpload, FilesError, IntegrityError
from keyless.files.localtargets import LocalTargets, safe_local_path
from keyless.files.models import Entry, Properties
from keyless.files.parallel import RANGE_SIZE, ranges, run_bounded
from keyless.files.parts import (
    PART_SUFFIX,
    is_part_name,
    local_part_path,
    lock_part,
    part_names_in,
    remote_part_name,
    remove_stale_parts,
)
from keyless.files.range_buffers import RangeBuffers, all_zero, file_md5_matches, size_part, write_at
from keyless.files.sources import (
    check_case_collisions,
    check_uploadable,
    local_dirs,
    local_files,
    open_regular,
)
from keyless.files.times import parse_time
from keyless.files.urls import join_path

__all__ = [
    "PART_SUFFIX",
    "Progress",
    "RemoteTree",
    "TransferStats",
    "check_uploadable",
    "copy_file",
    "copy_tree",
    "download_file",
    "download_tree",
    "is_part_name",
    "list_tree",
    "local_files",
    "remote_files",
    "remove_stale_parts",
    "safe_local_path",
    "upload_file",
    "upload_tree",
]

if TYPE_CHECKING:
    from keyless.files.client import ShareClient

#: Ranges per file in flight during tree transfers (files are the unit of parallelism there).
TREE_RANGE_CONCURRENCY = 4


Progress = Callable[[int], None]


def _noop(_: int) -> None:
    pass


@dataclass(slots=True)
class TransferStats:
    files: int = 0
    bytes: int = 0
    skipped: int = 0
    deleted: int = 0
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, files: int = 0, nbytes: int = 0, skipped: int = 0, deleted: int = 0) -> None:
        with self._lock:
            self.files += files
            self.bytes += nbytes
            self.skipped += skipped
            self.deleted += deleted

    def to_json(self) -> dict[str, object]:
        return {"files": self.files, "bytes": self.bytes, "skipped": self.skipped, "deleted": self.deleted}


def _publish(
    client: ShareClient,
    remote: str,
    size: int,
    fill: Callable[[str], None],
    *,
    guard: bool,
    content_type: str | None,
    metadata: dict[str, str] | None,
    last_write_time: float | None,
) -> None:
    """Write a file of ``size`` bytes under a hidden part name (``fill`` sends its ranges), then rename it
    over ``remote``. With ``guard``, refuse to publish when ``remote`` changed since the start (its ETag):
    of two concurrent uploads, the second to finish fails instead of silently replacing the first."""
    expected = client.file_etag(remote) if guard else None
    part = remote_part_name(remote)
    client.create_file(
        part,
        size,
        content_type=content_type,
        metadata=metadata,
        last_write_time=last_write_time,
        parents=True,
    )
    try:
        fill(part)
        if guard and client.file_etag(remote) != expected:
            raise _changed(remote)
        # A target that did not exist at the start is published without replace, so a file created between
        # the check and the rename is never overwritten; an existing one can only be replaced.
        try:
            client.rename(part, remote, replace=not (guard and expected is None), is_dir=False)
        except AlreadyExists:
            raise _changed(remote) from None
    except BaseException:
        with contextlib.suppress(FilesError):
            client.delete_file(part)
        raise


def _changed(remote: str) -> ChangedDuringUpload:
    # Built only when it is raised: an exception object per published file cost more than its use.
    return ChangedDuringUpload(f"{remote} was replaced by another writer during this upload: not published")


# --- single files ------------------------------------------------------------------------------------


def upload_file(
    client: ShareClient,
    local: Path,
    remote: str,
    *,
    concurrency: int | None = None,
    progress: Progress = _noop,
    content_type: str | None = None,
    metadata: dict[str, str] | None = None,
    preserve_mtime: bool = True,
    guard: bool = True,
) -> int:
    """Upload ``local`` to ``remote`` (published whole, see the module docstring); returns the number of
    bytes. ``guard``: fail rather than replace a file another writer changed during the upload."""
    fd, st = open_regular(local)
    try:
        size = st.st_size
        if size > RANGE_SIZE:  # one range needs no decision (and no latency probe)
            concurrency = concurrency or client.ranges_in_flight()

        buffers = RangeBuffers(size)

        def fill(part: str) -> None:
            def send(rng: tuple[int, int]) -> None:
                offset, length = rng
                data, view = buffers.take(length)
                if localos.pread_into(fd, view, offset) != length:
                    raise IntegrityError(f"{local} changed size during the upload")
                if not all_zero(data):  # an all-zero range is already there: the file starts zero-filled
                    # Sent before the next range is read into the buffer: put_range returns only once the
                    # service answered (retries included), so the bytes it sends are never overwritten.
                    client.put_range(part, offset, data, preserve_mtime=preserve_mtime)
                progress(len(view))

            # One range (most files of a tree) runs right here: run_bounded schedules only two or more.
            run_bounded(send, ranges(size), concurrency or 1)

        _publish(
            client,
            remote,
            size,
            fill,
            guard=guard,
            content_type=content_type,
            metadata=metadata,
            last_write_time=st.st_mtime if preserve_mtime else None,
        )
    finally:
        os.close(fd)
    return size


def download_file(
    client: ShareClient,
    remote: str,
    local: Path,
    *,
    concurrency: int | None = None,
    progress: Progress = _noop,
    props: Properties | None = None,
    set_mtime: bool = True,
    part_names: list[str] | None = None,
) -> int:
    """Download ``remote`` to ``local`` atomically; returns the number of bytes. ``part_names``: the part
    files in ``local``'s directory when the caller listed them already (:func:`parts.part_names_in`)."""
    props = props or client.properties(remote)
    if props.is_dir:
        raise IsADirectoryError(f"{remote} is a directory: download it as a tree")
    size = props.size
    if size > RANGE_SIZE:
        concurrency = concurrency or client.ranges_in_flight()
    remove_stale_parts(local, part_names)
    part = local_part_path(os.fspath(local))
    fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_EXCL | localos.BINARY_FLAGS, 0o666)
    try:
        lock_part(fd)

        def fetch_into(view: memoryview, offset: int) -> None:
            resp = client.read_range_into(remote, offset, view)
            etag = resp.header("etag")
            if props.etag and etag and etag.strip('"') != props.etag.strip('"'):
                raise IntegrityError(f"{remote} changed on the service during the download")
            write_at(fd, view, offset, local, size)
            progress(len(view))

        if size <= RANGE_SIZE:
            # One range (or none), written from offset 0: it gives the file its size, with no ftruncate, no
            # thread-local buffer and no scheduling (a tree download does this for every small file).
            if size:
                fetch_into(memoryview(bytearray(size)), 0)
        else:
            size_part(fd, size, local)
            buffers = RangeBuffers(size)

            def fetch(rng: tuple[int, int]) -> None:
                offset, length = rng
                fetch_into(buffers.take(length)[1], offset)

            run_bounded(fetch, ranges(size), concurrency or 1)
        # The whole file's Content-MD5, when its writer stored one: an MD5 by definition, so the one place
        # MD5 remains (each range was already checked by its CRC64 on the way).
        if props.content_md5 and not file_md5_matches(fd, size, props.content_md5):
            raise IntegrityError(f"{remote}: downloaded content does not match the file's Content-MD5")
        mtime = _remote_mtime(props) if set_mtime else None
        if mtime is not None and _UTIME_BY_FD:
            os.utime(fd, (mtime, mtime))  # on the open file: no path look-up, and the fsync covers it
        os.fsync(fd)
        os.close(fd)
        fd = -1
        if mtime is not None and not _UTIME_BY_FD:
            os.utime(part, (mtime, mtime))
        os.replace(part, local)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
        raise
    return size


_UTIME_BY_FD = os.utime in os.supports_fd  # POSIX (futimens); Windows sets times by path only


def _remote_mtime(props: Properties) -> float | None:
    return parse_time(props.last_write_time) or parse_time(props.last_modified)


def copy_file(
    src: ShareClient,
    src_path: str,
    dst: ShareClient,
    dst_path: str,
    *,
    concurrency: int | None = None,
    progress: Progress = _noop,
    props: Properties | None = None,
    guard: bool = True,
) -> int:
    """Copy a file between any two shares (even across accounts) by streaming ranges through this machine.

    Server-side copy (``x-ms-copy-source``) needs the source authorized separately; streaming works with
    the one identity and keeps memory at ``concurrency`` ranges. ``props``: the source's properties when
    the caller has them already (saves a request).
    """
    props = props or src.properties(src_path)
    if props.is_dir:
        raise IsADirectoryError(f"{src_path} is a directory: copy it as a tree")

    buffers = RangeBuffers(props.size)  # each range read into its worker's buffer, then sent from it

    def fill(part: str) -> None:
        def move(rng: tuple[int, int]) -> None:
            offset, length = rng
            data, view = buffers.take(length)
            resp = src.read_range_into(src_path, offset, view)
            if props.etag and resp.header("etag") and resp.header("etag") != props.etag:
                raise IntegrityError(f"{src_path} changed on the service during the copy")
            if not all_zero(data):
                dst.put_range(part, offset, data, preserve_mtime=True)
            progress(len(view))

        many = props.size > RANGE_SIZE  # one range needs no decision (and no latency probe)
        run_bounded(move, ranges(props.size), (concurrency or src.ranges_in_flight()) if many else 1)

    _publish(
        dst,
        dst_path,
        props.size,
        fill,
        guard=guard,
        content_type=props.content_type or None,
        metadata=props.metadata or None,
        last_write_time=_remote_mtime(props),
    )
    return props.size


# --- trees ------------------------------------------------------------------------------------------------


def upload_tree(
    client: ShareClient,
    local_root: Path,
    remote_root: str,
    *,
    workers: int | None = None,
    progress: Progress = _noop,
    skip: Callable[[str, Path], bool] | None = None,
) -> TransferStats:
    """Upload every file under ``local_root`` into ``remote_root``, files in parallel."""
    stats = TransferStats()
    remote_root = join_path(remote_root)
    dirs = local_dirs(local_root)
    files = list(local_files(local_root))
    check_case_collisions([*dirs, *(rel for rel, _ in files)])
    if remote_root:
        client.mkdir(remote_root, parents=True, exist_ok=True)
    for rel in dirs:  # parents before children: sorted order guarantees it
        client.mkdir(join_path(remote_root, rel), exist_ok=True)

    def one(item: tuple[str, Path]) -> None:
        rel, path = item
        if skip is not None and skip(rel, path):
            stats.add(skipped=1)
            progress(path.stat().st_size)
            return
        # Trees skip the per-file ETag guard (two more requests per file); each file is still published
        # whole by a rename, so concurrent runs never mix ranges.
        n = upload_file(
            client,
            path,
            join_path(remote_root, rel),
            concurrency=TREE_RANGE_CONCURRENCY,
            progress=progress,
            guard=False,
        )
        stats.add(files=1, nbytes=n)

    if workers is None:
        largest = max((path.stat().st_size for _, path in files), default=0)
        workers = client.files_in_flight(largest, TREE_RANGE_CONCURRENCY)
    run_bounded(one, files, workers)
    return stats


@dataclass(frozen=True, slots=True)
class RemoteTree:
    """Everything under a remote directory, listed once: directories and files, relative to ``root``."""

    root: str
    dirs: list[str]  # relative paths, parents before children
    files: list[tuple[str, Entry]]  # (relative path, listing entry)

    @property
    def total_size(self) -> int:
        return sum(entry.size or 0 for _, entry in self.files)


def list_tree(client: ShareClient, remote_root: str) -> RemoteTree:
    """One walk of the tree under ``remote_root`` (one listing request per directory and page)."""
    root = join_path(remote_root)
    dirs: list[str] = []
    files: list[tuple[str, Entry]] = []

    def rel(path: str) -> str:
        return path[len(root) + 1 :] if root else path

    for _dirpath, ds, fs in client.walk(root):
        dirs.extend(rel(d.path) for d in ds)
        # Part files are uploads in progress or killed ones: never copied, downloaded or synced as data.
        files.extend((rel(f.path), f) for f in fs if not is_part_name(f.name))
    return RemoteTree(root, dirs, files)


def remote_files(client: ShareClient, remote_root: str) -> Iterator[tuple[str, str, int, str]]:
    """``(relative path, full path, size, last write time)`` of every file under ``remote_root``."""
    for rel, f in list_tree(client, remote_root).files:
        yield rel, f.path, f.size or 0, f.last_write_time or f.last_modified


def download_tree(
    client: ShareClient,
    remote_root: str,
    local_root: Path,
    *,
    workers: int | None = None,
    progress: Progress = _noop,
    skip: Callable[[str, Path, int, str], bool] | None = None,
    tree: RemoteTree | None = None,
    platform: str | None = None,
) -> TransferStats:
    """Download every file under ``remote_root`` into ``local_root``; unsafe names are refused up front.
    ``tree``: the listing when the caller has it already (the tree is listed once either way)."""
    stats = TransferStats()
    local_root.mkdir(parents=True, exist_ok=True)
    tree = tree or list_tree(client, remote_root)
    localpaths.check_case_collisions([*tree.dirs, *(rel for rel, _ in tree.files)], platform)
    targets = LocalTargets(local_root, platform)
    dirs = [targets.path(rel) for rel in tree.dirs]
    items = [(rel, entry, *targets.place(rel)) for rel, entry in tree.files]
    for path in dirs:  # only once every name has passed: a refusal leaves nothing half-made
        path.mkdir(parents=True, exist_ok=True)
    # Killed runs' part files: looked for once per directory, not once per file.
    part_names = {parent: part_names_in(parent) for parent in {parent for *_, parent in items}}

    def one(item: tuple[str, Entry, Path, Path]) -> None:
        rel, entry, target, parent = item
        size, mtime = entry.size or 0, entry.last_write_time or entry.last_modified
        if skip is not None and skip(rel, target, size, mtime):
            stats.add(skipped=1)
            progress(size)
            return
        # The listing already holds size, ETag and times: no HEAD per file (half the requests for small
        # files). Each range's MD5 and its ETag against the listing's are still checked.
        n = download_file(
            client,
            entry.path,
            target,
            concurrency=TREE_RANGE_CONCURRENCY,
            progress=progress,
            props=Properties.from_entry(entry),
            part_names=part_names[parent],
        )
        stats.add(files=1, nbytes=n)

    if workers is None:
        largest = max((entry.size or 0 for _, entry, *_ in items), default=0)
        workers = client.files_in_flight(largest, TREE_RANGE_CONCURRENCY)
    run_bounded(one, items, workers)
    return stats


def copy_tree(
    src: ShareClient,
    src_root: str,
    dst: ShareClient,
    dst_root: str,
    *,
    workers: int | None = None,
    progress: Progress = _noop,
    tree: RemoteTree | None = None,
) -> TransferStats:
    """Copy every file under ``src_root`` into ``dst_root`` (any two shares), files in parallel."""
    stats = TransferStats()
    dst_root = join_path(dst_root)
    tree = tree or list_tree(src, src_root)
    if dst_root:
        dst.mkdir(dst_root, parents=True, exist_ok=True)
    for rel in tree.dirs:
        dst.mkdir(join_path(dst_root, rel), exist_ok=True)

    def one(item: tuple[str, Entry]) -> None:
        rel, entry = item
        n = copy_file(
            src,
            entry.path,
            dst,
            join_path(dst_root, rel),
            concurrency=TREE_RANGE_CONCURRENCY,
            progress=progress,
            guard=False,
        )
        stats.add(files=1, nbytes=n)

    if workers is None:
        largest = max((entry.size or 0 for _, entry in tree.files), default=0)
        workers = src.files_in_flight(largest, TREE_RANGE_CONCURRENCY)
    run_bounded(one, tree.files, workers)
    return stats
