"""Reading and writing one range with its integrity checked: the CRC64 structured messages of
:mod:`keyless.files.checksums` on the wire, and MD5 only where a CRC64 cannot apply (a service that answers
without a structured message). ``ShareClient.put_range`` and ``ShareClient.read_range_into`` are these."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable
from typing import Protocol

from keyless import protocol as p
from keyless.files import checksums
from keyless.files.errors import FilesError, IntegrityError
from keyless.files.parallel import RANGE_SIZE
from keyless.files.transport import Body, Response, Sink


class ShareClient(Protocol):
    """What of ``keyless.files.client.ShareClient`` this module uses (a protocol: no import cycle)."""

    transport_streams: bool  # the transport hands bodies to sinks
    crc64_downloads: bool  # False once the service answered a range without a structured message

    def send(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: Body | None = None,
        operation: str = "",
        action: str = ...,
        idempotent: bool = True,
        content_length: int | None = None,
        sink: Sink | None = None,
    ) -> Response: ...

_WRITE = p.ACTION_WRITE

_RANGE_QUERY = {"comp": "range"}


def _decode_from_memory(resp: Response, out: memoryview, length: int, where: str) -> None:
    if resp.header(checksums.STRUCTURED_LENGTH_HEADER) != str(length):
        raise IntegrityError(f"{where}: got {resp.header(checksums.STRUCTURED_LENGTH_HEADER)} bytes")
    stream = io.BytesIO(resp.data)
    try:
        checksums.decode_into(stream.readinto, out, len(resp.data))
    except IntegrityError as exc:
        raise IntegrityError(f"{where}: {exc.message}", status=resp.status) from None


def write_range(
    client: ShareClient,
    path: str,
    offset: int,
    data: bytes | bytearray | memoryview,
    *,
    preserve_mtime: bool = False,
) -> None:
    """Write ``data`` (at most 4 MiB) at ``offset``. The range travels as a structured message with its
    CRC64, which the service checks (a mismatch is refused with 400 Crc64Mismatch, nothing written);
    ``data`` is sent as it is, never copied."""
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    size = len(view)
    if not size:
        return
    if size > RANGE_SIZE:
        raise ValueError(f"a range holds at most {RANGE_SIZE} bytes, got {size}")
    headers = {"x-ms-range": f"bytes={offset}-{offset + size - 1}", "x-ms-write": "update"}
    if preserve_mtime:
        headers["x-ms-file-last-write-time"] = "preserve"
    # Always a structured message: x-ms-version 2025-05-05, which every request carries, has them.
    chunks, total = checksums.encode(view)
    headers[checksums.STRUCTURED_HEADER] = checksums.STRUCTURED_V1_CRC64
    headers[checksums.STRUCTURED_LENGTH_HEADER] = str(size)
    try:
        _put_range(client, path, headers, chunks, total)
    except FilesError as exc:
        if exc.code != "Crc64Mismatch":
            raise
        raise IntegrityError(
            f"write range {offset}-{offset + size - 1} of {path}: the service computed another CRC64 "
            "than was sent (the data was corrupted on the way); nothing was written",
            status=exc.status,
            code=exc.code,
            request_id=exc.request_id,
        ) from None

def _put_range(client: ShareClient, path: str, headers: dict[str, str], body: Body, length: int) -> None:
    client.send(
        "PUT",
        path,
        query=_RANGE_QUERY,
        headers=headers,
        body=body,
        content_length=length,
        operation="write range",
        action=_WRITE,
    )

def read_range_into(client: ShareClient, path: str, offset: int, out: memoryview | bytearray) -> Response:
    """Read ``len(out)`` bytes at ``offset`` straight into ``out``, every byte checked: the range comes
    as a structured message whose CRC64s are verified as it is read (:mod:`keyless.files.checksums`).
    Where the service does not answer with one (older versions), the range's MD5 is asked for and
    checked instead: the fallback where CRC64 cannot apply."""
    view = memoryview(out).cast("B") if not isinstance(out, memoryview) else out
    length = len(view)
    last = offset + length - 1
    where = f"read range {offset}-{last} of {path}"
    if length > RANGE_SIZE:
        raise ValueError(f"a checked range holds at most {RANGE_SIZE} bytes, asked for {length}")
    if client.crc64_downloads:
        plain: list[bool] = []

        def sink(headers: dict[str, str], read_into: Callable[[memoryview], int], size: int) -> None:
            if checksums.STRUCTURED_HEADER not in headers:
                plain.append(True)  # not a structured message: its bytes are discarded below
                return
            content = headers.get(checksums.STRUCTURED_LENGTH_HEADER, "")
            if content != str(length):
                raise IntegrityError(f"{where}: got {content or 'an unknown number of'} bytes")
            checksums.decode_into(read_into, view, size)

        headers = {
            "x-ms-range": f"bytes={offset}-{last}",
            checksums.STRUCTURED_HEADER: checksums.STRUCTURED_V1_CRC64,
        }
        try:
            resp = client.send("GET", path, headers=headers, operation="read range", sink=sink)
        except IntegrityError as exc:
            raise IntegrityError(f"{where}: {exc.message}", status=206) from None
        if client.transport_streams and not plain:
            return resp  # the sink read and checked it
        if not client.transport_streams and checksums.STRUCTURED_HEADER in resp.headers:
            # A transport without sinks returned the message whole: decode it from memory.
            _decode_from_memory(resp, view, length, where)
            return resp
        client.crc64_downloads = False
    headers = {"x-ms-range": f"bytes={offset}-{last}", "x-ms-range-get-content-md5": "true"}
    resp = client.send("GET", path, headers=headers, operation="read range")
    data = resp.data
    if len(data) != length:
        raise IntegrityError(f"{where}: got {len(data)} bytes", status=resp.status)
    expected = resp.header("content-md5")
    if not expected:
        raise IntegrityError(f"{where}: the service sent neither a CRC64 nor an MD5 to check it by")
    if base64.b64encode(hashlib.md5(data).digest()).decode() != expected:  # noqa: S324
        raise IntegrityError(f"{where}: MD5 mismatch")
    view[:] = data
    return resp
