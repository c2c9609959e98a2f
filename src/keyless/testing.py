"""Start a real ``keyless emulator`` process from Python and drive its control endpoint.

For your own tests and benchmarks (keyless's suite uses it too)::

    from keyless.testing import start_emulator
    with start_emulator(tmp_path) as emu:
        emu.set_faults([{"target": "files", "action": "status", "status": 503, "count": 2}])
        ...  # point your code at emu.files_url / emu.imds_url, trust emu.ca_cert

It launches a subprocess (it never imports the emulator's code), waits for ``emulator.json`` naming that
process, and stops it on exit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import urllib3

from keyless.emulator_info import CONTROL_HEADER, INFO_FILE, EmulatorInfo, parse_emulator_info

STARTUP_TIMEOUT = 30.0


class EmulatorProcess:
    def __init__(self, data_dir: Path, config_path: Path | None) -> None:
        self.data_dir = data_dir
        self.config_path = config_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}  # the emulator.json document as written
        self.emulator_info: EmulatorInfo  # the same, typed
        self.stderr_path = data_dir.parent / f"{data_dir.name}.stderr"

    # --- life cycle -----------------------------------------------------------------------------------
    def start(self, port: int = 0, imds_port: int = 0) -> EmulatorProcess:
        cmd = [sys.executable, "-m", "keyless.cli.main", "emulator", "--data", str(self.data_dir),
               "--port", str(port), "--imds-port", str(imds_port)]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        stderr = open(self.stderr_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        stderr.close()
        info_path = self.data_dir / INFO_FILE
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"emulator exited with {self.proc.returncode}: {self.stderr()}")
            try:
                info = json.loads(info_path.read_text())
                if info.get("pid") == self.proc.pid:
                    self.emulator_info = parse_emulator_info(info, info_path)
                    self.info = info
                    return self
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"emulator not ready after {STARTUP_TIMEOUT}s: {self.stderr()}")

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.stop()
        finally:
            self.kill()

    # --- accessors ------------------------------------------------------------------------------------
    @property
    def files_url(self) -> str:
        return self.emulator_info.files_url

    @property
    def imds_url(self) -> str:
        return self.emulator_info.imds_url

    @property
    def ca_cert(self) -> str:
        return self.emulator_info.ca_cert

    def account(self, name: str = "devaccount") -> dict[str, Any]:
        return next(a for a in self.info["accounts"] if a["name"] == name)

    def identity(self, name: str) -> dict[str, Any]:
        return next(i for i in self.info["identities"] if i["name"] == name)

    # --- control endpoint -----------------------------------------------------------------------------
    def _control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        info = self.emulator_info
        resp = urllib3.request(
            "GET" if body is None else "POST",
            f"{info.control_url}/{path}",
            body=None if body is None else json.dumps(body).encode(),
            headers={CONTROL_HEADER: info.control_secret, "Content-Type": "application/json"},
            timeout=10,
            retries=False,
        )
        if resp.status != 200:
            raise RuntimeError(f"control endpoint {path}: HTTP {resp.status}: {resp.data[:500]!r}")
        return json.loads(resp.data)

    def set_faults(self, rules: list[dict[str, Any]]) -> Any:
        return self._control("faults", {"rules": rules})

    def set_copy_rate(self, bytes_per_second: int | None) -> Any:
        """Copy File's pace: ``n`` bytes a second keeps every copy pending a while (``0``: until changed);
        ``None`` lets same-account copies finish before they answer (keyless.emulator.copy_engine)."""
        return self._control("copy", {"bytes_per_second": bytes_per_second})

    def set_roles(self, assignments: list[dict[str, Any]]) -> Any:
        return self._control("roles", {"assignments": assignments})

    def set_clock_offset(self, seconds: float) -> Any:
        return self._control("clock", {"offset": seconds})

    def audit(self, category: str | None = None) -> list[dict[str, Any]]:
        path = Path(self.emulator_info.audit_log)
        text = path.read_text()
        # The emulator may be writing a line right now: a last line without its newline is not whole yet.
        whole = text[: text.rfind("\n") + 1]
        # Split on "\n" only: names may hold U+2028 or U+0085, which str.splitlines also breaks at.
        lines = [json.loads(line) for line in whole.split("\n") if line.strip()]
        return [r for r in lines if category is None or r.get("Type") == category]


def start_emulator(tmp_path: Path, config_toml: str | None = None, *, name: str = "emu",
                   port: int = 0, imds_port: int = 0) -> EmulatorProcess:
    """A started emulator in ``tmp_path/name``; use as a context manager so it always stops."""
    data_dir = tmp_path / name
    data_dir.mkdir(parents=True, exist_ok=True)
    config_path = None
    if config_toml is not None:
        config_path = tmp_path / f"{name}.toml"
        config_path.write_text(config_toml)
    return EmulatorProcess(data_dir, config_path).start(port, imds_port)
