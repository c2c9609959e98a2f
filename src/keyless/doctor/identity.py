"""Identity checks: can a token be had, and is it the right one (audience, lifetime)?"""

from __future__ import annotations

import time
from typing import Any

from keyless.doctor.result import CheckResult, fail, ok, warn
from keyless.identity import decode_claims
from keyless.protocol import STORAGE_AUDIENCES, STORAGE_RESOURCE

#: A token with less than this left is about to be refreshed; less than the mandatory window is a problem.
MIN_LIFETIME = 300.0


def check_identity(credential: Any) -> tuple[CheckResult, Any]:
    """``(result, token)``: the token (a ``keyless.identity.Token``) is None when none could be had."""
    try:
        token = credential.token(STORAGE_RESOURCE)
    except Exception as exc:  # every identity failure ends up here, whatever the source
        text = str(exc).split("\n", 1)[0][:400]
        return (
            fail(
                "identity",
                f"no token from {getattr(credential, 'source_name', 'the token source')}: "
                f"{type(exc).__name__}: {text}",
                "Assign a managed identity to this machine (system-assigned, or pass --client-id for a "
                "user-assigned one) and make sure its token endpoint is reachable; `keyless token` shows "
                "what is tried.",
            ),
            None,
        )
    source = getattr(credential, "source_name", token.source or "unknown")
    reason = getattr(getattr(credential, "detection", None), "reason", "")
    detail = (
        f"token from {source}" + (f" ({reason})" if reason else "") + f" for {token.identity or 'identity'}"
    )
    return ok("identity", detail), token


def check_token(token: Any, *, now: float | None = None) -> CheckResult:
    """Audience and expiry of the token, from its claims (decoded, not verified: display only)."""
    claims = decode_claims(token.token)
    now = time.time() if now is None else now
    if not claims:
        return warn("token", "the token is not a JWT: audience and expiry cannot be shown", "")
    aud = str(claims.get("aud", ""))
    who = ", ".join(f"{k} {claims[k]}" for k in ("oid", "appid") if k in claims)
    if aud not in STORAGE_AUDIENCES:
        return fail(
            "token",
            f"audience {aud!r} ({who}) is not Azure Storage",
            f"Request the token for resource {STORAGE_RESOURCE} (scope {STORAGE_RESOURCE}.default).",
        )
    left = float(token.expires_on) - now
    detail = f"audience {aud}, {who}, expires in {_duration(left)}"
    if left <= 0:
        return fail("token", detail, "The token has expired: check this machine's clock and the token cache.")
    if left < MIN_LIFETIME:
        return warn("token", detail, "The token is about to expire; keyless will refresh it before use.")
    return ok("token", detail)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{sign}{h}h{m:02d}m" if h else f"{sign}{m}m{s:02d}s"
