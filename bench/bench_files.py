"""keyless vs the official SDK vs AzCopy, in one run against one emulator process.

Workloads: one 256 MiB file up and down, 1,000 files of 8 KiB up and down, and (keyless only, for the
issue's memory bound) one 1 GiB file up and down. Every transfer runs in its own process; the parent reads
that process's peak RSS from ``os.wait4`` (the per-child form of ``getrusage(RUSAGE_CHILDREN)``) and times
it wall-clock, start-up included, which is what a user of each tool waits for. Downloads are checked
byte for byte against the source, outside the timing.

All three authenticate with a user-assigned managed identity through the emulator's token endpoints:
keyless and the SDK through IMDS (``AZURE_POD_IDENTITY_AUTHORITY_HOST`` for azure-identity), AzCopy
through the App Service endpoint (``AZCOPY_AUTO_LOGIN_TYPE=MSI``; Go's azidentity has no IMDS host
override, but honours ``IDENTITY_ENDPOINT``/``IDENTITY_HEADER``), trusting the emulator's CA via
``SSL_CERT_FILE`` and allowed to send its token to the emulator with ``--trusted-microsoft-suffixes``.

    .venv/bin/python bench/bench_files.py [--skip-1gib] [--azcopy PATH]

Each measurement is the best of two runs. The table also shows the CPU seconds of the tool's process and of
the emulator during the run: when the emulator's CPU time is close to the wall time, the single-threaded
emulator is the bound, not the client. Results: a table on stdout and ``bench/results/files.json``.

Downloads meet the same memory state, whichever tool runs first: on a VM, the first writes into memory the
guest has not touched (or has handed back to the host since, through the balloon's free page reporting)
cost the host's page allocation, 0.12-0.46 s of the client's system time per 256 MiB measured, which the
first tool to download would pay alone. So before every download run the previous run's output is deleted
(its page-cache pages freed), the dirty pages of the run before are written out (``os.sync``, so no tool
shares the disk with another's write-back), and the parent writes into as much memory as the download will
fill and frees it, just before the tool starts (:func:`fresh_destination`). All of it outside the timing.

Client CPU per GiB and per 1,000 files is the *marginal* cost: each tool also moves one empty file and an
empty directory (same process start, imports, token, connection), and ``(CPU for the data - CPU for
nothing) / amount`` leaves the start-up out; the whole-process numbers are in the table too. keyless runs
with its default concurrency (chosen from the measured latency: 8 against a local emulator), checking
every range by CRC64; the SDK runs with its defaults (no transactional checksum), 8 at a time; AzCopy with
its own defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "files.json"
AZCOPY_CACHE = HERE.parent / ".cache" / "azcopy"  # shared with the tests (scripts/install.sh)
AZCOPY_PACKAGE = "@azure-tools/azcopy-linux"
MIB = 1024 * 1024
BIG = 256 * MIB
HUGE = 1024 * MIB
SMALL_COUNT, SMALL_SIZE = 1000, 8 * 1024
CONCURRENCY = 8
CLIENT_ID = "bbbbbbbb-0000-0000-0000-00000000be01"
ACCOUNT, SHARE = "benchacct", "bench"

WORLD = f"""
[[accounts]]
name = "{ACCOUNT}"
shares = [{{ name = "{SHARE}", quota_gib = 5120 }}]

[[identities]]
name = "bench-vm"
type = "user"
client_id = "{CLIENT_ID}"

[[role_assignments]]
role = "Storage File Data Privileged Contributor"
principal = "bench-vm"
scope = "{ACCOUNT}/{SHARE}"
"""


# --- workers: run in a child process, one transfer each ----------------------------------------------------


def _info(path: str) -> dict[str, Any]:
    return dict(json.loads(Path(path).read_text()))


def worker_keyless(
    info: dict[str, Any], op: str, local: Path, remote: str, concurrency: int | None = None
) -> None:
    from keyless.files import transfer
    from keyless.files.client import ShareClient
    from keyless.files.urls import share_url
    from keyless.identity import ManagedIdentityCredential

    cred = ManagedIdentityCredential(client_id=CLIENT_ID, source="imds", imds_host=info["imds_url"])
    url = share_url(ACCOUNT, SHARE, emulator_url=info["files_url"])
    kw = {"concurrency": concurrency} if concurrency else {}  # default: chosen from the measured latency
    with ShareClient(url, cred, ca_cert=info["ca_cert"], emulator_url=info["files_url"], **kw) as client:
        if op == "up-file":
            transfer.upload_file(client, local, remote)
        elif op == "down-file":
            transfer.download_file(client, remote, local)
        elif op == "up-tree":
            transfer.upload_tree(client, local, remote)
        elif op == "down-tree":
            transfer.download_tree(client, remote, local)
        else:
            raise SystemExit(f"unknown op {op}")


def worker_sdk(info: dict[str, Any], op: str, local: Path, remote: str) -> None:
    os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = info["imds_url"]
    from azure.identity import ManagedIdentityCredential
    from azure.storage.fileshare import ShareClient

    share = ShareClient(
        account_url=f"{info['files_url']}/{ACCOUNT}",
        share_name=SHARE,
        credential=ManagedIdentityCredential(client_id=CLIENT_ID),
        token_intent="backup",
        connection_verify=info["ca_cert"],
    )
    if op == "up-file":
        with local.open("rb") as f:
            share.get_file_client(remote).upload_file(f, max_concurrency=CONCURRENCY)
    elif op == "down-file":
        with local.open("wb") as out:
            share.get_file_client(remote).download_file(max_concurrency=CONCURRENCY).readinto(out)
    elif op == "up-tree":
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):  # the second of the repeated runs
            share.get_directory_client(remote).create_directory()
        names = sorted(p.name for p in local.iterdir())

        def put(name: str) -> None:
            with (local / name).open("rb") as f:
                share.get_file_client(f"{remote}/{name}").upload_file(f)

        with ThreadPoolExecutor(CONCURRENCY) as pool:  # the SDK has no tree upload: 8 files at a time
            list(pool.map(put, names))
    elif op == "down-tree":
        local.mkdir(parents=True, exist_ok=True)
        names = [e["name"] for e in share.get_directory_client(remote).list_directories_and_files()]

        def get(name: str) -> None:
            with (local / name).open("wb") as f:
                share.get_file_client(f"{remote}/{name}").download_file().readinto(f)

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(get, names))
    else:
        raise SystemExit(f"unknown op {op}")


# --- the parent --------------------------------------------------------------------------------------------


EMULATOR_PID = 0  # set once the emulator runs: its CPU time shows who the bottleneck is
REPEATS = 2  # best of: a 2-core machine shared by client and server is noisy


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_measured(
    cmd: list[str], env: dict[str, str] | None = None, before: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Best of ``REPEATS`` runs of ``cmd``; ``before`` runs ahead of each (outside the timing)."""
    runs = []
    for _ in range(REPEATS):
        if before is not None:
            before()
        runs.append(run_once(cmd, env))
    return min(runs, key=lambda r: float(r["seconds"]))


def fresh_destination(destination: Path, size: int) -> None:
    """The same starting state for every download run, whichever tool ran before (module docstring): no
    output from an earlier run, no write-back in progress, and ``size`` bytes of memory written and
    freed just now, so that the pages the download fills are ones the guest already holds."""
    if destination.is_dir():
        shutil.rmtree(destination)
    else:
        destination.unlink(missing_ok=True)
    for part in destination.parent.glob(f".{destination.name}.*"):  # a killed keyless run's part file
        part.unlink()
    os.sync()
    # Written page by page and freed, in a process of its own: a child's peak RSS (``ru_maxrss``) starts
    # from its parent's peak, so touching the memory here would show in every tool's RSS column. The
    # margin: structured messages, buffers, part file metadata.
    touch = f"bytearray(b'\\x01') * {size + 64 * MIB}"
    subprocess.run([sys.executable, "-c", touch], check=True)


def run_once(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd``: wall seconds, the child's own peak RSS (MiB), its CPU seconds and the emulator's."""
    emu_before = cpu_seconds(EMULATOR_PID) if EMULATOR_PID else 0.0
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = output.decode(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited {proc.returncode}:\n{tail}")
    emu_cpu = cpu_seconds(EMULATOR_PID) - emu_before if EMULATOR_PID else 0.0
    return {
        "seconds": seconds,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "client_cpu_s": usage.ru_utime + usage.ru_stime,
        "emulator_cpu_s": emu_cpu,
    }


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * MIB):
            h.update(chunk)
    return h.hexdigest()


def tree_digest(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.iterdir()}


def make_data(work: Path) -> tuple[Path, Path, Path]:
    big = work / "big.bin"
    with big.open("wb") as f:
        for _ in range(BIG // (4 * MIB)):
            f.write(os.urandom(4 * MIB))
    small = work / "small"
    small.mkdir()
    for i in range(SMALL_COUNT):
        (small / f"f{i:04d}.bin").write_bytes(os.urandom(SMALL_SIZE))
    huge = work / "huge.bin"
    with huge.open("wb") as f:  # random, so no range can be skipped as all-zero
        for _ in range(HUGE // (4 * MIB)):
            f.write(os.urandom(4 * MIB))
    return big, small, huge


def find_azcopy(explicit: str | None) -> tuple[Path | None, str]:
    """The AzCopy binary: given, cached, or installed now from npm into ``bench/.cache/azcopy``."""
    if explicit:
        return Path(explicit), "given with --azcopy"
    binaries = list(AZCOPY_CACHE.glob("node_modules/@azure-tools/azcopy-linux/dist/bin/azcopy*"))
    if not binaries and shutil.which("npm"):
        AZCOPY_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(AZCOPY_CACHE), AZCOPY_PACKAGE],
            check=False,
            capture_output=True,
            timeout=600,
        )
        binaries = list(AZCOPY_CACHE.glob("node_modules/@azure-tools/azcopy-linux/dist/bin/azcopy*"))
    if not binaries:
        return None, f"AzCopy not available: npm install {AZCOPY_PACKAGE} failed or npm is missing"
    binary = binaries[0]
    binary.chmod(0o755)  # the package ships it without the execute bit
    return binary, f"npm {AZCOPY_PACKAGE}"


def azcopy_env(info: dict[str, Any], work: Path) -> dict[str, str]:
    app = info["app_service"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZCOPY_", "IDENTITY_", "IMDS_"))}
    env.update(
        AZCOPY_AUTO_LOGIN_TYPE="MSI",
        AZCOPY_MSI_CLIENT_ID=CLIENT_ID,
        IDENTITY_ENDPOINT=app["IDENTITY_ENDPOINT"],
        IDENTITY_HEADER=app["IDENTITY_HEADER"],
        SSL_CERT_FILE=info["ca_cert"],
        AZCOPY_LOG_LOCATION=str(work / "azcopy-logs"),
        AZCOPY_JOB_PLAN_LOCATION=str(work / "azcopy-plans"),
    )
    return env


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", choices=["keyless", "sdk"], help=argparse.SUPPRESS)
    parser.add_argument("--op", help=argparse.SUPPRESS)
    parser.add_argument("--info", help=argparse.SUPPRESS)
    parser.add_argument("--local", help=argparse.SUPPRESS)
    parser.add_argument("--remote", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--skip-1gib", action="store_true", help="skip the 1 GiB keyless memory run")
    parser.add_argument("--azcopy", default=None, help="path of an azcopy binary (default: npm package)")
    parser.add_argument(
        "--compare-src",
        default=None,
        metavar="DIR",
        help="also run keyless from another checkout's src/ (e.g. the main branch) as 'keyless-before'",
    )
    args = parser.parse_args()
    if args.worker:
        if args.worker == "keyless":
            worker_keyless(_info(args.info), args.op, Path(args.local), args.remote, args.concurrency)
        else:
            worker_sdk(_info(args.info), args.op, Path(args.local), args.remote)
        return 0
    return bench(skip_huge=args.skip_1gib, azcopy_path=args.azcopy, compare_src=args.compare_src)


def bench(*, skip_huge: bool, azcopy_path: str | None, compare_src: str | None = None) -> int:
    from keyless.testing import start_emulator

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="keyless-bench-"))
    results: dict[str, Any] = {"workloads": {}, "notes": []}
    try:
        big, small, huge = make_data(work)
        empty = work / "empty.bin"
        empty.write_bytes(b"")

        big_sum, small_sums, huge_sum = digest(big), tree_digest(small), digest(huge)
        azcopy, azcopy_note = find_azcopy(azcopy_path)
        results["notes"].append(f"azcopy: {azcopy_note}")
        with start_emulator(work, WORLD, name="emu") as emu:
            global EMULATOR_PID
            EMULATOR_PID = int(emu.info["pid"])
            info_path = str(emu.data_dir / "emulator.json")
            az_env = azcopy_env(emu.info, work)
            share_url = f"{emu.files_url}/{ACCOUNT}/{SHARE}"
            hostport = emu.files_url.removeprefix("https://")
            py = sys.executable

            def fresh(op: str, local: Path, size: int) -> Callable[[], None] | None:
                if not op.startswith("down"):
                    return None
                return lambda: fresh_destination(local, size)

            def py_worker(tool: str, op: str, local: Path, remote: str, size: int = 0) -> dict[str, Any]:
                env = None
                if tool == "keyless-before":  # the same worker, importing keyless from the other checkout
                    env = {**os.environ, "PYTHONPATH": str(Path(compare_src or "").resolve())}
                    tool = "keyless"
                cmd = [py, __file__, "--worker", tool, "--op", op, "--info", info_path]
                cmd += ["--local", str(local), "--remote", remote]
                return run_measured(cmd, env=env, before=fresh(op, local, size))

            def az(
                src: str, dst: str, from_to: str, recursive: bool = False, size: int = 0
            ) -> dict[str, Any]:
                assert azcopy is not None
                cmd = [str(azcopy), "copy", src, dst, "--from-to", from_to, "--log-level", "ERROR"]
                cmd += ["--trusted-microsoft-suffixes", hostport, "--output-level", "quiet"]
                if recursive:
                    cmd.append("--recursive")
                down = from_to == "FileLocal"
                return run_measured(cmd, env=az_env, before=fresh("down" if down else "up", Path(dst), size))

            tools = ["keyless", *(["keyless-before"] if compare_src else []), "sdk"]
            tools += ["azcopy"] if azcopy else []
            for tool in tools:
                out = work / f"out-{tool}"
                out.mkdir()
                rows = results["workloads"]
                # Nothing to move: the start-up, token and connection cost the data runs also pay.
                if tool == "azcopy":
                    e_up = az(str(empty), f"{share_url}/{tool}-empty.bin", "LocalFile")
                    e_down = az(f"{share_url}/{tool}-empty.bin", str(out / "empty.bin"), "FileLocal", size=0)
                else:
                    e_up = py_worker(tool, "up-file", empty, f"{tool}-empty.bin")
                    e_down = py_worker(tool, "down-file", out / "empty.bin", f"{tool}-empty.bin")
                (out / "empty.bin").unlink(missing_ok=True)
                rows.setdefault("empty file up", {})[tool] = e_up
                rows.setdefault("empty file down", {})[tool] = e_down
                # 256 MiB: up, then down
                if tool == "azcopy":
                    up = az(str(big), f"{share_url}/{tool}-big.bin", "LocalFile")
                    down = az(f"{share_url}/{tool}-big.bin", str(out / "big.bin"), "FileLocal", size=BIG)
                else:
                    up = py_worker(tool, "up-file", big, f"{tool}-big.bin")
                    down = py_worker(tool, "down-file", out / "big.bin", f"{tool}-big.bin", BIG)
                if digest(out / "big.bin") != big_sum:
                    raise RuntimeError(f"{tool}: the 256 MiB download differs from the source")
                rows.setdefault("256MiB up", {})[tool] = {**up, "mib_s": BIG / MIB / up["seconds"]}
                rows.setdefault("256MiB down", {})[tool] = {**down, "mib_s": BIG / MIB / down["seconds"]}
                # 1,000 x 8 KiB: up, then down
                if tool == "azcopy":
                    up = az(str(small), f"{share_url}/{tool}-small", "LocalFile", recursive=True)
                    small_bytes = SMALL_COUNT * SMALL_SIZE
                    down = az(
                        f"{share_url}/{tool}-small/*", str(out / "small"), "FileLocal", True, small_bytes
                    )
                else:
                    up = py_worker(tool, "up-tree", small, f"{tool}-small")
                    small_bytes = SMALL_COUNT * SMALL_SIZE
                    down = py_worker(tool, "down-tree", out / "small", f"{tool}-small", small_bytes)
                # AzCopy nests the source directory's name under the destination: look where it put them.
                got = out / "small" / "small" if (out / "small" / "small").is_dir() else out / "small"
                if tree_digest(got) != small_sums:
                    raise RuntimeError(f"{tool}: the 1,000-file download differs from the source")
                rows.setdefault("1000x8KiB up", {})[tool] = {**up, "files_s": SMALL_COUNT / up["seconds"]}
                rows.setdefault("1000x8KiB down", {})[tool] = {
                    **down,
                    "files_s": SMALL_COUNT / down["seconds"],
                }
                shutil.rmtree(out)
                print(f"  {tool}: done ({time.perf_counter() - started:.0f} s so far)", file=sys.stderr)
            if not skip_huge:
                out = work / "huge-out.bin"
                up = py_worker("keyless", "up-file", huge, "keyless-huge.bin")
                down = py_worker("keyless", "down-file", out, "keyless-huge.bin", HUGE)
                if digest(out) != huge_sum:
                    raise RuntimeError("keyless: the 1 GiB download differs from the source")
                results["workloads"]["1GiB up"] = {"keyless": {**up, "mib_s": HUGE / MIB / up["seconds"]}}
                results["workloads"]["1GiB down"] = {
                    "keyless": {**down, "mib_s": HUGE / MIB / down["seconds"]}
                }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if azcopy is None:
        results["notes"].append(azcopy_note)
    results["total_seconds"] = time.perf_counter() - started
    results["cpus"] = os.cpu_count()
    results["load_average_at_start"] = LOAD_AT_START
    results["marginal_cpu"] = marginal(results["workloads"])
    report(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0


LOAD_AT_START = os.getloadavg()


def marginal(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Client CPU seconds per GiB (up, down) and per 1,000 files (up, down), start-up left out."""
    out: dict[str, dict[str, float]] = {}
    gib = BIG / (1024 * MIB)
    per_file = 1000 / SMALL_COUNT
    for tool in rows.get("256MiB up", {}):
        def cpu(workload: str, tool: str = tool) -> float:
            return float(rows[workload][tool]["client_cpu_s"])

        out[tool] = {
            "cpu_s_per_gib_up": (cpu("256MiB up") - cpu("empty file up")) / gib,
            "cpu_s_per_gib_down": (cpu("256MiB down") - cpu("empty file down")) / gib,
            # One empty file stands in for the start-up of a tree transfer too (AzCopy refuses empty trees).
            "cpu_s_per_1000_files_up": (cpu("1000x8KiB up") - cpu("empty file up")) * per_file,
            "cpu_s_per_1000_files_down": (cpu("1000x8KiB down") - cpu("empty file down")) * per_file,
        }
    return out


def report(results: dict[str, Any]) -> None:
    header = (
        f"{'workload':<16}{'tool':<9}{'seconds':>9}{'MiB/s':>9}{'files/s':>9}{'peak RSS MiB':>14}"
        f"{'cpu s':>7}{'emu cpu s':>10}{'keyless/SDK':>13}{'keyless/AzCopy':>16}"
    )
    print(header)
    print("-" * len(header))
    for workload, by_tool in results["workloads"].items():
        metric = "mib_s" if "mib_s" in next(iter(by_tool.values())) else "files_s"
        mine = by_tool.get("keyless", {}).get(metric)
        for tool, row in by_tool.items():
            ratio_sdk = ratio_az = ""
            if tool == "keyless" and mine:
                if "sdk" in by_tool:
                    ratio_sdk = f"{mine / by_tool['sdk'][metric]:.2f}x"
                    row["ratio_vs_sdk"] = mine / by_tool["sdk"][metric]
                if "azcopy" in by_tool:
                    ratio_az = f"{mine / by_tool['azcopy'][metric]:.2f}x"
                    row["ratio_vs_azcopy"] = mine / by_tool["azcopy"][metric]
            mib = f"{row['mib_s']:.1f}" if "mib_s" in row else ""
            files = f"{row['files_s']:.0f}" if "files_s" in row else ""
            print(
                f"{workload:<16}{tool:<9}{row['seconds']:>9.2f}{mib:>9}{files:>9}{row['peak_rss_mib']:>14.1f}"
                f"{row['client_cpu_s']:>7.2f}{row['emulator_cpu_s']:>10.2f}{ratio_sdk:>13}{ratio_az:>16}"
            )
    print()
    per = results.get("marginal_cpu", {})
    if per:
        names = ["cpu_s_per_gib_up", "cpu_s_per_gib_down"]
        names += ["cpu_s_per_1000_files_up", "cpu_s_per_1000_files_down"]
        print("client CPU seconds, start-up left out:")
        print(f"{'tool':<9}" + "".join(f"{n.removeprefix('cpu_s_'):>22}" for n in names))
        for tool, row in per.items():
            print(f"{tool:<9}" + "".join(f"{row[n]:>22.3f}" for n in names))
        if "keyless" in per:
            for peer in (t for t in per if t != "keyless"):
                ratios = {n: per["keyless"][n] / per[peer][n] for n in names if per[peer][n] > 0}
                results.setdefault("marginal_cpu_ratio_keyless_vs", {})[peer] = ratios
                print(f"keyless/{peer:<7}" + "".join(f"{ratios.get(n, float('nan')):>22.2f}" for n in names))
    print(f"load average at start: {results.get('load_average_at_start')}")
    for note in results["notes"]:
        print(f"note: {note}")
    print(f"total {results['total_seconds']:.0f} s on {results['cpus']} CPUs")


if __name__ == "__main__":
    sys.exit(main())
