"""Which claims of a token keyless shows (decoding itself is :func:`keyless.claims.decode_claims`)."""

from __future__ import annotations

from typing import Any

from keyless.claims import decode_claims

__all__ = ["DISPLAY_CLAIMS", "decode_claims", "display_claims"]

#: Claims ``keyless token`` shows, in display order.
DISPLAY_CLAIMS = ("aud", "oid", "appid", "xms_mirid", "tid", "iss", "idtyp", "iat", "nbf", "exp")


def display_claims(token: str) -> dict[str, Any]:
    """The claims worth showing, nothing else (a token may carry personal data in other claims)."""
    claims = decode_claims(token)
    return {name: claims[name] for name in DISPLAY_CLAIMS if name in claims}
