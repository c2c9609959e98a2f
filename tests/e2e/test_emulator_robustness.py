"""Hostile input never yields a 500 or a dead server: random paths, queries and headers, raw junk."""

from __future__ import annotations

import random
import socket
import ssl
from email.utils import formatdate
from urllib.parse import quote

import pytest
import urllib3

from keyless.testing import EmulatorProcess

ALPHABET = "abc/.%#?&=+ é\u00ff\u4e2d\x7f\\:*<>|\"'~"


def _token(emu: EmulatorProcess) -> str:
    resp = urllib3.request("GET", f"{emu.imds_url}/metadata/identity/oauth2/token",
                           fields={"api-version": "2018-02-01", "resource": "https://storage.azure.com/"},
                           headers={"Metadata": "true"})
    return str(resp.json()["access_token"])


def test_random_requests_get_4xx_never_5xx(emulator: EmulatorProcess) -> None:
    rng = random.Random(20261123)
    http = urllib3.PoolManager(ca_certs=emulator.ca_cert, retries=False)
    base = {"Authorization": f"Bearer {_token(emulator)}", "x-ms-file-request-intent": "backup",
            "x-ms-version": "2025-05-05", "x-ms-date": formatdate(usegmt=True)}
    queries = ["", "restype=directory", "comp=list", "restype=directory&comp=list&maxresults=-1",
               "comp=range", "comp=metadata", "comp=properties", "comp=rename", "comp=lease",
               "restype=share", "comp=rangelist", "restype=directory&comp=rename", "comp=bogus"]
    header_pool = [{}, {"x-ms-type": "file", "x-ms-content-length": "12"}, {"x-ms-range": "bytes=9-2"},
                   {"x-ms-range": "bytes=abc"}, {"Range": "bytes=0-"}, {"x-ms-write": "clear"},
                   {"x-ms-meta-ok": "v", "x-ms-meta-": "empty"}, {"x-ms-file-rename-source": "%%%"},
                   {"x-ms-copy-source": "https://elsewhere.example/x"}, {"x-ms-lease-action": "explode"},
                   {"x-ms-content-length": "99999999999999999999"}, {"x-ms-file-attributes": "Bogus|None"}]
    statuses = []
    for _ in range(250):
        segments = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 6)))
                    for _ in range(rng.randint(0, 4))]
        path = "/devaccount/demo/" + "/".join(quote(s, safe="") for s in segments)
        method = rng.choice(["GET", "PUT", "HEAD", "DELETE", "POST", "OPTIONS"])
        query = rng.choice(queries)
        headers = {**base, **rng.choice(header_pool)}
        body = rng.choice([None, b"", b"x" * rng.randint(1, 64)]) if method in ("PUT", "POST") else None
        resp = http.request(method, f"{emulator.files_url}{path}" + (f"?{query}" if query else ""),
                            headers=headers, body=body)
        statuses.append(resp.status)
        assert resp.status < 500, (method, path, query, headers, resp.status, resp.data[:300])
        if resp.status >= 400:
            assert resp.headers.get("x-ms-error-code"), (method, path, query, resp.status)
    assert any(s >= 400 for s in statuses) and any(s < 300 for s in statuses)


@pytest.mark.parametrize("junk", [
    b"GARBAGE\r\n\r\n",
    b"GET /devaccount/demo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PUT /devaccount/demo/f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"\x16\x03\x01\x00\x05hello",
])
def test_raw_junk_does_not_hurt_the_server(emulator: EmulatorProcess, junk: bytes) -> None:
    host, port = emulator.files_url.removeprefix("https://").rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=emulator.ca_cert)
    with socket.create_connection((host, int(port)), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(junk)
        try:
            reply = tls.recv(4096)
        except (ConnectionError, ssl.SSLError, TimeoutError):
            reply = b""
    assert not reply.startswith(b"HTTP/1.1 5")
    # and the server still serves a normal request afterwards
    http = urllib3.PoolManager(ca_certs=emulator.ca_cert, retries=False)
    assert http.request("GET", f"{emulator.files_url}/devaccount/demo").status == 401
