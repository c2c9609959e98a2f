"""Azure Files over REST with a managed identity (or Shared Key): addresses, client, transfers, errors.

from keyless.files import ShareClient
share = ShareClient("https://acct.file.core.windows.net/share", credential)  # any TokenCredential
share.mkdir("reports/2026", parents=True)
"""

from __future__ import annotations

from keyless.files.auth import BearerAuth, SharedKeyAuth
from keyless.files.client import Entry, Properties, ShareClient
from keyless.files.errors import (
    AlreadyExists,
    AuthenticationFailed,
    BadRequest,
    Conflict,
    ConnectionFailed,
    DirectoryNotEmpty,
    FilesError,
    IntegrityError,
    InvalidRange,
    KeyAuthNotPermitted,
    MissingIntentHeader,
    NotFound,
    ParentNotFound,
    PermissionDenied,
    ServiceError,
    ShareNotFound,
    TokenError,
    UnsafeDestination,
    UnsafeName,
)
from keyless.files.retry import RetryPolicy
from keyless.files.transport import Transport
from keyless.files.urls import FileUrl, InvalidFileUrl, parse, share_url

__all__ = [
    "AlreadyExists",
    "AuthenticationFailed",
    "BadRequest",
    "BearerAuth",
    "Conflict",
    "ConnectionFailed",
    "DirectoryNotEmpty",
    "Entry",
    "FileUrl",
    "FilesError",
    "IntegrityError",
    "InvalidFileUrl",
    "InvalidRange",
    "KeyAuthNotPermitted",
    "MissingIntentHeader",
    "NotFound",
    "ParentNotFound",
    "PermissionDenied",
    "Properties",
    "RetryPolicy",
    "ServiceError",
    "ShareClient",
    "ShareNotFound",
    "SharedKeyAuth",
    "TokenError",
    "Transport",
    "UnsafeDestination",
    "UnsafeName",
    "parse",
    "share_url",
]
