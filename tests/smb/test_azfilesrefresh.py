"""``azfilesrefresh``: Microsoft's refresh daemon's contract, on keyless agent.

Mount discovery is checked on kernel-format rows; then the daemon runs as a real process against a real
emulator process with 16-second tickets set the real tool's way (a raw token, nothing registered), and must
refresh exactly the mounted ``sec=krb5`` shares that name a ``username=``, with the identity that names.
"""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3

from keyless.smb.mounts import KerberosMount, mount_registrations, parse_mounts
from keyless.testing import EmulatorProcess, start_emulator
from smb.smb_world import emulator_args, krb5_env, server, ticket_ends, uri, world

LIFETIME = 16
REFRESH = [str(Path(sys.executable).parent / "azfilesrefresh")]
MANAGER = [str(Path(sys.executable).parent / "azfilesauthmanager")]

# Rows as the kernel writes them (/proc/self/mounts), cut to what matters plus realistic noise.
TABLE = """\
/dev/sda1 / ext4 rw,relatime 0 0
//acct01.file.core.windows.net/share /mnt/a cifs rw,relatime,vers=3.1.1,cache=strict,username=root,uid=0,noforceuid,addr=10.0.0.4,sec=krb5,cruid=0 0 0
//acct02.file.core.windows.net/data /mnt/with\\040space cifs rw,vers=3.1.1,sec=krb5i,cruid=0,username=11111111-2222-3333-4444-555555555555 0 0
//acct03.file.core.windows.net/x /mnt/c cifs rw,vers=3.1.1,sec=krb5,cruid=0 0 0
//acct04.file.core.windows.net/y /mnt/d cifs rw,vers=3.1.1,sec=ntlmssp,username=admin 0 0
//10.0.0.9/z /mnt/e cifs rw,sec=krb5,username=root 0 0
acct05.file.core.windows.net:/nfs /mnt/f nfs4 rw,sec=krb5,username=root 0 0
"""  # noqa: E501 - kernel rows are long


def test_parse_mounts_as_azfilesrefresh_selects_them() -> None:
    assert parse_mounts(TABLE) == [
        KerberosMount("acct01.file.core.windows.net", "share", "/mnt/a", "root"),
        KerberosMount("acct02.file.core.windows.net", "data", "/mnt/with space",
                      "11111111-2222-3333-4444-555555555555"),
        KerberosMount("10.0.0.9", "z", "/mnt/e", "root"),
    ]


def test_identity_from_username() -> None:
    regs = mount_registrations(parse_mounts(TABLE), ccache="FILE:/tmp/krb5cc_0", config=None, emulator=None)
    by_server = {r.server: r.source for r in regs.values()}
    assert by_server == {  # the IP-address mount is dropped: no ticket can name it
        "cifs/acct01.file.core.windows.net@FILES.AZURE.STORAGE.MICROSOFT.COM": by_server[
            "cifs/acct01.file.core.windows.net@FILES.AZURE.STORAGE.MICROSOFT.COM"],
        "cifs/acct02.file.core.windows.net@FILES.AZURE.STORAGE.MICROSOFT.COM": by_server[
            "cifs/acct02.file.core.windows.net@FILES.AZURE.STORAGE.MICROSOFT.COM"],
    }
    sources = sorted((s.kind, s.client_id or "") for s in by_server.values())
    assert sources == [("imds", ""), ("imds", "11111111-2222-3333-4444-555555555555")]


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with start_emulator(tmp_path_factory.mktemp("refresh-e2e"), world(f"{LIFETIME}s")) as process:
        yield process


def system_token(emu: EmulatorProcess) -> str:
    resp = urllib3.request("GET", f"{emu.imds_url}/metadata/identity/oauth2/token",
                           fields={"api-version": "2018-02-01", "resource": "https://storage.azure.com"},
                           headers={"Metadata": "true"}, timeout=10)
    assert resp.status == 200, resp.data
    return str(json.loads(resp.data)["access_token"])


def test_refreshes_the_real_tools_tickets_of_mounted_shares(emu: EmulatorProcess, tmp_path: Path) -> None:
    cache = f"FILE:{tmp_path / 'krb5cc'}"
    config = tmp_path / "config.yaml"
    config.write_text(f"USER_UID: 0\nKRB5_CC_NAME: {cache}\n")
    env = krb5_env(tmp_path, KEYLESS_AGENT_STATE=str(tmp_path / "state" / "agent.json"))
    token = system_token(emu)
    for account in ("devaccount", "otheracct", "thirdacct"):
        done = subprocess.run([*MANAGER, "set", uri(account), token, "--config", str(config), "--no-register",
                               *emulator_args(emu)], env=env, capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, done.stderr
    before = ticket_ends(cache)
    vm = emu.identity("vm")["client_id"]
    mounts = tmp_path / "mounts"
    mounts.write_text(
        f"//devaccount.file.core.windows.net/demo /mnt/a cifs rw,sec=krb5,cruid=0,username={vm} 0 0\n"
        "//otheracct.file.core.windows.net/demo /mnt/b cifs rw,sec=krb5,cruid=0,username=root 0 0\n"
        "//thirdacct.file.core.windows.net/demo /mnt/c cifs rw,sec=krb5,cruid=0 0 0\n")
    log = tmp_path / "azfilesrefresh.log"
    proc = subprocess.Popen([*REFRESH, "--config", str(config), "--mounts", str(mounts), "--log-file",
                             str(log), "--poll", "1", "--min-window", "8", "--fstab", "/dev/null",
                             *emulator_args(emu)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 3 * LIFETIME
        refreshed: dict[str, int] = {}
        while time.monotonic() < deadline:
            now = ticket_ends(cache)
            refreshed = {s: e for s, e in now.items() if e > before[s]}
            if {server("devaccount"), server("otheracct")} <= set(refreshed):
                break
            time.sleep(0.5)
        assert set(refreshed) == {server("devaccount"), server("otheracct")}, (refreshed, log.read_text())
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    text = log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert "[INFO] refreshed cifs/devaccount" in text and "[INFO] refreshed cifs/otheracct" in text
    assert f"user-assigned identity {vm} (IMDS)" in text and "system-assigned managed identity (IMDS)" in text
    assert "thirdacct" not in text  # mounted without username=: skipped, as Microsoft's daemon does
    assert token not in text + err


def test_unit_file_matches_microsofts_contract(tmp_path: Path) -> None:
    done = subprocess.run([*REFRESH, "--print-unit"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    unit = done.stdout
    assert f"ExecStart={REFRESH[0]}\n" in unit and "Restart=on-failure" in unit and "User=root" in unit
    assert f"ExecStartPre={REFRESH[0]} --provision\n" in unit
    assert "WantedBy=multi-user.target" in unit
    # systemd's own check (Debian's systemd package): syntax, known keys, an executable ExecStart.
    path = tmp_path / "azfilesrefresh.service"
    path.write_text(unit)
    verify = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert (verify.returncode, verify.stderr) == (0, ""), verify.stderr


def test_provision_creates_the_tickets_of_opted_in_fstab_entries(emu: EmulatorProcess,
                                                                 tmp_path: Path) -> None:
    """Microsoft's documented fstab line (README: x-systemd.requires=azfilesrefresh.service, username=)
    gets its ticket before the mount runs; entries not opted in are left alone."""
    cache = f"FILE:{tmp_path / 'krb5cc'}"
    config = tmp_path / "config.yaml"
    config.write_text(f"USER_UID: 0\nKRB5_CC_NAME: {cache}\n")
    fstab = tmp_path / "fstab"
    fstab.write_text(
        "# <file system> <mount point> <type> <options> <dump> <pass>\n"
        "//devaccount.file.core.windows.net/demo /mnt/a cifs "
        "sec=krb5,username=root,x-systemd.requires=azfilesrefresh.service 0 0\n"
        "//otheracct.file.core.windows.net/demo /mnt/b cifs sec=krb5,username=root 0 0\n")
    env = krb5_env(tmp_path, KEYLESS_AGENT_STATE=str(tmp_path / "agent.json"))
    log = tmp_path / "refresh.log"
    done = subprocess.run([*REFRESH, "--provision", "--fstab", str(fstab), "--config", str(config),
                           "--log-file", str(log), *emulator_args(emu)], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert set(ticket_ends(cache)) == {server("devaccount")}
    assert "provisioned cifs/devaccount" in log.read_text()
