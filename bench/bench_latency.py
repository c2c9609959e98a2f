"""Small-file uploads with 20 ms of latency on every Files request: keyless vs the SDK vs AzCopy.

1,000 files of 8 KiB up, against one emulator process whose fault control delays every Files request by
``--latency`` seconds (as a real region's round trip would), each tool in its own process:

* keyless with its default concurrency (chosen from the measured round trip, ``keyless.files.tuning``),
  and with ``concurrency=8`` to show what the rule adds;
* the official SDK, 8 files at a time (it has no tree upload);
* AzCopy with its own defaults.

    .venv/bin/python bench/bench_latency.py [--latency 0.02] [--files 1000] [--azcopy PATH]

Reported: files/s, wall and CPU seconds of the client and of the emulator (when the emulator's CPU comes
close to the wall time, the single-threaded emulator is the bound, not the client), and keyless's files/s
as ratios to the others, all from one run. Results: stdout and ``bench/results/latency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_files as bf

RESULTS = bf.HERE / "results" / "latency.json"


def main() -> int:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--azcopy", default=None, help="path of an azcopy binary (default: npm package)")
    args = parser.parse_args()
    from keyless.testing import start_emulator

    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="keyless-latency-"))
    runs: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    try:
        small = work / "small"
        small.mkdir()
        for i in range(args.files):
            (small / f"f{i:04d}.bin").write_bytes(os.urandom(bf.SMALL_SIZE))
        azcopy, note = bf.find_azcopy(args.azcopy)
        notes.append(f"azcopy: {note}")
        with start_emulator(work, bf.WORLD, name="emu") as emu:
            bf.EMULATOR_PID = int(emu.info["pid"])
            bf.REPEATS = 1  # a latency run is long and steady; one is enough
            info_path = str(emu.data_dir / "emulator.json")
            share_url = f"{emu.files_url}/{bf.ACCOUNT}/{bf.SHARE}"
            emu.set_faults([{"target": "files", "action": "delay", "seconds": args.latency}])

            def py(tool: str, remote: str, *extra: str) -> dict[str, Any]:
                cmd = [sys.executable, bf.__file__, "--worker", tool, "--op", "up-tree", "--info", info_path]
                return bf.run_measured([*cmd, "--local", str(small), "--remote", remote, *extra])

            runs["keyless (auto)"] = py("keyless", "k-auto")
            runs["keyless (8)"] = py("keyless", "k-8", "--concurrency", "8")
            runs["sdk (8 threads)"] = py("sdk", "sdk")
            if azcopy is not None:
                cmd = [str(azcopy), "copy", str(small), f"{share_url}/azcopy", "--from-to", "LocalFile",
                       "--recursive", "--log-level", "ERROR", "--output-level", "quiet",
                       "--trusted-microsoft-suffixes", emu.files_url.removeprefix("https://")]
                runs["azcopy"] = bf.run_measured(cmd, env=bf.azcopy_env(emu.info, work))
            emu.set_faults([])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in runs.values():
        row["files_s"] = args.files / row["seconds"]
    mine = runs["keyless (auto)"]["files_s"]
    ratios = {name: mine / row["files_s"] for name, row in runs.items() if name != "keyless (auto)"}
    result = {"latency_s": args.latency, "files": args.files, "file_size": bf.SMALL_SIZE, "runs": runs,
              "keyless_auto_files_s_ratio_vs": ratios, "load_average_at_start": load, "notes": notes,
              "cpus": os.cpu_count(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(f"{'tool':<18}{'files/s':>9}{'seconds':>9}{'client cpu s':>14}{'emu cpu s':>11}{'auto/this':>11}")
    for name, row in runs.items():
        ratio = f"{ratios[name]:.2f}x" if name in ratios else ""
        print(f"{name:<18}{row['files_s']:>9.0f}{row['seconds']:>9.2f}{row['client_cpu_s']:>14.2f}"
              f"{row['emulator_cpu_s']:>11.2f}{ratio:>11}")
    print(f"latency {args.latency * 1000:.0f} ms per request; load average at start {load}")
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
