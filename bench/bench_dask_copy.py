"""Cluster copy scaling: ``copy_tree_on_dask`` with 1 and with 4 Dask worker processes.

2,000 small files, 20 ms of latency injected on every Files request through the emulator's fault control
(so the copy is bound by round trips, as against a real region). Each worker authenticates itself.

The measurement is made fair and its parts are reported separately:

* every worker copies the same number of files at once (``--threads``, files in flight per worker), for
  1 worker and for 4, so 4 workers have 4 times the requests in flight, not a different setting;
* cluster start (spawning processes, importing keyless) and the workers' warm-up (building the client,
  fetching a token) are timed apart from the copy, which is timed alone;
* CPU seconds of the caller, of the workers (summed) and of the emulator process during the copy, and the
  Files requests the copy made (from the emulator's audit log), so the bound can be read off: when the
  emulator's CPU seconds approach the wall time, its single event loop is the limit, not keyless.

The run is repeated at a per-worker concurrency where latency dominates (``--latency-bound-threads``,
default 2): there one worker cannot keep the emulator busy, and 4 workers show how far the copy scales
when only round trips limit it.

    .venv/bin/python bench/bench_dask_copy.py [--files 2000] [--latency 0.02] [--threads 8]

Results: JSON on stdout and in ``bench/results/dask_copy.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import distributed

from keyless.files.dask_copy import copy_tree_on_dask
from keyless.fsspec import AzureFilesFileSystem
from keyless.testing import EmulatorProcess, start_emulator

ROOT = "devaccount/demo/bench-dask"
RESULTS = Path(__file__).resolve().parent / "results" / "dask_copy.json"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU seconds every process on the machine has used (``/proc/stat``): over an interval, divided by
    the wall time, the cores that were busy. Near the core count, CPU is the bound, whoever spends it."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    busy = sum(int(v) for i, v in enumerate(fields) if i not in (3, 4))  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _warm(fs: AzureFilesFileSystem) -> str:
    """On a worker: build the share client and fetch this process's token, as a first task would."""
    fs.ls(ROOT.split("/", 1)[0] + "/demo")
    return fs.whoami()


def _audit_lines(emu: EmulatorProcess) -> int:
    with open(emu.emulator_info.audit_log, "rb") as f:
        return sum(1 for line in f if b'"StorageFileLogs"' in line)


def _run(emu: EmulatorProcess, fs: AzureFilesFileSystem, workers: int, threads: int, batch: int,
         dest: str, latency: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    try:
        with distributed.Client(cluster) as client:
            client.wait_for_workers(workers)
            started = time.perf_counter()
            client.run(_warm, fs)
            warmed = time.perf_counter()
            workers_cpu0 = sum(client.run(_own_cpu).values())
            emu_cpu0, caller_cpu0, requests0 = cpu_seconds(emu.proc.pid), _own_cpu(), _audit_lines(emu)
            machine0 = machine_cpu_seconds()
            t1 = time.perf_counter()
            report = copy_tree_on_dask(fs, f"{ROOT}/src", dest, client, batch_files=batch,
                                       threads_per_task=threads)
            wall = time.perf_counter() - t1
            machine = machine_cpu_seconds() - machine0
            emu_cpu = cpu_seconds(emu.proc.pid) - emu_cpu0
            caller_cpu = _own_cpu() - caller_cpu0
            workers_cpu = sum(client.run(_own_cpu).values()) - workers_cpu0
            requests = _audit_lines(emu) - requests0
    finally:
        cluster.close()
    return {
        "workers": workers, "files_in_flight_per_worker": threads, "files_per_task": batch,
        "files": report.files, "tasks": report.tasks,
        "cluster_start_s": round(started - t0, 2), "worker_warmup_s": round(warmed - started, 2),
        "copy_wall_s": round(wall, 2), "files_per_s": round(report.files / wall, 1),
        "files_requests": requests, "requests_per_file": round(requests / max(1, report.files), 2),
        "caller_cpu_s": round(caller_cpu, 2), "workers_cpu_s": round(workers_cpu, 2),
        "emulator_cpu_s": round(emu_cpu, 2), "emulator_cpu_per_wall": round(emu_cpu / wall, 2),
        "machine_busy_cores": round(machine / wall, 2),
        "workers_cpu_ms_per_file": round(1000 * workers_cpu / max(1, report.files), 2),
        # The two ceilings: round trips alone (files in flight / (requests per file x latency)), and CPU
        # alone (every core of the machine spent on this copy: caller, workers and emulator).
        "latency_ceiling_files_per_s": round(workers * threads * report.files / max(1, requests) / latency,
                                             1),
        "cpu_ceiling_files_per_s": round((os.cpu_count() or 1) * report.files
                                         / max(1e-9, caller_cpu + workers_cpu + emu_cpu), 1),
        "emulator_cpu_ms_per_request": round(1000 * emu_cpu / max(1, requests), 3),
    }


def _pair(emu: EmulatorProcess, fs: AzureFilesFileSystem, threads: int, batch: int, tag: str,
          worker_counts: list[int], latency: float) -> dict[str, Any]:
    runs = [_run(emu, fs, n, threads, batch, f"{ROOT}/dst-{tag}-{n}", latency) for n in worker_counts]
    base = runs[0]["copy_wall_s"]
    return {"files_in_flight_per_worker": threads, "runs": runs,
            "speedup_vs_first": [round(base / r["copy_wall_s"], 2) for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--threads", type=int, default=8, help="files in flight per worker")
    parser.add_argument("--latency-bound-threads", type=int, default=2,
                        help="a second pair of runs at this per-worker concurrency (0: skip)")
    parser.add_argument("--batch", type=int, default=50, help="files per task")
    parser.add_argument("--workers", default="1,4", help="worker counts to compare, the first is the base")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    worker_counts = [int(n) for n in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp, start_emulator(Path(tmp)) as emu:
        os.environ["KEYLESS_EMULATOR"] = str(emu.data_dir)
        fs = AzureFilesFileSystem(skip_instance_cache=True, max_concurrency=32)
        fs.pipe({f"{ROOT}/src/d{i % 20}/f{i}.txt": f"small {i}\n".encode() * 8 for i in range(args.files)})
        emu.set_faults([{"target": "files", "action": "delay", "seconds": args.latency}])
        result: dict[str, Any] = {
            "files": args.files, "latency_s": args.latency, "cpus": os.cpu_count(),
            "default": _pair(emu, fs, args.threads, args.batch, "default", worker_counts, args.latency),
        }
        if args.latency_bound_threads:
            result["latency_bound"] = _pair(emu, fs, args.latency_bound_threads, args.batch, "latency",
                                            worker_counts, args.latency)
    print(json.dumps(result, indent=2))
    if not args.no_save:
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
