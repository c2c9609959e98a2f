"""How a request is authorized: a bearer token from any azure-core ``TokenCredential``, or Shared Key.

Bearer requests carry ``Authorization: Bearer``, ``x-ms-file-request-intent: backup`` and the common headers
(``x-ms-version``, ``x-ms-date``, ``x-ms-client-request-id``, added by the client). Shared Key requests are
signed over those headers and never carry the intent header: the two schemes are never mixed.

Tokens are asked of the credential for every request and never copied here: the credential's cache decides
when to refresh (keyless credentials refresh early, in the background of the callers, and keep serving the
valid token while an identity endpoint is down; azure-identity's cache tokens too). A copy here would hide
that early window and make every worker wait for the refresh.

Token refresh on 401 (invalidate the cached token, acquire a fresh one, retry once):
:meth:`BearerAuth.refresh` calls the credential's ``invalidate()`` when it has one (``keyless.identity``
credentials do, and drop the token from the cache shared between processes too), then asks for a token
again. The resend is worth making only when that token differs from the refused one; otherwise the 401 is
reported at once, saying that no fresh token could be had.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from keyless import protocol as p
from keyless.files.errors import TokenError, describe_identity, token_identity

STORAGE_SCOPE = p.STORAGE_RESOURCE + ".default"


class TokenCredential(Protocol):
    """azure-core's ``TokenCredential`` shape (structural, so azure-core need not be imported)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


class Authorizer(Protocol):
    scheme: str

    def authorize(self, method: str, url: str, headers: dict[str, str]) -> None:
        """Add the Authorization header (and, for bearer, the intent header) to ``headers``."""

    def refresh(self, rejected_header: str = "") -> bool:
        """After a 401 to a request sent with ``rejected_header``: drop cached credentials.
        True when a resend may succeed."""

    def identity(self) -> str:
        """Who the requests are made as, for messages (never a secret)."""


class BearerAuth:
    """Bearer tokens from a ``TokenCredential``; its cache decides when a token is refreshed.

    Thread-safe and lock-free here: concurrent workers call ``get_token`` directly, and a keyless credential
    answers a cache hit without a lock and lets one caller refresh while the others keep the valid token.
    """

    scheme = "Bearer"

    def __init__(self, credential: TokenCredential, *, scope: str = STORAGE_SCOPE) -> None:
        self.credential = credential
        self.scope = scope
        self._last: str | None = None  # the token last handed out: for messages and the 401 path only
        # The Authorization value of the token last seen: formatted once per token, not once per request.
        self._header: tuple[str, str] = ("", "")

    def __repr__(self) -> str:
        return f"BearerAuth(credential={type(self.credential).__name__}, scope={self.scope!r})"

    def token(self) -> str:
        """The token requests are sent with now (``keyless test`` shows its claims before any request)."""
        try:
            access = self.credential.get_token(self.scope)
        except Exception as exc:
            # The credential's own message is about the endpoint, not the token; keep it, not chained
            # objects that might hold secrets.
            raise TokenError(
                f"could not get a token for {self.scope}: {type(exc).__name__}: {_first_line(exc)}"
            ) from None
        token = str(access.token)
        self._last = token
        return token

    def authorize(self, method: str, url: str, headers: dict[str, str]) -> None:
        token = self.token()  # asked every time: the credential's cache decides when to refresh
        cached = self._header
        if cached[0] != token:
            cached = self._header = (token, f"Bearer {token}")
        headers["Authorization"] = cached[1]
        headers[p.H_INTENT] = p.INTENT_BACKUP

    def refresh(self, rejected_header: str = "") -> bool:
        rejected = rejected_header.removeprefix("Bearer ") or self._last
        invalidate = getattr(self.credential, "invalidate", None)
        if callable(invalidate):
            try:
                # keyless.identity: drop the cached token only if it is still the rejected one, so N
                # workers seeing the same 401 cause one refresh, not N.
                invalidate(token=rejected)
            except TypeError:
                invalidate()
        try:
            fresh = self.token()
        except TokenError:
            return False
        # Resending the very token the service just refused is pointless.
        return fresh != rejected

    def identity(self) -> str:
        token = self._last
        return describe_identity(token_identity(token)) if token else "the managed identity"


class InvalidAccountKey(ValueError):
    """An account key that cannot be one (not base64, or empty)."""


class SharedKeyAuth:
    """Shared Key signing (``Authorization: SharedKey account:signature``), for the migration period."""

    scheme = "SharedKey"

    def __init__(self, account: str, key: str) -> None:
        self.account = account
        try:
            # validate=True: a key with a cut or stray character is refused here, not turned silently
            # into other bytes that then fail every request as a bad signature.
            self._key = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            # The key itself is never put in the message.
            raise InvalidAccountKey(
                f"the account key for {account} is not valid base64 (copy it again from the storage "
                "account's access keys)"
            ) from None
        if not self._key:
            raise InvalidAccountKey(f"the account key for {account} is empty")

    def __repr__(self) -> str:
        return f"SharedKeyAuth(account={self.account!r}, key=<redacted>)"

    def authorize(self, method: str, url: str, headers: dict[str, str]) -> None:
        headers.pop(p.H_INTENT, None)  # never mixed with Shared Key
        string_to_sign = shared_key_string(method, url, headers, self.account)
        digest = hmac.new(self._key, string_to_sign.encode("utf-8"), hashlib.sha256).digest()
        headers["Authorization"] = f"SharedKey {self.account}:{base64.b64encode(digest).decode()}"

    def refresh(self, rejected_header: str = "") -> bool:
        return False  # a key does not get better by asking again

    def identity(self) -> str:
        return f"Shared Key of account {self.account}"


def shared_key_string(method: str, url: str, headers: dict[str, str], account: str) -> str:
    """The Shared Key string-to-sign, exactly as the storage SDKs build it."""
    lower = {k.lower(): v for k, v in headers.items() if v is not None}
    standard = []
    for name in (*p.SHARED_KEY_STANDARD_HEADERS, "range"):
        value = lower.get(name, "")
        if name == "content-length" and value == "0":
            value = ""  # versions since 2015-02-21 sign an empty string for a zero length
        standard.append(value)
    ms = p.sort_shared_key_headers(k for k in lower if k.startswith("x-ms-"))
    canon_headers = "".join(f"{k}:{lower[k]}\n" for k in ms)
    split = urlsplit(url)
    resource = f"/{account}{split.path or '/'}"
    query: dict[str, list[str]] = {}
    for pair in split.query.split("&") if split.query else []:
        name, _, value = pair.partition("=")
        query.setdefault(unquote(name).lower(), []).append(unquote(value))
    canon_query = "".join(f"\n{k}:{','.join(sorted(query[k]))}" for k in sorted(query))
    return method + "\n" + "\n".join(standard) + "\n" + canon_headers + resource + canon_query


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().split("\n", 1)[0]
    return text[:300]
