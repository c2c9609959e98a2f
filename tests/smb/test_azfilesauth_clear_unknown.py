"""``azfilesauthmanager clear`` of an endpoint that has no ticket in an existing cache succeeds, as
Microsoft's tool does: AzFilesAuthenticator src/azfilesauth.cpp smb_clear_credential reads the cache's
principal, then returns 0 when ``krb5_cc_remove_cred(..., KRB5_TC_MATCH_SRV_NAMEONLY, ...)`` does, and MIT
libkrb5 (1.20 and later, whose FILE caches implement remove_cred) succeeds when nothing matches. Only a
missing cache fails (krb5_cc_get_principal), which test_azfilesauth_compat.py covers."""

from __future__ import annotations

from pathlib import Path

import krb5

from keyless.emulator.kerberos import KerberosMinter
from keyless.smb import ccache
from keyless.smb.krbcred import Principal, decode_krb_cred
from smb.test_azfilesauth_compat import END, START, TEXT_FIXTURE, manager

REALM = "FILES.AZURE.STORAGE.MICROSOFT.COM"


def test_libkrb5_removing_an_absent_ticket_from_a_file_cache_succeeds(tmp_path: Path) -> None:
    """The library fact the real tool's exit status rests on, checked on this machine's libkrb5."""
    ctx = krb5.init_context()
    cache = krb5.cc_resolve(ctx, f"FILE:{tmp_path / 'cc'}".encode())
    krb5.cc_initialize(ctx, cache, krb5.parse_name_flags(ctx, f"AzureFileClient@{REALM}".encode()))
    absent = ccache._match_creds(ctx, Principal(1, ("AzureFileClient",), REALM),
                                 Principal(2, ("cifs", "nosuch.file.core.windows.net"), REALM))
    krb5.cc_remove_cred(ctx, cache, krb5.CredentialsRetrieveFlags.match_srv_nameonly, absent)  # no raise


def test_clear_of_an_endpoint_without_a_ticket_succeeds_and_keeps_the_others(tmp_path: Path) -> None:
    minted = KerberosMinter(tmp_path / "kdc", ["mystorageaccount"]).mint("mystorageaccount", now=START,
                                                                        end=END)
    (cred,) = decode_krb_cred(minted.krb_cred)
    cache = f"FILE:{tmp_path / 'krb5cc_1001'}"
    ccache.store(cache, cred)
    config = tmp_path / "config.yaml"
    config.write_text(f"KRB5_CC_NAME: {cache}\nUSER_UID: 0\n")
    done = manager(["clear", "https://otheraccount.file.core.windows.net"], config, tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "azfilesauthmanager clear: 0\n", "")
    assert manager(["list"], config, tmp_path).stdout == TEXT_FIXTURE  # the other ticket is still there
