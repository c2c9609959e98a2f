"""What every token source is, who it acts as, and the retrying request loop they share."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from keyless.backoff import parse_retry_after
from keyless.clock import Clock
from keyless.identity.errors import CredentialConfigError, clip_description
from keyless.identity.retry import RetryPolicy
from keyless.identity.token import Token
from keyless.identity.transport import Response, Transport, TransportError

log = logging.getLogger("keyless.identity")


@dataclass(frozen=True, slots=True)
class Selector:
    """Which managed identity: at most one of the three ids; none means system-assigned."""

    client_id: str | None = None
    object_id: str | None = None
    resource_id: str | None = None

    def __post_init__(self) -> None:
        given = [n for n in ("client_id", "object_id", "resource_id") if getattr(self, n)]
        if len(given) > 1:
            raise CredentialConfigError(
                f"choose one identity selector, got {' and '.join(given)}: a user-assigned identity is "
                "named by its client id, object (principal) id or ARM resource id, not several"
            )

    @property
    def is_system(self) -> bool:
        return not (self.client_id or self.object_id or self.resource_id)

    def describe(self) -> str:
        """``client_id=…``, ``object_id=…``, ``resource_id=…`` or ``system-assigned``."""
        if self.client_id:
            return f"client_id={self.client_id}"
        if self.object_id:
            return f"object_id={self.object_id}"
        if self.resource_id:
            return f"resource_id={self.resource_id}"
        return "system-assigned"

    def params(self, *, resource_id_param: str) -> dict[str, str]:
        """Query parameters selecting this identity; the ARM-id parameter's name differs per endpoint."""
        if self.client_id:
            return {"client_id": self.client_id}
        if self.object_id:
            return {"object_id": self.object_id}
        if self.resource_id:
            return {resource_id_param: self.resource_id}
        return {}


SYSTEM_ASSIGNED = Selector()


class TokenSource(Protocol):
    """Anything that can fetch a fresh token for a resource. Sources do not cache: the cache does."""

    #: ``imds``, ``appservice``, ``arc``, ``workload``, ``static`` or ``azure-core``.
    name: str

    @property
    def identity(self) -> str:
        """Who the tokens are for, for display and cache keys (never a secret)."""
        ...

    @property
    def cache_scope(self) -> str:
        """Source + endpoint + identity: tokens from different endpoints never share a cache entry."""
        ...

    def fetch(self, resource: str) -> Token: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class Outcome:
    """The last answer of a retried exchange: a response, or the transport error that ended it."""

    response: Response | None
    error: TransportError | None
    attempts: int
    elapsed: float


def send_with_retry(transport: Transport, policy: RetryPolicy, clock: Clock, *, method: str, url: str,
                    headers: Mapping[str, str], body: bytes | None = None, timeout: float | None = None,
                    source: str, rng: random.Random | None = None) -> Outcome:
    """Send, retrying as ``policy`` says; return the final outcome (the caller maps it to a token/error)."""
    started = clock.now()
    attempts = 0
    while True:
        attempts += 1
        response: Response | None = None
        error: TransportError | None = None
        try:
            response = transport.request(method, url, headers=headers, body=body, timeout=timeout)
        except TransportError as exc:
            error = exc
        now = clock.now()
        if response is not None and response.status < 400:
            return Outcome(response, None, attempts, now - started)
        status = response.status if response is not None else None
        retry_after = parse_retry_after(response.header("Retry-After"), now) if response is not None else None
        delay = policy.next_delay(retries_done=attempts - 1, elapsed=now - started, status=status,
                                  retry_after=retry_after,
                                  connect_error=error is not None and error.kind == "connect", rng=rng)
        if delay is None:
            return Outcome(response, error, attempts, now - started)
        # Log the status only: bodies of identity endpoints are not secret, but keep logs small.
        log.info("%s: %s; retry %d in %.2f s", source,
                 f"HTTP {status}" if status is not None else str(error), attempts, delay)
        clock.sleep(delay)


def json_body(response: Response) -> Any:
    try:
        return json.loads(response.body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None


def error_fields(response: Response) -> tuple[str | None, str]:
    """``(error code, description)`` from an identity endpoint's error answer, whatever its shape."""
    body = json_body(response)
    code: str | None = None
    desc = ""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):  # App Service / Arc style {"error": {"code":..., "message":...}}
            code = err.get("code") if isinstance(err.get("code"), str) else None
            msg = err.get("message")
            desc = msg if isinstance(msg, str) else ""
        else:
            code = err if isinstance(err, str) else None
            d = body.get("error_description") or body.get("message") or ""
            desc = d if isinstance(d, str) else ""
    elif response.body:
        desc = response.body[:300].decode("utf-8", "replace")
    return code, clip_description(desc)
