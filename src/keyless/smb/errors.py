"""Errors of ``keyless.smb``: each names its cause and says what to do, never holding a token or key.

``cause`` is a stable machine-readable word (scripts and ``--json`` output branch on it); ``exit_code``
is what the CLI returns, so a script can tell "fix your RBAC" from "retry later" without parsing text.
"""

from __future__ import annotations


class SmbError(Exception):
    cause = "error"
    exit_code = 1

    def __init__(self, message: str, *, remedy: str = "", cause: str | None = None) -> None:
        self.message = message
        self.remedy = remedy
        if cause is not None:
            self.cause = cause
        super().__init__(f"{message} {remedy}".strip())


class InvalidEndpoint(SmbError):
    cause = "invalid_endpoint"
    exit_code = 2


class RoleMissing(SmbError):
    cause = "role_missing"
    exit_code = 3


class SmbOAuthDisabled(SmbError):
    cause = "smb_oauth_disabled"
    exit_code = 3


class IdentityNotAttached(SmbError):
    cause = "identity_not_attached"
    exit_code = 4


class TokenUnavailable(SmbError):
    cause = "token_unavailable"
    exit_code = 4


class AudienceTrailingSlash(SmbError):
    cause = "audience_trailing_slash"
    exit_code = 5


class TokenRejected(SmbError):
    cause = "token_rejected"
    exit_code = 5


class ClockSkew(SmbError):
    cause = "clock_skew"
    exit_code = 6


class EndpointUnreachable(SmbError):
    cause = "endpoint_unreachable"
    exit_code = 7


class BadReply(SmbError):
    cause = "bad_reply"
    exit_code = 8


class CacheTypeUnsupported(SmbError):
    cause = "cache_type_unsupported"
    exit_code = 9


class CachePermissionDenied(SmbError):
    cause = "cache_permission_denied"
    exit_code = 9


class CacheOtherClient(SmbError):
    cause = "cache_other_client"
    exit_code = 9


class CacheError(SmbError):
    cause = "cache_error"
    exit_code = 9


class ConfigFileError(SmbError):
    cause = "config_error"
    exit_code = 2
