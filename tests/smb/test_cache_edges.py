"""Credential-cache names that cannot work are refused with a cause, never a traceback or a stray directory;
a token can come from stdin instead of argv (where every local user can read it in /proc)."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from keyless.cli.smb_cmd import smb_group
from keyless.smb import ccache
from keyless.smb.errors import CacheError, CacheTypeUnsupported
from keyless.smb.krbcred import decode_krb_cred

URI = "https://devaccount.file.core.windows.net"


def credential(ticket_server: Any) -> Any:
    from keyless.emulator.kerberos import KerberosMinter

    now = 1_800_000_000.0
    minted = KerberosMinter(ticket_server.ctx.data_dir, ["devaccount"]).mint("devaccount", now=now,
                                                                           end=now + 600)
    return decode_krb_cred(minted.krb_cred)[0]


def test_missing_directory_is_not_created(ticket_server: Any, tmp_path: Path) -> None:
    target = tmp_path / "nonexistent" / "dir" / "cc"
    with pytest.raises(CacheError, match="does not exist"):
        ccache.store(f"FILE:{target}", credential(ticket_server))
    assert not (tmp_path / "nonexistent").exists()


def test_proc_path_named_not_a_traceback(ticket_server: Any) -> None:
    with pytest.raises(CacheError) as info:
        ccache.store("FILE:/proc/keyless_cc", credential(ticket_server))
    assert "/proc/keyless_cc" in info.value.message


def test_memory_cache_refused(ticket_server: Any) -> None:
    with pytest.raises(CacheTypeUnsupported, match="process"):
        ccache.store("MEMORY:x", credential(ticket_server))


def test_token_from_stdin(ticket_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = ticket_server.token("vm")
    cache = f"FILE:{tmp_path / 'cc'}"
    result = CliRunner().invoke(smb_group, ["set", URI, "-", "--emulator", str(ticket_server.emulator_json),
                                            "--ccache", cache, "--no-register"], input=token + "\n")
    assert result.exit_code == 0, result.output
    assert [t.server for t in ccache.list_tickets(cache)] == [
        "cifs/devaccount.file.core.windows.net@FILES.AZURE.STORAGE.MICROSOFT.COM"]
    from keyless.smb.azfilesauthmanager import main

    config = tmp_path / "config.yaml"
    config.write_text(f"USER_UID: 0\nKRB5_CC_NAME: FILE:{tmp_path / 'cc2'}\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO(token))
    rc = main(["set", URI, "-", "--config", str(config), "--no-register"], out=io.StringIO(),
              err=io.StringIO(), env={"KEYLESS_EMULATOR": str(ticket_server.emulator_json)})
    assert rc == 0 and ccache.list_tickets(f"FILE:{tmp_path / 'cc2'}")
