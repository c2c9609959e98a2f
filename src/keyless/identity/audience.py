"""Scopes and resources: which audience a caller asked for, exactly.

Managed-identity endpoints take an AAD v1 *resource*; Azure SDKs pass v2 *scopes*. A scope
``R/.default`` maps to the resource ``R/`` (the trailing slash kept): ``https://storage.azure.com/.default``
becomes ``https://storage.azure.com/``, the documented REST resource, so the SDK path and keyless's own
REST client share one cache entry. (azure-identity strips the slash too; keyless keeps it so that the
SMB form, ``https://storage.azure.com`` without a slash, is only ever obtained by asking for it by name.)
A resource passed as such is used verbatim: cache keys are the exact string the endpoint receives, so the
two storage forms never collide and never duplicate by accident.
"""

from __future__ import annotations

from keyless.identity.errors import CredentialConfigError
from keyless.protocol import STORAGE_RESOURCE, STORAGE_RESOURCE_SMB

_DEFAULT_SUFFIX = "/.default"

#: The two storage audiences, by the name callers use for them.
AUDIENCES: dict[str, str] = {"rest": STORAGE_RESOURCE, "smb": STORAGE_RESOURCE_SMB}


def scope_to_resource(scope: str) -> str:
    """``R/.default`` → ``R/``; anything else unchanged."""
    if scope.endswith(_DEFAULT_SUFFIX):
        return scope[: -len(_DEFAULT_SUFFIX) + 1]
    return scope


def resource_for_scopes(scopes: tuple[str, ...]) -> str:
    if len(scopes) != 1:
        raise CredentialConfigError(
            f"a managed identity token is for exactly one audience, got {len(scopes)} scopes; "
            "request one scope per get_token call"
        )
    scope = scopes[0]
    if not isinstance(scope, str) or not scope.strip():
        raise CredentialConfigError("the scope is empty; pass e.g. 'https://storage.azure.com/.default'")
    return scope_to_resource(scope)


def resolve_audience(value: str | None) -> str:
    """A user-facing audience argument: ``rest`` / ``smb`` / a resource / a ``.default`` scope."""
    if value is None or value == "":
        return STORAGE_RESOURCE
    named = AUDIENCES.get(value.lower())
    return named if named is not None else scope_to_resource(value)
