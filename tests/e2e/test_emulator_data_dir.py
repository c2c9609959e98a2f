"""The data directory and the listening address, with the emulator as a real process.

One emulator per data directory (a lock, the second names the first's pid); an existing directory keeps
its mode; a non-loopback ``--host`` prints a warning; bad values are refused at the door, naming their key.
"""

from __future__ import annotations

import json
import math
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import urllib3

from keyless.testing import EmulatorProcess


def emulator_cli(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "keyless.cli.main", "emulator", "--data", str(data_dir), *args]


def run_to_exit(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def test_second_emulator_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "emu"
    data.mkdir()
    with EmulatorProcess(data, None).start() as first:
        assert first.proc is not None
        second = run_to_exit(emulator_cli(data))
        assert second.returncode != 0
        assert str(data) in second.stderr and f"pid {first.proc.pid}" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        # The first one is untouched: its emulator.json is still there and still its own, and it serves.
        info = json.loads((data / "emulator.json").read_text())
        assert info["pid"] == first.proc.pid
        http = urllib3.PoolManager(ca_certs=first.ca_cert, retries=False)
        assert http.request("GET", f"{first.files_url}/devaccount/demo").status == 401
    # Once the first stops, the directory is free again.
    with EmulatorProcess(data, None).start() as again:
        assert again.proc is not None and again.info["pid"] == again.proc.pid


def test_a_lock_that_is_not_a_regular_file_is_named(tmp_path: Path) -> None:
    data = tmp_path / "emu"
    data.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (data / ".lock").symlink_to(victim)
    result = run_to_exit(emulator_cli(data))
    assert result.returncode == 1
    assert str(data / ".lock") in result.stderr and "cannot listen" not in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert victim.read_text() == "untouched"


def test_existing_directory_keeps_its_mode_and_loose_modes_are_warned(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with EmulatorProcess(shared, None).start() as emu:
        assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
        assert "readable by other users" in emu.stderr() and str(shared) in emu.stderr()
        # The files that hold secrets are private regardless of the directory's mode.
        assert stat.S_IMODE((shared / "emulator.json").stat().st_mode) == 0o600

    (tmp_path / "new").mkdir()
    fresh = tmp_path / "new" / "emu"
    with EmulatorProcess(fresh, None).start() as emu:
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
        assert "readable by other users" not in emu.stderr()


def test_non_loopback_host_prints_a_warning(tmp_path: Path) -> None:
    data = tmp_path / "emu"
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "wb") as stderr:
        cmd = emulator_cli(data, "--host", "0.0.0.0")  # noqa: S104 - binding everywhere is the point
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while not (data / "emulator.json").exists():
            assert proc.poll() is None, stderr_path.read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    text = stderr_path.read_text()
    assert "--host 0.0.0.0" in text and "reachable from the network" in text
    assert "control endpoint" in text and "token endpoints" in text

    loopback = tmp_path / "loop"
    with EmulatorProcess(loopback, None).start() as emu:
        assert "reachable from the network" not in emu.stderr()


# --- values refused at the door -------------------------------------------------------------------------


@pytest.mark.parametrize(("toml", "key"), [
    ("clock_offset = inf\n", "clock_offset"),
    ("clock_offset = nan\n", "clock_offset"),
    ("clock_offset = 1e300\n", "clock_offset"),
    ('[[accounts]]\nname = "acctone"\nkey = "notbase64!!"\nshares = ["sss"]\n', "accounts[0].key"),
    ('[[faults]]\ncode = "Busy\\r\\nX-Injected: 1"\n', "faults[0].code"),
    ('[[faults]]\nmethod = "GET\\r\\n"\n', "faults[0].method"),
    ('app_service_header = "a\\nb"\n', "app_service_header"),
    ("token_lifetime = inf\n", "token_lifetime"),
    ('[[faults]]\naction = "delay"\nseconds = nan\n', "faults[0].seconds"),
    ("[[faults]]\nretry_after = inf\n", "faults[0].retry_after"),
])
def test_config_values_the_emulator_cannot_use_are_refused_at_start(tmp_path: Path, toml: str,
                                                                     key: str) -> None:
    config = tmp_path / "emu.toml"
    config.write_text(toml)
    result = run_to_exit(emulator_cli(tmp_path / "emu", "--config", str(config)))
    assert result.returncode == 2, result.stderr
    assert key in result.stderr and "Traceback" not in result.stderr
    assert "notbase64" not in result.stderr  # a key, even a bad one, is never echoed
    assert not (tmp_path / "emu" / "emulator.json").exists()


def test_control_endpoint_refuses_values_it_cannot_use(tmp_path: Path) -> None:
    data = tmp_path / "emu"
    with EmulatorProcess(data, None).start() as emu:
        control = emu.info["control"]
        headers = {"X-Keyless-Control": control["secret"], "Content-Type": "application/json"}

        def post(path: str, body: bytes) -> urllib3.BaseHTTPResponse:
            return urllib3.request("POST", f"{control['url']}/{path}", body=body, headers=headers,
                                   retries=False, timeout=10)

        for raw in (b'{"offset": NaN}', b'{"offset": 1e999}', b'{"offset": -Infinity}',
                    b'{"offset": 1e300}'):
            resp = post("clock", raw)
            assert resp.status == 400 and "offset" in resp.json()["error"], (raw, resp.data)
        assert emu.set_clock_offset(0)["offset"] == 0
        for rule in ({"code": "Busy\r\nX-Injected: 1"}, {"method": "GET\r\nX: y"}):
            resp = post("faults", json.dumps({"rules": [rule]}).encode())
            assert resp.status == 400, resp.data
            assert f"rules[0].{next(iter(rule))}" in resp.json()["error"]
        assert emu.set_faults([])["rules"] == []
        # The emulator still answers Files requests normally (an HTTP Date could not format before).
        http = urllib3.PoolManager(ca_certs=emu.ca_cert, retries=False)
        resp = http.request("GET", f"{emu.files_url}/devaccount/demo")
        assert resp.status == 401 and resp.headers["Date"].endswith("GMT")
        assert math.isfinite(emu.set_clock_offset(60)["offset"])
        assert "Traceback" not in emu.stderr()
    assert not os.path.exists(data / "emulator.json")
