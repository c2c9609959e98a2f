"""Private-endpoint mounts and boot-safe ``--persist`` units, checked by systemd's own tools."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from keyless.cli.smb_cmd import smb_group
from keyless.smb.mount import plan_mount
from keyless.smb.units import escape_path

REFRESH = str(Path(sys.executable).parent / "azfilesrefresh")


@pytest.mark.parametrize("path", ["/mnt/share", "/mnt/my share-x/ü", "/srv/.hidden/a_b:c", "/"])
def test_unit_names_match_systemd_escape(path: str) -> None:
    expected = subprocess.run(["systemd-escape", "--path", path], capture_output=True, text=True,
                              check=True).stdout.strip()
    assert escape_path(path) == expected


def test_private_endpoint_keeps_the_canonical_name_and_connects_to_the_private_address() -> None:
    asked: list[str] = []

    def resolver(name: str) -> list[str]:
        asked.append(name)
        return ["10.1.2.3"]

    plan = plan_mount("//acct01.privatelink.file.core.windows.net/share", "/mnt/x", uid=0, resolver=resolver)
    assert asked == ["acct01.privatelink.file.core.windows.net"]
    assert plan.argv[3] == "//acct01.file.core.windows.net/share"  # what cifs.upcall asks a ticket for
    assert "ip=10.1.2.3" in plan.argv[-1].split(",")
    assert any("10.1.2.3" in n for n in plan.notes)
    public = plan_mount("//acct01.file.core.windows.net/share", "/mnt/x", uid=0, resolver=resolver)
    assert not any(o.startswith("ip=") for o in public.argv[-1].split(","))


def test_persist_writes_units_that_systemd_accepts_and_remove_deletes_them(tmp_path: Path) -> None:
    units = tmp_path / "units"
    done = CliRunner().invoke(smb_group, ["mount", "//acct01.file.core.windows.net/share", "/mnt/azure share",
                                          "--persist", "--unit-dir", str(units), "--uid", "1001"])
    assert done.exit_code == 0, done.output
    mount = units / "mnt-azure\\x20share.mount"
    automount = units / "mnt-azure\\x20share.automount"
    text = mount.read_text()
    assert "After=network-online.target azfilesrefresh.service" in text
    assert "Options=_netdev,sec=krb5,cruid=1001,username=root," in text
    assert "What=//acct01.file.core.windows.net/share" in text and "Where=/mnt/azure share" in text
    assert "Where=/mnt/azure share" in automount.read_text()
    refresher = tmp_path / "azfilesrefresh.service"
    refresher.write_text(subprocess.run([REFRESH, "--print-unit"], capture_output=True, text=True,
                                        check=True).stdout)
    verify = subprocess.run(["systemd-analyze", "verify", str(mount), str(automount), str(refresher)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert (verify.returncode, verify.stderr) == (0, ""), verify.stderr
    removed = CliRunner().invoke(smb_group, ["mount", "//acct01.file.core.windows.net/share",
                                             "/mnt/azure share", "--persist", "--remove",
                                             "--unit-dir", str(units)])
    assert removed.exit_code == 0 and not mount.exists() and not automount.exists()


def test_keyless_agent_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    from keyless.cli.agent_cmd import agent_command

    printed = CliRunner().invoke(agent_command, ["install-unit", "--print"])
    assert printed.exit_code == 0, printed.output
    unit = tmp_path / "keyless-agent.service"
    unit.write_text(printed.output)
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert (verify.returncode, verify.stderr) == (0, ""), verify.stderr
