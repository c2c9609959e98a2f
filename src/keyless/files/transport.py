"""HTTP(S) transport: one thread-safe urllib3 pool per client, and nothing but I/O.

Redirects are never followed (urllib3 ``redirect=False``): a 3xx comes back to the caller as a reply, so a
credential never crosses one. Retries are the client's job (``retries=False`` here), so each attempt is
visible to the retry policy. Where a credential may go is :mod:`keyless.files.destinations`' job.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
)

DEFAULT_TIMEOUT = urllib3.Timeout(connect=10.0, read=120.0)


@dataclass(slots=True)
class Response:
    """A fully read reply. Bodies are at most one range (4 MiB) or one listing page, so reading them whole
    keeps memory bounded by concurrency x 4 MiB."""

    status: int
    headers: dict[str, str]  # lower-case names
    data: bytes = field(repr=False)

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


#: A request body: bytes, or chunks sent one after the other (a range between its structured-message header
#: and trailer, never copied into one buffer). Chunks are a sequence, so a retry can send them again.
Body = bytes | memoryview | Sequence[bytes | memoryview]

#: Reads a 2xx reply's body itself, straight into its own buffer: ``sink(headers, readinto, length)``.
Sink = Callable[[dict[str, str], Callable[[memoryview], int], int], None]


class HttpTransport(Protocol):
    """What the client needs from a transport; tests plug in an in-memory service here. A transport that
    can hand a reply's body to a :data:`Sink` says so with ``streams_bodies = True``; others return it whole
    in ``Response.data`` and the client reads it from there."""

    def request(
        self, method: str, url: str, headers: dict[str, str], body: Body | None = None
    ) -> Response: ...


class SendError(Exception):
    """A request got no reply. ``sent`` says whether it may have reached the service."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class Transport:
    """urllib3 ``PoolManager`` wrapper. Thread-safe: share one instance between worker threads."""

    streams_bodies = True

    def __init__(
        self,
        *,
        ca_cert: str | None = None,
        pool_size: int = 16,
        timeout: urllib3.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        kwargs: dict[str, object] = {}
        if ca_cert:
            # The emulator's own CA: trust it *instead of* the system store for this client only.
            ctx = ssl.create_default_context(cafile=ca_cert)
            kwargs["ssl_context"] = ctx
        self._pool = urllib3.PoolManager(
            num_pools=8,
            maxsize=pool_size,
            block=False,
            retries=False,
            timeout=timeout,
            **kwargs,  # type: ignore[arg-type]
        )

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Body | None = None,
        sink: Sink | None = None,
    ) -> Response:
        """Send one request. With ``sink``, a 2xx reply's body goes to it (``Response.data`` is then
        empty); any other reply is read whole as usual."""
        try:
            resp = self._pool.urlopen(
                method,
                url,
                body=body,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=sink is None,
            )
        except (NewConnectionError, ConnectTimeoutError, NameResolutionError) as exc:
            # Failed before anything was sent: always safe to try again.
            raise SendError(_describe(exc), sent=False) from None
        except (HTTPError, OSError) as exc:
            raise SendError(_describe(exc), sent=True) from None
        headers_out = {k.lower(): v for k, v in resp.headers.items()}
        if sink is None:
            return Response(resp.status, headers_out, resp.data or b"")
        ok = False
        try:
            if 200 <= resp.status < 300:
                length = int(headers_out.get("content-length", "-1"))
                # http.client's readinto fills the caller's buffer from the socket without an extra copy;
                # urllib3's own readinto reads into a temporary bytes first (urllib3 2.x response.py).
                raw = getattr(resp, "_fp", None)
                sink(headers_out, raw.readinto if raw is not None else resp.readinto, length)
                data = b""
            else:
                data = resp.read()
            ok = True
        except (HTTPError, OSError) as exc:
            raise SendError(_describe(exc), sent=True) from None
        finally:
            if ok:
                resp.release_conn()
            else:  # a body read halfway leaves the connection unusable: never hand it to another request
                resp.close()
        return Response(resp.status, headers_out, data)

    def close(self) -> None:
        self._pool.clear()


def _describe(exc: BaseException) -> str:
    # urllib3 messages include the pool and URL, never headers: safe to show.
    reason = getattr(exc, "reason", None)
    return f"{type(exc).__name__}: {reason or exc}"
