"""``keyless doctor`` against a real emulator process: the healthy world, and each broken one."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from click.testing import CliRunner

from keyless.cli.doctor_cmd import doctor_command
from keyless.cli.files_cmd import FILE_COMMANDS
from keyless.testing import EmulatorProcess

READER_WORLD = """
[[accounts]]
name = "acct1"
shares = ["data"]

[[identities]]
name = "vm"
type = "system"

[[role_assignments]]
role = "Storage File Data Privileged Reader"
principal = "vm"
scope = "acct1/data"
"""


def doctor(emu: EmulatorProcess, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(doctor_command, ["--json", "--emulator", str(emu.data_dir), *args])
    payload = json.loads(result.stdout)
    return result.exit_code, {c["check"]: c for c in payload["checks"]}


def test_default_world_is_healthy(emulator: EmulatorProcess) -> None:
    code, checks = doctor(emulator, "--account", "devaccount", "--share", "demo")
    assert code == 0, checks
    assert {name: c["status"] for name, c in checks.items()} == dict.fromkeys(
        [
            "imds",
            "identity",
            "token",
            "dns",
            "tls",
            "clock",
            "intent-header",
            "read",
            "write",
            "delete",
            "rbac",
        ],
        "OK",
    )
    assert "MissingRequiredHeader" in checks["intent-header"]["detail"]
    assert "emulator" in checks["dns"]["detail"]
    # the probe directory is gone
    ls = CliRunner().invoke(
        FILE_COMMANDS["ls"], ["--json", "--emulator", str(emulator.data_dir), "azfiles://devaccount/demo/"]
    )
    assert ls.exit_code == 0 and not [
        e for e in json.loads(ls.stdout) if e["name"].startswith(".keyless-doctor-")
    ]


def test_human_table(emulator: EmulatorProcess) -> None:
    result = CliRunner().invoke(doctor_command, ["--emulator", str(emulator.data_dir)])
    assert result.exit_code == 0, result.output
    assert "devaccount/demo" in result.output
    assert "intent-header  OK" in result.output and "healthy" in result.output


def test_reader_role_fails_write_with_the_role_to_assign(
    emulator_factory: Callable[..., EmulatorProcess],
) -> None:
    emu = emulator_factory(READER_WORLD)
    code, checks = doctor(emu)
    assert code == 1
    assert checks["read"]["status"] == "OK"
    assert checks["write"]["status"] == "FAIL"
    assert "Storage File Data Privileged Contributor" in checks["write"]["fix"]
    assert "acct1/fileServices/default/fileshares/data" in checks["write"]["fix"]
    assert checks["delete"]["status"] == "SKIP"
    assert checks["rbac"]["status"] == "FAIL"
    assert "read-only role" in checks["rbac"]["detail"]
    assert "Storage File Data Privileged Contributor" in checks["rbac"]["fix"]


def test_clock_skew_is_reported(emulator_factory: Callable[..., EmulatorProcess]) -> None:
    emu = emulator_factory()
    emu.set_clock_offset(600)
    code, checks = doctor(emu)
    assert checks["clock"]["status"] == "FAIL"
    assert "600 s ahead" in checks["clock"]["detail"] or "599 s ahead" in checks["clock"]["detail"]
    assert code == 1
    emu.set_clock_offset(120)
    code, checks = doctor(emu)
    assert checks["clock"]["status"] == "WARN" and code == 0


def test_imds_down_fails_identity(emulator_factory: Callable[..., EmulatorProcess]) -> None:
    emu = emulator_factory()
    emu.set_faults([{"target": "imds", "action": "status", "status": 500}])
    code, checks = doctor(emu)
    assert code == 1
    assert checks["imds"]["status"] == "FAIL" and "500" in checks["imds"]["detail"]
    assert checks["identity"]["status"] == "FAIL"
    assert checks["read"]["status"] == "SKIP"
    emu.set_faults([{"target": "imds", "action": "drop"}])
    code, checks = doctor(emu)
    assert code == 1
    assert checks["imds"]["status"] == "FAIL" and checks["identity"]["status"] == "FAIL"
