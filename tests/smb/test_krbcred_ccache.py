"""Minting -> KRB-CRED decoding -> MIT credential cache -> GSSAPI acceptor with the emulator's keytab."""

from __future__ import annotations

import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import core

from keyless.emulator.kerberos import KerberosMinter, decode_keytab, ensure_keytab
from keyless.smb import ccache
from keyless.smb.errors import BadReply, CacheOtherClient, CacheTypeUnsupported
from keyless.smb.exchange import CLIENT_PRINCIPAL, server_principal
from keyless.smb.krbcred import Credential, Principal, decode_krb_cred

KLIST = shutil.which("klist")
REALM = "FILES.AZURE.STORAGE.MICROSOFT.COM"


@pytest.fixture
def minter(tmp_path: Path) -> KerberosMinter:
    return ensure_keytab(tmp_path / "emu", ["devaccount", "second"])


def mint(minter: KerberosMinter, account: str = "devaccount", life: float = 600) -> Credential:
    now = time.time()
    return decode_krb_cred(minter.mint(account, now=now, end=now + life).krb_cred)[0]


def test_krb_cred_round_trip(minter: KerberosMinter) -> None:
    now = time.time()
    minted = minter.mint("devaccount", now=now, end=now + 600)
    assert minted.krb_cred[0] == 0x76  # [APPLICATION 22], constructed
    (cred,) = decode_krb_cred(minted.krb_cred)
    assert str(cred.client) == f"AzureFileClient@{REALM}"
    assert str(cred.server) == f"cifs/devaccount.file.core.windows.net@{REALM}"
    assert cred.server.name_type == 2 and cred.client.name_type == 1
    assert cred.enctype == 18 and cred.session_key == minted.session_key and len(cred.session_key) == 32
    assert cred.starttime == int(now) and cred.endtime == int(now + 600)
    assert cred.flags == 0x00800000  # renewable, as the service's tickets (AzFilesAuthenticator README)
    assert cred.ticket[0] == 0x61  # [APPLICATION 1] Ticket
    assert "session_key" not in repr(cred) and minted.session_key.hex() not in repr(cred)


def test_encrypted_or_garbage_krb_cred_refused(minter: KerberosMinter) -> None:
    from keyless.emulator import kerberos as k

    now = time.time()
    cred = k.KrbCred.load(minter.mint("devaccount", now=now, end=now + 60).krb_cred)
    cred["enc-part"] = {"etype": 18, "cipher": b"x" * 40}
    with pytest.raises(BadReply, match="encrypted"):
        decode_krb_cred(cred.dump())
    with pytest.raises(BadReply, match="not a DER KRB-CRED"):
        decode_krb_cred(b"\x30\x03\x02\x01\x05")
    with pytest.raises(BadReply):
        decode_krb_cred(core.OctetString(b"nope").dump())


def test_keytab_listed_by_mit_and_stable(minter: KerberosMinter, tmp_path: Path) -> None:
    path = minter.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = decode_keytab(path.read_bytes())
    again = KerberosMinter(tmp_path / "emu", ["devaccount", "second", "third"])
    after = decode_keytab(again.path.read_bytes())
    assert after[:2] == before  # existing keys survive a restart; new accounts are appended
    hosts = [f"{a}.file.core.windows.net" for a in ("devaccount", "second", "third")]
    assert [e.components[1] for e in after] == hosts
    if KLIST is None:
        pytest.skip("klist (krb5-user) not installed")
    out = subprocess.run([KLIST, "-k", "-e", str(path)], capture_output=True, text=True, check=True).stdout
    assert f"cifs/devaccount.file.core.windows.net@{REALM} (aes256-cts-hmac-sha1-96)" in out


def test_store_list_replace_clear(minter: KerberosMinter, tmp_path: Path, handshake: Any) -> None:
    cache = f"FILE:{tmp_path / 'cc'}"
    first, second = mint(minter), mint(minter, life=1200)
    ccache.store(cache, first)
    ccache.store(cache, second)  # replaces the older ticket for the same server
    ccache.store(cache, mint(minter, "second"))
    tickets = ccache.list_tickets(cache)
    assert [t.server for t in tickets] == [f"cifs/devaccount.file.core.windows.net@{REALM}",
                                           f"cifs/second.file.core.windows.net@{REALM}"]
    assert tickets[0].ticket_end_time == second.endtime and tickets[0].client == "AzureFileClient"
    assert tickets[0].realm == REALM and tickets[0].ticket_flags == 0x00800000
    assert stat.S_IMODE((tmp_path / "cc").stat().st_mode) == 0o600
    assert handshake(cache, minter.path) == f"AzureFileClient@{REALM}"
    assert ccache.clear(cache, CLIENT_PRINCIPAL, server_principal("devaccount")) is True
    assert ccache.clear(cache, CLIENT_PRINCIPAL, server_principal("devaccount")) is False
    assert [t.server for t in ccache.list_tickets(cache)] == [f"cifs/second.file.core.windows.net@{REALM}"]


def test_dir_cache_collection(minter: KerberosMinter, tmp_path: Path, handshake: Any) -> None:
    (tmp_path / "ccdir").mkdir(mode=0o700)
    cache = f"DIR:{tmp_path / 'ccdir'}"
    ccache.store(cache, mint(minter))
    assert len(ccache.list_tickets(cache)) == 1
    handshake(cache, minter.path)


def test_other_client_refused_unless_force(minter: KerberosMinter, tmp_path: Path) -> None:
    cache = f"FILE:{tmp_path / 'cc'}"
    alice = Principal(1, ("alice",), "EXAMPLE.COM")
    other = Credential(client=alice, server=Principal(2, ("host", "x"), "EXAMPLE.COM"), enctype=18,
                       session_key=b"k" * 32, flags=0, authtime=int(time.time()), starttime=0,
                       endtime=int(time.time()) + 60, renew_till=0, ticket=mint(minter).ticket)
    ccache.store(cache, other)
    with pytest.raises(CacheOtherClient, match=r"alice@EXAMPLE\.COM"):
        ccache.store(cache, mint(minter))
    ccache.store(cache, mint(minter), force=True)
    assert len(ccache.list_tickets(cache)) == 1


def test_unsupported_cache_type(minter: KerberosMinter) -> None:
    with pytest.raises(CacheTypeUnsupported):
        ccache.store("NOSUCHTYPE:whatever", mint(minter))


def test_missing_cache_lists_nothing(tmp_path: Path) -> None:
    assert ccache.list_tickets(f"FILE:{tmp_path / 'absent'}") == []
    assert ccache.clear(f"FILE:{tmp_path / 'absent'}", CLIENT_PRINCIPAL, server_principal("x1y")) is False
