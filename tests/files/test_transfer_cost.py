"""The pieces that make transfers cheap keep their promises: the HTTP/1.1 client speaks HTTP correctly, the
structured-message decoder checks every CRC64, MD5 is the fallback where no CRC64 comes, and concurrency
follows the documented rule and refuses values it cannot use."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from io import BytesIO
from typing import Any

import pytest
from click.testing import CliRunner
from files_fake import BASE, FakeTransport, StaticCredential

from keyless.emulator.files import integrity as emulator_integrity
from keyless.files import checksums, tuning
from keyless.files import errors as fe
from keyless.files.client import ShareClient
from keyless.files.http11 import Http11Pool, SendError
from keyless.files.parallel import RANGE_SIZE
from keyless.files.retry import RetryPolicy

FAST = RetryPolicy(total=2, backoff_factor=0.001, backoff_max=0.01)


# --- a scripted HTTP server ---------------------------------------------------------------------------------


@pytest.fixture
def scripted() -> Iterator[Callable[[list[bytes]], tuple[str, list[bytes], list[int]]]]:
    """A plain-HTTP server answering each request it reads with the next scripted reply, on as few
    connections as the client uses. Returns (base URL, raw requests received, connection numbers)."""
    listeners: list[socket.socket] = []

    def start(replies: list[bytes]) -> tuple[str, list[bytes], list[int]]:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)
        received: list[bytes] = []
        conn_ids: list[int] = []

        def serve() -> None:
            number = 0
            while replies:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                number += 1
                with conn:
                    buf = b""
                    while replies:
                        while b"\r\n\r\n" not in buf:
                            chunk = conn.recv(65536)
                            if not chunk:
                                break
                            buf += chunk
                        if b"\r\n\r\n" not in buf:
                            break
                        head, buf = buf.split(b"\r\n\r\n", 1)
                        length = 0
                        for line in head.split(b"\r\n"):
                            if line.lower().startswith(b"content-length:"):
                                length = int(line.split(b":")[1])
                        while len(buf) < length:
                            buf += conn.recv(65536)
                        received.append(head + b"\r\n\r\n" + buf[:length])
                        buf = buf[length:]
                        conn_ids.append(number)
                        reply = replies.pop(0)
                        conn.sendall(reply)
                        lower = reply.lower()
                        framed = b"content-length" in lower or b"chunked" in lower
                        if b"connection: close" in lower or not framed:
                            break

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}", received, conn_ids

    yield start
    for listener in listeners:
        listener.close()


def test_http11_reuses_the_connection_and_reads_every_framing(scripted: Callable[..., Any]) -> None:
    base, received, conns = scripted([
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: x\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope",
        b"HTTP/1.1 200 OK\r\n\r\nto the end",  # no length: read to the close
    ])
    pool = Http11Pool(read_timeout=5)
    first = pool.request("GET", f"{base}/a?b=c", {"x-ms-version": "v"})
    assert (first.status, first.data, first.headers["x-a"]) == (200, b"hello", "1, 2")
    second = pool.request("PUT", f"{base}/b", {"Content-Length": "3"}, (b"x", memoryview(b"yz")))
    assert (second.status, second.data) == (201, b"abcde")
    third = pool.request("GET", f"{base}/c", {})
    assert (third.status, third.data) == (404, b"nope")
    fourth = pool.request("GET", f"{base}/d", {})
    assert fourth.data == b"to the end"
    assert conns == [1, 1, 1, 1]  # one connection carried all four
    assert received[0].startswith(b"GET /a?b=c HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nx-ms-version: v\r\n" in received[0]
    assert received[1].endswith(b"\r\n\r\nxyz")
    pool.clear()


def test_http11_refuses_header_injection_and_reports_a_dead_server() -> None:
    pool = Http11Pool(connect_timeout=2, read_timeout=2)
    with pytest.raises(ValueError, match="invalid character"):
        pool.request("GET", "http://127.0.0.1:9/x", {"x-ms-meta-a": "1\r\nInjected: yes"})
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there now
    with pytest.raises(SendError) as info:
        pool.request("GET", f"http://127.0.0.1:{port}/x", {})
    assert info.value.sent is False  # never went out: safe to retry anything


def test_http11_a_reply_cut_short_is_a_send_error_that_may_have_been_received(
    scripted: Callable[..., Any],
) -> None:
    base, _, _ = scripted([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nabc"])
    with pytest.raises(SendError) as info:
        Http11Pool(read_timeout=5).request("GET", f"{base}/x", {})
    assert info.value.sent is True and "closed before the reply was complete" in str(info.value)


# --- structured messages -----------------------------------------------------------------------------------


def _message(data: bytes, segment: int, monkeypatch: pytest.MonkeyPatch) -> bytes:
    # The emulator's encoder (its own implementation, Microsoft's CRC64) with small segments.
    monkeypatch.setattr(emulator_integrity, "SEGMENT_SIZE", segment)
    return b"".join(emulator_integrity.encode(len(data), lambda o, n: data[o : o + n]))


def test_decoder_checks_every_segment_and_the_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(range(256)) * 40  # 10,240 bytes in 11 segments of 1,000
    message = _message(data, 1000, monkeypatch)
    out = bytearray(len(data))
    checksums.decode_into(BytesIO(message).readinto, memoryview(out), len(message))
    assert bytes(out) == data
    # One flipped bit anywhere in the content, a segment CRC or the trailer is caught.
    for where in (40, len(message) // 2, len(message) - 3):
        bad = bytearray(message)
        bad[where] ^= 0x10
        with pytest.raises(fe.IntegrityError, match="CRC64 mismatch"):
            checksums.decode_into(BytesIO(bytes(bad)).readinto, memoryview(bytearray(len(data))), len(bad))
    # Cut short, or claiming a different length, is refused too.
    with pytest.raises(fe.IntegrityError):
        checksums.decode_into(BytesIO(message[:-5]).readinto, memoryview(out), len(message))
    with pytest.raises(fe.IntegrityError):
        checksums.decode_into(BytesIO(message).readinto, memoryview(out), len(message) + 1)


def test_encoder_output_is_what_the_emulator_decodes() -> None:
    data = bytes(range(256)) * 17
    chunks, total = checksums.encode(memoryview(data))
    message = b"".join(bytes(c) for c in chunks)
    assert len(message) == total == len(data) + checksums.OVERHEAD
    assert emulator_integrity.decode(message, len(data)) == data
    assert checksums.crc64(b"123456789") == 0xAE8B14860A799888  # Azure's CRC64 (CRC-64/NVME) check value


def test_md5_is_the_fallback_when_the_service_sends_no_structured_message() -> None:
    fake = FakeTransport()
    fake.structured = False  # answers plain bodies, as a service without structured messages would
    client = ShareClient(BASE, StaticCredential("good"), transport=fake, retry=FAST)  # type: ignore[arg-type]
    fake.structured = True
    client.upload_bytes("f", b"abc" * 1000)
    fake.structured = False
    assert client.read_bytes("f") == b"abc" * 1000
    reads = [h for m, u, h in fake.requests if m == "GET" and "x-ms-range" in h]
    # The first read asked for a structured message and got none: it is read again with its MD5, and
    # from then on reads ask for the MD5 straight away.
    assert reads[0].get("x-ms-structured-body") and reads[1].get("x-ms-range-get-content-md5") == "true"
    assert client.get_range("f", 0, 3)[0] == b"abc"
    assert fake.requests[-1][2].get("x-ms-range-get-content-md5") == "true"


# --- concurrency ------------------------------------------------------------------------------------------


def test_the_concurrency_rule() -> None:
    ms = 0.001
    # Unknown or local latency: the fixed 8 of before.
    assert tuning.files_in_flight(None, 8192, 4, RANGE_SIZE) == 8
    assert tuning.files_in_flight(1 * ms, 8192, 4, RANGE_SIZE) == 8
    # 20 ms: as many small files in flight as the cap allows.
    assert tuning.files_in_flight(20 * ms, 8192, 4, RANGE_SIZE) == tuning.MAX_FILES_IN_FLIGHT
    # Large files: the memory bound wins (8 x 4 ranges x 4 MiB).
    assert tuning.files_in_flight(20 * ms, 1 << 30, 4, RANGE_SIZE) == 8
    assert tuning.ranges_in_flight(20 * ms) == tuning.MAX_RANGES_IN_FLIGHT
    assert tuning.ranges_in_flight(None) == 8


@pytest.mark.parametrize("bad", [0, -1, 65, 10**9, True, "8"])
def test_a_library_concurrency_it_cannot_use_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="concurrency must be"):
        ShareClient(BASE, StaticCredential("good"), transport=FakeTransport(), concurrency=bad)  # type: ignore[arg-type]


def test_an_explicit_concurrency_overrides_the_rule() -> None:
    client = ShareClient(BASE, StaticCredential("good"), transport=FakeTransport(), concurrency=3)  # type: ignore[arg-type]
    assert client.files_in_flight(8192, 4) == 3 and client.ranges_in_flight() == 3
    auto = ShareClient(BASE, StaticCredential("good"), transport=FakeTransport())  # type: ignore[arg-type]
    assert auto.files_in_flight(8192, 4) == 8  # an in-memory service has no round trip to measure


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "between 1 and 64"), ("-3", "between 1 and 64"), ("100000", "between 1 and 64"),
     ("lots", "is not a number")],
)
def test_the_cli_refuses_a_concurrency_it_cannot_use(value: str, message: str) -> None:
    from keyless.cli.main import cli

    result = CliRunner().invoke(cli, ["put", "x", "azfiles://acct/share/x", "--concurrency", value])
    assert result.exit_code == 2, result.output
    assert "--concurrency" in result.output and message in result.output
    assert "Traceback" not in result.output


def test_both_crc64_implementations_agree_with_microsoft_s() -> None:
    # awscrt's CRC-64/NVME serves large buffers on both sides; Microsoft's azure-storage-extensions (what the
    # SDK checks against) is the reference.
    import os

    from azure.storage.extensions import checksums as microsoft

    for size in (0, 1, 1000, 256 * 1024, 4 * 1024 * 1024 + 3):
        data = os.urandom(size)
        expected = microsoft.crc64.compute(data, 0)
        assert checksums.crc64(data) == checksums.crc64(memoryview(data)) == expected
        assert emulator_integrity.crc64(data) == expected
        assert checksums.crc64(data[size // 2 :], microsoft.crc64.compute(data[: size // 2], 0)) == expected
