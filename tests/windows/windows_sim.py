"""Processes that look like Windows to keyless: POSIX-only modules and ``os`` functions blocked."""
# (kept out of conftest.py: the suite's root conftest is the one ``import conftest`` would find)

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BLOCKER = Path(__file__).resolve().parent / "blocker"


class WindowsLikeRunner:
    """Runs ``keyless`` (or ``python -c``) in a fresh process with the blocker first on ``PYTHONPATH``."""

    def __init__(self, tmp: Path) -> None:
        self.report = tmp / "blocked.log"
        self.local_app_data = tmp / "LocalAppData"
        self.local_app_data.mkdir()
        env = {k: v for k, v in os.environ.items()
               if k not in ("KEYLESS_TOKEN_CACHE_DIR", "XDG_RUNTIME_DIR", "KEYLESS_EMULATOR")}
        env.update(PYTHONPATH=os.pathsep.join([str(BLOCKER), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                   KEYLESS_BLOCKED_REPORT=str(self.report), LOCALAPPDATA=str(self.local_app_data),
                   PYTHONUNBUFFERED="1")
        self.env = env
        self.runs = 0

    def python(self, *args: str, extra_env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
        self.runs += 1
        return subprocess.run([sys.executable, *args], env={**self.env, **(extra_env or {})},
                              capture_output=True, text=True, encoding="utf-8", errors="replace",
                              timeout=timeout, check=False)

    def keyless(self, *args: str,
                extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.python("-m", "keyless.cli.main", *args, extra_env=extra_env)

    def blocked_processes(self) -> int:
        return len(self.report.read_text().splitlines()) if self.report.exists() else 0
