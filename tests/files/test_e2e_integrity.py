"""Every range is checked by its CRC64 on the way, against the emulator as a real process.

The corruption is made between the checksum and the socket (a transport that flips one byte of what goes
out or comes in), which is what a corrupting network or proxy would do to the bytes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from keyless.files import errors as fe
from keyless.files import transfer
from keyless.files.client import ShareClient
from keyless.files.retry import RetryPolicy
from keyless.files.transport import Body, Response, Sink, Transport
from keyless.files.urls import share_url
from keyless.identity import ManagedIdentityCredential
from keyless.testing import EmulatorProcess

STRUCTURED = "XSM/1.0; properties=crc64"
NO_RETRY = RetryPolicy(total=0)


class Recording(Transport):
    """The real transport, keeping the headers of every request and able to flip one byte on the wire."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.sent: list[tuple[str, str, dict[str, str]]] = []
        self.corrupt_upload = False
        self.corrupt_download = False

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Body | None = None,
        sink: Sink | None = None,
    ) -> Response:
        self.sent.append((method, url, dict(headers)))
        if self.corrupt_upload and "comp=range" in url and body is not None:
            chunks = [bytes(c) for c in (body if isinstance(body, (list, tuple)) else [body])]
            content = max(range(len(chunks)), key=lambda i: len(chunks[i]))
            flipped = bytearray(chunks[content])
            flipped[len(flipped) // 2] ^= 0x01
            chunks[content] = bytes(flipped)
            body = tuple(chunks)
        if self.corrupt_download and sink is not None:
            sink = _flipping(sink)
        return super().request(method, url, headers, body, sink)


def _flipping(sink: Sink) -> Sink:
    def wrapped(headers: dict[str, str], read_into: Callable[[memoryview], int], length: int) -> None:
        def corrupt(view: memoryview) -> int:
            n = read_into(view)
            if n > 64:  # content, not the message's small header fields
                view[n // 2] ^= 0x01
            return n

        sink(headers, corrupt, length)

    return wrapped


def make_client(emu: EmulatorProcess, **kw: Any) -> tuple[ShareClient, Recording]:
    transport = Recording(ca_cert=emu.ca_cert)
    client = ShareClient(
        share_url("devaccount", "demo", emulator_url=emu.files_url),
        ManagedIdentityCredential(source="imds", imds_host=emu.imds_url),
        transport=transport,
        emulator_url=emu.files_url,
        retry=NO_RETRY,
        **kw,
    )
    return client, transport


def test_ranges_travel_as_structured_messages_and_round_trip(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    client, transport = make_client(emulator)
    data = os.urandom(9 * 1024 * 1024 + 7)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    name = f"crc-{uuid.uuid4().hex[:8]}.bin"
    transfer.upload_file(client, src, name)
    out = tmp_path / "out.bin"
    transfer.download_file(client, name, out)
    assert out.read_bytes() == data
    puts = [h for m, u, h in transport.sent if m == "PUT" and "comp=range" in u]
    gets = [h for m, u, h in transport.sent if m == "GET" and "x-ms-range" in h]
    assert len(puts) == 3 and len(gets) == 3
    for headers in puts + gets:
        assert headers["x-ms-structured-body"] == STRUCTURED
        assert "Content-MD5" not in headers and "x-ms-range-get-content-md5" not in headers
    # The structured content length is the range's, the Content-Length the encoded message's.
    assert {int(h["x-ms-structured-content-length"]) for h in puts} == {4 * 1024 * 1024, 1024 * 1024 + 7}
    assert all(int(h["Content-Length"]) == int(h["x-ms-structured-content-length"]) + 39 for h in puts)


def test_a_range_corrupted_on_the_way_up_is_refused_and_nothing_is_published(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    client, transport = make_client(emulator)
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(100_000))
    name = f"bad-up-{uuid.uuid4().hex[:8]}.bin"
    transport.corrupt_upload = True
    with pytest.raises(fe.IntegrityError) as info:
        transfer.upload_file(client, src, name)
    assert info.value.code == "Crc64Mismatch" and "nothing was written" in str(info.value)
    transport.corrupt_upload = False
    # The service refused the range, the upload never published, and its part file was removed.
    assert not client.exists(name)
    assert not [e.name for e in client.listdir("") if e.name.endswith(".keyless-part")]


def test_a_range_corrupted_on_the_way_down_is_detected_and_no_file_appears(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    client, transport = make_client(emulator)
    data = os.urandom(300_000)
    name = f"bad-down-{uuid.uuid4().hex[:8]}.bin"
    client.upload_bytes(name, data)
    transport.corrupt_download = True
    out = tmp_path / "out.bin"
    with pytest.raises(fe.IntegrityError) as info:
        transfer.download_file(client, name, out)
    assert "CRC64 mismatch" in str(info.value)
    assert not out.exists() and not list(tmp_path.glob("*.keyless-part"))
    transport.corrupt_download = False
    assert client.read_bytes(name) == data


def test_the_service_s_structured_reply_is_checked_end_to_end(emulator: EmulatorProcess) -> None:
    # get_range through the real sink: the emulator's CRC64s are verified, the bytes are the file's.
    client, transport = make_client(emulator)
    data = os.urandom(4 * 1024 * 1024)
    name = f"whole-{uuid.uuid4().hex[:8]}.bin"
    client.upload_bytes(name, data)
    got, resp = client.get_range(name, 1000, 4 * 1024 * 1024 - 1000)
    assert got == data[1000:] and resp.status == 206
    assert resp.header("x-ms-structured-body") == STRUCTURED
    assert urlsplit(transport.sent[-1][1]).path.endswith(name)
