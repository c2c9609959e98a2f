"""Hostile bytes and replayed signatures against a real emulator process, over raw HTTP(S) connections.

http.client sends header values as given bytes, so bytes that are not UTF-8 reach the emulator exactly as a
hostile client would send them. Each reply must be the service's error shape (a 4xx with
``x-ms-error-code`` and an XML ``<Error>``), never a 500 or a traceback, and every request is audited.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import socket
import ssl
import time
import uuid
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit

import pytest
import urllib3

from keyless.files.auth import shared_key_string
from keyless.testing import EmulatorProcess

VERSION = "2025-05-05"
Header = tuple[str, str | bytes]


class Reply:
    def __init__(self, resp: http.client.HTTPResponse) -> None:
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.getheaders()}
        self.body = resp.read()

    @property
    def code(self) -> str | None:
        return self.headers.get("x-ms-error-code")


def send(url: str, method: str, path: str, headers: list[Header], body: bytes = b"",
         cafile: str | None = None) -> Reply:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        ctx = ssl.create_default_context(cafile=cafile)
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=ctx, timeout=30)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body or method in ("PUT", "POST"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        return Reply(conn.getresponse())
    finally:
        conn.close()


def files(emu: EmulatorProcess, method: str, path: str, headers: list[Header], body: bytes = b"") -> Reply:
    return send(emu.files_url, method, path, headers, body, cafile=emu.ca_cert)


def token(emu: EmulatorProcess) -> str:
    resp = urllib3.request("GET", f"{emu.imds_url}/metadata/identity/oauth2/token",
                           fields={"api-version": "2018-02-01", "resource": "https://storage.azure.com/"},
                           headers={"Metadata": "true"})
    return str(resp.json()["access_token"])


def bearer(emu: EmulatorProcess) -> list[Header]:
    return [("Authorization", f"Bearer {token(emu)}"), ("x-ms-file-request-intent", "backup"),
            ("x-ms-version", VERSION), ("x-ms-date", formatdate(usegmt=True))]


def shared_key(emu: EmulatorProcess, method: str, path: str, extra: dict[str, str] | None = None,
               *, content_length: int = 0) -> list[Header]:
    """Headers signed with the account key the way the official SDK signs them, for ``path``."""
    headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": VERSION, **(extra or {})}
    if content_length:
        headers["Content-Length"] = str(content_length)
    key = base64.b64decode(emu.account()["key"])
    sts = shared_key_string(method, f"{emu.files_url}{path}", headers, "devaccount")
    signature = base64.b64encode(hmac.digest(key, sts.encode("utf-8"), hashlib.sha256)).decode()
    headers.pop("Content-Length", None)  # send() adds the real one
    return [*headers.items(), ("Authorization", f"SharedKey devaccount:{signature}")]


def assert_service_error(reply: Reply, status: int, code: str | None = None) -> None:
    assert reply.status == status, (reply.status, reply.body[:300])
    assert reply.code, reply.headers
    if code is not None:
        assert reply.code == code
    assert b"<Error><Code>" in reply.body


def create_file(emu: EmulatorProcess, path: str, data: bytes) -> None:
    reply = files(emu, "PUT", path, [*bearer(emu), ("x-ms-type", "file"),
                                     ("x-ms-content-length", str(len(data)))])
    assert reply.status == 201, reply.body
    reply = files(emu, "PUT", f"{path}?comp=range", [*bearer(emu), ("x-ms-write", "update"),
                                                     ("x-ms-range", f"bytes=0-{len(data) - 1}")], data)
    assert reply.status == 201, reply.body


# --- Shared Key: exactly the canonical resource Azure signs ----------------------------------------------


def test_shared_key_signature_is_bound_to_its_resource(emulator: EmulatorProcess) -> None:
    create_file(emulator, "/devaccount/demo/sk-bound.txt", b"the signed file")
    path = "/devaccount/demo/sk-bound.txt"
    signed_get = shared_key(emulator, "GET", path)
    assert files(emulator, "GET", path, signed_get).status == 200

    # The SDK signs /devaccount/devaccount/demo/sk-bound.txt for that URL; the same string is the
    # account-once form of share "devaccount", file demo/sk-bound.txt. It must not open that resource.
    assert_service_error(files(emulator, "GET", f"/devaccount{path}", signed_get), 403,
                         "AuthenticationFailed")
    signed_delete = shared_key(emulator, "DELETE", path)
    assert_service_error(files(emulator, "DELETE", f"/devaccount{path}", signed_delete), 403,
                         "AuthenticationFailed")

    # a%2Fb (file b in directory a, encoded) decodes to the encoded form of a%252Fb (a file named a%2Fb).
    encoded = "/devaccount/demo/a%2Fb"
    for method in ("GET", "DELETE"):
        reply = files(emulator, method, "/devaccount/demo/a%252Fb", shared_key(emulator, method, encoded))
        assert_service_error(reply, 403, "AuthenticationFailed")

    # The original file was neither read through nor deleted by any replay.
    assert files(emulator, "GET", path, shared_key(emulator, "GET", path)).body == b"the signed file"


def test_shared_key_unsigned_range_header_is_refused(emulator: EmulatorProcess) -> None:
    path = "/devaccount/demo/sk-range.txt"
    create_file(emulator, path, b"0123456789")
    signed = shared_key(emulator, "GET", path)
    assert_service_error(files(emulator, "GET", path, [*signed, ("Range", "bytes=0-3")]), 403,
                         "AuthenticationFailed")
    # Signed with the Range header in its slot, the same read is a 206.
    reply = files(emulator, "GET", path, shared_key(emulator, "GET", path, {"Range": "bytes=0-3"}))
    assert (reply.status, reply.body) == (206, b"0123")


# --- bytes that are not UTF-8 ------------------------------------------------------------------------


BAD = b"\xff\xfe\xe9"


@pytest.mark.parametrize("case", ["bearer", "sharedkey-signature", "sharedkey-date", "x-ms-other",
                                  "client-request-id", "version", "content-type"])
def test_non_utf8_header_bytes_get_a_400(emulator: EmulatorProcess, case: str) -> None:
    path = "/devaccount/demo/nonutf8.txt"
    date = formatdate(usegmt=True)
    sk_base: list[Header] = [("x-ms-version", VERSION), ("x-ms-date", date)]
    headers: list[Header] = {
        "bearer": [("Authorization", b"Bearer " + BAD), ("x-ms-file-request-intent", "backup"),
                   ("x-ms-version", VERSION)],
        "sharedkey-signature": [*sk_base, ("Authorization", b"SharedKey devaccount:" + BAD)],
        "sharedkey-date": [("x-ms-version", VERSION), ("x-ms-date", BAD),
                           ("Authorization", "SharedKey devaccount:AAAA")],
        "x-ms-other": [*sk_base, ("x-ms-foo", BAD), ("Authorization", "SharedKey devaccount:AAAA")],
        "client-request-id": [*bearer(emulator), ("x-ms-client-request-id", BAD)],
        "version": [*bearer(emulator)[:2], ("x-ms-version", BAD)],
        "content-type": [*bearer(emulator), ("x-ms-type", "file"), ("x-ms-content-length", "1"),
                         ("x-ms-content-type", BAD)],
    }[case]
    method = "PUT" if case == "content-type" else "GET"
    reply = files(emulator, method, path, headers)
    assert_service_error(reply, 400, "InvalidHeaderValue")
    assert b"HeaderName" in reply.body
    assert "Traceback" not in emulator.stderr()


def test_request_with_non_utf8_client_request_id_is_refused_and_audited(emulator: EmulatorProcess) -> None:
    path = "/devaccount/demo/audited.txt"
    create_file(emulator, path, b"keep me")
    marker = str(uuid.uuid4())
    reply = files(emulator, "DELETE", path, [*bearer(emulator),
                                             ("x-ms-client-request-id", marker.encode() + BAD)])
    assert_service_error(reply, 400, "InvalidHeaderValue")
    # Nothing was applied, and the refusal is on record with the header shown escaped.
    assert files(emulator, "GET", path, bearer(emulator)).body == b"keep me"
    lines = [r for r in emulator.audit("StorageFileLogs") if marker in str(r.get("ClientRequestId"))]
    assert [(urlsplit(r["Uri"]).path, r["StatusCode"]) for r in lines] == [(path, "400")]

    # Valid UTF-8 beyond ASCII is an ordinary client request id: applied, echoed and audited as sent.
    request_id = f"{marker}-é"
    reply = files(emulator, "DELETE", path, [*bearer(emulator),
                                             ("x-ms-client-request-id", request_id.encode("utf-8"))])
    assert reply.status == 202
    lines = [r for r in emulator.audit("StorageFileLogs") if r.get("ClientRequestId") == request_id]
    assert [(r["OperationName"], r["StatusCode"]) for r in lines] == [("DeleteFile", "202")]


@pytest.mark.parametrize("header", ["User-Agent", "Host"])
def test_non_utf8_user_agent_or_host_is_refused_and_audited(emulator: EmulatorProcess, header: str) -> None:
    # The audit line records the User-Agent and, in its Uri, the Host: bytes that are not UTF-8 there
    # must not cost the line (or the reply) any more than in the headers the audit escapes by name.
    marker = str(uuid.uuid4())
    path = f"/devaccount/demo/{marker}.txt"
    port = urlsplit(emulator.files_url).port
    value = b"agent/1 " + BAD if header == "User-Agent" else b"127.0.0.1" + BAD + f":{port}".encode()
    headers = [*bearer(emulator), (header, value)]
    if header == "Host":
        reply = send_with_host(emulator, path, headers)
    else:
        reply = files(emulator, "GET", path, headers)
    assert_service_error(reply, 400, "InvalidHeaderValue")
    lines = [r for r in emulator.audit("StorageFileLogs") if marker in r["Uri"]]
    escaped = "\\udcff\\udcfe\\udce9"
    assert [r["StatusCode"] for r in lines] == ["400"]
    shown = lines[0]["UserAgentHeader"] if header == "User-Agent" else lines[0]["Uri"]
    assert escaped in shown
    assert "Traceback" not in emulator.stderr()


def send_with_host(emu: EmulatorProcess, path: str, headers: list[Header]) -> Reply:
    """``files`` with the Host header given in ``headers`` instead of the one http.client adds."""
    parts = urlsplit(emu.files_url)
    assert parts.hostname is not None and parts.port is not None
    ctx = ssl.create_default_context(cafile=emu.ca_cert)
    conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=ctx, timeout=30)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        return Reply(conn.getresponse())
    finally:
        conn.close()


def test_identity_side_non_utf8_bytes_are_refused_like_wrong_values(emulator: EmulatorProcess) -> None:
    control = send(emulator.imds_url, "GET", "/keyless/control/faults", [("X-Keyless-Control", BAD)])
    assert control.status == 403 and b"control secret" in control.body

    app_service = send(emulator.imds_url, "GET",
                       "/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fstorage.azure.com%2F",
                       [("X-IDENTITY-HEADER", BAD)])
    assert app_service.status == 400 and json.loads(app_service.body)["statusCode"] == 400

    arc = send(emulator.imds_url, "GET",
               "/arc/metadata/identity/oauth2/token?api-version=2020-06-01"
               "&resource=https%3A%2F%2Fstorage.azure.com%2F",
               [("Metadata", "true"), ("Authorization", b"Basic " + BAD)])
    assert arc.status == 401 and "basic realm=" in arc.headers.get("www-authenticate", "").lower()

    tenant = emulator.info["tenant_id"]
    workload = send(emulator.imds_url, "POST", f"/{tenant}/oauth2/v2.0/token",
                    [("Content-Type", "application/x-www-form-urlencoded")],
                    b"grant_type=client_credentials&client_id=" + BAD)
    body: dict[str, Any] = json.loads(workload.body)
    assert (workload.status, body["error"]) == (400, "invalid_request")
    assert "Traceback" not in emulator.stderr()


# --- numbers and versions -----------------------------------------------------------------------------


def test_numeric_headers_take_ascii_digits_only(emulator: EmulatorProcess) -> None:
    path = "/devaccount/demo/digits.txt"
    arabic_twelve = "\u0661\u0662".encode()
    reply = files(emulator, "PUT", path, [*bearer(emulator), ("x-ms-type", "file"),
                                          ("x-ms-content-length", arabic_twelve)])
    assert_service_error(reply, 400, "InvalidHeaderValue")
    assert files(emulator, "HEAD", path, bearer(emulator)).status == 404  # nothing was created

    create_file(emulator, path, b"0123456789")
    for value in ("bytes=" + "9" * 5000 + "-", "bytes=\u0660-\u0663"):
        reply = files(emulator, "GET", path, [*bearer(emulator), ("x-ms-range", value.encode())])
        assert_service_error(reply, 400, "InvalidHeaderValue")


def test_unknown_service_version_is_refused(emulator: EmulatorProcess) -> None:
    headers = [h for h in bearer(emulator) if h[0] != "x-ms-version"]
    reply = files(emulator, "GET", "/devaccount/demo?restype=directory&comp=list",
                  [*headers, ("x-ms-version", "9999-99-99")])
    assert_service_error(reply, 400, "InvalidHeaderValue")
    assert b"<HeaderName>x-ms-version</HeaderName>" in reply.body
    # A real version still works.
    reply = files(emulator, "GET", "/devaccount/demo?restype=directory&comp=list", bearer(emulator))
    assert reply.status == 200


# --- Clear Range ---------------------------------------------------------------------------------------


def test_clear_range_over_a_large_sparse_file_allocates_nothing(emulator: EmulatorProcess) -> None:
    size = 256 * 1024 * 1024 + 3 * 512  # an odd length, so its blob is recognisable among the others
    path = "/devaccount/demo/sparse-clear.bin"
    reply = files(emulator, "PUT", path, [*bearer(emulator), ("x-ms-type", "file"),
                                          ("x-ms-content-length", str(size))])
    assert reply.status == 201
    data = b"d" * (4 * 1024 * 1024)
    reply = files(emulator, "PUT", f"{path}?comp=range",
                  [*bearer(emulator), ("x-ms-write", "update"), ("x-ms-range", f"bytes=0-{len(data) - 1}")],
                  data)
    assert reply.status == 201
    blob = next(p for p in (emulator.data_dir / "blobs").iterdir() if p.stat().st_size == size)
    assert blob.stat().st_blocks * 512 >= len(data)

    reply = files(emulator, "PUT", f"{path}?comp=range",
                  [*bearer(emulator), ("x-ms-write", "clear"), ("x-ms-range", f"bytes=0-{size - 1}")])
    assert reply.status == 201, reply.body
    assert blob.stat().st_blocks * 512 < 1024 * 1024  # Azure: a metadata operation; here, a punched hole
    reply = files(emulator, "GET", path, [*bearer(emulator), ("x-ms-range", "bytes=0-1023")])
    assert reply.body == bytes(1024)
    reply = files(emulator, "GET", f"{path}?comp=rangelist", bearer(emulator))
    assert b"<Range>" not in reply.body  # no data ranges left


# --- malformed source URLs and clients that go away ------------------------------------------------------


@pytest.mark.parametrize("header", ["x-ms-file-rename-source", "x-ms-copy-source"])
def test_malformed_source_url_is_a_400(emulator: EmulatorProcess, header: str) -> None:
    path = "/devaccount/demo/source-url-target.txt"
    query = "?comp=rename" if header == "x-ms-file-rename-source" else ""
    reply = files(emulator, "PUT", path + query, [*bearer(emulator), (header, "http://[::1/devaccount/demo/x")])
    assert_service_error(reply, 400)
    assert reply.headers.get("x-ms-error-code") != "InternalError"


def test_client_gone_mid_body_is_no_server_error(emulator: EmulatorProcess) -> None:
    path = "/devaccount/demo/cut-short.bin"
    create_file(emulator, path, bytes(4096))
    host, port = emulator.files_url.removeprefix("https://").rsplit(":", 1)
    head = [f"PUT {path}?comp=range HTTP/1.1", f"Host: {host}:{port}", "Content-Length: 4096",
            "x-ms-write: update", "x-ms-range: bytes=0-4095",
            *(f"{name}: {value}" for name, value in bearer(emulator))]
    ctx = ssl.create_default_context(cafile=emulator.ca_cert)
    with socket.create_connection((host, int(port)), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + b"x" * 100)
        time.sleep(0.3)  # the handler is now waiting for the rest of the body
    deadline = time.monotonic() + 10
    lines: list[dict[str, Any]] = []
    while not lines and time.monotonic() < deadline:
        lines = [r for r in emulator.audit("StorageFileLogs")
                 if urlsplit(r["Uri"]).path == path and urlsplit(r["Uri"]).query == "comp=range"
                 and r["StatusCode"] != "201"]
        time.sleep(0.05)
    assert lines, "the cut-short request was not audited"
    assert all(int(r["StatusCode"]) < 500 for r in lines), lines
    assert "internal error" not in emulator.stderr() and "Traceback" not in emulator.stderr()
    # Nothing of the partial body was stored.
    assert files(emulator, "GET", path, bearer(emulator)).body == bytes(4096)
