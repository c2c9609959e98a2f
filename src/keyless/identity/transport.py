"""The HTTP transport identity sources use: urllib3 2.x, pooled, thread-safe, and proxy-free.

No proxy on purpose: IMDS (169.254.169.254) and the App Service / Arc endpoints are link-local or
loopback, and a corporate proxy in ``HTTP_PROXY`` must never see a token request (urllib3's PoolManager
ignores proxy environment variables, which is exactly what is wanted). Redirects are never followed:
a token reply that redirects is not a token reply.

Tests inject any object with the same ``request`` method (see ``Transport``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)  # may hold a token

    def header(self, name: str) -> str | None:
        # urllib3's HTTPHeaderDict is case-insensitive; a plain dict from a test may not be.
        value = self.headers.get(name)
        if value is None:
            lower = name.lower()
            for key, val in self.headers.items():
                if key.lower() == lower:
                    return val
        return value


class TransportError(Exception):
    """No HTTP answer: connection refused / reset, DNS, or timeout. ``kind``: connect | timeout | other."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class Transport(Protocol):
    def request(self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None,
                timeout: float | None = None) -> Response: ...

    def close(self) -> None: ...


class Urllib3Transport:
    """A pooled transport; one per credential (or shared), safe to use from many threads."""

    def __init__(self, *, timeout: float = 10.0, connect_timeout: float = 2.0, maxsize: int = 8,
                 ca_certs: str | None = None) -> None:
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        # ``block=False``: a burst above ``maxsize`` opens extra short-lived connections instead of
        # queueing behind the pool (single flight keeps bursts rare anyway). ``ca_certs``: an extra CA
        # (the emulator's) for HTTPS authorities; None keeps the system trust store.
        self._pool = urllib3.PoolManager(num_pools=4, maxsize=maxsize, block=False, retries=False,
                                         ca_certs=ca_certs)

    def request(self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None,
                timeout: float | None = None) -> Response:
        read = self._timeout if timeout is None else timeout
        try:
            resp = self._pool.request(
                method, url, headers=dict(headers), body=body, redirect=False, retries=False,
                timeout=urllib3.Timeout(connect=min(self._connect_timeout, read), read=read),
                preload_content=True,
            )
        # Order matters: in urllib3 2.x NewConnectionError is a ConnectTimeoutError is a TimeoutError.
        except NewConnectionError as exc:
            raise TransportError(f"cannot connect to {_origin(url)}", "connect") from exc
        except ConnectTimeoutError as exc:
            raise TransportError(f"cannot connect to {_origin(url)} (timed out)", "connect") from exc
        except Urllib3Timeout as exc:
            raise TransportError(f"no answer from {_origin(url)} within {read:g} s", "timeout") from exc
        except HTTPError as exc:
            raise TransportError(f"connection to {_origin(url)} failed ({type(exc).__name__})",
                                 "other") from exc
        except OSError as exc:
            raise TransportError(f"connection to {_origin(url)} failed ({exc.strerror or exc})",
                                 "connect") from exc
        return Response(resp.status, resp.headers, resp.data)

    def close(self) -> None:
        self._pool.clear()


def _origin(url: str) -> str:
    """Scheme, host and port only: query strings can hold identity selectors, never needed in a message."""
    parsed = urllib3.util.parse_url(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"
