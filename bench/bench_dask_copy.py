"""Cluster copy scaling: ``copy_tree_on_dask`` with 1 and with 4 Dask worker processes, over files in flight
per worker.

2,000 small files, 20 ms of latency injected on every Files request through the emulator's fault control
(so the copy is bound by round trips, as against a real region). Each worker authenticates itself.

For every number of files in flight per worker (``--threads``, default 1, 2 and 8) the copy runs on 1 and on
4 workers, so 4 workers always have 4 times the requests in flight, and the table reads off where the
speed-up holds and where CPU bounds it:

* the scheduler runs in a process of its own (``dask scheduler``) and the workers under ``dask worker``
  (one nanny and one worker process each, one task at a time), as on a real cluster, so that CPU seconds
  are measured apart for the caller, the scheduler, the workers (summed), their nannies and the emulator,
  over the copy alone; with the Files requests the copy made (the emulator's audit log);
* cluster start and the workers' warm-up (client, token) are timed apart from the copy;
* two ceilings: latency alone (files in flight / (requests per file x latency)) and CPU alone (every core
  of the machine given to the caller, scheduler, workers, nannies and emulator);
* the cluster runs with ``keyless.files.dask_copy.QUIET_CLUSTER_CONFIG`` (no worker profiler, Dask's
  timers at 1-2 s instead of 10-100 ms: an idle 4-worker cluster costs 0.04 cores instead of 0.31)
  unless ``--dask-defaults``;
* the machine's load average before and after, since other jobs share its cores.

    .venv/bin/python bench/bench_dask_copy.py [--files 2000] [--latency 0.02] [--threads 1,2,8]

Results: JSON (and a markdown table on stderr) on stdout and in ``bench/results/dask_copy.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import distributed

from keyless.files.dask_copy import QUIET_CLUSTER_CONFIG, copy_tree_on_dask, quiet_cluster_env
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


@contextlib.contextmanager
def _cluster(workers: int, tmp: Path, *, quiet: bool) -> Iterator[tuple[distributed.Client, int, float]]:
    """A scheduler process and ``workers`` worker processes (``dask worker --nworkers``, one thread each);
    yields the client, the scheduler's pid and the seconds the start took."""
    env = {**os.environ, **(quiet_cluster_env() if quiet else {})}
    dask = str(Path(sys.executable).with_name("dask"))
    scheduler_file = tmp / f"scheduler-{workers}.json"
    options = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    t0 = time.perf_counter()
    scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                  "--scheduler-file", str(scheduler_file)], **options)  # type: ignore[call-overload]
    worker_proc = None
    try:
        while not scheduler_file.exists():
            if scheduler.poll() is not None:
                raise RuntimeError("dask scheduler exited at start")
            time.sleep(0.05)
        worker_proc = subprocess.Popen([dask, "worker", "--scheduler-file", str(scheduler_file), "--nworkers",
                                        str(workers), "--nthreads", "1", "--no-dashboard",
                                        "--memory-limit", "0"], **options)  # type: ignore[call-overload]
        with distributed.Client(scheduler_file=str(scheduler_file)) as client:
            client.wait_for_workers(workers)
            yield client, scheduler.pid, time.perf_counter() - t0
            with contextlib.suppress(Exception):
                client.shutdown()
    finally:
        for proc in (worker_proc, scheduler):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
                if proc.poll() is None:
                    proc.kill()


def _run(emu: EmulatorProcess, fs: AzureFilesFileSystem, client: distributed.Client, scheduler_pid: int,
         workers: int, threads: int, batch: int, dest: str, latency: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    client.run(_warm, fs)
    warmup = time.perf_counter() - t0
    nanny_pids = list(client.run(os.getppid).values())

    def cpu() -> dict[str, float]:
        return {"caller": _own_cpu(), "scheduler": cpu_seconds(scheduler_pid),
                "workers": sum(client.run(_own_cpu).values()),
                "nannies": sum(cpu_seconds(pid) for pid in nanny_pids), "emulator": cpu_seconds(emu.proc.pid)}

    before, requests0, machine0 = cpu(), _audit_lines(emu), machine_cpu_seconds()
    t1 = time.perf_counter()
    report = copy_tree_on_dask(fs, f"{ROOT}/src", dest, client, batch_files=batch, threads_per_task=threads)
    wall = time.perf_counter() - t1
    machine = machine_cpu_seconds() - machine0
    after, requests = cpu(), _audit_lines(emu) - requests0
    spent = {k: after[k] - before[k] for k in before}
    files = max(1, report.files)
    return {
        "workers": workers, "files_in_flight_per_worker": threads, "files_per_task": batch,
        "files": report.files, "tasks": report.tasks, "worker_warmup_s": round(warmup, 2),
        "copy_wall_s": round(wall, 2), "files_per_s": round(report.files / wall, 1),
        "files_requests": requests, "requests_per_file": round(requests / files, 2),
        **{f"{k}_cpu_s": round(v, 2) for k, v in spent.items()},
        **{f"{k}_cpu_ms_per_file": round(1000 * v / files, 2) for k, v in spent.items()},
        "machine_busy_cores": round(machine / wall, 2),
        "latency_ceiling_files_per_s": round(workers * threads * files / max(1, requests) / latency, 1),
        "cpu_ceiling_files_per_s": round((os.cpu_count() or 1) * files / max(1e-9, sum(spent.values())), 1),
        "emulator_cpu_ms_per_request": round(1000 * spent["emulator"] / max(1, requests), 3),
    }


TIMES = "\u00d7"  # the table's multiplication sign


def _table(result: dict[str, Any]) -> str:
    rows = [f"| workers {TIMES} files in flight each | copy wall | files/s | vs 1 worker | latency ceiling | "
            "CPU ceiling | ms CPU per file: workers / nannies / scheduler / caller / emulator | "
            "machine busy |", "|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        ms = " / ".join(str(r[f"{k}_cpu_ms_per_file"])
                        for k in ("workers", "nannies", "scheduler", "caller", "emulator"))
        rows.append(f"| {r['workers']} {TIMES} {r['files_in_flight_per_worker']} | {r['copy_wall_s']} s | "
                    f"{r['files_per_s']} | {r['speedup_vs_1_worker']}{TIMES} | "
                    f"{r['latency_ceiling_files_per_s']} | "
                    f"{r['cpu_ceiling_files_per_s']} | {ms} | {r['machine_busy_cores']} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--threads", default="1,2,8", help="files in flight per worker, one run set each")
    parser.add_argument("--batch", type=int, default=50, help="files per task")
    parser.add_argument("--workers", default="1,4", help="worker counts to compare, the first is the base")
    parser.add_argument("--dask-defaults", action="store_true",
                        help="run the cluster with Dask's default timers and profiler")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    worker_counts = [int(n) for n in args.workers.split(",")]
    thread_counts = [int(n) for n in args.threads.split(",")]
    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []
    starts: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp, start_emulator(Path(tmp)) as emu:
        os.environ["KEYLESS_EMULATOR"] = str(emu.data_dir)  # inherited by the scheduler and workers
        fs = AzureFilesFileSystem(skip_instance_cache=True, max_concurrency=32)
        fs.pipe({f"{ROOT}/src/d{i % 20}/f{i}.txt": f"small {i}\n".encode() * 8 for i in range(args.files)})
        emu.set_faults([{"target": "files", "action": "delay", "seconds": args.latency}])
        for n in worker_counts:
            with _cluster(n, Path(tmp), quiet=not args.dask_defaults) as (client, scheduler_pid, started):
                starts[n] = round(started, 2)
                for t in thread_counts:
                    runs.append(_run(emu, fs, client, scheduler_pid, n, t, args.batch, f"{ROOT}/dst-{n}-{t}",
                                     args.latency))
                    print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    for r in runs:
        base = next(b for b in runs if b["workers"] == worker_counts[0]
                    and b["files_in_flight_per_worker"] == r["files_in_flight_per_worker"])
        r["speedup_vs_1_worker"] = round(base["copy_wall_s"] / r["copy_wall_s"], 2)
    result: dict[str, Any] = {
        "files": args.files, "latency_s": args.latency, "cpus": os.cpu_count(),
        "dask_config": {} if args.dask_defaults else QUIET_CLUSTER_CONFIG, "cluster_start_s": starts,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()], "runs": runs,
    }
    result["table"] = _table(result)
    print(result["table"], file=sys.stderr)
    print(json.dumps(result, indent=2))
    if not args.no_save:
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
