"""How a request is authorized: a bearer token from any azure-core ``TokenCredential``, or Shared Key.

Bearer requests carry ``Authorization: Bearer``, ``x-ms-file-request-intent: backup`` and the common headers
(``x-ms-version``, ``x-ms-date``, ``x-ms-client-request-id``, added by the client). Shared Key requests are
signed over those headers and never carry the intent header: the two schemes are never mixed.

Token refresh on 401 (the seed: "invalidate your cached token, acquire a fresh one, and retry once"):
:meth:`BearerAuth.refresh` drops the token cached here and, when the credential has an ``invalidate()``
method (``keyless.identity`` credentials do), calls it so the next ``get_token`` goes to the token endpoint.
For credentials without one (plain azure-identity), ``get_token`` is called again; if that returns the very
token the service just refused, resending is pointless and the 401 is reported at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from keyless import protocol as p
from keyless.files.errors import TokenError, describe_identity, token_identity

STORAGE_SCOPE = p.STORAGE_RESOURCE + ".default"
#: Reuse a cached token until this many seconds before it expires.
EXPIRY_MARGIN = 300.0


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
    """Bearer tokens from a ``TokenCredential``, cached here until 5 minutes before expiry.

    Thread-safe with single flight: concurrent workers missing the cache wait for one ``get_token`` call.
    """

    scheme = "Bearer"

    def __init__(self, credential: TokenCredential, *, scope: str = STORAGE_SCOPE) -> None:
        self.credential = credential
        self.scope = scope
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_on = 0.0
        self._rejected: str | None = None

    def __repr__(self) -> str:
        return f"BearerAuth(credential={type(self.credential).__name__}, scope={self.scope!r})"

    def _current(self) -> str:
        with self._lock:
            if self._token is not None and time.time() < self._expires_on - EXPIRY_MARGIN:
                return self._token
            try:
                access = self.credential.get_token(self.scope)
            except Exception as exc:
                # The credential's own message is about the endpoint, not the token; keep it, not chained
                # objects that might hold secrets.
                raise TokenError(
                    f"could not get a token for {self.scope}: {type(exc).__name__}: {_first_line(exc)}"
                ) from None
            token = str(access.token)
            self._token = token
            self._expires_on = float(access.expires_on)
            return token

    def token(self) -> str:
        """The token requests are sent with (for the CLI's step 1 and for claims in messages)."""
        return self._current()

    def authorize(self, method: str, url: str, headers: dict[str, str]) -> None:
        headers["Authorization"] = f"Bearer {self._current()}"
        headers[p.H_INTENT] = p.INTENT_BACKUP

    def refresh(self, rejected_header: str = "") -> bool:
        with self._lock:
            current = self._token
            if current is not None and rejected_header and rejected_header != f"Bearer {current}":
                # Another worker already replaced the rejected token: resend with the new one.
                return True
            self._token = None
            self._expires_on = 0.0
            invalidate = getattr(self.credential, "invalidate", None)
            if callable(invalidate):
                rejected = rejected_header.removeprefix("Bearer ") or current
                try:
                    # keyless.identity: drop the cached token only if it is still the rejected one, so
                    # N workers seeing the same 401 cause one refresh, not N.
                    invalidate(token=rejected)
                except TypeError:
                    invalidate()
                return True
        # No invalidate(): ask again, and only resend if the credential gave something new.
        try:
            fresh = self._current()
        except TokenError:
            return False
        return f"Bearer {fresh}" != rejected_header

    def identity(self) -> str:
        with self._lock:
            token = self._token
        return describe_identity(token_identity(token)) if token else "the managed identity"


class SharedKeyAuth:
    """Shared Key signing (``Authorization: SharedKey account:signature``), for the migration period."""

    scheme = "SharedKey"

    def __init__(self, account: str, key: str) -> None:
        self.account = account
        self._key = base64.b64decode(key)

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
