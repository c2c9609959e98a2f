"""Azure Instance Metadata Service (VMs, VM scale sets, AKS nodes without workload identity).

``GET {host}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=R``
(plus ``client_id``, ``object_id`` or ``msi_res_id`` for a user-assigned identity)
with ``Metadata: true`` (IMDS refuses requests without it, which keeps SSRF through proxies out), over a
proxy-free transport. ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` replaces the host, as in azure-identity.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from urllib.parse import urlencode

from keyless.clock import SYSTEM_CLOCK, Clock
from keyless.identity.errors import IdentityNotFound, IdentityUnavailable, TokenRequestFailed
from keyless.identity.retry import DEFAULT_RETRY, RetryPolicy
from keyless.identity.sources.base import (
    SYSTEM_ASSIGNED,
    Outcome,
    Selector,
    error_fields,
    json_body,
    send_with_retry,
)
from keyless.identity.token import Token, parse_token_response
from keyless.identity.transport import Transport, Urllib3Transport
from keyless.protocol import IMDS_API_VERSION, IMDS_HOST, IMDS_TOKEN_PATH

ENV_HOST = "AZURE_POD_IDENTITY_AUTHORITY_HOST"


class ImdsSource:
    name = "imds"

    def __init__(self, selector: Selector = SYSTEM_ASSIGNED, *, host: str | None = None,
                 env: Mapping[str, str] | None = None, transport: Transport | None = None,
                 retry: RetryPolicy = DEFAULT_RETRY, clock: Clock = SYSTEM_CLOCK,
                 timeout: float | None = None, rng: random.Random | None = None) -> None:
        env = {} if env is None else env
        self.selector = selector
        self.host = (host or env.get(ENV_HOST) or IMDS_HOST).rstrip("/")
        self.url = self.host + IMDS_TOKEN_PATH
        self._transport = transport or Urllib3Transport()
        self._owns_transport = transport is None
        self._retry = retry
        self._clock = clock
        self._timeout = timeout
        self._rng = rng

    @property
    def identity(self) -> str:
        return self.selector.describe()

    @property
    def cache_scope(self) -> str:
        return f"imds|{self.host}|{self.identity}"

    def fetch(self, resource: str) -> Token:
        query = {"api-version": IMDS_API_VERSION, "resource": resource,
                 **self.selector.params(resource_id_param="msi_res_id")}
        outcome = send_with_retry(
            self._transport, self._retry, self._clock, method="GET", url=f"{self.url}?{urlencode(query)}",
            headers={"Metadata": "true"}, timeout=self._timeout, source=self.name, rng=self._rng,
        )
        if outcome.response is not None and outcome.response.status < 400:
            return parse_token_response(json_body(outcome.response), received_at=self._clock.now(),
                                        resource=resource, source=self.name, identity=self.identity)
        raise self._error(outcome, resource)

    def _error(self, outcome: Outcome, resource: str) -> Exception:
        plural = "s" if outcome.attempts != 1 else ""
        tries = f"{outcome.attempts} attempt{plural} over {outcome.elapsed:.0f} s"
        if outcome.response is None:
            err = outcome.error
            if err is not None and err.kind == "connect":
                return IdentityUnavailable(
                    f"IMDS at {self.host} is not reachable ({err}): this is not an Azure VM, or a firewall "
                    "or container network blocks 169.254.169.254. On Azure, check the VM's network; "
                    "elsewhere choose another token source, or point keyless at the local emulator."
                )
            return TokenRequestFailed(
                f"IMDS at {self.host} did not answer a token request for {resource} ({err}; {tries}). "
                "IMDS may be overloaded: retry later; if it persists, restart the VM's guest agent.",
                source=self.name, attempts=outcome.attempts,
            )
        resp = outcome.response
        code, desc = error_fields(resp)
        detail = f": {desc}" if desc else ""
        if resp.status == 400:
            # 400 is IMDS's "identity not found" (or a malformed request, which keyless never sends).
            if self.selector.is_system:
                what = ("no system-assigned managed identity is enabled on this VM. Enable one "
                        "(az vm identity assign -g RG -n VM) or select a user-assigned identity the VM has "
                        "by its client id, object id or resource id")
            else:
                what = (f"no user-assigned managed identity with {self.selector.describe()} is attached to "
                        "this VM. Attach it (az vm identity assign -g RG -n VM --identities ID) or check "
                        "the id (az identity show)")
            return IdentityNotFound(f"IMDS at {self.host}: {what} (HTTP 400{detail})",
                                    selector=self.selector.describe(), source=self.name)
        if resp.status == 403 and "unreachable" in desc.lower():
            return IdentityUnavailable(
                f"IMDS at {self.host} is not reachable from here (HTTP 403{detail}): a container or VPN "
                "network intercepts 169.254.169.254; run on the VM's own network or choose another token "
                "source."
            )
        hint = {
            429: "IMDS throttles at 20 requests/s and 5 concurrent requests per VM: something else on this "
                 "VM is calling it in a loop; turn on keyless's shared token cache for worker processes",
            410: "IMDS was being upgraded for longer than its documented 70 s: retry in a minute",
            404: "IMDS is updating: retry in a minute",
        }.get(resp.status, "the metadata service failed: retry later; if it persists, check the VM's "
                           "guest agent and Azure service health")
        return TokenRequestFailed(
            f"IMDS at {self.host} answered HTTP {resp.status}{detail} for {resource} as "
            f"{self.selector.describe()} ({tries}); {hint}",
            status=resp.status, code=code, source=self.name, attempts=outcome.attempts,
        )

    def close(self) -> None:
        if self._owns_transport:
            self._transport.close()

    def __repr__(self) -> str:
        return f"ImdsSource(host={self.host!r}, identity={self.identity!r})"
