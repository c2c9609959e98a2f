"""The cluster copy's splitting, progress and resume, on an in-process Dask cluster (fast; the worker
processes and their own authentication are covered by test_dask.py and bench/bench_dask_copy.py)."""

from __future__ import annotations

import pytest

from keyless.files.dask_copy import copy_tree_on_dask
from keyless.files.parts import PART_SUFFIX
from keyless.fsspec import AzureFilesFileSystem
from keyless.testing import EmulatorProcess

from .conftest import ACCOUNT

pytestmark = pytest.mark.slow
distributed = pytest.importorskip("distributed")


def test_cluster_copy_splits_reports_and_resumes(azfs: AzureFilesFileSystem, root: str) -> None:
    files = {f"{root}/src/d{i % 4}/f{i}.txt": f"file {i}".encode() * (i + 1) for i in range(40)}
    azfs.pipe(files)
    fs = AzureFilesFileSystem(skip_instance_cache=True)  # account/share/path form
    src, dst = f"{ACCOUNT}/{root}/src", f"{ACCOUNT}/{root}/dst"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        seen: list[int] = []
        report = copy_tree_on_dask(fs, src, dst, client, batch_files=10,
                                   progress=lambda r: seen.append(r.files))
        assert (report.files, report.skipped, report.tasks) == (40, 0, 4)
        assert seen == sorted(seen) and seen[-1] == 40 and len(seen) == 5
        for path, data in files.items():
            assert azfs.cat_file(path.replace("/src/", "/dst/")) == data

        # An interrupted run: files lost, a half-written temporary left behind, a source changed since.
        azfs.rm([f"{root}/dst/d0/f0.txt", f"{root}/dst/d1/f5.txt"])
        azfs.pipe_file(f"{root}/dst/d2/.f6.txt.dead{PART_SUFFIX}", b"partial")
        azfs.pipe_file(f"{root}/src/d3/f7.txt", b"changed since")
        report = copy_tree_on_dask(fs, src, dst, cluster.scheduler_address, batch_files=10)
        assert (report.files, report.skipped) == (3, 37)
        assert azfs.cat_file(f"{root}/dst/d0/f0.txt") == files[f"{root}/src/d0/f0.txt"]
        assert azfs.cat_file(f"{root}/dst/d3/f7.txt") == b"changed since"
        again = copy_tree_on_dask(fs, src, dst, client, batch_files=10)
        assert (again.files, again.skipped, again.tasks) == (0, 40, 0)


def test_a_small_file_costs_four_requests_and_keeps_its_properties(
    azfs: AzureFilesFileSystem, root: str, emulator: EmulatorProcess
) -> None:
    client, rel = azfs._resolve(f"{root}/src/typed.csv")
    client.create_file(rel, 5, content_type="text/csv", metadata={"owner": "ana"}, parents=True)
    client.put_range(rel, 0, b"a,b\n1")
    azfs.pipe({f"{root}/src/zeros.bin": bytes(64), f"{root}/src/empty": b""})
    fs = AzureFilesFileSystem(skip_instance_cache=True)
    src, dst = f"{ACCOUNT}/{root}/src", f"{ACCOUNT}/{root}/dst"
    mark = len(emulator.audit("StorageFileLogs"))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as dask:
        report = copy_tree_on_dask(fs, src, dst, dask)
    assert report.files == 3
    rows = emulator.audit("StorageFileLogs")[mark:]
    typed = [r["OperationName"] for r in rows if "typed.csv" in r["Uri"]]
    # Read with its properties in one Get File; no Get File Properties, no ETag checks, one rename.
    assert sorted(typed) == ["CreateFile", "GetFile", "PutRange", "RenameFile"], typed
    zeros = [r["OperationName"] for r in rows if "zeros.bin" in r["Uri"]]
    assert "PutRange" not in zeros  # a new file is zero-filled already
    props = azfs.info(f"{root}/dst/typed.csv")
    assert (props["content_type"], props["metadata"]) == ("text/csv", {"owner": "ana"})
    assert azfs.modified(f"{root}/dst/typed.csv") == azfs.modified(f"{root}/src/typed.csv")
    assert azfs.cat_file(f"{root}/dst/typed.csv") == b"a,b\n1"
    assert azfs.cat_file(f"{root}/dst/zeros.bin") == bytes(64)
    assert azfs.cat_file(f"{root}/dst/empty") == b""
    assert not [p for p in azfs.find(root) if p.endswith(PART_SUFFIX)]


def test_the_quiet_cluster_settings_are_dasks_own_keys_and_reach_it_through_the_environment() -> None:
    import dask.config

    from keyless.files.dask_copy import QUIET_CLUSTER_CONFIG, quiet_cluster_env

    from_env = dask.config.collect_env(quiet_cluster_env())
    for key, value in QUIET_CLUSTER_CONFIG.items():
        dask.config.get(key)  # a key Dask defines (a misspelt one would be silently ignored by Dask)
        with dask.config.set(from_env):
            assert dask.config.get(key) == value, key
