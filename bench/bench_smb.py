"""The cost of each way to set an SMB ticket: in process, through libazfilesauth.so, and as a command.

    .venv/bin/python bench/bench_smb.py [--quick]

Against one emulator process (default world: ``devaccount``, SMB OAuth on, the demo VM identity), with one
token minted up front, each path stores a ticket for ``devaccount`` in its own FILE cache, N times:

1. ``keyless.smb.manager.set_credential`` in this process (the library, as ``keyless agent`` uses it);
2. ``extern_smb_set_credential_oauth_token`` through ``ctypes`` on the drop-in ``libazfilesauth.so`` (a
   ``posix_spawn`` of ``keyless-azfilesauth-lib`` per call: the price of never running keyless inside the
   caller);
3. ``azfilesauthmanager set <uri> <token>`` as a command (what scripts and Microsoft's refresher run).

Reports wall time per call and CPU seconds per call (this process plus its children), and each path's
ratio to the in-process call. Writes ``bench/results/smb.json``. Needs the library built
(scripts/install.sh, or native/build.sh).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keyless.testing import start_emulator

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "smb.json"
LIB = ROOT / "native" / "build" / "libazfilesauth.so"
URI = "https://devaccount.file.core.windows.net"


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def imds_token(imds_url: str) -> str:
    import urllib3

    resp = urllib3.request("GET", f"{imds_url}/metadata/identity/oauth2/token",
                           fields={"api-version": "2018-02-01", "resource": "https://storage.azure.com"},
                           headers={"Metadata": "true"}, timeout=10)
    if resp.status != 200:
        raise SystemExit(f"IMDS answered {resp.status}")
    return str(json.loads(resp.data)["access_token"])


def measure(name: str, calls: int, one: Callable[[], None]) -> dict[str, Any]:
    one()  # warm-up: imports, first TLS handshake
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    for _ in range(calls):
        one()
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    return {"path": name, "calls": calls, "wall_ms_per_call": 1000 * wall / calls,
            "cpu_ms_per_call": 1000 * cpu / calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    args = parser.parse_args()
    calls = 5 if args.quick else 30
    if not LIB.exists():
        sys.exit(f"{LIB} is missing: run scripts/install.sh (or native/build.sh) first")
    with tempfile.TemporaryDirectory() as tmp_dir, start_emulator(Path(tmp_dir)) as emu:
        tmp = Path(tmp_dir)
        emu_json = str(Path(emu.info["data_dir"]) / "emulator.json")
        token = imds_token(emu.imds_url)
        env = {"KEYLESS_EMULATOR": emu_json, "KRB5_CONFIG": str(tmp / "krb5.conf"), "KRB5RCACHETYPE": "none",
               "KEYLESS_AGENT_STATE": str(tmp / "agent.json")}
        (tmp / "krb5.conf").write_text("[libdefaults]\n  dns_lookup_kdc = false\n")
        configs = {}
        for path in ("inproc", "library", "command"):
            configs[path] = tmp / f"{path}.yaml"
            configs[path].write_text(f"USER_UID: {os.geteuid()}\nKRB5_CC_NAME: FILE:{tmp / path}.cc\n")
        os.environ.update(env)

        from keyless.smb.exchange import emulator_endpoint
        from keyless.smb.manager import set_credential

        endpoint = emulator_endpoint("devaccount", emu.files_url)

        def inproc() -> None:
            set_credential(endpoint, token, cache_name=f"FILE:{tmp / 'inproc'}.cc", ca_certs=emu.ca_cert)

        lib = ctypes.CDLL(str(LIB))
        lib.extern_smb_set_credential_oauth_token.argtypes = [ctypes.c_char_p, ctypes.c_char_p,
                                                              ctypes.POINTER(ctypes.c_uint)]
        lib.extern_smb_set_credential_oauth_token.restype = ctypes.c_int

        def library() -> None:
            os.environ["KEYLESS_AZFILESAUTH_CONFIG"] = str(configs["library"])
            expires = ctypes.c_uint()
            rc = lib.extern_smb_set_credential_oauth_token(URI.encode(), token.encode(),
                                                           ctypes.byref(expires))
            if rc != 0:
                raise SystemExit("libazfilesauth set failed")

        manager = str(Path(sys.executable).parent / "azfilesauthmanager")

        def command() -> None:
            subprocess.run([manager, "set", URI, token, "--config", str(configs["command"]), "--no-register"],
                           check=True, capture_output=True, env={**os.environ, **env})

        rows = [measure("in process (keyless.smb)", calls, inproc),
                measure("libazfilesauth.so via ctypes", calls, library),
                measure("azfilesauthmanager set (command)", calls, command)]
    base = rows[0]
    print(f"\n{'path':<36} {'wall ms/call':>13} {'CPU ms/call':>12} {'wall vs in-process':>19}")
    for row in rows:
        row["wall_ratio_to_inproc"] = row["wall_ms_per_call"] / base["wall_ms_per_call"]
        print(f"{row['path']:<36} {row['wall_ms_per_call']:>13.1f} {row['cpu_ms_per_call']:>12.1f} "
              f"{row['wall_ratio_to_inproc']:>18.1f}x")
    doc = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
           "calls": calls, "rows": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
