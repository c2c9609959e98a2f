"""Emulator throughput: small HEAD and GET requests over HTTPS keep-alive with parallel clients.

Runs a real emulator process, authenticates with a real bearer token from its IMDS (so every request
pays for authentication, RBAC, the store and the audit line, as in the tests), and drives it with
``wrk`` (Debian package ``wrk``: a C load generator, so the client does not steal the measurement)
or, without wrk, with Python client processes. Also reports the emulator's CPU use during each run,
which says what limits it: near 100% of one core means the single asyncio loop is the bound.

    .venv/bin/python bench/bench_emulator.py [--seconds 8] [--connections 16]

``--uploads N`` measures instead what one small-file upload costs the emulator: keyless uploads N files
of 8 KiB (three Files requests each: Create File of the hidden part file, Put Range with a CRC64
structured body, the rename onto the name) to a fresh emulator whose fault control delays every Files
request by ``--latency`` seconds, as ``bench_latency.py`` does, and the emulator's CPU seconds per 1,000
uploads are reported (``--repeats`` runs, each on a fresh emulator; the median and every run). CPU
seconds, not wall time, because other processes share the cores.

    .venv/bin/python bench/bench_emulator.py --uploads 1000 [--latency 0.02] [--repeats 3]

Writes bench/results/emulator.json (throughput) or bench/results/emulator_uploads.json (uploads).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import urllib3

from keyless.testing import EmulatorProcess, start_emulator

RESULTS = Path(__file__).parent / "results"


def token_for(emu: EmulatorProcess) -> str:
    resp = urllib3.request(
        "GET", f"{emu.imds_url}/metadata/identity/oauth2/token",
        fields={"api-version": "2018-02-01", "resource": "https://storage.azure.com/"},
        headers={"Metadata": "true"},
    )
    return str(json.loads(resp.data)["access_token"])


def headers_for(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "x-ms-file-request-intent": "backup",
            "x-ms-version": "2025-05-05", "x-ms-date": formatdate(usegmt=True)}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, method: str, headers: dict[str, str], seconds: int, connections: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "{method}"\n')
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", script.name]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)
    non2xx = [line for line in out.splitlines() if "Non-2xx" in line]
    if non2xx:
        raise RuntimeError(f"wrk saw errors: {non2xx[0]}")
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(f"unexpected wrk output: {out}")


def _python_client(args: tuple[str, str, dict[str, str], float, str]) -> int:
    url, method, headers, until, ca = args
    http = urllib3.PoolManager(ca_certs=ca, maxsize=1)
    done = 0
    while time.time() < until:
        resp = http.request(method, url, headers=headers, preload_content=True)
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}")
        done += 1
    return done


def run_python(url: str, method: str, headers: dict[str, str], seconds: int, connections: int,
               ca: str) -> float:
    until = time.time() + seconds
    with multiprocessing.Pool(connections) as pool:
        counts = pool.map(_python_client, [(url, method, headers, until, ca)] * connections)
    return sum(counts) / seconds


def upload_cpu(files: int, latency: float) -> dict[str, float]:
    """One fresh emulator, keyless uploads ``files`` small files in a child process: the emulator's CPU
    seconds and the wall time of the upload."""
    sys.path.insert(0, str(Path(__file__).parent))
    import bench_files as bf  # the world, the keyless worker and the measured run, shared with it

    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small"
        small.mkdir()
        for i in range(files):
            (small / f"f{i:04d}.bin").write_bytes(os.urandom(bf.SMALL_SIZE))
        with start_emulator(Path(tmp), bf.WORLD, name="emu") as emu:
            if latency:
                emu.set_faults([{"target": "files", "action": "delay", "seconds": latency}])
            bf.EMULATOR_PID = int(emu.info["pid"])
            cmd = [sys.executable, bf.__file__, "--worker", "keyless", "--op", "up-tree",
                   "--info", str(emu.data_dir / "emulator.json"), "--local", str(small), "--remote", "up"]
            run = bf.run_once(cmd)
    return {"emulator_cpu_s": run["emulator_cpu_s"], "seconds": run["seconds"]}


def uploads(files: int, latency: float, repeats: int) -> None:
    load = os.getloadavg()
    runs = [upload_cpu(files, latency) for _ in range(repeats)]
    per_1000 = sorted(r["emulator_cpu_s"] * 1000 / files for r in runs)
    result = {"files": files, "latency_s": latency, "load_at_start": [round(x, 2) for x in load],
              "emulator_cpu_s_per_1000_uploads_median": round(per_1000[len(per_1000) // 2], 2),
              "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "emulator_uploads.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"emulator CPU per 1,000 uploads of 8 KiB ({files} files, {latency * 1000:g} ms injected latency, "
          f"load {load[0]:.2f}): median {result['emulator_cpu_s_per_1000_uploads_median']} s; runs: "
          + ", ".join(f"{x:.2f}" for x in per_1000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--uploads", type=int, default=0, help="measure N small-file uploads instead")
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.uploads:
        uploads(args.uploads, args.latency, args.repeats)
        return
    use_wrk = shutil.which("wrk") is not None
    results: dict[str, Any] = {"connections": args.connections,
                               "seconds": args.seconds, "cores": os.cpu_count(), "runs": {}}
    with tempfile.TemporaryDirectory() as tmp, start_emulator(Path(tmp)) as emu:
        headers = headers_for(token_for(emu))
        http = urllib3.PoolManager(ca_certs=emu.ca_cert)
        url = f"{emu.account()['url']}/demo/bench-small.txt"
        create = http.request("PUT", url,
                              headers={**headers, "x-ms-type": "file", "x-ms-content-length": "512"})
        assert create.status == 201, create.data
        write = http.request("PUT", url + "?comp=range", body=os.urandom(512),
                             headers={**headers, "x-ms-range": "bytes=0-511", "x-ms-write": "update"})
        assert write.status == 201, write.data
        assert emu.proc is not None
        for method in ("HEAD", "GET"):
            cpu_before, wall_before = cpu_seconds(emu.proc.pid), time.monotonic()
            # wrk's parser waits for a body after a HEAD reply that carries Content-Length, so HEAD
            # is driven by Python client processes (they share the 2 cores: a lower bound).
            client = "wrk" if use_wrk and method != "HEAD" else "python"
            if client == "wrk":
                rps = run_wrk(url, method, headers, args.seconds, args.connections)
            else:
                rps = run_python(url, method, headers, args.seconds, min(args.connections, 4), emu.ca_cert)
            cpu = (cpu_seconds(emu.proc.pid) - cpu_before) / (time.monotonic() - wall_before)
            results["runs"][method] = {"requests_per_second": round(rps), "emulator_cpu_cores": round(cpu, 2),
                                       "client": client}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "emulator.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"emulator throughput (keep-alive HTTPS, {args.seconds}s each, {results['cores']} cores)")
    print(f"{'request':8} {'client':8} {'req/s':>8} {'emulator CPU (cores)':>22}")
    for method, run in results["runs"].items():
        print(f"{method:8} {run['client']:8} {run['requests_per_second']:>8} {run['emulator_cpu_cores']:>22}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
