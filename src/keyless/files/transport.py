"""HTTP(S) transport: one thread-safe connection pool per client, and nothing but I/O.

Redirects are never followed: a 3xx comes back to the caller as a reply, so a credential never crosses one.
Retries are the client's job, so each attempt is visible to the retry policy. Where a credential may go is
:mod:`keyless.files.destinations`' job.
"""

from __future__ import annotations

import ssl
from typing import Protocol

import urllib3

from keyless.files.http11 import Body, Http11Pool, Reply, SendError, Sink

__all__ = ["DEFAULT_TIMEOUT", "Body", "HttpTransport", "Response", "SendError", "Sink", "Transport"]

DEFAULT_TIMEOUT = urllib3.Timeout(connect=10.0, read=120.0)


#: A fully read reply (lower-case header names); the HTTP/1.1 client's own reply object, not a copy of it.
Response = Reply


class HttpTransport(Protocol):
    """What the client needs from a transport; tests plug in an in-memory service here. A transport that
    can hand a reply's body to a :data:`Sink` says so with ``streams_bodies = True``; others return it whole
    in ``Response.data`` and the client reads it from there."""

    def request(
        self, method: str, url: str, headers: dict[str, str], body: Body | None = None
    ) -> Response: ...


class Transport:
    """Persistent HTTP/1.1 connections (:mod:`keyless.files.http11`). Thread-safe: share one instance
    between worker threads; ``pool_size`` idle connections per host are kept for reuse."""

    streams_bodies = True

    def __init__(
        self,
        *,
        ca_cert: str | None = None,
        pool_size: int = 16,
        timeout: urllib3.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        # The emulator's own CA: trust it *instead of* the system store for this client only.
        ctx = ssl.create_default_context(cafile=ca_cert) if ca_cert else ssl.create_default_context()
        self.timeout = timeout
        self._pool = Http11Pool(
            ssl_context=ctx,
            maxsize=pool_size,
            connect_timeout=_seconds(timeout.connect_timeout),
            read_timeout=_seconds(timeout.read_timeout),
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
        empty); any other reply is read whole."""
        return self._pool.request(method, url, headers, body, sink)

    def round_trip(self) -> float | None:
        """The fastest exchange seen so far (seconds), or None before the first one."""
        times = self._pool.exchange_times
        return min(times) if times else None

    def close(self) -> None:
        self._pool.clear()


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None
