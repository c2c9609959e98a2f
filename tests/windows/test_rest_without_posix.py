"""The REST side end to end in processes where nothing POSIX-only exists (the Windows simulation).

``keyless test``, ``token``, ``doctor`` and the file commands each run as a real process.

Each command runs as a real ``keyless`` process against a real emulator process over HTTPS, with
``fcntl``/``pwd``/``grp``/``termios`` unimportable and ``os.getuid``/``fchmod``/``pread``/``pwrite``/
``O_NOFOLLOW`` removed (see ``blocker/sitecustomize.py``): the token cache then takes its Windows form
(``msvcrt`` locking, ``%LOCALAPPDATA%``, no uid checks) and transfers their seek-and-read form. This is a
simulation on Linux, not Windows: paths, ``os.name`` and the console are still Linux's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from keyless.testing import EmulatorProcess
from windows.windows_sim import WindowsLikeRunner


def test_the_blocker_really_blocks(windows_like: WindowsLikeRunner) -> None:
    probe = ("import importlib, os\n"
             "for m in ('fcntl', 'pwd', 'grp', 'termios'):\n"
             "    try:\n"
             "        importlib.import_module(m)\n"
             "        print('imported', m)\n"
             "    except ImportError:\n"
             "        print('blocked', m)\n"
             "print('getuid' in dir(os), 'pread' in dir(os), 'fchmod' in dir(os))\n")
    result = windows_like.python("-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n") == ["blocked fcntl", "blocked pwd", "blocked grp", "blocked termios",
                                         "False False False", ""]
    # The SMB side needs fcntl and krb5: it fails to import there, which is the point of the check.
    result = windows_like.python("-c", "import keyless.smb.ccache")
    assert result.returncode != 0 and "fcntl" in result.stderr


def test_rest_flow_runs_without_posix_modules(windows_like: WindowsLikeRunner, emulator: EmulatorProcess,
                                             tmp_path: Path) -> None:
    emu = ["--emulator", str(emulator.data_dir)]
    test_dir = f"win-{uuid.uuid4().hex[:8]}"

    # keyless test: the seed's step-by-step output, then the cleanup.
    result = windows_like.keyless("test", "--account", "devaccount", "--share", "demo", "--dir", test_dir,
                                  "--cleanup", *emu)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for line in ("=== Testing Managed Identity Access ===", "[1/3] Getting token... OK",
                 "[2/3] Creating test directory... OK", "[3/3] Writing test file... OK", "=== SUCCESS ==="):
        assert line in lines, result.stdout
    assert "\x1b[" not in result.stdout  # not a terminal: no colour codes

    # The token went through the shared cache in its Windows place, with its lock file beside it.
    cache = windows_like.local_app_data / "keyless" / "tokens"
    assert len(list(cache.glob("*.json"))) == 1 and len(list(cache.glob("*.lock"))) == 1

    result = windows_like.keyless("token", "--json", *emu)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["expires_on"] and "token" not in report  # the report never holds the token itself

    result = windows_like.keyless("doctor", "--json", "--account", "devaccount", "--share", "demo", *emu)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {c["status"] for c in json.loads(result.stdout)["checks"]} == {"OK"}

    # put / get / sync of a tree with a file larger than one range (seek-and-read on both sides).
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    files = {"a.txt": b"alpha\r\n", "sub/big.bin": os.urandom(4 * 1024 * 1024 + 17), "sub/empty": b""}
    for rel, data in files.items():
        (src / rel).write_bytes(data)
    top = f"azfiles://devaccount/demo/{test_dir}"
    result = windows_like.keyless("put", "-r", str(src), f"{top}/up", *emu)
    assert result.returncode == 0, result.stderr
    down = tmp_path / "down"
    result = windows_like.keyless("get", "-r", f"{top}/up", str(down), *emu)
    assert result.returncode == 0, result.stderr
    for rel, data in files.items():
        assert (down / rel).read_bytes() == data
    result = windows_like.keyless("sync", "--json", str(src), f"{top}/synced", *emu)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["files"] == 3
    result = windows_like.keyless("sync", "--json", str(src), f"{top}/synced", *emu)
    assert json.loads(result.stdout)["skipped"] == 3
    mirror = tmp_path / "mirror"
    result = windows_like.keyless("sync", "--json", f"{top}/synced", str(mirror), *emu)
    assert result.returncode == 0, result.stderr
    assert (mirror / "sub" / "big.bin").read_bytes() == files["sub/big.bin"]
    assert windows_like.keyless("rm", "-r", top, *emu).returncode == 0

    for result_text in (result.stderr,):
        assert "Traceback" not in result_text
    # Every process above ran with the blocker active.
    assert windows_like.blocked_processes() == windows_like.runs


def test_unencodable_names_never_crash_the_output(windows_like: WindowsLikeRunner, emulator: EmulatorProcess,
                                                  tmp_path: Path) -> None:
    """A legacy console code page (cp1252) cannot encode every name a share holds: escapes, not a crash."""
    emu = ["--emulator", str(emulator.data_dir)]
    top = f"azfiles://devaccount/demo/enc-{uuid.uuid4().hex[:8]}"
    local = tmp_path / "名前.txt"
    local.write_bytes(b"x")
    assert windows_like.keyless("mkdir", "-p", top, *emu).returncode == 0
    assert windows_like.keyless("put", str(local), f"{top}/名前.txt", *emu).returncode == 0
    result = windows_like.keyless("ls", top, *emu, extra_env={"PYTHONIOENCODING": "cp1252"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "\\u540d\\u524d.txt"
    assert windows_like.keyless("rm", "-r", top, *emu).returncode == 0


def test_smb_commands_name_what_is_missing(windows_like: WindowsLikeRunner) -> None:
    """Without fcntl (Windows) the SMB side says it is Linux-only; without krb5, which extra to install."""
    result = windows_like.keyless("smb", "list")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Linux only" in result.stderr and "REST commands work there" in result.stderr
    result = windows_like.keyless("doctor", "--smb", "https://acct.file.core.windows.net/share")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Linux only" in result.stderr
    # On Linux without the extra: a krb5 that cannot be imported, ahead of the installed one.
    no_krb5 = windows_like.local_app_data.parent / "nokrb5"
    no_krb5.mkdir()
    (no_krb5 / "krb5.py").write_text("raise ImportError('No module named krb5 (blocked by the test)')\n")
    env = {**os.environ, "PYTHONPATH": str(no_krb5)}
    result = subprocess.run([sys.executable, "-m", "keyless.cli.main", "smb", "list"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "pip install 'keyless[smb]'" in result.stderr
