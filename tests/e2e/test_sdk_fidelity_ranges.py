"""List Ranges reports what was written, as Azure does: 512-byte units merged where they touch, zeros
written count, cleared units go, and a resize clips them; driven by the official SDK over HTTPS."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from azure.storage.fileshare import ShareFileClient
from azure.storage.fileshare.aio import ShareFileClient as AsyncShareFileClient

from keyless.testing import EmulatorProcess


def _file(emulator: EmulatorProcess, cls: type = ShareFileClient) -> ShareFileClient:
    acct = emulator.account()
    return cls(acct["url"], "demo", f"ranges-{uuid.uuid4().hex[:10]}.bin",  # type: ignore[no-any-return]
               credential={"account_name": acct["name"], "account_key": acct["key"]},
               connection_verify=emulator.ca_cert)


def spans(fc: ShareFileClient, **kw: Any) -> list[tuple[int, int]]:
    return [(r.start, r.end) for r in fc.list_ranges(**kw)]


def test_ranges_are_the_written_units_not_file_system_extents(emulator: EmulatorProcess) -> None:
    fc = _file(emulator)
    fc.create_file(1024 * 1024)
    try:
        fc.upload_range(b"a" * 512, offset=0, length=512)
        fc.upload_range(b"\0" * 512, offset=8192, length=512)  # zeros written are data all the same
        fc.upload_range(b"b" * 100, offset=20000, length=100)  # unaligned: its 512-byte units
        assert spans(fc) == [(0, 511), (8192, 8703),
                                                                         (19968, 20479)]
        fc.upload_range(b"c" * 512, offset=512, length=512)  # touches the first range: merged
        fc.clear_range(offset=8192, length=512)
        assert spans(fc) == [(0, 1023), (19968, 20479)]
        assert spans(fc, offset=256, length=512) == [(256, 767)]
        fc.resize_file(20000)
        assert spans(fc) == [(0, 1023), (19968, 19999)]
        assert fc.download_file(offset=0, length=1024).readall() == b"a" * 512 + b"c" * 512
    finally:
        fc.delete_file()


def test_ranges_follow_a_copy_and_an_overwrite(emulator: EmulatorProcess) -> None:
    source = _file(emulator)
    source.create_file(64 * 1024)
    target = _file(emulator)
    try:
        source.upload_range(b"x" * 1024, offset=4096, length=1024)
        target.start_copy_from_url(source.url)
        assert spans(target) == [(4096, 5119)]
        target.upload_file(b"short")  # a new version of the file: its ranges start afresh
        assert spans(target) == [(0, 4)]
    finally:
        source.delete_file()
        target.delete_file()


def test_async_client_ranges(emulator: EmulatorProcess) -> None:
    async def scenario() -> None:
        async with _file(emulator, AsyncShareFileClient) as fc:  # type: ignore[attr-defined]
            await fc.create_file(4096)
            await fc.upload_range(b"q" * 512, offset=1024, length=512)
            assert [(r.start, r.end) async for r in fc.list_ranges()] == [(1024, 1535)]
            await fc.delete_file()

    asyncio.run(scenario())
