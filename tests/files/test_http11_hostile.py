"""The hand-written HTTP/1.1 client against a hostile server and a careless network: every reply it cannot
frame exactly is refused (never short or smuggled data taken as complete), TLS is always verified, every
blocking call is bounded, connections are never shared or leaked, and no credential reaches an error."""

from __future__ import annotations

import datetime
import ipaddress
import os
import pickle
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from keyless.files.http11 import Http11Pool, SendError
from keyless.files.transport import Transport

# --- throwaway certificates -----------------------------------------------------------------------------


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA and three server certificates: one for 127.0.0.1/localhost, one for another host (signed by the
    same CA) and one self-signed for 127.0.0.1."""
    out = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("keyless test CA", ca_key, "keyless test CA", ca_key, ca=True)
    local = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    files: dict[str, str] = {}

    def write(name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> None:
        path = out / f"{name}.pem"
        data = cert.public_bytes(serialization.Encoding.PEM)
        if key is not None:
            data += key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        path.write_bytes(data)
        files[name] = str(path)

    write("ca", ca, None)
    for name, sans, self_signed in (
        ("good", local, False),
        ("wrong_host", [x509.DNSName("other.example")], False),
        ("self_signed", local, True),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        if self_signed:
            write(name, _cert("127.0.0.1", key, "127.0.0.1", key, ca=False, sans=sans), key)
        else:
            write(name, _cert(name, key, "keyless test CA", ca_key, ca=False, sans=sans), key)
    return files


# --- a scripted server -------------------------------------------------------------------------------------

#: Handles one accepted connection: reads requests with ``read_request`` and writes raw bytes.
Handler = Callable[[socket.socket, int], None]


def read_request(conn: socket.socket) -> bytes:
    """One request (head and Content-Length body), or b"" when the client closed."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(rest) < length:
        rest += conn.recv(65536)
    return head + b"\r\n\r\n" + rest


class Server:
    def __init__(self, handler: Handler, cert: str | None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.errors: list[BaseException] = []
        self._handler = handler
        self._tls: ssl.SSLContext | None = None
        if cert:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(cert)
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            thread = threading.Thread(target=self._serve, args=(conn, self.accepted), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket, number: int) -> None:
        conn = raw
        try:
            if self._tls:
                conn = self._tls.wrap_socket(raw, server_side=True)
            self._conns.append(conn)
            self._handler(conn, number)
        except (OSError, ssl.SSLError):
            pass  # the client hung up or refused the certificate: what several tests want
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
        finally:
            conn.close()

    def close(self) -> None:
        self.listener.close()
        for conn in self._conns:
            conn.close()
        for thread in self._threads:
            thread.join(5)


@pytest.fixture
def serve(pki: dict[str, str]) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(handler: Handler, cert: str | None = "good") -> Server:
        server = Server(handler, pki[cert] if cert else None)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def replies(*answers: bytes) -> Handler:
    """Answers each request read on a connection with the next of ``answers`` (shared by all
    connections), then waits for the client to close."""
    queue = list(answers)

    def handler(conn: socket.socket, _: int) -> None:
        while queue and read_request(conn):
            conn.sendall(queue.pop(0))
        conn.recv(1)

    return handler


@pytest.fixture
def pool(pki: dict[str, str]) -> Iterator[Http11Pool]:
    pool = Http11Pool(
        ssl_context=ssl.create_default_context(cafile=pki["ca"]), connect_timeout=3, read_timeout=3
    )
    yield pool
    pool.clear()


def refused(pool: Http11Pool, url: str, method: str = "GET") -> SendError:
    with pytest.raises(SendError) as info:
        pool.request(method, url, {})
    return info.value


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


# --- TLS ---------------------------------------------------------------------------------------------------


def test_tls_is_verified_against_the_given_ca(serve: Callable[..., Server], pool: Http11Pool) -> None:
    server = serve(replies(OK))
    assert pool.request("GET", f"{server.url}/x", {}).data == b"ok"


@pytest.mark.parametrize(
    ("cert", "reason"),
    [("wrong_host", "IP address mismatch"), ("self_signed", "self-signed certificate")],
)
def test_tls_a_wrong_host_or_self_signed_server_is_refused(
    serve: Callable[..., Server], pool: Http11Pool, cert: str, reason: str
) -> None:
    server = serve(replies(OK), cert=cert)
    error = refused(pool, f"{server.url}/x")
    assert error.sent is False  # the request never went out
    message = str(error)
    assert "CERTIFICATE_VERIFY_FAILED" in message and reason in message
    assert f"127.0.0.1:{server.port}" in message  # names the server refused
    assert "ca_cert=" in message  # and the way to trust a private CA


def test_tls_the_system_store_does_not_trust_a_private_ca(serve: Callable[..., Server]) -> None:
    server = serve(replies(OK))
    pool = Http11Pool(connect_timeout=3, read_timeout=3)  # the default context
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused(pool, f"{server.url}/x"))


def test_tls_the_transport_trusts_its_ca_cert_only(serve: Callable[..., Server], pki: dict[str, str]) -> None:
    good, wrong = serve(replies(OK)), serve(replies(OK), cert="wrong_host")
    transport = Transport(ca_cert=pki["ca"], timeout=urllib3.Timeout(connect=3, read=3))
    try:
        assert transport.request("GET", f"{good.url}/x", {}).data == b"ok"
        with pytest.raises(SendError, match="CERTIFICATE_VERIFY_FAILED") as info:
            transport.request("GET", f"{wrong.url}/x", {})
        assert info.value.sent is False
    finally:
        transport.close()
    context = transport._pool.ssl_context
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_tls_sends_sni_for_names(serve: Callable[..., Server], pki: dict[str, str]) -> None:
    seen: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["good"])
    context.sni_callback = lambda sock, name, ctx: seen.append(name)  # type: ignore[func-returns-value]
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as tls:
            read_request(tls)
            tls.sendall(OK)
            tls.recv(1)

    threading.Thread(target=accept, daemon=True).start()
    pool = Http11Pool(ssl_context=ssl.create_default_context(cafile=pki["ca"]), read_timeout=3)
    try:
        assert pool.request("GET", f"https://localhost:{listener.getsockname()[1]}/x", {}).data == b"ok"
    finally:
        pool.clear()
        listener.close()
    assert seen == ["localhost"]


def test_tls_an_unverified_or_old_protocol_context_is_refused() -> None:
    lax = ssl.create_default_context()
    lax.check_hostname = False
    lax.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError, match="verif"):
        Http11Pool(ssl_context=lax)
    old = ssl.create_default_context()
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with pytest.raises(ValueError, match=r"TLS 1\.2"):
        Http11Pool(ssl_context=old)
    default = Http11Pool().ssl_context
    assert default.verify_mode == ssl.CERT_REQUIRED and default.check_hostname
    assert default.minimum_version >= ssl.TLSVersion.TLSv1_2


# --- reply framing -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status_line",
    [
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.1 +20 OK",
        b"HTTP/1.1 2_0 OK",
        b"HTTP/1.1 20",
        b"HTTP/2 200 OK",
        b"HTTP/1.1  200 OK",
        b"ICY 200 OK",
        b"HTTP/1.1 099 Low",
    ],
)
def test_a_malformed_status_line_is_refused(
    serve: Callable[..., Server], pool: Http11Pool, status_line: bytes
) -> None:
    server = serve(replies(status_line + b"\r\nContent-Length: 0\r\n\r\n"))
    error = refused(pool, f"{server.url}/x")
    assert error.sent and "not valid HTTP/1.1" in str(error)


def test_a_status_line_without_reason_is_accepted(serve: Callable[..., Server], pool: Http11Pool) -> None:
    server = serve(replies(b"HTTP/1.1 204\r\n\r\n", b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"))
    assert pool.request("GET", f"{server.url}/x", {}).status == 204
    assert pool.request("GET", f"{server.url}/x", {}).status == 200


def test_an_http10_reply_is_read_and_its_connection_not_reused(
    serve: Callable[..., Server], pool: Http11Pool
) -> None:
    # An HTTP/1.0 server closes after each reply unless it says keep-alive; the second request must not
    # go to a connection the server is about to close (it could be lost after it was sent).
    seen: list[int] = []

    def handler(conn: socket.socket, number: int) -> None:
        seen.append(number)
        read_request(conn)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        time.sleep(0.3)  # closes late: the client must not rely on noticing the close

    server = serve(handler)
    assert pool.request("GET", f"{server.url}/a", {}).data == b"ok"
    assert pool.request("POST", f"{server.url}/b", {}).data == b"ok"
    assert seen == [1, 2]


def test_1xx_replies_before_the_final_one_are_skipped(serve: Callable[..., Server], pool: Http11Pool) -> None:
    server = serve(
        replies(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
        )
    )
    reply = pool.request("PUT", f"{server.url}/x", {"Content-Length": "0"})
    assert (reply.status, reply.data, "link" in reply.headers) == (201, b"ok", False)


def test_a_header_block_over_the_limit_is_refused(serve: Callable[..., Server], pool: Http11Pool) -> None:
    huge = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 400_000 + b"\r\n\r\n"
    server = serve(replies(huge))
    error = refused(pool, f"{server.url}/x")
    assert error.sent and "header block is too large" in str(error)


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 2\r\n\r\n",
        # obs-fold (RFC 9112 section 5.2: a client may reject it); with or without a colon in the fold
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\n Content-Length: 7\r\nContent-Length: 2\r\n\r\n",
        # whitespace between name and colon (RFC 9112 section 5.1: must be rejected)
        b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\n",
        # a bare LF or CR hiding a header from one parser and showing it to another
        b"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: 1\nX-B: 2\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: 1\rX-B: 2\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-\xc3\xa9: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n: empty name\r\nContent-Length: 2\r\n\r\n",
    ],
)
def test_a_malformed_header_line_is_refused(
    serve: Callable[..., Server], pool: Http11Pool, head: bytes
) -> None:
    server = serve(replies(head + b"ok"))
    error = refused(pool, f"{server.url}/x")
    assert error.sent and "not valid HTTP/1.1" in str(error)


def test_non_ascii_header_values_are_kept_as_latin1(serve: Callable[..., Server], pool: Http11Pool) -> None:
    server = serve(replies(b"HTTP/1.1 200 OK\r\nX-Name: caf\xc3\xa9 \xff\r\nContent-Length: 2\r\n\r\nok"))
    reply = pool.request("GET", f"{server.url}/x", {})
    assert reply.headers["x-name"] == "caf\xc3\xa9 \xff" and reply.data == b"ok"


@pytest.mark.parametrize(
    "lengths",
    [
        b"Content-Length: 2\r\nContent-Length: 3\r\n",
        b"Content-Length: 2, 3\r\n",
        b"Content-Length: +2\r\n",
        b"Content-Length: -2\r\n",
        b"Content-Length: 0x2\r\n",
        b"Content-Length: 2_0\r\n",
        b"Content-Length: 2.0\r\n",
        b"Content-Length: \r\n",
        b"Content-Length: 99999999999999999999999\r\n",
        b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
    ],
)
def test_an_ambiguous_or_invalid_content_length_is_refused(
    serve: Callable[..., Server], pool: Http11Pool, lengths: bytes
) -> None:
    server = serve(replies(b"HTTP/1.1 200 OK\r\n" + lengths + b"\r\n2\r\nok\r\n0\r\n\r\n"))
    error = refused(pool, f"{server.url}/x")
    assert error.sent and "not valid HTTP/1.1" in str(error)


def test_identical_repeated_content_lengths_are_one(serve: Callable[..., Server], pool: Http11Pool) -> None:
    # RFC 9110 section 8.6: a recipient may take repeated identical values as one.
    server = serve(replies(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok", OK))
    assert pool.request("GET", f"{server.url}/x", {}).data == b"ok"
    assert pool.request("GET", f"{server.url}/x", {}).data == b"ok"
    assert server.accepted == 1


def test_a_huge_content_length_is_not_allocated_up_front(
    serve: Callable[..., Server], pool: Http11Pool
) -> None:
    # 1 TB announced, 2 bytes sent: a clear "cut short" error, never a MemoryError.
    def handler(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\nok")  # then closes

    server = serve(handler)
    error = refused(pool, f"{server.url}/x")
    assert error.sent and "closed before the reply was complete" in str(error)


@pytest.mark.parametrize(
    "body",
    [
        b"0x2\r\nok\r\n0\r\n\r\n",
        b"+2\r\nok\r\n0\r\n\r\n",
        b"-2\r\nok\r\n0\r\n\r\n",
        b"2_0\r\nok\r\n0\r\n\r\n",
        b"\r\nok\r\n0\r\n\r\n",
        b"zz\r\nok\r\n0\r\n\r\n",
        b"2\r\nokXX0\r\n\r\n",  # chunk data not followed by CRLF
        b"2\nok\r\n0\r\n\r\n",
    ],
)
def test_a_bad_chunk_size_or_frame_is_refused(
    serve: Callable[..., Server], pool: Http11Pool, body: bytes
) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    server = serve(replies(head + body))
    error = refused(pool, f"{server.url}/x")
    assert error.sent and ("not valid HTTP/1.1" in str(error) or "closed before" in str(error))


@pytest.mark.parametrize("coding", [b"xchunked", b"gzip, chunked", b"chunked, gzip", b"identity"])
def test_a_transfer_coding_other_than_chunked_is_refused(
    serve: Callable[..., Server], pool: Http11Pool, coding: bytes
) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + coding + b"\r\n\r\n"
    server = serve(replies(head + b"2\r\nok\r\n0\r\n\r\n"))
    error = refused(pool, f"{server.url}/x")
    assert error.sent and "not valid HTTP/1.1" in str(error)


def test_chunk_extensions_and_trailers_are_accepted(serve: Callable[..., Server], pool: Http11Pool) -> None:
    server = serve(
        replies(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
            b"2;name=value;x\r\nok\r\nA\r\n0123456789\r\n0;last\r\nX-Trailer: 1\r\nY: 2\r\n\r\n",
            OK,
        )
    )
    assert pool.request("GET", f"{server.url}/x", {}).data == b"ok0123456789"
    assert pool.request("GET", f"{server.url}/x", {}).data == b"ok"
    assert server.accepted == 1


@pytest.mark.parametrize(
    "cut",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nshort\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nshort\r\n0\r\n",  # no final CRLF
        b"HTTP/1.1 200 OK\r\nContent-Len",
    ],
)
@pytest.mark.parametrize("cert", ["good", None])
def test_a_truncated_reply_is_an_error_never_short_data(
    serve: Callable[..., Server], pool: Http11Pool, cut: bytes, cert: str | None
) -> None:
    def handler(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(cut)  # then close, without a TLS close_notify for the TLS case

    server = serve(handler, cert=cert)
    error = refused(pool, f"{server.url}/x")
    assert error.sent and "closed before the reply was complete" in str(error)
    sunk: list[bytes] = []

    def sink(headers: dict[str, str], read_into: Callable[[memoryview], int], size: int) -> None:
        buf = bytearray(size)
        got = 0
        while got < size:
            got += read_into(memoryview(buf)[got:])
        sunk.append(bytes(buf))

    with pytest.raises(SendError, match="closed before"):
        pool.request("GET", f"{server.url}/x", {}, sink=sink)
    assert sunk == []


def test_extra_bytes_after_a_body_never_pass_for_the_next_reply(
    serve: Callable[..., Server], pool: Http11Pool
) -> None:
    # The surplus sits in the same TLS record as the body's end: inside the TLS layer, not the socket.
    body = b"b" * 70_000
    evil = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"
    server = serve(replies(b"HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n" + body + evil, OK, OK))
    assert pool.request("GET", f"{server.url}/x", {}).data == body
    time.sleep(0.1)
    assert pool.request("GET", f"{server.url}/y", {}).data == b"ok"
    assert server.accepted == 2


def test_head_204_and_304_replies_have_no_body(serve: Callable[..., Server], pool: Http11Pool) -> None:
    server = serve(
        replies(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
            OK,
        )
    )
    head = pool.request("HEAD", f"{server.url}/x", {})
    assert (head.status, head.data, head.headers["content-length"]) == (200, b"", "5000")
    assert pool.request("GET", f"{server.url}/x", {}).status == 204
    assert pool.request("GET", f"{server.url}/x", {}).status == 304
    assert pool.request("GET", f"{server.url}/x", {}).data == b"ok"
    assert server.accepted == 1


@pytest.mark.parametrize("value", [b"close", b"Close", b"keep-alive, close", b"close , TE"])
def test_connection_close_is_honoured(serve: Callable[..., Server], pool: Http11Pool, value: bytes) -> None:
    seen: list[int] = []

    def handler(conn: socket.socket, number: int) -> None:
        seen.append(number)
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: " + value + b"\r\nContent-Length: 2\r\n\r\nok")
        time.sleep(0.3)  # the close comes late: the client must go by the header

    server = serve(handler)
    assert pool.request("GET", f"{server.url}/a", {}).data == b"ok"
    assert pool.request("POST", f"{server.url}/b", {}).data == b"ok"
    assert seen == [1, 2]


def test_an_idle_connection_the_server_closed_is_replaced(
    serve: Callable[..., Server], pool: Http11Pool
) -> None:
    def handler(conn: socket.socket, number: int) -> None:
        read_request(conn)
        conn.sendall(OK)  # then closes the kept-alive connection while it is idle

    server = serve(handler)
    assert pool.request("GET", f"{server.url}/a", {}).data == b"ok"
    time.sleep(0.2)
    assert pool.request("POST", f"{server.url}/b", {}).data == b"ok"  # a new connection, POST is safe
    assert server.accepted == 2


def test_a_request_lost_on_a_reused_connection_may_have_been_received(
    serve: Callable[..., Server], pool: Http11Pool
) -> None:
    def handler(conn: socket.socket, number: int) -> None:
        read_request(conn)
        conn.sendall(OK)
        if number == 1:
            read_request(conn)  # takes the second request, then drops the connection unanswered

    server = serve(handler)
    assert pool.request("GET", f"{server.url}/a", {}).data == b"ok"
    error = refused(pool, f"{server.url}/b", method="POST")
    assert error.sent is True  # the retry layer decides by idempotency


# --- timeouts ----------------------------------------------------------------------------------------------


def _in_thread(call: Callable[[], object], limit: float) -> BaseException | None:
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    assert not worker.is_alive(), f"still waiting after {limit} s"
    return outcome[0]


def test_a_body_that_stalls_after_the_headers_times_out(
    serve: Callable[..., Server], pki: dict[str, str]
) -> None:
    def handler(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        time.sleep(3)

    server = serve(handler)
    pool = Http11Pool(ssl_context=ssl.create_default_context(cafile=pki["ca"]), read_timeout=0.5)
    error = _in_thread(lambda: pool.request("GET", f"{server.url}/x", {}), 2.5)
    assert isinstance(error, SendError) and error.sent and "timed out" in str(error)


def test_a_trickled_reply_head_hits_the_read_deadline(
    serve: Callable[..., Server], pki: dict[str, str]
) -> None:
    # One byte every 0.2 s never trips a per-recv timeout of 1 s; the head as a whole must.
    def handler(conn: socket.socket, _: int) -> None:
        read_request(conn)
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"s" * 100 + b"\r\nContent-Length: 0\r\n\r\n":
            conn.sendall(bytes([byte]))
            time.sleep(0.2)

    server = serve(handler)
    pool = Http11Pool(ssl_context=ssl.create_default_context(cafile=pki["ca"]), read_timeout=1)
    started = time.monotonic()
    error = _in_thread(lambda: pool.request("GET", f"{server.url}/x", {}), 5)
    assert isinstance(error, SendError) and error.sent and "timed out" in str(error)
    assert time.monotonic() - started < 3


def test_an_endless_stream_of_1xx_replies_hits_the_read_deadline(
    serve: Callable[..., Server], pki: dict[str, str]
) -> None:
    def handler(conn: socket.socket, _: int) -> None:
        read_request(conn)
        for _ in range(100):
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            time.sleep(0.1)

    server = serve(handler)
    pool = Http11Pool(ssl_context=ssl.create_default_context(cafile=pki["ca"]), read_timeout=0.5)
    error = _in_thread(lambda: pool.request("GET", f"{server.url}/x", {}), 4)
    assert isinstance(error, SendError) and error.sent and "timed out" in str(error)


def test_a_tls_handshake_that_never_completes_times_out() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (backlog) but never speaks TLS
    pool = Http11Pool(connect_timeout=0.5, read_timeout=0.5)
    try:
        error = _in_thread(
            lambda: pool.request("GET", f"https://127.0.0.1:{listener.getsockname()[1]}/x", {}), 3
        )
    finally:
        listener.close()
    assert isinstance(error, SendError) and error.sent is False and "timed out" in str(error)


def test_no_timeout_may_be_unbounded() -> None:
    for bad in (None, 0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="timeout"):
            Http11Pool(read_timeout=bad)
        with pytest.raises(ValueError, match="timeout"):
            Http11Pool(connect_timeout=bad)


# --- threads and file descriptors --------------------------------------------------------------------------


def test_a_connection_carries_one_request_at_a_time(serve: Callable[..., Server], pool: Http11Pool) -> None:
    def handler(conn: socket.socket, _: int) -> None:
        while request := read_request(conn):
            tag = request.split(b"x-tag: ", 1)[1].split(b"\r\n", 1)[0]
            time.sleep(0.001)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(tag), tag))

    server = serve(handler)
    mismatches: list[tuple[str, bytes]] = []

    def worker(n: int) -> None:
        for i in range(25):
            tag = f"{n}-{i}"
            data = pool.request("GET", f"{server.url}/x", {"x-tag": tag}).data
            if data != tag.encode():
                mismatches.append((tag, data))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert mismatches == [] and not server.errors
    assert 1 <= server.accepted <= 8 + pool.maxsize


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
def test_no_descriptor_leaks_after_errors(
    serve: Callable[..., Server], pool: Http11Pool, pki: dict[str, str]
) -> None:
    good = serve(replies(*[OK] * 50))
    bad_cert = serve(replies(OK), cert="self_signed")
    short = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"
    cut = serve(lambda conn, _: (read_request(conn), conn.sendall(short)))
    garbage = serve(lambda conn, _: (read_request(conn), conn.sendall(b"garbage\r\n\r\n")))
    pool.request("GET", f"{good.url}/warm", {})
    pool.clear()
    time.sleep(0.2)
    before = _fds()

    def failing_sink(headers: dict[str, str], read_into: Callable[[memoryview], int], size: int) -> None:
        raise RuntimeError("the sink gave up")

    for _ in range(5):
        for server in (bad_cert, cut, garbage):
            with pytest.raises(SendError):
                pool.request("GET", f"{server.url}/x", {})
        with pytest.raises(RuntimeError):
            pool.request("GET", f"{good.url}/x", {}, sink=failing_sink)
        pool.request("GET", f"{good.url}/x", {})
    with pytest.raises(SendError):
        pool.request("GET", "http://127.0.0.1:9/x", {})
    pool.clear()
    time.sleep(0.2)
    assert _fds() == before


def test_clear_closes_connections_handed_back_later(serve: Callable[..., Server], pool: Http11Pool) -> None:
    release = threading.Event()

    def handler(conn: socket.socket, _: int) -> None:
        read_request(conn)
        release.wait(5)
        conn.sendall(OK)
        conn.recv(1)  # returns once the client closes

    closed_at: list[float] = []
    server = serve(lambda conn, n: (handler(conn, n), closed_at.append(time.monotonic())))
    worker = threading.Thread(target=lambda: pool.request("GET", f"{server.url}/x", {}))
    worker.start()
    time.sleep(0.3)
    pool.clear()  # the client closes while a request is in flight
    release.set()
    worker.join(5)
    time.sleep(0.3)
    assert closed_at, "the connection in flight at close was kept open"


# --- secrets -----------------------------------------------------------------------------------------------


def test_a_query_without_a_path_is_sent_and_kept_out_of_errors(
    serve: Callable[..., Server], pool: Http11Pool
) -> None:
    got: list[bytes] = []

    def handler(conn: socket.socket, _: int) -> None:
        got.append(read_request(conn))
        conn.sendall(OK)

    server = serve(handler)
    pool.request("GET", f"{server.url}?comp=list&sig=SECRET", {})
    assert got[0].startswith(b"GET /?comp=list&sig=SECRET HTTP/1.1\r\n")
    with pytest.raises(ValueError) as info:
        pool.request("GET", "ftp://example.net?sig=SECRET", {})
    assert "SECRET" not in str(info.value) and "SECRET" not in repr(info.value)
    with pytest.raises(ValueError) as info:
        pool.request("GET", "https://user:SECRET@example.net/x", {})
    assert "SECRET" not in str(info.value)


def test_credentials_never_appear_in_errors(serve: Callable[..., Server], pool: Http11Pool) -> None:
    headers = {"Authorization": "Bearer SECRET-TOKEN"}
    url_tail = "/share/f?sv=2024&sig=SECRET-SIG"
    bad = serve(lambda conn, _: (read_request(conn), conn.sendall(b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n")))
    cut = serve(lambda conn, _: (read_request(conn), conn.sendall(b"HTTP/1.1 200 OK\r\n")))
    errors: list[BaseException] = []
    for url in (bad.url, cut.url, "http://127.0.0.1:9", "https://no-such-host.invalid"):
        with pytest.raises(SendError) as info:
            pool.request("GET", url + url_tail, headers)
        errors.append(info.value)
    with pytest.raises(ValueError) as bad_header:
        pool.request("GET", bad.url + url_tail, {**headers, "x-ms-meta-a": "1\r\nInjected: SECRET-SIG"})
    errors.append(bad_header.value)
    for error in errors:
        text = f"{error} {error!r} {error.args}"
        assert "SECRET" not in text, text


def test_a_header_value_that_is_not_latin1_is_refused_without_the_credential(pool: Http11Pool) -> None:
    # str.encode's error carries the whole request head (Authorization included) in its args.
    headers = {"Authorization": "Bearer SECRET-TOKEN", "x-ms-meta-price": "5 \u20ac"}
    with pytest.raises(ValueError) as info:
        pool.request("PUT", "http://127.0.0.1:9/share/f", headers)
    error = info.value
    assert "x-ms-meta-price" in str(error)
    assert "SECRET" not in f"{error} {error!r} {error.args} {vars(error)}"


@pytest.mark.parametrize("target", ["/a b", "/a\r\nX-Injected: 1", "/a\tb", "/a\x00", "/a?sig=SECRET\n"])
def test_a_request_target_that_would_split_the_request_line_is_refused(pool: Http11Pool, target: str) -> None:
    with pytest.raises(ValueError, match="request target") as info:
        pool.request("GET", f"http://127.0.0.1:9{target}", {})
    assert "SECRET" not in f"{info.value!r}"


# --- request framing ---------------------------------------------------------------------------------------


def test_a_body_goes_out_with_its_own_length(serve: Callable[..., Server], pool: Http11Pool) -> None:
    got: list[bytes] = []

    def handler(conn: socket.socket, _: int) -> None:
        while request := read_request(conn):
            got.append(request)
            conn.sendall(OK)

    server = serve(handler)
    pool.request("PUT", f"{server.url}/x", {}, b"abc")
    assert b"\r\nContent-Length: 3\r\n" in got[0] and got[0].endswith(b"\r\n\r\nabc")
    # A length that disagrees with the body would leave the server reading the next request as body.
    for headers, body in (({"Content-Length": "10"}, b"abc"), ({"content-length": "2"}, [b"ab", b"c"])):
        with pytest.raises(ValueError, match="Content-Length"):
            pool.request("PUT", f"{server.url}/x", headers, body)
    assert len(got) == 1


# --- replies without framing -------------------------------------------------------------------------------


def test_a_2xx_body_read_to_the_close_still_goes_to_the_sink(
    serve: Callable[..., Server], pool: Http11Pool
) -> None:
    # A sink that is never called must not let the caller believe it read and checked the body.
    def handler(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 206 Partial Content\r\n\r\nthe body")  # no length: ends at the close

    server = serve(handler, cert=None)
    sunk: list[tuple[int, bytes]] = []

    def sink(headers: dict[str, str], read_into: Callable[[memoryview], int], size: int) -> None:
        buf = bytearray(size)
        got = 0
        while got < size:
            got += read_into(memoryview(buf)[got:])
        sunk.append((size, bytes(buf)))

    reply = pool.request("GET", f"{server.url}/x", {}, sink=sink)
    assert reply.status == 206 and sunk == [(8, b"the body")]


@pytest.mark.parametrize("cert", ["good", None])
def test_an_error_reply_sent_before_the_body_was_read_is_returned(
    serve: Callable[..., Server], pool: Http11Pool, cert: str | None
) -> None:
    # A service refusing an upload early (413, or 403 for a token it rejects) answers and closes without
    # reading the body: the reply, not "connection reset", is what the caller must see (urllib3 reads it
    # too after a broken pipe).
    def handler(conn: socket.socket, _: int) -> None:
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += conn.recv(65536)
        conn.sendall(
            b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 5\r\nConnection: close\r\n\r\nlarge"
        )
        time.sleep(0.2)  # then closes with the body unread: the client's next writes fail

    server = serve(handler, cert=cert)
    body = bytes(32 * 1024 * 1024)
    reply = pool.request("PUT", f"{server.url}/x", {"Authorization": "Bearer SECRET"}, body)
    assert (reply.status, reply.data) == (413, b"large")


def test_a_success_reply_before_the_body_was_sent_is_not_taken_for_one(
    serve: Callable[..., Server], pool: Http11Pool
) -> None:
    # A 2xx for an upload the server never read whole must not look like a completed write.
    def handler(conn: socket.socket, _: int) -> None:
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += conn.recv(65536)
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        time.sleep(0.2)

    server = serve(handler, cert=None)
    with pytest.raises(SendError) as info:
        pool.request("PUT", f"{server.url}/x", {}, bytes(32 * 1024 * 1024))
    assert info.value.sent


def test_a_tls_reply_read_to_the_close_needs_the_close_notify(
    serve: Callable[..., Server], pool: Http11Pool
) -> None:
    # Without a length, only TLS's close_notify tells a complete body from one an attacker or a broken
    # network cut short (a bare TCP close).
    def cut(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\npartial")  # then a TCP close without close_notify

    def complete(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\nthe whole body")
        assert isinstance(conn, ssl.SSLSocket)
        conn.unwrap()  # close_notify, then the close

    error = refused(pool, f"{serve(cut).url}/x")
    assert error.sent and "closed before the reply was complete" in str(error)
    assert pool.request("GET", f"{serve(complete).url}/x", {}).data == b"the whole body"


def test_trailers_over_the_header_limit_are_refused(serve: Callable[..., Server], pool: Http11Pool) -> None:
    trailers = b"X-T: 1234567890\r\n" * 20_000  # 340 kB of small lines, none over the limit alone
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
    server = serve(replies(head + trailers + b"\r\n"))
    error = refused(pool, f"{server.url}/x")
    assert error.sent and "not valid HTTP/1.1" in str(error)


@pytest.mark.parametrize("has_poll", [True, False])
def test_idle_checks_work_with_and_without_poll(
    serve: Callable[..., Server], pool: Http11Pool, monkeypatch: pytest.MonkeyPatch, has_poll: bool
) -> None:
    # Windows has no select.poll: the idle check must fall back to select there.
    monkeypatch.setattr("keyless.files.http11._HAS_POLL", has_poll)

    def handler(conn: socket.socket, number: int) -> None:
        read_request(conn)
        conn.sendall(OK)
        if number == 1:
            read_request(conn)
            conn.sendall(OK)  # then closes while the connection is idle in the pool

    server = serve(handler)
    for _ in range(2):
        assert pool.request("GET", f"{server.url}/a", {}).data == b"ok"
    time.sleep(0.2)
    assert pool.request("POST", f"{server.url}/b", {}).data == b"ok"
    assert server.accepted == 2  # one reuse while alive, one replacement once closed


def test_a_send_error_survives_pickling_with_its_sent_flag() -> None:
    # Errors cross process boundaries (dask, multiprocessing pools): a SendError that cannot be unpickled
    # would turn a clear "no reply" into a TypeError in the parent.
    for sent in (True, False):
        copy = pickle.loads(pickle.dumps(SendError("ReadTimeoutError: no reply", sent=sent)))  # noqa: S301 - our own bytes
        assert isinstance(copy, SendError) and copy.sent is sent and str(copy) == "ReadTimeoutError: no reply"
