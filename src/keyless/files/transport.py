"""HTTP(S) transport: one thread-safe urllib3 pool per client, and nothing but I/O.

Redirects are never followed (urllib3 ``redirect=False``): a 3xx comes back to the caller as a reply, so a
credential never crosses one. Retries are the client's job (``retries=False`` here), so each attempt is
visible to the retry policy. Where a credential may go is :mod:`keyless.files.destinations`' job.
"""

from __future__ import annotations

import ssl
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


class HttpTransport(Protocol):
    """What the client needs from a transport; tests plug in an in-memory service here."""

    def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None = None
    ) -> Response: ...


class SendError(Exception):
    """A request got no reply. ``sent`` says whether it may have reached the service."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class Transport:
    """urllib3 ``PoolManager`` wrapper. Thread-safe: share one instance between worker threads."""

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

    def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None = None) -> Response:
        try:
            resp = self._pool.request(
                method, url, headers=headers, body=body, redirect=False, retries=False, preload_content=True
            )
        except (NewConnectionError, ConnectTimeoutError, NameResolutionError) as exc:
            # Failed before anything was sent: always safe to try again.
            raise SendError(_describe(exc), sent=False) from None
        except (HTTPError, OSError) as exc:
            raise SendError(_describe(exc), sent=True) from None
        headers_out = {k.lower(): v for k, v in resp.headers.items()}
        return Response(resp.status, headers_out, resp.data or b"")

    def close(self) -> None:
        self._pool.clear()


def _describe(exc: BaseException) -> str:
    # urllib3 messages include the pool and URL, never headers: safe to show.
    reason = getattr(exc, "reason", None)
    return f"{type(exc).__name__}: {reason or exc}"
