"""The ticket reply as Microsoft's clients read it: byte for byte, with their own parsing rules.

Both of Microsoft's clients find each value by searching the body for the literal ``"<key>":"`` (no
whitespace allowed) up to the next ``"``: AzFilesAuthenticator src/azfilesauth.cpp:255-266 (``parseValue``)
and AzFilesSmbMIClient Windows/dll/src/AzFilesSmbMI.cpp:197. A reply with ``": "`` is unreadable to them, so
these tests port that search faithfully and run it on the emulator's raw reply bytes.
"""

from __future__ import annotations

import base64
import ssl
import urllib.request
from email.utils import formatdate
from typing import Any

from keyless.smb.krbcred import decode_krb_cred

RENEWABLE = 0x00800000  # the service's tickets (AzFilesAuthenticator README, list example: 8388608)


def ms_parse_value(body: str, key: str) -> str:
    """AzFilesAuthenticator src/azfilesauth.cpp:255-266, line for line."""
    key_with_quotes = '"' + key + '":"'
    start = body.find(key_with_quotes)
    if start == -1:
        return ""
    start += len(key_with_quotes)
    end = body.find('"', start)
    if end == -1:
        return ""
    return body[start:end]


def ms_decode_base64(encoded: str) -> bytes:
    """AzFilesAuthenticator's ``decodeBase64``: stops at the first ``=`` or non-alphabet character."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    taken = []
    for ch in encoded:
        if ch == "=" or ch not in alphabet:
            break
        taken.append(ch)
    text = "".join(taken)
    return base64.b64decode(text + "=" * (-len(text) % 4)) if text else b""


def raw_reply(ticket_server: Any, token: str) -> bytes:
    """The reply body exactly as the emulator sends it, requested with azfilesauth's headers."""
    req = urllib.request.Request(
        f"{ticket_server.url}/devaccount/?restype=service&comp=kerbticket", data=b"", method="POST",
        headers={"Accept": "*/*", "x-ms-version": "2024-05-04", "Authorization": f"Bearer {token}",
                 "x-ms-date": formatdate(usegmt=True), "User-Agent": "AzureFilesSmbAuth"})
    ctx = ssl.create_default_context(cafile=ticket_server.ca_cert)
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        assert resp.status == 200
        return bytes(resp.read())


def test_microsoft_parser_reads_every_field(ticket_server: Any) -> None:
    body = raw_reply(ticket_server, ticket_server.token("vm")).decode("ascii")
    ticket = ms_parse_value(body, "kerberosServiceTicket")
    session_key = ms_parse_value(body, "sessionKey")
    expiration = ms_parse_value(body, "expirationTime")
    assert ticket and session_key and expiration, body[:80]
    # Windows cuts the last five characters (".000Z") before parsing: AzFilesSmbMI.cpp:1535-1538.
    assert expiration.endswith(".000Z") and len(expiration) == len("2026-12-01T10:00:00.000Z")
    (cred,) = decode_krb_cred(ms_decode_base64(ticket))
    assert str(cred.server) == "cifs/devaccount.file.core.windows.net@FILES.AZURE.STORAGE.MICROSOFT.COM"
    assert base64.b64decode(session_key) == cred.session_key


def test_ticket_flags_and_renew_till_as_the_service_sends(ticket_server: Any) -> None:
    body = raw_reply(ticket_server, ticket_server.token("vm")).decode("ascii")
    (cred,) = decode_krb_cred(ms_decode_base64(ms_parse_value(body, "kerberosServiceTicket")))
    assert cred.flags == RENEWABLE
    assert cred.renew_till == cred.endtime > cred.starttime
