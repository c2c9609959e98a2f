"""Decode a JWT's claims without verifying it, for display and for the token's own lifetime.

Nothing here is a security decision: the claims tell a human who the token says it is for (``keyless
token``, the doctor). The signature is checked by the service that receives the token, never here.
"""

from __future__ import annotations

import base64
import json
from typing import Any

#: Claims ``keyless token`` shows, in display order.
DISPLAY_CLAIMS = ("aud", "oid", "appid", "xms_mirid", "tid", "iss", "idtyp", "iat", "nbf", "exp")


def decode_claims(token: str) -> dict[str, Any]:
    """The payload of a compact JWS as a dict; ``{}`` when the token is not a JWT (opaque tokens exist)."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def display_claims(token: str) -> dict[str, Any]:
    """The claims worth showing, nothing else (a token may carry personal data in other claims)."""
    claims = decode_claims(token)
    return {name: claims[name] for name in DISPLAY_CLAIMS if name in claims}
