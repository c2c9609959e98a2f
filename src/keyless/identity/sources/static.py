"""A token handed over from outside: an argument, a file (re-read when it changes), or the environment.

For machines where another tool already holds a token (``az account get-access-token``, a sidecar, a
CI job). keyless cannot refresh it: when it has expired the error says to supply a new one. The expiry
comes from the token's ``exp`` claim (or ``expires_on`` given with it); the ``aud`` claim, when present,
must match the requested audience (with or without the trailing slash: the storage service accepts both).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from keyless.clock import SYSTEM_CLOCK, Clock
from keyless.identity.claims import decode_claims
from keyless.identity.errors import CredentialConfigError, IdentityUnavailable, TokenRequestFailed
from keyless.identity.token import Token

ENV_TOKEN = "KEYLESS_ACCESS_TOKEN"  # noqa: S105 - variable names
ENV_TOKEN_FILE = "KEYLESS_ACCESS_TOKEN_FILE"  # noqa: S105
_ASSUMED_LIFETIME = 3600.0  # an opaque token with no stated expiry: assume an hour, refuse nothing


class StaticTokenSource:
    name = "static"

    def __init__(self, token: str | None = None, *, token_file: str | Path | None = None,
                 expires_on: float | None = None, env: Mapping[str, str] | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        env = {} if env is None else env
        if token is not None and token_file is not None:
            raise CredentialConfigError("give a static token or a token file, not both")
        if token is None and token_file is None:
            token = env.get(ENV_TOKEN) or None
            file_env = env.get(ENV_TOKEN_FILE)
            token_file = file_env if (file_env and token is None) else None
        if token is None and token_file is None:
            raise IdentityUnavailable(f"no static token: pass one, or set {ENV_TOKEN} or {ENV_TOKEN_FILE}")
        self._token = token.strip() if token else None
        self.token_file = Path(token_file) if token_file else None
        self._expires_on = expires_on
        self._clock = clock

    @property
    def identity(self) -> str:
        return f"file:{self.token_file}" if self.token_file else "static"

    @property
    def cache_scope(self) -> str:
        return f"static|{self.identity}"

    def _read(self) -> str:
        if self._token is not None:
            return self._token
        assert self.token_file is not None
        try:
            value = self.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise IdentityUnavailable(
                f"cannot read the token file {self.token_file} ({exc.strerror})") from None
        if not value:
            raise IdentityUnavailable(f"the token file {self.token_file} is empty")
        return value

    def fetch(self, resource: str) -> Token:
        value = self._read()
        claims = decode_claims(value)
        now = self._clock.now()
        aud = claims.get("aud")
        if isinstance(aud, str) and aud.rstrip("/") != resource.rstrip("/"):
            raise TokenRequestFailed(
                f"the static token is for audience {aud}, not {resource}; get one for {resource} "
                f"(az account get-access-token --resource {resource})", source=self.name)
        exp = claims.get("exp")
        if self._expires_on is not None:
            expiry = self._expires_on
        elif isinstance(exp, int | float):
            expiry = float(exp)
        else:
            expiry = now + _ASSUMED_LIFETIME
        if expiry <= now:
            how = f"rewrite {self.token_file}" if self.token_file else f"a new argument or {ENV_TOKEN}"
            raise IdentityUnavailable(
                f"the static token expired {now - expiry:.0f} s ago; supply a fresh one "
                f"({how})")
        iat = claims.get("iat")
        received = float(iat) if isinstance(iat, int | float) and iat <= now else now
        return Token(token=value, expires_on=expiry, received_at=received, resource=resource,
                     source=self.name, identity=self.identity)

    def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"StaticTokenSource({self.identity!r})"


