"""Sovereign clouds, any https endpoint, and reply validation no stricter than Microsoft's clients.

The server principal follows the endpoint's host (a ``chinacloudapi.cn`` ticket names that host); replies
are refused only when unusable (no KRB-CRED, or a ticket for another host), not for what
AzFilesAuthenticator ignores: ``sessionKey`` (never read on Linux, src/azfilesauth.cpp:525-527 only parses
it) and ``expirationTime`` (optional, a parse failure only logged, src/azfilesauth.cpp:758-781).
"""

from __future__ import annotations

import base64
import json
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
import urllib3

from keyless.emulator.kerberos import KerberosMinter
from keyless.smb import ccache
from keyless.smb.errors import BadReply, InvalidEndpoint
from keyless.smb.exchange import CLIENT_PRINCIPAL, parse_endpoint, request_ticket

REALM = "FILES.AZURE.STORAGE.MICROSOFT.COM"


@pytest.mark.parametrize(("uri", "server", "account"), [
    ("https://acct01.file.core.windows.net/", f"cifs/acct01.file.core.windows.net@{REALM}", "acct01"),
    ("https://acct01.file.core.chinacloudapi.cn", f"cifs/acct01.file.core.chinacloudapi.cn@{REALM}",
     "acct01"),
    ("https://acct01.file.core.usgovcloudapi.net/", f"cifs/acct01.file.core.usgovcloudapi.net@{REALM}",
     "acct01"),
    ("https://acct01.privatelink.file.core.chinacloudapi.cn/",
     f"cifs/acct01.file.core.chinacloudapi.cn@{REALM}", "acct01"),
    ("https://Files.Contoso.Example:8443/", f"cifs/files.contoso.example@{REALM}", "files"),
])
def test_server_principal_follows_the_host(uri: str, server: str, account: str) -> None:
    endpoint = parse_endpoint(uri)
    assert (str(endpoint.server), endpoint.account) == (server, account)
    assert endpoint.exchange_url.endswith("/?restype=service&comp=kerbticket")


@pytest.mark.parametrize(("uri", "text"), [
    ("http://acct01.file.core.windows.net", "https"),
    ("https://10.0.0.5/", "IP address"),
    ("https://[fd00::5]/", "IP address"),
    ("https://user:secret@acct01.file.core.windows.net/", "user name or password"),
    ("https:///nohost", "no host"),
])
def test_still_refused(uri: str, text: str) -> None:
    with pytest.raises(InvalidEndpoint, match=text) as info:
        parse_endpoint(uri)
    assert "secret" not in str(info.value)


class ReplayPool:
    """A urllib3 pool double answering the exchange with a prepared body."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = json.dumps(body, separators=(",", ":")).encode()

    def request(self, method: str, url: str, **_: Any) -> urllib3.HTTPResponse:
        return urllib3.HTTPResponse(body=self.body, status=200, preload_content=True,
                                    headers={"Date": formatdate(usegmt=True)})


def reply_for(tmp_path: Path, host: str, *, realm: str = REALM, **fields: Any) -> dict[str, Any]:
    now = time.time()
    minted = KerberosMinter(tmp_path / "kdc", ["acct01"]).mint("acct01", now=now, end=now + 3600,
                                                              server_host=host, realm=realm)
    body = {"kerberosServiceTicket": base64.b64encode(minted.krb_cred).decode(),
            "sessionKey": base64.b64encode(minted.session_key).decode(),
            "expirationTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now + 3600))}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def test_sovereign_ticket_accepted_and_cleared(tmp_path: Path) -> None:
    endpoint = parse_endpoint("https://acct01.file.core.chinacloudapi.cn")
    # the realm of a sovereign cloud's tickets is not documented: whatever the service names is kept
    body = reply_for(tmp_path, "acct01.file.core.chinacloudapi.cn", realm="FILES.AZURE.STORAGE.CHINA")
    reply = request_ticket(endpoint, "header.e30.sig", pool=ReplayPool(body))  # type: ignore[arg-type]
    assert str(reply.credential.server) == "cifs/acct01.file.core.chinacloudapi.cn@FILES.AZURE.STORAGE.CHINA"
    cache = f"FILE:{tmp_path / 'cc'}"
    ccache.store(cache, reply.credential)
    # clear names the server in the realm of the cache's principal, as src/azfilesauth.cpp clear does
    assert ccache.clear(cache, CLIENT_PRINCIPAL, endpoint.server)
    assert ccache.list_tickets(cache) == []


@pytest.mark.parametrize("fields", [
    {"sessionKey": None},
    {"sessionKey": base64.b64encode(b"not the key").decode()},
    {"sessionKey": "%%% not base64"},
    {"expirationTime": None},
    {"expirationTime": "sometime tomorrow"},
])
def test_fields_microsoft_ignores_are_not_required(tmp_path: Path, fields: dict[str, Any]) -> None:
    endpoint = parse_endpoint("https://acct01.file.core.windows.net")
    body = reply_for(tmp_path, "acct01.file.core.windows.net", **fields)
    reply = request_ticket(endpoint, "header.e30.sig", pool=ReplayPool(body))  # type: ignore[arg-type]
    assert reply.credential.endtime > time.time()
    assert abs(reply.expiration - reply.credential.endtime) <= 1 or "expirationTime" not in fields


@pytest.mark.parametrize(("host", "fields", "text"), [
    ("other01.file.core.windows.net", {}, "names cifs/other01"),
    ("acct01.file.core.windows.net", {"kerberosServiceTicket": None}, "kerberosServiceTicket"),
    ("acct01.file.core.windows.net", {"kerberosServiceTicket": "AAAA"}, "KRB-CRED"),
])
def test_unusable_replies_refused(tmp_path: Path, host: str, fields: dict[str, Any], text: str) -> None:
    endpoint = parse_endpoint("https://acct01.file.core.windows.net")
    body = reply_for(tmp_path, host, **fields)
    with pytest.raises(BadReply, match=text):
        request_ticket(endpoint, "header.e30.sig", pool=ReplayPool(body))  # type: ignore[arg-type]
