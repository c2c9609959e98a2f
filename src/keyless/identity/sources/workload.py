"""Workload identity (AKS, or any federated credential): exchange a projected token file for a token.

``POST {authority}/{tenant}/oauth2/v2.0/token`` with the client-credentials grant and the file's content
as ``client_assertion``. Kubernetes rotates the file (hourly by default), so it is re-read whenever its
mtime or size changes, never cached forever. The assertion is a secret: it goes only to an HTTPS
authority (plain HTTP only to a loopback host: the local emulator) and never into a message.
"""

from __future__ import annotations

import ipaddress
import os
import random
import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from keyless.clock import SYSTEM_CLOCK, Clock
from keyless.identity.errors import (
    CredentialConfigError,
    IdentityNotFound,
    IdentityUnavailable,
    TokenRequestFailed,
)
from keyless.identity.retry import DEFAULT_RETRY, RetryPolicy
from keyless.identity.sources.base import Selector, error_fields, json_body, send_with_retry
from keyless.identity.token import Token, parse_token_response
from keyless.identity.transport import Transport, Urllib3Transport
from keyless.protocol import CLIENT_ASSERTION_TYPE

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _v2_scope(resource: str) -> str:
    """The AAD v2 scope for a resource: ``https://storage.azure.com/`` → ``https://storage.azure.com/.default``."""
    return resource + ".default" if resource.endswith("/") else resource + "/.default"


class FederatedTokenFile:
    """The assertion file, re-read when its (mtime, size) changes. Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._value = ""

    def read(self) -> str:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise IdentityUnavailable(
                f"the federated token file {self.path} cannot be read ({exc.strerror}): is the service "
                "account token volume mounted (azure.workload.identity/use: \"true\" on the pod)?") from None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                value = self.path.read_text(encoding="utf-8").strip()
                if not value:
                    raise IdentityUnavailable(f"the federated token file {self.path} is empty")
                self._value, self._stamp = value, stamp
            return self._value

    def __repr__(self) -> str:
        return f"FederatedTokenFile({str(self.path)!r})"


class WorkloadIdentitySource:
    name = "workload"

    def __init__(self, selector: Selector | None = None, *, tenant_id: str | None = None,
                 token_file: str | Path | None = None, authority_host: str | None = None,
                 env: Mapping[str, str] | None = None, transport: Transport | None = None,
                 retry: RetryPolicy = DEFAULT_RETRY, clock: Clock = SYSTEM_CLOCK,
                 timeout: float | None = None, rng: random.Random | None = None) -> None:
        env = {} if env is None else env
        selector = selector or Selector()
        if selector.object_id or selector.resource_id:
            raise CredentialConfigError(
                "workload identity selects the identity by client id only (the federated credential's "
                f"application); got {selector.describe()}")
        client_id = selector.client_id or env.get("AZURE_CLIENT_ID")
        tenant_id = tenant_id or env.get("AZURE_TENANT_ID")
        file = token_file or env.get("AZURE_FEDERATED_TOKEN_FILE")
        missing = [n for n, v in (("AZURE_CLIENT_ID", client_id), ("AZURE_TENANT_ID", tenant_id),
                                  ("AZURE_FEDERATED_TOKEN_FILE", file)) if not v]
        if missing:
            raise IdentityUnavailable(
                f"workload identity needs {', '.join(missing)} (the AKS workload identity webhook sets "
                "them on pods labelled azure.workload.identity/use: \"true\"); label the pod, or choose "
                "another token source")
        assert client_id and tenant_id and file
        authority = (authority_host or env.get("AZURE_AUTHORITY_HOST") or DEFAULT_AUTHORITY).rstrip("/")
        parts = urlsplit(authority)
        if parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(parts.hostname or "")):
            raise CredentialConfigError(
                f"the authority host {authority} is not HTTPS: the federated assertion would travel in "
                "clear; use https:// (plain http is accepted only for a loopback emulator)")
        self.client_id = client_id
        self.tenant_id = tenant_id
        self.authority = authority
        self.url = f"{authority}/{tenant_id}/oauth2/v2.0/token"
        self.token_file = FederatedTokenFile(Path(file))
        self._transport = transport or Urllib3Transport()
        self._owns_transport = transport is None
        self._retry, self._clock, self._timeout, self._rng = retry, clock, timeout, rng

    @property
    def identity(self) -> str:
        return f"client_id={self.client_id}"

    @property
    def cache_scope(self) -> str:
        return f"workload|{self.authority}|{self.tenant_id}|{self.identity}"

    def fetch(self, resource: str) -> Token:
        form = urlencode({
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "scope": _v2_scope(resource),
            "client_assertion": self.token_file.read(),
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
        }).encode("ascii")
        outcome = send_with_retry(self._transport, self._retry, self._clock, method="POST", url=self.url,
                                  headers={"Content-Type": "application/x-www-form-urlencoded",
                                           "Accept": "application/json"},
                                  body=form, timeout=self._timeout, source=self.name, rng=self._rng)
        if outcome.response is not None and outcome.response.status < 400:
            return parse_token_response(json_body(outcome.response), received_at=self._clock.now(),
                                        resource=resource, source=self.name, identity=self.identity)
        if outcome.response is None:
            raise IdentityUnavailable(f"the authority {self.authority} is not reachable ({outcome.error}); "
                                      "check DNS / egress to it (AZURE_AUTHORITY_HOST)")
        code, desc = error_fields(outcome.response)
        detail = f": {desc}" if desc else ""
        status = outcome.response.status
        if code in ("unauthorized_client", "invalid_client") and "AADSTS700016" in desc:
            raise IdentityNotFound(
                f"the tenant {self.tenant_id} has no application with client_id={self.client_id} "
                f"(HTTP {status}{detail}); check AZURE_CLIENT_ID and the service account's annotation",
                selector=self.identity, source=self.name)
        hint = ("the federated credential does not match this service account (issuer / subject), or the "
                "projected token expired: check the identity's federated credentials (az identity "
                "federated-credential list)") if status in (400, 401) else "retry later"
        raise TokenRequestFailed(f"the authority {self.authority} refused the workload identity exchange for "
                                 f"{self.identity} (HTTP {status}{detail}); {hint}",
                                 status=status, code=code, source=self.name, attempts=outcome.attempts)

    def close(self) -> None:
        if self._owns_transport:
            self._transport.close()

    def __repr__(self) -> str:
        return f"WorkloadIdentitySource(authority={self.authority!r}, identity={self.identity!r})"
