"""Decode a JWT's claims without verifying it, for messages, display and the token's own lifetime.

Nothing here is a security decision: the claims tell a human who the token says it is for, and explain a
refusal (audience, expiry). The signature is checked by the service that receives the token, never here.
Standard library only: the identity library, the Files client and the SMB code share it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


def decode_claims(token: str) -> dict[str, Any]:
    """The payload of a compact JWS as a dict; ``{}`` when the token is not a JWT (opaque tokens exist)."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}
