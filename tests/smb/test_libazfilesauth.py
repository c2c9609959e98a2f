"""The drop-in ``libazfilesauth.so``: built as scripts/install.sh builds it, used from C and from ctypes.

A C program compiled against the header and linked with ``-lazfilesauth`` sets, lists and clears a ticket
from the emulator; then the same through ``ctypes``, declared exactly as Microsoft's manager declares it
(AzFilesAuthenticator src/azfilesauthmanager.py:24-49), inside this (multithreaded) Python process.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT_C = Path(__file__).parent / "native" / "client.c"
HELPER = str(Path(sys.executable).parent / "keyless-azfilesauth-lib")
URI = "https://devaccount.file.core.windows.net"
SERVER = "cifs/devaccount.file.core.windows.net@FILES.AZURE.STORAGE.MICROSOFT.COM"
SET_ERROR = "Error getting Kerberos service ticket, check /var/log/syslog for more information.\n"
CLEAR_ERROR = "Error clearing credential, check /var/log/syslog for more information.\n"

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "gcc")) is None,
                                reason="no C compiler (scripts/install.sh installs gcc)")


@pytest.fixture(scope="module")
def libdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("libazfilesauth")
    subprocess.run([str(ROOT / "native" / "build.sh"), HELPER], env=dict(os.environ, OUT=str(out)),
                   check=True, capture_output=True, timeout=120)
    return out


@pytest.fixture
def world(ticket_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    cache = tmp_path / "krb5cc"
    config = tmp_path / "config.yaml"
    config.write_text(f"USER_UID: 0\nKRB5_CC_NAME: FILE:{cache}\n")
    values = {"KEYLESS_AZFILESAUTH_CONFIG": str(config), "KEYLESS_EMULATOR": str(ticket_server.emulator_json)}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return {**values, "cache": str(cache)}


def test_files_and_symbols(libdir: Path) -> None:
    assert os.readlink(libdir / "libazfilesauth.so") == "libazfilesauth.so.0"
    assert os.readlink(libdir / "libazfilesauth.so.0") == "libazfilesauth.so.0.0.0"
    dynamic = subprocess.run(["readelf", "-d", "-W", str(libdir / "libazfilesauth.so.0.0.0")],
                             capture_output=True, text=True, check=True).stdout
    assert "Library soname: [libazfilesauth.so.0]" in dynamic
    rows = subprocess.run(["nm", "-D", "--defined-only", str(libdir / "libazfilesauth.so")],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    exported = {row.split()[2] for row in rows if row.split()[1] == "T"}
    assert exported == {"extern_smb_set_credential_oauth_token", "extern_smb_clear_credential",
                        "extern_smb_list_credential", "extern_smb_version"}


def test_c_program_sets_lists_and_clears(libdir: Path, world: dict[str, str], ticket_server: Any,
                                         tmp_path: Path) -> None:
    exe = tmp_path / "client"
    subprocess.run([os.environ.get("CC", "gcc"), "-std=c11", "-Wall", "-Werror",
                    "-I", str(ROOT / "native" / "include"), str(CLIENT_C),
                    "-L", str(libdir), "-lazfilesauth", f"-Wl,-rpath,{libdir}", "-o", str(exe)],
                   check=True, timeout=120)
    env = {**os.environ, **world}

    def client(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(exe), *args], input=stdin, env=env, capture_output=True, text=True,
                              timeout=60, check=True)

    token = ticket_server.token("vm")
    done = client("set", URI, stdin=token)
    rc, expires = done.stdout.strip().split()
    assert rc == "rc=0" and 590 <= int(expires.split("=")[1]) <= 600, done.stdout + done.stderr
    assert stat.S_IMODE(Path(world["cache"]).stat().st_mode) == 0o600
    listed = client("list")
    assert listed.stdout.startswith(f"Credential 1:\n  Server: {SERVER}\n  Client: AzureFileClient\n")
    assert listed.stdout.endswith("rc=0\n") and "  Ticket end time:   " in listed.stdout
    as_json = client("list", "json").stdout
    (ticket,) = json.loads(as_json.removesuffix("rc=0\n"))
    assert ticket["server"] == SERVER and "(epoch: " in ticket["ticket_end_time"]
    assert client("clear", URI).stdout == "rc=0\n"
    assert client("list", "json").stdout == "[\n\n]\nrc=0\n"
    assert client("version").stdout == "1.0.11\n"
    refused = client("set", URI, stdin=ticket_server.token("reader"))
    assert refused.stdout == SET_ERROR + "rc=-1 expires=0\n"
    assert "role_missing" in refused.stderr and token not in refused.stderr + refused.stdout
    assert client("set", "http://devaccount.file.core.windows.net", stdin=token).stdout == "rc=-1 expires=0\n"


def test_ctypes_as_microsofts_manager_loads_it(libdir: Path, world: dict[str, str], ticket_server: Any,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    lib = ctypes.CDLL(str(libdir / "libazfilesauth.so"))
    lib.extern_smb_set_credential_oauth_token.argtypes = [ctypes.c_char_p, ctypes.c_char_p,
                                                          ctypes.POINTER(ctypes.c_uint)]
    lib.extern_smb_set_credential_oauth_token.restype = ctypes.c_int
    lib.extern_smb_clear_credential.argtypes = [ctypes.c_char_p]
    lib.extern_smb_clear_credential.restype = ctypes.c_int
    lib.extern_smb_list_credential.argtypes = [ctypes.c_bool]
    lib.extern_smb_list_credential.restype = ctypes.c_int
    lib.extern_smb_version.restype = ctypes.c_char_p

    assert lib.extern_smb_version() == b"1.0.11"
    validity = ctypes.c_uint()
    rc = lib.extern_smb_set_credential_oauth_token(URI.encode(), ticket_server.token("vm").encode(),
                                                   ctypes.byref(validity))
    assert rc == 0 and 590 <= validity.value <= 600, capfd.readouterr()
    capfd.readouterr()
    assert lib.extern_smb_list_credential(True) == 0
    (ticket,) = json.loads(capfd.readouterr().out)
    assert ticket["server"] == SERVER
    assert lib.extern_smb_clear_credential(URI.encode()) == 0
    assert lib.extern_smb_list_credential(False) == 0
    assert capfd.readouterr().out == ""
    Path(world["cache"]).unlink()
    assert lib.extern_smb_clear_credential(URI.encode()) == -1
    assert capfd.readouterr().out == CLEAR_ERROR
    assert lib.extern_smb_set_credential_oauth_token(URI.encode(), b"", ctypes.byref(validity)) == -1


def test_install_lib_puts_it_where_the_manager_looks(libdir: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from keyless.cli.smb_cmd import smb_group

    lib, inc = tmp_path / "usr" / "lib", tmp_path / "usr" / "include"
    result = CliRunner().invoke(smb_group, ["install-lib", "--from", str(libdir), "--libdir", str(lib),
                                            "--includedir", str(inc)])
    assert result.exit_code == 0, result.output
    assert os.readlink(lib / "libazfilesauth.so") == "libazfilesauth.so.0"
    assert (lib / "libazfilesauth.so.0.0.0").read_bytes() == (libdir / "libazfilesauth.so.0.0.0").read_bytes()
    assert {p.name for p in inc.iterdir()} == {"azfilesauth.h", "azfilesauthversion.h"}
    assert ctypes.CDLL(str(lib / "libazfilesauth.so")).extern_smb_version  # loadable by that name
    missing = CliRunner().invoke(smb_group, ["install-lib", "--from", str(tmp_path / "nothing"),
                                             "--libdir", str(lib)])
    assert missing.exit_code != 0 and "scripts/install.sh" in missing.output


def test_azfilesauth_python_module(world: dict[str, str], ticket_server: Any,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """``from azfilesauth import ...`` as Microsoft's refresher does (src/azfilesrefresh.py.in:7)."""
    from azfilesauth import azfiles_clear, azfiles_list, azfiles_set_oauth, get_oauth_token, init_new_user

    assert init_new_user() == "0"  # USER_UID 0 exists: nothing is created
    assert get_oauth_token() is None  # the in-process emulator has no IMDS: the real tool's message
    assert "Error fetching system-assigned managed identity token" in capsys.readouterr().out
    azfiles_set_oauth(URI, ticket_server.token("vm"))
    assert capsys.readouterr().out == ""
    azfiles_list(True)
    (ticket,) = json.loads(capsys.readouterr().out)
    assert ticket["server"] == SERVER
    azfiles_clear(URI)
    assert capsys.readouterr().out == "azfilesauthmanager clear: 0\n"
    with pytest.raises(SystemExit) as done:
        azfiles_set_oauth(URI, ticket_server.token("reader"))
    assert done.value.code == 1
    assert capsys.readouterr().out == SET_ERROR + "[-] Error calling AzAuthenticatorLib: -1\n"


def test_robust_in_awkward_callers(libdir: Path, world: dict[str, str], capfd: pytest.CaptureFixture[str],
                                   tmp_path: Path) -> None:
    """Threads calling at once, and a caller that ignores SIGCHLD (the child is reaped before waitpid):
    the result comes back on the result pipe either way."""
    import threading

    lib = ctypes.CDLL(str(libdir / "libazfilesauth.so"))
    lib.extern_smb_list_credential.argtypes = [ctypes.c_bool]
    lib.extern_smb_list_credential.restype = ctypes.c_int
    codes: list[int] = []
    threads = [threading.Thread(target=lambda: codes.append(lib.extern_smb_list_credential(True)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert codes == [0, 0, 0, 0]
    assert capfd.readouterr().out == "[]\n" * 4  # no cache yet: the real library's missing-cache form

    script = tmp_path / "ignore_sigchld.py"
    script.write_text(
        "import ctypes, signal, sys\n"
        "signal.signal(signal.SIGCHLD, signal.SIG_IGN)\n"
        f"lib = ctypes.CDLL({str(libdir / 'libazfilesauth.so')!r})\n"
        "lib.extern_smb_list_credential.argtypes = [ctypes.c_bool]\n"
        "rc = lib.extern_smb_list_credential(True)\n"
        "sys.stdout.write(f'rc={rc}\\n')\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                          check=False, env={**os.environ, **world})
    assert (done.returncode, done.stdout) == (0, "[]\nrc=0\n"), done.stderr
