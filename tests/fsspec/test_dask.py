"""Dask on ``azfiles://`` with worker processes: dataframes (CSV, parquet) and the cluster copy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from keyless.fsspec import AzureFilesFileSystem
from keyless.testing import EmulatorProcess

pytestmark = pytest.mark.slow
pytest.importorskip("distributed")


def test_dask_on_a_process_cluster(emulator: EmulatorProcess, azfs: AzureFilesFileSystem, root: str) -> None:
    scenario = Path(__file__).with_name("dask_scenario.py")
    out = subprocess.run([sys.executable, str(scenario), str(emulator.data_dir), root],
                         capture_output=True, text=True, timeout=110, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    # Every worker is its own process and reads with the shipped filesystem, authenticating itself.
    assert len(facts["worker_pids"]) == 2 and facts["client_pid"] not in facts["worker_pids"]
    assert facts["worker_reads"] == ["abc", "abc"]
    assert all(who and who != "SharedKey" for who in facts["worker_identities"])
    # Dataframes round-trip.
    assert facts["csv_partitions"] == 3 and facts["csv_sum"] == sum(range(3000))
    assert facts["parquet_equal"] and facts["parquet_count"] == 3000
    # The cluster copy: split into tasks, progress after each, and a rerun sends only what is missing.
    assert facts["first"] == {"files": 60, "bytes": facts["first"]["bytes"], "skipped": 0,
                              "total_files": 60, "tasks": 6}
    assert facts["progress"] == sorted(facts["progress"]) and facts["progress"][-1] == 60
    assert facts["copied_equal"]
    assert (facts["second"]["files"], facts["second"]["skipped"]) == (3, 57)
    assert facts["restored"] and facts["changed"] == "changed since"
    leftovers = [p for p in azfs.find(root) if p.endswith(".keyless-part") and "dead" not in p]
    assert not leftovers
