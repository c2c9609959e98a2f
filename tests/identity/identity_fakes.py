"""Test doubles for keyless.identity: a scripted transport and unsigned JWTs."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from keyless.identity.transport import Response, TransportError


def make_jwt(**claims: Any) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def token_body(token: str = "secret-token-value",  # noqa: S107
               expires_in: float | None = 3600,
               expires_on: float | None = None, **extra: Any) -> bytes:
    body: dict[str, Any] = {"access_token": token, "token_type": "Bearer", **extra}
    if expires_in is not None:
        body["expires_in"] = str(int(expires_in))
    if expires_on is not None:
        body["expires_on"] = str(int(expires_on))
    return json.dumps(body).encode()


def ok(token: str = "secret-token-value",  # noqa: S107
       expires_in: float | None = 3600, **kw: Any) -> Response:
    return Response(200, {"Content-Type": "application/json"}, token_body(token, expires_in, **kw))


def err(status: int, error: str = "x", description: str = "", headers: Mapping[str, str] | None = None
        ) -> Response:
    body = json.dumps({"error": error, "error_description": description}).encode()
    return Response(status, dict(headers or {}), body)


@dataclass
class Sent:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.url).query).items()}


Step = Response | Exception | Callable[[Sent], Response]


class FakeTransport:
    """Answers from a script (one step per request; the last step repeats). Thread-safe, counts requests."""

    def __init__(self, *steps: Step, delay: float = 0.0) -> None:
        self.steps = list(steps) or [ok()]
        self.sent: list[Sent] = []
        self.delay = delay
        self._lock = threading.Lock()
        self.closed = False

    def request(self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None,
                timeout: float | None = None) -> Response:
        sent = Sent(method, url, dict(headers), body)
        with self._lock:
            index = len(self.sent)
            self.sent.append(sent)
            step = self.steps[min(index, len(self.steps) - 1)]
        if self.delay:
            time.sleep(self.delay)  # real time: lets a herd of threads pile up behind one request
        if isinstance(step, Exception):
            raise step
        if callable(step):
            return step(sent)
        return step

    @property
    def count(self) -> int:
        return len(self.sent)

    def close(self) -> None:
        self.closed = True


def timeout_error() -> TransportError:
    return TransportError("no answer from http://169.254.169.254 within 1 s", "timeout")


def connect_error() -> TransportError:
    return TransportError("cannot connect to http://169.254.169.254", "connect")


def shared_cache_worker(imds_url: str, cache_dir: str, barrier: Any, out: Any) -> None:
    """Run in a child process: wait for the others, then get a token through the shared cache."""
    import hashlib

    from keyless.identity import ManagedIdentityCredential

    cred = ManagedIdentityCredential(source="imds", imds_host=imds_url, env={}, shared_cache=cache_dir)
    barrier.wait(30)
    token = cred.get_token("https://storage.azure.com/.default").token
    out.put(hashlib.sha256(token.encode()).hexdigest())
