"""keyless.identity: managed-identity tokens, cached (in process and between processes) and refreshed early.

Public API::

    ManagedIdentityCredential(client_id=..., object_id=..., resource_id=..., source=..., shared_cache=...)
        .get_token(*scopes) -> AccessToken          # azure-core TokenCredential
        .get_token_info(*scopes) -> AccessTokenInfo
        .token(audience) -> Token                   # keyless's own: with source, identity, claims
        .invalidate(audience, token=...)            # the 401 path
    keyless.identity.aio.ManagedIdentityCredential  # the asyncio twin

Audiences: ``STORAGE_RESOURCE`` (``https://storage.azure.com/``, REST) and ``STORAGE_RESOURCE_SMB``
(``https://storage.azure.com``, the SMB ticket exchange) are distinct cache keys; ``…/.default`` scopes
map to ``…/``. Errors derive from ``IdentityError``. This package imports nothing from keyless but the
standard-library-only shared modules (``keyless.protocol``, ``keyless.fsutil``, ``keyless.clock``,
``keyless.backoff``, ``keyless.claims``).
"""

from keyless.clock import Clock, FakeClock, SystemClock
from keyless.identity._azure import AccessToken, AccessTokenInfo
from keyless.identity.audience import resolve_audience, scope_to_resource
from keyless.identity.cache import CacheKey, TokenCache
from keyless.identity.claims import decode_claims, display_claims
from keyless.identity.credential import ManagedIdentityCredential, build_source
from keyless.identity.detect import DETECTION_ORDER, SOURCES, detect_source
from keyless.identity.errors import (
    ArcKeyFileError,
    CredentialConfigError,
    IdentityError,
    IdentityNotFound,
    IdentityUnavailable,
    InvalidTokenResponse,
    TokenRequestFailed,
)
from keyless.identity.retry import DEFAULT_RETRY, NO_RETRY, RetryPolicy
from keyless.identity.shared_cache import SharedTokenCache
from keyless.identity.sources.appservice import AppServiceSource
from keyless.identity.sources.arc import ArcSource
from keyless.identity.sources.azure_core import AzureCoreSource
from keyless.identity.sources.base import Selector, TokenSource
from keyless.identity.sources.imds import ImdsSource
from keyless.identity.sources.static import StaticTokenSource
from keyless.identity.sources.workload import WorkloadIdentitySource
from keyless.identity.token import Token
from keyless.protocol import STORAGE_RESOURCE, STORAGE_RESOURCE_SMB

__all__ = [
    "DEFAULT_RETRY",
    "DETECTION_ORDER",
    "NO_RETRY",
    "SOURCES",
    "STORAGE_RESOURCE",
    "STORAGE_RESOURCE_SMB",
    "AccessToken",
    "AccessTokenInfo",
    "AppServiceSource",
    "ArcKeyFileError",
    "ArcSource",
    "AzureCoreSource",
    "CacheKey",
    "Clock",
    "CredentialConfigError",
    "FakeClock",
    "IdentityError",
    "IdentityNotFound",
    "IdentityUnavailable",
    "ImdsSource",
    "InvalidTokenResponse",
    "ManagedIdentityCredential",
    "RetryPolicy",
    "Selector",
    "SharedTokenCache",
    "StaticTokenSource",
    "SystemClock",
    "Token",
    "TokenCache",
    "TokenRequestFailed",
    "TokenSource",
    "WorkloadIdentitySource",
    "build_source",
    "decode_claims",
    "detect_source",
    "display_claims",
    "resolve_audience",
    "scope_to_resource",
]
