"""Cluster copy scaling: ``copy_tree_on_dask`` with 1 and with 4 Dask worker processes.

2,000 small files, 20 ms of latency injected on every Files request through the emulator's fault control
(so the copy is bound by round trips, as against a real region). Each worker authenticates itself.

    .venv/bin/python bench/bench_dask_copy.py [--files 2000] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import distributed

from keyless.files.dask_copy import copy_tree_on_dask
from keyless.fsspec import AzureFilesFileSystem
from keyless.testing import start_emulator

ROOT = "devaccount/demo/bench-dask"


def _run(fs: AzureFilesFileSystem, workers: int, dest: str) -> dict[str, float]:
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    try:
        with distributed.Client(cluster) as client:
            t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
            report = copy_tree_on_dask(fs, f"{ROOT}/src", dest, client, batch_files=25)
            wall = time.perf_counter() - t0
            cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - c0
    finally:
        cluster.close()
    return {"workers": workers, "files": report.files, "wall_s": round(wall, 2),
            "files_per_s": round(report.files / wall, 1), "caller_cpu_s": round(cpu, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, start_emulator(Path(tmp)) as emu:
        os.environ["KEYLESS_EMULATOR"] = str(emu.data_dir)
        fs = AzureFilesFileSystem(skip_instance_cache=True, max_concurrency=32)
        fs.pipe({f"{ROOT}/src/d{i % 20}/f{i}.txt": f"small {i}\n".encode() * 8 for i in range(args.files)})
        emu.set_faults([{"target": "files", "action": "delay", "seconds": args.latency}])
        one = _run(fs, 1, f"{ROOT}/dst1")
        four = _run(fs, 4, f"{ROOT}/dst4")
        result = {"files": args.files, "latency_s": args.latency, "runs": [one, four],
                  "speedup_4_vs_1": round(one["wall_s"] / four["wall_s"], 2)}
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
