"""App Service and Azure Functions: ``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER`` (api-version 2019-08-01).

The secret header value proves the caller runs inside the app's sandbox; it is sent as
``X-IDENTITY-HEADER`` and never logged. Replies carry ``expires_on`` only (no ``expires_in``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from urllib.parse import urlencode

from keyless.clock import SYSTEM_CLOCK, Clock
from keyless.identity.errors import IdentityUnavailable
from keyless.identity.retry import DEFAULT_RETRY, RetryPolicy
from keyless.identity.sources._http import map_failure
from keyless.identity.sources.base import SYSTEM_ASSIGNED, Selector, json_body, send_with_retry
from keyless.identity.token import Token, parse_token_response
from keyless.identity.transport import Transport, Urllib3Transport
from keyless.protocol import APP_SERVICE_API_VERSION


class AppServiceSource:
    name = "appservice"

    def __init__(self, selector: Selector = SYSTEM_ASSIGNED, *, endpoint: str | None = None,
                 header: str | None = None, env: Mapping[str, str] | None = None,
                 transport: Transport | None = None, retry: RetryPolicy = DEFAULT_RETRY,
                 clock: Clock = SYSTEM_CLOCK, timeout: float | None = None,
                 rng: random.Random | None = None) -> None:
        env = {} if env is None else env
        endpoint = endpoint or env.get("IDENTITY_ENDPOINT")
        header = header or env.get("IDENTITY_HEADER")
        if not endpoint or not header:
            raise IdentityUnavailable(
                "App Service managed identity needs IDENTITY_ENDPOINT and IDENTITY_HEADER in the environment "
                "(App Service sets both when an identity is enabled): enable the app's identity, or choose "
                "another token source"
            )
        self.selector = selector
        self.endpoint = endpoint
        self._header = header
        self._transport = transport or Urllib3Transport()
        self._owns_transport = transport is None
        self._retry, self._clock, self._timeout, self._rng = retry, clock, timeout, rng

    @property
    def identity(self) -> str:
        return self.selector.describe()

    @property
    def cache_scope(self) -> str:
        return f"appservice|{self.endpoint}|{self.identity}"

    def fetch(self, resource: str) -> Token:
        query = {"api-version": APP_SERVICE_API_VERSION, "resource": resource,
                 **self.selector.params(resource_id_param="mi_res_id")}
        sep = "&" if "?" in self.endpoint else "?"
        outcome = send_with_retry(self._transport, self._retry, self._clock, method="GET",
                                  url=f"{self.endpoint}{sep}{urlencode(query)}",
                                  headers={"X-IDENTITY-HEADER": self._header}, timeout=self._timeout,
                                  source=self.name, rng=self._rng)
        if outcome.response is not None and outcome.response.status < 400:
            return parse_token_response(json_body(outcome.response), received_at=self._clock.now(),
                                        resource=resource, source=self.name, identity=self.identity)
        raise map_failure(outcome, source=self.name, label="App Service", endpoint=self.endpoint,
                          selector=self.selector, resource=resource,
                          not_found_hint="assign the identity to the app (az webapp identity assign) "
                                         "or fix the id",
                          unavailable_hint="is this process running inside App Service / Functions?")

    def close(self) -> None:
        if self._owns_transport:
            self._transport.close()

    def __repr__(self) -> str:  # the header is a secret
        return f"AppServiceSource(endpoint={self.endpoint!r}, identity={self.identity!r})"
