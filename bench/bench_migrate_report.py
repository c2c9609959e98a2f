"""``keyless migrate report``: records per second and peak memory per input shape, in one run.

    .venv/bin/python bench/bench_migrate_report.py [--records N]

Writes N ``StorageFileLogs`` records (default 500,000, 40 callers, a mix of AccountKey, SAS, OAuth and
Kerberos) in each shape the report reads: JSON lines with the table's columns (the emulator's audit log,
a Log Analytics JSON-lines export), diagnostic-settings ``PT1H.json`` lines, and the portal's CSV export.
Each is reported by a separate ``keyless migrate report --json`` process, timed (wall, and CPU seconds of
that process and its workers) with its peak resident memory (the largest process); the JSON-lines shape
is read once more with ``--workers 1``; the JSON-lines shape is also read at twice the size to show
memory does not grow with the input. The peer is the floor of any Python reader: ``json.loads`` of every
line of the same file, doing nothing else. Writes ``bench/results/migrate_report.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "migrate_report.json"
AUTH = ("OAuth", "OAuth", "OAuth", "AccountKey", "SAS", "Kerberos")
COLUMNS = ("TimeGenerated", "AccountName", "Location", "Protocol", "OperationName", "AuthenticationType",
           "StatusCode", "StatusText", "DurationMs", "ServerLatencyMs", "Uri", "CallerIpAddress",
           "CorrelationId", "ClientRequestId", "UserAgentHeader", "RequesterObjectId", "RequesterTenantId",
           "RequesterAppId", "AuthenticationHash", "ObjectKey", "RequestHeaderSize", "Category", "Type")


def row(i: int) -> dict[str, Any]:
    caller = i % 40
    auth = AUTH[caller % len(AUTH)]
    identity = auth in ("OAuth", "Kerberos")
    second = i % 86_400
    return {
        "TimeGenerated": f"2026-11-{1 + i * 28 // 10_000_000:02d}T{second // 3600:02d}:"
                         f"{second // 60 % 60:02d}:{second % 60:02d}.{i % 10_000_000:07d}Z",
        "AccountName": f"acct{caller % 3}", "Location": "westeurope", "Protocol": "HTTPS",
        "OperationName": ("GetFile", "PutRange", "CreateFile", "ListFilesAndDirectories")[i % 4],
        "AuthenticationType": auth, "StatusCode": "200", "StatusText": "Success",
        "DurationMs": 12.5, "ServerLatencyMs": 9.1,
        "Uri": f"https://acct{caller % 3}.file.core.windows.net/share{caller % 5}/dir/file{i % 1000}.bin",
        "CallerIpAddress": f"10.0.{caller}.{caller + 1}:{40000 + i % 20000}",
        "CorrelationId": f"{i:08x}-501a-0042-4ea6-772bbb000000", "ClientRequestId": f"{i:08x}-1111",
        "UserAgentHeader": f"azsdk-python-storage-file-share/12.20.{caller} Python/3.11.2 (Linux)",
        "RequesterObjectId": f"00000000-0000-4000-8000-{caller:012d}" if identity else "",
        "RequesterTenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47" if identity else "",
        "RequesterAppId": f"11111111-0000-4000-8000-{caller:012d}" if identity else "",
        "AuthenticationHash": "key1(ABCDEF)" if auth in ("AccountKey", "SAS") else "",
        "ObjectKey": f"/acct{caller % 3}/share{caller % 5}/dir/file{i % 1000}.bin",
        "RequestHeaderSize": 612, "Category": "StorageRead", "Type": "StorageFileLogs",
    }


def diagnostic(r: dict[str, Any]) -> dict[str, Any]:
    requester = {"objectId": r["RequesterObjectId"], "tenantId": r["RequesterTenantId"],
                 "appId": r["RequesterAppId"]} if r["RequesterObjectId"] else {}
    return {
        "time": r["TimeGenerated"],
        "resourceId": f"/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/"
                      f"{r['AccountName']}/fileServices/default",
        "category": r["Category"], "operationName": r["OperationName"], "operationVersion": "2025-05-05",
        "schemaVersion": "1.0", "statusCode": 200, "statusText": r["StatusText"], "durationMs": 12,
        "callerIpAddress": r["CallerIpAddress"], "correlationId": r["CorrelationId"],
        "location": "westeurope",
        "identity": {"type": r["AuthenticationType"], "tokenHash": r["AuthenticationHash"],
                     **({"requester": requester} if requester else {})},
        "properties": {"accountName": r["AccountName"], "userAgentHeader": r["UserAgentHeader"],
                       "serviceType": "file", "objectKey": r["ObjectKey"], "requestHeaderSize": 612},
        "uri": r["Uri"], "protocol": "HTTPS",
    }


def write_inputs(tmp: Path, records: int) -> dict[str, Path]:
    paths = {"jsonl": tmp / "audit.log", "jsonl_x2": tmp / "audit-x2.log",
             "diagnostic": tmp / "PT1H.json", "csv": tmp / "export.csv"}
    with (paths["jsonl"].open("w") as jl, paths["jsonl_x2"].open("w") as jl2,
          paths["diagnostic"].open("w") as diag, paths["csv"].open("w", newline="") as out):
        writer = csv.writer(out)
        writer.writerow(["TimeGenerated [UTC]", *COLUMNS[1:]])
        for i in range(records * 2):
            r = row(i)
            line = json.dumps(r, separators=(",", ":")) + "\n"
            jl2.write(line)
            if i < records:
                jl.write(line)
                diag.write(json.dumps(diagnostic(r), separators=(",", ":")) + "\n")
                writer.writerow([r[c] for c in COLUMNS])
    return paths


PEAK = ("import resource, runpy, sys; sys.argv = ['keyless'] + sys.argv[1:];"
        "code = 0\ntry:\n    runpy.run_module('keyless.cli.main', run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code or 0\n"
        "r = resource.getrusage(resource.RUSAGE_SELF)\n"
        "c = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "cpu = r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime\n"
        "sys.stderr.write(f'PEAK {max(r.ru_maxrss, c.ru_maxrss)} CPU {cpu}\\n')")


def run_report(path: Path, *extra: str) -> dict[str, Any]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, "migrate", "report", str(path), "--json", *extra],
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    peak_line = next(line for line in done.stderr.splitlines() if line.startswith("PEAK"))
    _, rss, _, cpu = peak_line.split()
    data = json.loads(done.stdout)
    records = data["input"]["records"]
    return {"records": records, "malformed": data["input"]["malformed"], "ready": data["ready"],
            "wall_s": round(wall, 2), "cpu_s": round(float(cpu), 2),
            "records_per_s_wall": round(records / wall), "records_per_s_cpu": round(records / float(cpu)),
            "peak_rss_mb": round(int(rss) / 1024, 1)}


def json_floor(path: Path) -> dict[str, Any]:
    start, cpu0 = time.perf_counter(), time.process_time()
    count = 0
    with path.open() as lines:
        for line in lines:
            json.loads(line)
            count += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {"records": count, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "records_per_s_wall": round(count / wall), "records_per_s_cpu": round(count / cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=500_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keyless-report-bench-") as tmp:
        paths = write_inputs(Path(tmp), args.records)
        sizes = {name: round(p.stat().st_size / 2**20, 1) for name, p in paths.items()}
        results = {name: {**run_report(p), "input_mb": sizes[name]} for name, p in paths.items()}
        one = run_report(paths["jsonl"], "--workers", "1")
        results["jsonl_one_worker"] = {**one, "input_mb": sizes["jsonl"]}
        results["peer_json_loads_only"] = {**json_floor(paths["jsonl"]), "input_mb": sizes["jsonl"]}
    print(f"{'input':<22}{'MB':>7}{'records':>10}{'wall s':>8}{'cpu s':>8}{'rec/s (wall)':>14}"
          f"{'rec/s (cpu)':>13}{'peak MB':>9}")
    for name, r in results.items():
        print(f"{name:<22}{r['input_mb']:>7}{r['records']:>10}{r['wall_s']:>8}{r['cpu_s']:>8}"
              f"{r['records_per_s_wall']:>14,}{r['records_per_s_cpu']:>13,}{r.get('peak_rss_mb', '-'):>9}")
    ratio = results["jsonl"]["records_per_s_cpu"] / results["peer_json_loads_only"]["records_per_s_cpu"]
    print(f"keyless report / bare json.loads (JSON lines, CPU): {ratio:.2f}x the rate")
    RESULTS.parent.mkdir(exist_ok=True)
    summary = {"records": args.records, "cpus": os.cpu_count(), "python": platform.python_version(),
               "ratio_vs_json_loads": round(ratio, 2), "results": results}
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
