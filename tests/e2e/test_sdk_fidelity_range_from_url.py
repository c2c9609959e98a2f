"""Put Range From URL with the official SDK (sync and async): bytes of one file written into another,
from a snapshot too, the source's CRC64 checked, and the errors for a missing source, a source range past
its end, and a source credential the emulator cannot verify."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import Iterator

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.extensions import checksums
from azure.storage.fileshare import ShareClient
from azure.storage.fileshare.aio import ShareFileClient as AsyncShareFileClient

from e2e.sdk_clients import key_service
from keyless.testing import EmulatorProcess


@pytest.fixture
def share(emulator: EmulatorProcess) -> Iterator[ShareClient]:
    client = key_service(emulator).get_share_client(f"rfu-{uuid.uuid4().hex[:12]}")
    client.create_share()
    yield client
    client.delete_share(delete_snapshots=True)


def test_put_range_from_url(emulator: EmulatorProcess, share: ShareClient) -> None:
    data = os.urandom(3 * 1024 * 1024)
    source = share.get_file_client("source.bin")
    source.upload_file(data)
    target = share.get_file_client("target.bin")
    target.create_file(4 * 1024 * 1024)
    answer = target.upload_range_from_url(source.url, offset=1024 * 1024, length=2 * 1024 * 1024,
                                          source_offset=512 * 1024)
    assert answer["etag"]
    got = target.download_file(offset=1024 * 1024, length=2 * 1024 * 1024).readall()
    assert got == data[512 * 1024:512 * 1024 + 2 * 1024 * 1024]
    assert [(r.start, r.end) for r in target.list_ranges()] == [(1024 * 1024, 3 * 1024 * 1024 - 1)]

    # From a snapshot: the bytes as they were.
    stamp = share.create_snapshot()["snapshot"]
    source.upload_range(b"\xff" * 512, offset=0, length=512)
    at_snapshot = key_service(emulator).get_share_client(share.share_name, snapshot=stamp)
    frozen = at_snapshot.get_file_client("source.bin")
    target.upload_range_from_url(frozen.url, offset=0, length=512, source_offset=0)
    assert target.download_file(offset=0, length=512).readall() == data[:512]

    crc = int(checksums.crc64.compute(b"not the source", 0)).to_bytes(8, "little")
    with pytest.raises(HttpResponseError) as mismatch:
        target.upload_range_from_url(source.url, offset=0, length=512, source_offset=0,
                                     headers={"x-ms-source-content-crc64": base64.b64encode(crc).decode()})
    assert mismatch.value.error_code == "Crc64Mismatch"
    with pytest.raises(HttpResponseError) as past_end:
        target.upload_range_from_url(source.url, offset=0, length=1024, source_offset=len(data) - 512)
    assert past_end.value.status_code == 416
    with pytest.raises(ResourceNotFoundError) as missing:
        target.upload_range_from_url(share.get_file_client("nope").url, offset=0, length=512, source_offset=0)
    assert missing.value.error_code == "CannotVerifyCopySource"
    with pytest.raises(HttpResponseError) as unverifiable:
        target.upload_range_from_url(source.url, offset=0, length=512, source_offset=0,
                                     source_authorization="Bearer not-a-token")
    assert (unverifiable.value.status_code, unverifiable.value.error_code) == (403, "CannotVerifyCopySource")


def test_async_put_range_from_url(emulator: EmulatorProcess, share: ShareClient) -> None:
    share.get_file_client("s.bin").upload_file(b"0123456789" * 100)
    acct = emulator.account()

    async def scenario() -> None:
        async with AsyncShareFileClient(acct["url"], share.share_name, "t.bin",
                                        credential={"account_name": acct["name"], "account_key": acct["key"]},
                                        connection_verify=emulator.ca_cert) as target:
            await target.create_file(1000)
            await target.upload_range_from_url(share.get_file_client("s.bin").url, offset=0, length=1000,
                                               source_offset=0)
            assert await (await target.download_file()).readall() == b"0123456789" * 100

    asyncio.run(scenario())
