"""Copy a tree of files between shares on a Dask cluster, each worker authenticating as itself.

The caller lists both trees once, creates the directories, and hands batches of files to the workers. A
worker receives the ``azfiles`` filesystem pickled, which carries options and never a token or key
(:mod:`keyless.fsspec`): it builds its own credential (its managed identity, or the key from its own
``AZURE_STORAGE_KEY``) and copies its batch with threads.

Rerunnable: every file is copied under a temporary name and renamed into place only when complete, with
the source's last write time; so a file under its real name with the source's size and last write time
arrived intact, and a rerun skips it. Only what is missing or different is sent again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keyless.files import errors as fe
from keyless.files.parallel import RANGE_SIZE, run_bounded
from keyless.files.parts import remote_part_name
from keyless.files.times import parse_time
from keyless.files.transfer import TransferStats, copy_file, list_tree
from keyless.files.urls import join_path

if TYPE_CHECKING:
    from keyless.files.client import ShareClient
    from keyless.fsspec import AzureFilesFileSystem

#: Files per task: small enough that progress moves and the load balances, big enough to amortise a task.
DEFAULT_BATCH = 50
#: Files in flight per task on a worker.
THREADS_PER_TASK = 8

#: Dask settings for a cluster that runs copies (apply with ``dask.config.set`` before starting the
#: scheduler and workers, or as the ``DASK_...`` variables of :func:`quiet_cluster_env` in their
#: environment). By default every Dask process wakes up every 20 ms (``tick``), each worker samples every
#: thread's stack every 10 ms (``profile``, holding the GIL the copy's threads need) and each nanny and
#: worker reads its memory use every 100 ms: measured on an idle scheduler with 4 nanny-managed workers,
#: 0.31 cores with the defaults and 0.04 with these, CPU that a copy bound by CPU (small files) loses.
#: Memory is still watched (every second), and a blocked event loop still reported (after a second).
QUIET_CLUSTER_CONFIG: dict[str, object] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}


def quiet_cluster_env() -> dict[str, str]:
    """:data:`QUIET_CLUSTER_CONFIG` as environment variables (Dask reads ``DASK_A__B_C`` as ``a.b-c``)."""
    return {"DASK_" + key.upper().replace(".", "__").replace("-", "_"): str(value)
            for key, value in QUIET_CLUSTER_CONFIG.items()}


@dataclass(frozen=True, slots=True)
class CopyItem:
    source: str  # share-relative
    dest: str  # share-relative
    size: int


@dataclass(frozen=True, slots=True)
class BatchResult:
    files: int
    bytes: int


def _copy_small(src: ShareClient, dst: ShareClient, item: CopyItem) -> int | None:
    """Copy a file of at most one range in four requests, or return None when it is not one any more.

    One ranged Get File brings the content (MD5-checked) and, in its headers, everything the copy keeps:
    content type, metadata and last write time; so no Get File Properties is needed. Then Create File of
    the part with those, one Put Range (none when the content is all zeros: a new file is zero-filled),
    and a rename over the target. A file that grew or shrank since the listing goes the general way.
    """
    if item.size == 0 or item.size > RANGE_SIZE:
        return None
    data, props = src.read_small(item.source, item.size)
    if props.size != item.size:
        return None  # changed since the listing
    part = remote_part_name(item.dest)
    try:
        dst.create_file(part, item.size, content_type=props.content_type or None,
                        metadata=props.metadata or None, last_write_time=parse_time(props.last_write_time))
        if data.count(0) != len(data):
            dst.put_range(part, 0, data, preserve_mtime=True)
        dst.rename(part, item.dest, replace=True, is_dir=False)
    except BaseException:
        with contextlib.suppress(fe.FilesError):
            dst.delete_file(part)
        raise
    return item.size


def _copy_one(src: ShareClient, dst: ShareClient, item: CopyItem) -> int:
    n = _copy_small(src, dst, item)
    if n is None:
        # Empty or multi-range: the general copy (properties, ranges in parallel), published whole under
        # a part name. No ETag guard: the caller owns the destination tree for this run.
        n = copy_file(src, item.source, dst, item.dest, concurrency=2, guard=False)
    return n


def _copy_batch(fs: AzureFilesFileSystem, src: tuple[str, str], dst: tuple[str, str],
                items: list[CopyItem], threads: int = THREADS_PER_TASK) -> BatchResult:
    """Runs on a worker: copy each item to a temporary name, then rename it into place. ``fs`` is the one
    instance this worker received (scattered once), so its clients, connections and token are reused by
    every task instead of being rebuilt per batch."""
    src_client = fs._client(*src)
    dst_client = fs._client(*dst)
    done = TransferStats()

    def one(item: CopyItem) -> None:
        done.add(files=1, nbytes=_copy_one(src_client, dst_client, item))

    run_bounded(one, items, threads)
    return BatchResult(done.files, done.bytes)


#: The copy sets the source's last write time through a float of seconds, which keeps about 0.2 µs of the
#: service's 100 ns ticks; a source changed since is newer by far more than this.
TIME_MATCH = 0.001


def _arrived_intact(dest: tuple[int, str], size: int, source_time: str) -> bool:
    src_t, dst_t = parse_time(source_time), parse_time(dest[1])
    return dest[0] == size and src_t is not None and dst_t is not None and abs(src_t - dst_t) <= TIME_MATCH


@dataclass
class DaskCopyReport:
    files: int = 0
    bytes: int = 0
    skipped: int = 0
    total_files: int = 0
    tasks: int = 0

    def to_json(self) -> dict[str, int]:
        return {"files": self.files, "bytes": self.bytes, "skipped": self.skipped,
                "total_files": self.total_files, "tasks": self.tasks}


def copy_tree_on_dask(
    fs: AzureFilesFileSystem,
    source: str,
    dest: str,
    scheduler: Any,
    *,
    batch_files: int = DEFAULT_BATCH,
    progress: Callable[[DaskCopyReport], None] | None = None,
    threads_per_task: int = THREADS_PER_TASK,
) -> DaskCopyReport:
    """Copy every file under ``source`` into ``dest`` (filesystem paths of ``fs``) on the Dask cluster at
    ``scheduler`` (an address, or a ``distributed.Client``). ``progress`` is called after each batch."""
    from distributed import Client, as_completed

    src_client, src_rel = fs._resolve(source)
    dst_client, dst_rel = fs._resolve(dest)
    tree = list_tree(src_client, src_rel)
    try:
        existing = {rel: (e.size or 0, e.last_write_time) for rel, e in list_tree(dst_client, dst_rel).files}
    except fe.NotFound:
        existing = {}
    report = DaskCopyReport(total_files=len(tree.files))
    items: list[CopyItem] = []
    for rel, entry in tree.files:
        known = existing.get(rel)
        if known is not None and _arrived_intact(known, entry.size or 0, entry.last_write_time):
            report.skipped += 1  # arrived intact in an earlier run: renamed into place only when complete
            continue
        items.append(CopyItem(entry.path, join_path(dst_rel, rel), entry.size or 0))
    if dst_rel:
        dst_client.mkdir(dst_rel, parents=True, exist_ok=True)
    # Parents before children, each depth's directories in parallel (one round trip per level, not per
    # directory: with 20 ms of latency, 20 directories cost 0.4 s one by one).
    levels: dict[int, list[str]] = {}
    for rel in tree.dirs:
        levels.setdefault(rel.count("/"), []).append(join_path(dst_rel, rel))
    for depth in sorted(levels):
        run_bounded(lambda d: dst_client.mkdir(d, exist_ok=True), levels[depth], fs.max_concurrency)
    batches = [items[i : i + batch_files] for i in range(0, len(items), max(1, batch_files))]
    report.tasks = len(batches)
    if progress is not None:
        progress(report)
    if not batches:
        return report
    own_client = not isinstance(scheduler, Client)
    client = Client(scheduler) if own_client else scheduler  # type: ignore[no-untyped-call]
    try:
        src_key = (src_client.account, src_client.share)
        dst_key = (dst_client.account, dst_client.share)
        # One copy of the filesystem per worker, shared by its tasks (see _copy_batch).
        [shipped] = client.scatter([fs], broadcast=True, hash=False)
        futures = [client.submit(_copy_batch, shipped, src_key, dst_key, batch, threads_per_task, pure=False)
                   for batch in batches]
        for future in as_completed(futures):  # type: ignore[no-untyped-call]
            result: BatchResult = future.result()
            report.files += result.files
            report.bytes += result.bytes
            if progress is not None:
                progress(report)
    finally:
        if own_client:
            client.close()
    return report
