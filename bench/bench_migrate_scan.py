"""``keyless migrate scan`` over a tree of 100,000 files, next to GNU grep over the same tree, in one run.

    .venv/bin/python bench/bench_migrate_scan.py [--files N]

The tree mimics a machine's configuration: many small text files (configs, units, env files, scripts) in
nested directories, 1 in 200 holding a storage credential of some kind, plus a few binary files. The peer
is ``grep -rIliE`` with the scanner's own pre-filter tokens: the floor for "open and read every file"
(it finds candidates, not credentials, and reports no account, line or fingerprint). Each tool runs once
cold-ish (after the tree is written) and once warm; wall time and CPU seconds (user + system, the child
processes included) are reported. Writes ``bench/results/migrate_scan.json``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from keyless.migrate.detect import PREFILTER_TOKENS

RESULTS = Path(__file__).resolve().parent / "results" / "migrate_scan.json"
GREP_PATTERN = "|".join(t.decode() for t in PREFILTER_TOKENS)


def build_tree(root: Path, files: int) -> int:
    """``files`` files, 100 per directory, three levels deep; returns how many hold a credential."""
    key = base64.b64encode(os.urandom(64)).decode()
    planted = 0
    filler = "".join(f"option_{i} = value {i}\n" for i in range(20))
    for i in range(files):
        d = root / f"d{i // 10000:02d}" / f"e{(i // 100) % 100:02d}"
        if i % 100 == 0:
            d.mkdir(parents=True, exist_ok=True)
        path = d / f"f{i:06d}.conf"
        if i % 200 == 7:
            path.write_text(filler + f"AZURE_STORAGE_KEY={key}\nAZURE_STORAGE_ACCOUNT=acct{i % 7}\n")
            planted += 1
        elif i % 1000 == 3:
            path.write_bytes(b"\0ELF" + os.urandom(2000))
        else:
            path.write_text(filler)
    return planted


def timed(argv: list[str]) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "returncode": done.returncode,
            "stdout": done.stdout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    args = parser.parse_args()
    grep = shutil.which("grep")
    with tempfile.TemporaryDirectory(prefix="keyless-scan-bench-") as tmp:
        root = Path(tmp) / "tree"
        started = time.perf_counter()
        planted = build_tree(root, args.files)
        print(f"tree: {args.files} files, {planted} with a credential, written in "
              f"{time.perf_counter() - started:.1f}s")
        keyless_argv = [sys.executable, "-m", "keyless.cli.main", "migrate", "scan", str(root), "--json"]
        rows: dict[str, Any] = {}
        for run in ("first", "warm"):
            k = timed(keyless_argv)
            found = json.loads(k.pop("stdout"))
            assert k["returncode"] == 1 and len(found["findings"]) == planted, len(found["findings"])
            rows[f"keyless_{run}"] = {**k, "findings": len(found["findings"]),
                                      "files_scanned": found["files_scanned"], "skipped": found["skipped"]}
            if grep:
                g = timed([grep, "-rIliE", GREP_PATTERN, str(root)])
                candidates = len(g.pop("stdout").splitlines())
                rows[f"grep_{run}"] = {**g, "candidates": candidates}
    print(f"{'tool':<16}{'wall s':>9}{'cpu s':>9}{'files/s (wall)':>16}")
    for name, row in list(rows.items()):
        print(f"{name:<16}{row['wall_s']:>9.2f}{row['cpu_s']:>9.2f}{args.files / row['wall_s']:>16,.0f}")
    if grep:
        ratio = rows["keyless_warm"]["wall_s"] / rows["grep_warm"]["wall_s"]
        print(f"keyless / grep (warm, wall): {ratio:.2f}x")
        rows["ratio_keyless_to_grep_warm_wall"] = round(ratio, 2)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"files": args.files, "planted": planted, "cpus": os.cpu_count(),
                                   "python": platform.python_version(), "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
