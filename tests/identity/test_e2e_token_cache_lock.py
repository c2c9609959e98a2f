"""``keyless token`` as a real process when the shared token cache's lock file is not a lock file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from keyless.testing import EmulatorProcess


def _token(emulator: EmulatorProcess) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keyless.cli.main", "token", "--emulator", str(emulator.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_symlinked_lock_does_not_crash_keyless_token(emulator: EmulatorProcess, tmp_path: Path) -> None:
    cache = Path(os.environ["KEYLESS_TOKEN_CACHE_DIR"])  # private to this test (tests/conftest.py)
    first = _token(emulator)
    assert first.returncode == 0, first.stderr
    locks = list(cache.glob("*.lock"))
    assert locks, "the first run left no lock file to replace"
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    for lock in locks:
        lock.unlink()
        lock.symlink_to(victim)

    second = _token(emulator)
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in second.stderr
    assert "cannot open the lock file" in second.stderr and str(locks[0]) in second.stderr
    assert victim.read_text() == "untouched"
