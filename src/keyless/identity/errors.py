"""Typed failures of token acquisition.

Every message says what happened and what to do, and none ever holds a token: messages are built from
status codes, error codes, selectors and endpoints only, and server error descriptions are truncated
(an identity endpoint never echoes a token, but a broken proxy could echo anything).
"""

from __future__ import annotations

_MAX_DESCRIPTION = 300


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DESCRIPTION else text[: _MAX_DESCRIPTION - 1] + "…"


class IdentityError(Exception):
    """Base of every keyless identity error."""

    #: Short machine-readable kind, used by ``--json`` output and the doctor.
    kind: str = "identity_error"


class CredentialConfigError(IdentityError, ValueError):
    """The credential was given contradictory or malformed arguments (a programming error)."""

    kind = "config"


class IdentityUnavailable(IdentityError):
    """No token source is reachable here (not on Azure, endpoint down, env incomplete)."""

    kind = "unavailable"


class IdentityNotFound(IdentityError):
    """The token source answered, but has no identity matching the selector that was tried."""

    kind = "not_found"

    def __init__(self, message: str, *, selector: str, source: str) -> None:
        super().__init__(message)
        self.selector = selector
        self.source = source


class TokenRequestFailed(IdentityError):
    """The token source answered with an error that retrying did not cure."""

    kind = "request_failed"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 source: str = "", attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.source = source
        self.attempts = attempts


class InvalidTokenResponse(TokenRequestFailed):
    """The source answered 200 but the body is not a usable token response."""

    kind = "invalid_response"


class ArcKeyFileError(IdentityError):
    """The Azure Arc challenge named a key file keyless refuses to read (path checks of the agent)."""

    kind = "arc_key_file"


def clip_description(text: str) -> str:
    """Server-provided error text, shortened and on one line, safe to put in a message."""
    return _clip(text)
