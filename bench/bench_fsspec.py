"""``azfiles://`` throughput vs ``keyless get``/``put``, in one run against one emulator process.

Every operation runs in its own process (so peak RSS is its own) with the same filesystem settings
(``max_concurrency`` 8, the default): keyless's transfers (``keyless.files.transfer.download_file`` and
``upload_file``, what ``keyless get``/``put`` run) and the fsspec paths on the same file:

* ``open().read()`` of the whole file, and a loop of ``read(1 MiB)`` (what ``shutil.copyfileobj`` and
  most readers do), ``cat_file``, ``get_file``;
* ``open("wb").write()`` of the whole file at once and in 1 MiB writes, ``pipe_file``, ``put_file``;
* ``pandas.read_parquet`` of a mid-size parquet file through ``azfiles://``, against the same file read
  from local disk (the cost of the storage, not of parquet decoding).

Each is timed inside its process around the operation alone (imports and the first token excluded), with
that process's CPU seconds (all threads) and the emulator's over the same interval. Note that ``keyless
get`` and ``get_file`` write a local file and ``fsync`` it, while ``open().read()`` and ``cat_file`` end in
memory. Downloads are checked
byte for byte (outside the timing). No adlfs-like baseline exists for Azure Files (adlfs speaks Blob).

    .venv/bin/python bench/bench_fsspec.py [--size-mib 256] [--repeats 2]

Results: a table on stdout and ``bench/results/fsspec.json`` (best of ``--repeats`` rounds, each round
running every operation once; ratios against ``keyless get``/``put`` of the same run).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "fsspec.json"
MIB = 1024 * 1024
ROOT = "devaccount/demo/bench-fsspec"

READS = ["keyless get", "open().read()", "open().read(1 MiB) loop", "cat_file", "get_file"]
WRITES = ["keyless put", "open('wb').write(all)", "open('wb').write(1 MiB) loop", "pipe_file", "put_file"]
PARQUET = ["read_parquet local", "read_parquet azfiles"]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# --- the child: one operation ------------------------------------------------------------------------------


def child(op: str, work: Path, emulator_pid: int) -> dict[str, Any]:
    from keyless.files import transfer
    from keyless.fsspec import AzureFilesFileSystem

    fs = AzureFilesFileSystem(skip_instance_cache=True)
    client, rel = fs._resolve(f"{ROOT}/big.bin")
    client.properties(rel)  # the token and a connection: not part of any measurement
    local, out = work / "big.bin", work / f"out-{os.getpid()}.bin"
    remote_out = f"{ROOT}/out-{os.getpid()}.bin"
    # The bytes in memory only for the operations that take bytes (not for the uploads of a local file).
    data = local.read_bytes() if op in WRITES and op not in ("keyless put", "put_file") else b""
    got = b""
    checked = ""
    t0, c0, e0 = time.perf_counter(), _own_cpu(), cpu_seconds(emulator_pid)
    if op == "keyless get":
        transfer.download_file(client, rel, out)
    elif op == "open().read()":
        with fs.open(f"{ROOT}/big.bin", "rb") as f:
            got = f.read()
    elif op == "open().read(1 MiB) loop":
        with fs.open(f"{ROOT}/big.bin", "rb") as f, out.open("wb") as sink:
            shutil.copyfileobj(f, sink, MIB)
    elif op == "cat_file":
        got = fs.cat_file(f"{ROOT}/big.bin")
    elif op == "get_file":
        fs.get_file(f"{ROOT}/big.bin", str(out))
    elif op == "keyless put":
        transfer.upload_file(client, local, f"{rel.rpartition('/')[0]}/{Path(remote_out).name}")
    elif op == "open('wb').write(all)":
        with fs.open(remote_out, "wb") as f:
            f.write(data)
    elif op == "open('wb').write(1 MiB) loop":
        with fs.open(remote_out, "wb") as f:
            for i in range(0, len(data), MIB):
                f.write(data[i : i + MIB])
    elif op == "pipe_file":
        fs.pipe_file(remote_out, data)
    elif op == "put_file":
        fs.put_file(str(local), remote_out)
    elif op == "read_parquet local":
        import pandas as pd

        rows = len(pd.read_parquet(work / "mid.parquet"))
    elif op == "read_parquet azfiles":
        import pandas as pd

        rows = len(pd.read_parquet(f"azfiles://{ROOT}/mid.parquet"))
    else:
        raise SystemExit(f"unknown op {op}")
    seconds = time.perf_counter() - t0
    cpu, emu = _own_cpu() - c0, cpu_seconds(emulator_pid) - e0
    # Checks, outside the timing.
    if op in READS:
        checked = digest(got) if got else file_digest(out)
    elif op in WRITES:
        del data
        fs.get_file(remote_out, str(out))
        checked = file_digest(out)
        fs.rm_file(remote_out)
    else:
        checked = str(rows)
    out.unlink(missing_ok=True)
    # The peak RSS of this process since exec (ru_maxrss of a child also counts the parent it forked from).
    status = Path("/proc/self/status").read_text()
    peak_kib = int(status.split("VmHWM:", 1)[1].split()[0])
    return {"seconds": seconds, "cpu_s": cpu, "emulator_cpu_s": emu, "check": checked,
            "peak_rss_mib": peak_kib / 1024}


# --- the parent --------------------------------------------------------------------------------------------


def run_op(op: str, work: Path, emulator_pid: int) -> dict[str, Any]:
    """One operation in its own process: its measurements and its own peak RSS."""
    cmd = [sys.executable, __file__, "--child", op, "--work", str(work), "--emulator-pid", str(emulator_pid)]
    os.sync()  # the last operation's dirty pages (a 256 MiB download) are not written back during this
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        proc.stdout.close()
        proc.wait()
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{op} failed:\n{err.read().decode(errors='replace')[-3000:]}")
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--parquet-rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child")
    parser.add_argument("--work")
    parser.add_argument("--emulator-pid", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.work), args.emulator_pid)))
        return

    import numpy as np
    import pandas as pd

    from keyless.fsspec import AzureFilesFileSystem
    from keyless.testing import start_emulator

    with tempfile.TemporaryDirectory() as tmp, start_emulator(Path(tmp)) as emu:
        os.environ["KEYLESS_EMULATOR"] = str(emu.data_dir)
        assert emu.proc is not None
        work = Path(tmp) / "work"
        work.mkdir()
        big = os.urandom(args.size_mib * MIB)
        (work / "big.bin").write_bytes(big)
        expected = digest(big)
        del big
        rng = np.random.default_rng(0)
        frame = pd.DataFrame({"k": rng.integers(0, 1000, args.parquet_rows),
                              "v": rng.random(args.parquet_rows),
                              "s": rng.integers(0, 1 << 40, args.parquet_rows).astype(str)})
        frame.to_parquet(work / "mid.parquet", row_group_size=250_000)
        fs = AzureFilesFileSystem(skip_instance_cache=True)
        fs.put_file(str(work / "big.bin"), f"{ROOT}/big.bin")
        fs.put_file(str(work / "mid.parquet"), f"{ROOT}/mid.parquet")
        results: dict[str, Any] = {}
        # Round robin (every operation once, then again): a load that changes during the run touches
        # every operation alike instead of whichever ran at that moment.
        rounds = [{op: run_op(op, work, emu.proc.pid) for op in READS + WRITES + PARQUET}
                  for _ in range(args.repeats)]
        for op in READS + WRITES + PARQUET:
            best = min((r[op] for r in rounds), key=lambda r: float(r["seconds"]))
            if op in READS + WRITES and best["check"] != expected:
                raise SystemExit(f"{op}: the bytes differ from the source")
            if op in PARQUET and best["check"] != str(args.parquet_rows):
                raise SystemExit(f"{op}: read {best['check']} rows")
            results[op] = best
        size = args.size_mib * MIB
        for group, base in ((READS, "keyless get"), (WRITES, "keyless put")):
            for op in group:
                r = results[op]
                r["mib_s"] = round(size / MIB / r["seconds"], 1)
                r["vs_" + base.replace(" ", "_")] = round(results[base]["seconds"] / r["seconds"], 2)
        parquet_mib = (work / "mid.parquet").stat().st_size / MIB
        results["read_parquet azfiles"]["vs_local"] = round(
            results["read_parquet local"]["seconds"] / results["read_parquet azfiles"]["seconds"], 2)
    rounded = {op: {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k != "check"}
               for op, r in results.items()}
    doc = {"size_mib": args.size_mib, "parquet_mib": round(parquet_mib, 1), "parquet_rows": args.parquet_rows,
           "cpus": os.cpu_count(), "repeats": args.repeats, "results": rounded}
    print(f"{'operation':32} {'s':>7} {'MiB/s':>7} {'ratio':>6} {'cpu s':>6} {'emu s':>6} {'RSS':>6}")
    for op, r in doc["results"].items():
        ratio = r.get("vs_keyless_get", r.get("vs_keyless_put", r.get("vs_local", "")))
        print(f"{op:32} {r['seconds']:7.2f} {r.get('mib_s', ''):>7} {ratio:>6} {r['cpu_s']:6.2f} "
              f"{r['emulator_cpu_s']:6.2f} {r['peak_rss_mib']:6.0f}")
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
