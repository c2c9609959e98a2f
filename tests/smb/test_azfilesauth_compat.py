"""``azfilesauthmanager`` against Microsoft's published output, byte for byte, through the real command.

Fixtures come from AzFilesAuthenticator (release 1.0.11): the values of the README's "List Credentials"
example (server ``mystorageaccount``, flags 8388608, start 1765082912, end = renew-till 1765169127) in the
layout ``src/azfilesauth.cpp:985-1052`` prints. That layout prints the client's first component
(``AzureFileClient``); the README's example, written for a later revision, shows the full principal and a
``Using Kerberos cache`` line that 1.0.11 does not print.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keyless.emulator.kerberos import KerberosMinter
from keyless.smb import ccache
from keyless.smb.krbcred import decode_krb_cred

MANAGER = str(Path(sys.executable).parent / "azfilesauthmanager")
START, END = 1765082912, 1765169127
SERVER = "cifs/mystorageaccount.file.core.windows.net@FILES.AZURE.STORAGE.MICROSOFT.COM"

TEXT_FIXTURE = """\
Credential 1:
  Server: cifs/mystorageaccount.file.core.windows.net@FILES.AZURE.STORAGE.MICROSOFT.COM
  Client: AzureFileClient
  Realm: FILES.AZURE.STORAGE.MICROSOFT.COM
  Ticket flags: 8388608
  Ticket start time: 12/07/25 04:48:32 UTC (epoch: 1765082912)
  Ticket end time:   12/08/25 04:45:27 UTC (epoch: 1765169127)
  Ticket renew till: 12/08/25 04:45:27 UTC (epoch: 1765169127)
"""

JSON_FIXTURE = """\
[
  {
    "server": "cifs/mystorageaccount.file.core.windows.net@FILES.AZURE.STORAGE.MICROSOFT.COM",
    "client": "AzureFileClient",
    "realm": "FILES.AZURE.STORAGE.MICROSOFT.COM",
    "ticket_flags": 8388608,
    "ticket_start_time": "12/07/25 04:48:32 UTC (epoch: 1765082912)",
    "ticket_end_time": "12/08/25 04:45:27 UTC (epoch: 1765169127)",
    "ticket_renew_till": "12/08/25 04:45:27 UTC (epoch: 1765169127)"
  }
]
"""

# Every config here names an existing USER_UID (0), so the azfilesuser bootstrap never creates a real user.
USAGE_HEAD = "Usage:\n    azfilesauthmanager list [--json]\n"


def manager(args: list[str], config: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "TZ": "UTC", "KRB5_CONFIG": str(tmp_path / "krb5.conf"),
           "KEYLESS_AGENT_STATE": str(tmp_path / "agent.json")}
    (tmp_path / "krb5.conf").write_text("[libdefaults]\n  dns_lookup_kdc = false\n")
    return subprocess.run([MANAGER, *args, "--config", str(config)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture
def readme_cache(tmp_path: Path) -> tuple[str, Path]:
    """A FILE cache holding the README example's ticket, and a config naming it."""
    minted = KerberosMinter(tmp_path / "kdc", ["mystorageaccount"]).mint("mystorageaccount", now=START,
                                                                        end=END)
    (cred,) = decode_krb_cred(minted.krb_cred)
    cache = f"FILE:{tmp_path / 'krb5cc_1001'}"
    ccache.store(cache, cred)
    config = tmp_path / "config.yaml"
    config.write_text(f"KRB5_CC_NAME: {cache}\nUSER_UID: 0\n")
    return cache, config


def test_list_text_is_byte_for_byte(readme_cache: tuple[str, Path], tmp_path: Path) -> None:
    done = manager(["list"], readme_cache[1], tmp_path)
    assert (done.returncode, done.stdout) == (0, TEXT_FIXTURE), done.stderr


def test_list_json_is_byte_for_byte(readme_cache: tuple[str, Path], tmp_path: Path) -> None:
    done = manager(["list", "--json"], readme_cache[1], tmp_path)
    assert (done.returncode, done.stdout) == (0, JSON_FIXTURE), done.stderr
    # Unknown extra list arguments are ignored, as src/azfilesauthmanager.py:240-249 does.
    assert manager(["list", "--bogus"], readme_cache[1], tmp_path).stdout == TEXT_FIXTURE


def test_microsoft_refresher_reads_the_end_time(readme_cache: tuple[str, Path], tmp_path: Path) -> None:
    """Port of azfilesrefresh's EPOCH_RE / _parse_epoch / is_expiring (src/azfilesrefresh.py.in:68-95)."""
    epoch_re = re.compile(r"\(epoch:\s*(\d+)\)")
    (ticket,) = json.loads(manager(["list", "--json"], readme_cache[1], tmp_path).stdout)
    match = epoch_re.search(ticket["ticket_end_time"])
    assert match is not None and int(match.group(1)) == END
    assert (int(time.time()) + 300 + 60) >= int(match.group(1))  # expired long ago: it would refresh


def test_empty_forms(readme_cache: tuple[str, Path], tmp_path: Path) -> None:
    config = readme_cache[1]
    missing = tmp_path / "missing.yaml"
    missing.write_text(f"KRB5_CC_NAME: FILE:{tmp_path / 'nothing'}\nUSER_UID: 0\n")
    assert manager(["list", "--json"], missing, tmp_path).stdout == "[]\n"
    assert manager(["list"], missing, tmp_path).stdout == ""
    cleared = manager(["clear", "https://mystorageaccount.file.core.windows.net"], config, tmp_path)
    assert (cleared.returncode, cleared.stdout) == (0, "azfilesauthmanager clear: 0\n"), cleared.stderr
    # The cache still exists, with no cifs ticket: the real library prints "[", an empty line, "]".
    assert manager(["list", "--json"], config, tmp_path).stdout == "[\n\n]\n"


def test_clear_of_a_missing_cache_fails(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"KRB5_CC_NAME: FILE:{tmp_path / 'nothing'}\nUSER_UID: 0\n")
    done = manager(["clear", "https://acct.file.core.windows.net"], config, tmp_path)
    assert done.returncode == 1
    assert done.stdout == ("Error clearing credential, check /var/log/syslog for more information.\n"
                           "azfilesauthmanager clear: -1\n[-] Error calling AzAuthenticatorLib: -1\n")


def test_clear_needs_https(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"KRB5_CC_NAME: FILE:{tmp_path / 'nothing'}\nUSER_UID: 0\n")
    done = manager(["clear", "acct.file.core.windows.net"], config, tmp_path)
    assert done.returncode == 1
    assert "file_endpoint_uri is not prefixed with 'https://'. Provided: acct.file.core.windows.net" \
        in done.stderr
    assert done.stdout == "azfilesauthmanager clear: -1\n[-] Error calling AzAuthenticatorLib: -1\n"


@pytest.mark.parametrize("args", [[], ["set", "https://acct.file.core.windows.net"], ["bogus"],
                                  ["clear"], ["list", "--json", "extra"],
                                  ["set", "https://acct.file.core.windows.net", "--imds-client-id"]])
def test_usage_errors(args: list[str], tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"KRB5_CC_NAME: FILE:{tmp_path / 'cc'}\nUSER_UID: 0\n")
    done = manager(args, config, tmp_path)
    assert done.returncode == 1
    assert done.stdout.startswith(USAGE_HEAD) and done.stdout.endswith("--version\n\n")


def test_one_identity_option_at_most(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("USER_UID: 0\n")  # an existing uid: no account is created on this machine
    done = manager(["set", "https://acct.file.core.windows.net", "--system", "--imds-client-id", "x"],
                   config, tmp_path)
    assert (done.returncode, done.stdout) == (
        1, "Cannot specify more than one of --system, --imds-client-id, or --workload-identity\n")


def test_version(tmp_path: Path) -> None:
    done = manager(["--version"], tmp_path / "absent.yaml", tmp_path)
    assert (done.returncode, done.stdout) == (0, "1.0.11\n")


def test_keyless_smb_list_prints_the_same(readme_cache: tuple[str, Path],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from keyless.cli.smb_cmd import smb_group

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        text = CliRunner().invoke(smb_group, ["list", "--ccache", readme_cache[0]], catch_exceptions=False)
        as_json = CliRunner().invoke(smb_group, ["list", "--json", "--ccache", readme_cache[0]])
    finally:
        monkeypatch.undo()
        time.tzset()
    assert (text.output, as_json.output) == (TEXT_FIXTURE, JSON_FIXTURE)
