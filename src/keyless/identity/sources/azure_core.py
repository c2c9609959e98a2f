"""Any object with azure-core's ``get_token`` as a keyless token source (``DefaultAzureCredential``, ...).

The wrapped credential keeps its own cache; keyless's cache in front adds single flight and the shared
refresh windows. The resource is turned back into a ``.default`` scope, the form those credentials take.
"""

from __future__ import annotations

from typing import Any

from keyless.clock import SYSTEM_CLOCK, Clock
from keyless.identity.errors import IdentityUnavailable
from keyless.identity.token import Token


def _scope(resource: str) -> str:
    return resource + ".default" if resource.endswith("/") else resource + "/.default"


class AzureCoreSource:
    name = "azure-core"

    def __init__(self, credential: Any, *, clock: Clock = SYSTEM_CLOCK) -> None:
        if not callable(getattr(credential, "get_token", None)) and \
                not callable(getattr(credential, "get_token_info", None)):
            raise TypeError(f"{type(credential).__name__} has neither get_token nor get_token_info")
        self.credential = credential
        self._clock = clock

    @property
    def identity(self) -> str:
        return type(self.credential).__name__

    @property
    def cache_scope(self) -> str:
        # Two wrapped credentials are two identities as far as keyless can tell.
        return f"azure-core|{self.identity}|{id(self.credential):x}"

    def fetch(self, resource: str) -> Token:
        now = self._clock.now()
        try:
            if callable(getattr(self.credential, "get_token_info", None)):
                info = self.credential.get_token_info(_scope(resource))
            else:
                info = self.credential.get_token(_scope(resource))
        except Exception as exc:
            # azure-core errors may carry response bodies; keep only the type and message.
            raise IdentityUnavailable(f"{self.identity} could not get a token for {resource}: "
                                      f"{type(exc).__name__}: {str(exc)[:300]}") from None
        token, expires_on = info.token, float(info.expires_on)
        return Token(token=token, expires_on=expires_on, received_at=now, resource=resource,
                     source=self.name, identity=self.identity)

    def close(self) -> None:
        close = getattr(self.credential, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        return f"AzureCoreSource({self.identity})"
