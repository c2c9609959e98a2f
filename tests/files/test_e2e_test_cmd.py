"""``keyless test`` against the emulator: its step-by-step output, EXISTS on a rerun, exit codes per cause."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from keyless.cli import test_cmd
from keyless.testing import EmulatorProcess


def run(emu: EmulatorProcess, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        test_cmd.test_command, ["--account", "devaccount", "--emulator", str(emu.data_dir), *args]
    )
    return result.exit_code, result.stdout, result.stderr


def test_success_then_exists_then_cleanup(emulator: EmulatorProcess) -> None:
    code, out, _ = run(emulator, "--share", "demo", "--dir", "e2e-test-cmd")
    assert code == 0, out
    lines = out.splitlines()
    assert "[1/3] Getting token... OK" in lines
    assert "[2/3] Creating test directory... OK" in lines
    assert "[3/3] Writing test file... OK" in lines
    assert "=== SUCCESS ===" in lines
    code, out, _ = run(emulator, "--share", "demo", "--dir", "e2e-test-cmd", "--cleanup")
    assert code == 0
    assert "[2/3] Creating test directory... EXISTS" in out.splitlines()
    from keyless.files.client import ShareClient
    from keyless.files.urls import share_url
    from keyless.identity import ManagedIdentityCredential

    client = ShareClient(
        share_url("devaccount", "demo", emulator_url=emulator.files_url),
        ManagedIdentityCredential(source="imds", imds_host=emulator.imds_url),
        ca_cert=emulator.ca_cert,
        emulator_url=emulator.files_url,
    )
    assert list(client.listdir("e2e-test-cmd")) == []
    client.delete("e2e-test-cmd", recursive=True)


def test_permission_denied_exit_6(emulator: EmulatorProcess) -> None:
    code, out, err = run(emulator, "--share", "not-granted")
    assert code == 6
    assert "[2/3] Creating test directory... FAILED" in out
    assert "HTTP 403 AuthorizationPermissionMismatch" in err
    assert "Storage File Data Privileged Contributor" in err and "5-30 minutes" in err


def test_unknown_identity_exit_3(emulator: EmulatorProcess) -> None:
    code, out, err = run(emulator, "--share", "demo", "--client-id", "00000000-0000-0000-0000-000000000000")
    assert code == 3
    assert "[1/3] Getting token... FAILED" in out
    assert "00000000-0000-0000-0000-000000000000" in err


def test_service_unavailable_exit_10(emulator: EmulatorProcess) -> None:
    emulator.set_faults(
        [
            {
                "target": "files",
                "action": "status",
                "status": 503,
                "code": "ServerBusy",
                "count": 100,
                "retry_after": 0,
            }
        ]
    )
    try:
        code, _out, err = run(emulator, "--share", "demo", "--dir", "busy")
    finally:
        emulator.set_faults([])
    assert code == 10 and "HTTP 503 ServerBusy" in err


def test_as_a_process_with_env(emulator: EmulatorProcess) -> None:
    """The demo path: a separate process, the emulator chosen through KEYLESS_EMULATOR."""
    code = (
        "import sys; from keyless.cli.test_cmd import test_command; "
        "test_command(['--account', 'devaccount', '--share', 'demo', '--cleanup'])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"KEYLESS_EMULATOR": str(emulator.data_dir / "emulator.json"), "PATH": "/usr/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "=== SUCCESS ===" in proc.stdout
