"""Structured message bodies and CRC64 at the byte level: what the SDK cannot be made to send wrong
(a corrupt segment, a bad version, lengths that disagree) is refused with 400 and the header's name."""

from __future__ import annotations

import base64
import struct

from azure.storage.extensions import checksums
from tests.emulator import test_files_rest as rest

from keyless.emulator.files import integrity

A, Api = rest.A, rest.Api
api = rest.api  # the Files REST handlers over real HTTP, with a stand-in authentication

SM = {"x-ms-structured-body": "XSM/1.0; properties=crc64"}


def _crc(data: bytes) -> bytes:
    return int(checksums.crc64.compute(data, 0)).to_bytes(8, "little")


def _message(segments: list[bytes], *, version: int = 1, crcs: list[bytes] | None = None) -> bytes:
    body = b"".join(struct.pack("<HQ", i + 1, len(s)) + s + (crcs[i] if crcs else _crc(s))
                    for i, s in enumerate(segments))
    trailer = _crc(b"".join(segments))
    total = 13 + len(body) + 8
    return struct.pack("<BQHH", version, total, 1, len(segments)) + body + trailer


def _put(api: Api, path: str, body: bytes, content: int, **extra: str) -> tuple[int, str | None, str]:
    r = api.req("PUT", f"{path}?comp=range", {"x-ms-write": "update", "x-ms-range": f"bytes=0-{content - 1}",
                                              "x-ms-structured-content-length": str(content), **SM, **extra},
                body)
    return r.status, r.code, r.body.decode(errors="replace")


def test_encode_decode_round_trip_in_several_segments() -> None:
    data = bytes(range(256)) * 100
    message = b"".join(integrity.encode(len(data), lambda off, n: data[off:off + n]))
    assert len(message) == integrity.encoded_length(len(data))
    assert integrity.decode(message, len(data)) == data
    two = _message([data[:1000], data[1000:]])  # a client may cut segments anywhere
    assert integrity.decode(two, len(data)) == data


def test_structured_put_range_is_decoded_and_checked(api: Api) -> None:
    api.mkfile(f"{A}/demo/sm", b"\0" * 1000)
    data = b"z" * 600
    status, _, _ = _put(api, f"{A}/demo/sm", _message([data[:300], data[300:]]), 600)
    assert status == 201
    assert api.req("GET", f"{A}/demo/sm", {"x-ms-range": "bytes=0-599"}).body == data

    bad_crc = _message([data], crcs=[_crc(b"other")])
    assert _put(api, f"{A}/demo/sm", bad_crc, 600)[:2] == (400, "Crc64Mismatch")
    assert _put(api, f"{A}/demo/sm", _message([data], version=2), 600)[:2] == (400, "InvalidInput")
    status, code, text = _put(api, f"{A}/demo/sm", _message([data])[:-3], 600)
    assert (status, code) == (400, "InvalidInput") and "x-ms-structured-body" in text
    assert _put(api, f"{A}/demo/sm", _message([data[:500]]), 600)[:2] == (400, "InvalidInput")
    r = api.req("PUT", f"{A}/demo/sm?comp=range", {"x-ms-write": "update", "x-ms-range": "bytes=0-599", **SM},
                _message([data]))
    assert (r.status, r.code) == (400, "MissingRequiredHeader")
    r = api.req("PUT", f"{A}/demo/sm?comp=range", {"x-ms-write": "update", "x-ms-range": "bytes=0-599",
                                                   "x-ms-structured-body": "XSM/2.0; properties=md5"}, data)
    assert (r.status, r.code) == (400, "InvalidHeaderValue")
    # Nothing refused was written.
    assert api.req("GET", f"{A}/demo/sm", {"x-ms-range": "bytes=0-599"}).body == data


def test_structured_download_and_range_crc64(api: Api) -> None:
    data = bytes(range(256)) * 8
    api.mkfile(f"{A}/demo/dl", data)
    r = api.req("GET", f"{A}/demo/dl", {"x-ms-range": "bytes=100-1099", **SM})
    assert r.status == 206
    assert r.headers["x-ms-structured-body"] == SM["x-ms-structured-body"]
    assert r.headers["x-ms-structured-content-length"] == "1000"
    assert integrity.decode(r.body, 1000) == data[100:1100]
    r = api.req("GET", f"{A}/demo/dl", {"x-ms-range": "bytes=0-99", "x-ms-range-get-content-crc64": "true"})
    assert r.headers["x-ms-content-crc64"] == base64.b64encode(_crc(data[:100])).decode()
    r = api.req("GET", f"{A}/demo/dl", {"x-ms-range-get-content-crc64": "true"})  # needs a range
    assert (r.status, r.code) == (400, "InvalidHeaderValue")
