"""CRC64 transactional integrity with the official SDK as the client (sync and async): uploads with
``validate_content="crc64"`` (the SDK sends structured message bodies), downloads that ask for them (the
SDK checks every segment's CRC64), ``x-ms-content-crc64`` on Put Range and Get File, and the service's
400 ``Crc64Mismatch`` on a wrong checksum."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.extensions import checksums
from azure.storage.fileshare import ShareFileClient
from azure.storage.fileshare.aio import ShareFileClient as AsyncShareFileClient

from keyless.testing import EmulatorProcess


def _file(emulator: EmulatorProcess, cls: type = ShareFileClient) -> ShareFileClient:
    acct = emulator.account()
    return cls(acct["url"], "demo", f"crc-{uuid.uuid4().hex[:10]}.bin",  # type: ignore[no-any-return]
               credential={"account_name": acct["name"], "account_key": acct["key"]},
               connection_verify=emulator.ca_cert)


def _crc64(data: bytes) -> str:
    return base64.b64encode(int(checksums.crc64.compute(data, 0)).to_bytes(8, "little")).decode()


@pytest.mark.parametrize("size", [0, 1000, 4 * 1024 * 1024 + 7, 9 * 1024 * 1024])
def test_upload_and_download_with_crc64_validation(emulator: EmulatorProcess, size: int) -> None:
    data = os.urandom(size)
    fc = _file(emulator)
    seen: list[tuple[str, str | None, str | None]] = []

    def hook(response: Any) -> None:
        request, reply = response.http_request, response.http_response
        seen.append((request.method, request.headers.get("x-ms-structured-body"),
                     reply.headers.get("x-ms-structured-body")))

    try:
        fc.upload_file(data, validate_content="crc64", max_concurrency=2, raw_response_hook=hook)
        assert fc.download_file(validate_content="crc64", raw_response_hook=hook).readall() == data
        # Structured bodies went both ways (uploads of the content, the download's answer), echoed.
        sm = "XSM/1.0; properties=crc64"
        assert ("GET", sm, sm) in seen
        if size:
            assert ("PUT", sm, sm) in seen
        if size:
            part = fc.download_file(offset=size // 3, length=size // 2 or 1, validate_content="crc64")
            assert part.readall() == data[size // 3:size // 3 + (size // 2 or 1)]
        assert fc.download_file().readall() == data  # the stored bytes are the content, not the message
    finally:
        fc.delete_file()


def test_upload_range_with_crc64_and_a_wrong_checksum(emulator: EmulatorProcess) -> None:
    fc = _file(emulator)
    fc.create_file(2048)
    try:
        answer = fc.upload_range(b"a" * 1024, offset=0, length=1024, validate_content="crc64")
        assert answer["etag"]
        with pytest.raises(HttpResponseError) as bad:
            fc.upload_range(b"b" * 1024, offset=1024, length=1024,
                            headers={"x-ms-content-crc64": _crc64(b"not the data")})
        assert (bad.value.status_code, bad.value.error_code) == (400, "Crc64Mismatch")
        right = {"x-ms-content-crc64": _crc64(b"c" * 1024)}
        fc.upload_range(b"c" * 1024, offset=1024, length=1024, headers=right)
        assert fc.download_file().readall() == b"a" * 1024 + b"c" * 1024
    finally:
        fc.delete_file()


def test_async_client_crc64(emulator: EmulatorProcess) -> None:
    data = os.urandom(5 * 1024 * 1024 + 3)

    async def scenario() -> None:
        async with _file(emulator, AsyncShareFileClient) as fc:  # type: ignore[attr-defined]
            await fc.upload_file(data, validate_content="crc64")
            download = await fc.download_file(validate_content="crc64")
            assert await download.readall() == data
            await fc.delete_file()

    asyncio.run(scenario())
