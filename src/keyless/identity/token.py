"""The token value keyless passes around, and the parsing of identity endpoints' JSON replies.

``Token`` holds the secret, so its ``repr`` (and ``str``) never show it. Expiry is computed from the time the
reply arrived plus ``expires_in`` when the source sends it (IMDS serves tokens from its own cache, so
``expires_on`` may be older than it looks, and the local clock may be skewed); else from ``expires_on``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from keyless.identity._azure import SafeAccessToken, SafeAccessTokenInfo
from keyless.identity.claims import decode_claims
from keyless.identity.errors import InvalidTokenResponse

log = logging.getLogger("keyless.identity")

TWO_HOURS = 7200.0
ADVISORY_LEAD = 600.0  # refresh 10 minutes before expiry (tokens shorter than 2 h)
MANDATORY_LEAD = 300.0  # 5 minutes before expiry the token counts as expired: callers wait for a new one


@dataclass(frozen=True, slots=True)
class Token:
    """An access token and what keyless knows about it. ``repr`` never shows the token itself."""

    token: str = field(repr=False)
    expires_on: float  # epoch seconds, on the local clock
    received_at: float  # epoch seconds, on the local clock
    resource: str = ""
    source: str = ""
    identity: str = ""
    token_type: str = "Bearer"  # noqa: S105 - a type name, not a secret
    # Computed once in __post_init__: the cache compares against them on every hit.
    refresh_on: float = field(init=False, repr=False, compare=False)
    mandatory_at: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "refresh_on", self._advisory_point())
        object.__setattr__(self, "mandatory_at", self._mandatory_point())

    @property
    def lifetime(self) -> float:
        return self.expires_on - self.received_at

    def _advisory_point(self) -> float:
        """The advisory point: from here one caller refreshes while the others keep this token.

        Half-life for tokens of 2 h or more (managed identity tokens live ~24 h), else 10 minutes before
        expiry. Tokens shorter than ~13 minutes (tests, custom policies) scale down (three quarters of
        their life before expiry) so that a token is never born stale.
        """
        life = self.lifetime
        if life >= TWO_HOURS:
            return self.received_at + life / 2
        return self.expires_on - min(ADVISORY_LEAD, 0.75 * life)

    def _mandatory_point(self) -> float:
        """From here callers wait for a fresh token: 5 minutes before expiry (half the life if shorter)."""
        return self.expires_on - min(MANDATORY_LEAD, 0.5 * self.lifetime)

    def remaining(self, now: float) -> float:
        return self.expires_on - now

    def to_access_token(self) -> SafeAccessToken:
        return SafeAccessToken(self.token, int(self.expires_on))

    def to_access_token_info(self) -> SafeAccessTokenInfo:
        return SafeAccessTokenInfo(self.token, int(self.expires_on), token_type=self.token_type,
                                   refresh_on=int(self.refresh_on))

    def claims(self) -> dict[str, Any]:
        return decode_claims(self.token)

    def __repr__(self) -> str:
        return (f"Token(<redacted>, source={self.source!r}, identity={self.identity!r}, "
                f"resource={self.resource!r}, expires_on={self.expires_on:.0f})")

    __str__ = __repr__


def _number(body: dict[str, Any], name: str) -> float | None:
    """IMDS sends every number as a string; other sources send numbers. Accept both."""
    value = body.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def parse_token_response(body: Any, *, received_at: float, resource: str, source: str,
                         identity: str) -> Token:
    """Build a ``Token`` from an identity endpoint's JSON reply (IMDS, App Service, Arc, AAD v2)."""
    if not isinstance(body, dict):
        raise InvalidTokenResponse(f"{source}: the token reply is not a JSON object; is the endpoint "
                                   "really a managed identity endpoint?", source=source)
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise InvalidTokenResponse(f"{source}: the token reply has no access_token", source=source)
    expires_in = _number(body, "expires_in")
    expires_on = _number(body, "expires_on")
    if expires_in is not None and expires_in > 0:
        expiry = received_at + expires_in
    elif expires_on is not None:
        expiry = expires_on
        if expiry <= received_at + 60:
            # A fresh token that looks (almost) expired on arrival: the local clock is ahead of the
            # issuer's. Trust the token's own lifetime (exp - iat) measured from now rather than refetch
            # on every call; say so, since a skewed clock also breaks the storage service's checks.
            claims = decode_claims(access)
            exp, iat = claims.get("exp"), claims.get("iat")
            if isinstance(exp, int | float) and isinstance(iat, int | float) and exp > iat:
                log.warning("%s: token expiry %.0f is already past on the local clock (now %.0f); the "
                            "clock looks skewed: sync it (chrony/ntp) or run `keyless doctor`",
                            source, expires_on, received_at)
                expiry = received_at + (exp - iat)
    else:
        raise InvalidTokenResponse(f"{source}: the token reply has neither expires_in nor expires_on",
                                   source=source)
    token_type = body.get("token_type")
    return Token(
        token=access,
        expires_on=expiry,
        received_at=received_at,
        # The audience the caller asked for, not the reply's echo (which may differ in form).
        resource=resource,
        source=source,
        identity=identity,
        token_type=token_type if isinstance(token_type, str) and token_type else "Bearer",
    )
