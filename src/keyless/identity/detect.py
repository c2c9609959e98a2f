"""Which token source to use: an explicit choice always wins; otherwise the environment decides.

Detection order (first match wins), as azure-identity's, minus the sources keyless does not implement
(Service Fabric, Cloud Shell / Azure ML ``MSI_ENDPOINT``), plus keyless's static token first (setting it
is an explicit act):

1. ``static``: ``KEYLESS_ACCESS_TOKEN`` or ``KEYLESS_ACCESS_TOKEN_FILE``
2. ``appservice``: ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER``
3. ``arc``: ``IDENTITY_ENDPOINT`` and ``IMDS_ENDPOINT``
4. ``workload``: ``AZURE_FEDERATED_TOKEN_FILE`` (with ``AZURE_CLIENT_ID`` and ``AZURE_TENANT_ID``)
5. ``imds``: everything else (an Azure VM, or ``AZURE_POD_IDENTITY_AUTHORITY_HOST``)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from keyless.identity.errors import CredentialConfigError
from keyless.identity.sources.static import ENV_TOKEN, ENV_TOKEN_FILE

SOURCES = ("imds", "appservice", "arc", "workload", "static")
DETECTION_ORDER = ("static", "appservice", "arc", "workload", "imds")


@dataclass(frozen=True, slots=True)
class Detection:
    source: str
    reason: str  # why, for ``keyless token`` and the doctor


def detect_source(env: Mapping[str, str], explicit: str | None = None) -> Detection:
    if explicit:
        name = explicit.lower()
        if name not in SOURCES:
            raise CredentialConfigError(
                f"unknown token source {explicit!r}; choose one of {', '.join(SOURCES)}")
        return Detection(name, "chosen explicitly")
    if env.get(ENV_TOKEN) or env.get(ENV_TOKEN_FILE):
        return Detection("static", f"{ENV_TOKEN if env.get(ENV_TOKEN) else ENV_TOKEN_FILE} is set")
    if env.get("IDENTITY_ENDPOINT") and env.get("IDENTITY_HEADER"):
        return Detection("appservice", "IDENTITY_ENDPOINT and IDENTITY_HEADER are set")
    if env.get("IDENTITY_ENDPOINT") and env.get("IMDS_ENDPOINT"):
        return Detection("arc", "IDENTITY_ENDPOINT and IMDS_ENDPOINT are set")
    if env.get("AZURE_FEDERATED_TOKEN_FILE"):
        return Detection("workload", "AZURE_FEDERATED_TOKEN_FILE is set")
    return Detection("imds", "no other source configured in the environment")
