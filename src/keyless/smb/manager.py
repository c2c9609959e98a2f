"""``smb set | list | clear`` as library calls: token, exchange, credential cache, in that order.

The CLI (``keyless smb``, ``azfilesauthmanager``) and the refresh agent both call these, so a refresh does
exactly what a manual ``set`` does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from keyless.protocol import STORAGE_RESOURCE_SMB
from keyless.smb import ccache, oplog
from keyless.smb.errors import ClockSkew, IdentityNotAttached, SmbError, TokenUnavailable
from keyless.smb.exchange import CLIENT_PRINCIPAL, Endpoint, TicketReply, request_ticket, skew_warning


@dataclass(frozen=True)
class IdentitySpec:
    """Where the token comes from. ``kind``: token | system | imds | client-id | workload."""

    kind: str
    token: str | None = None  # kind == "token" only; never shown
    client_id: str | None = None
    tenant_id: str | None = None
    token_file: str | None = None
    authority_host: str | None = None
    identity_endpoint: str | None = None
    resource: str | None = None  # workload identity in sovereign clouds (azfilesauth 1.0.11 --resource)

    def describe(self) -> str:
        if self.kind == "token":
            return "a token given on the command line"
        if self.kind == "system" or (self.kind == "imds" and not self.client_id):
            return "the system-assigned managed identity"
        if self.kind == "imds":
            return f"the user-assigned identity {self.client_id} (IMDS)"
        if self.kind == "client-id":
            return f"the user-assigned identity {self.client_id}"
        return f"workload identity {self.client_id} (tenant {self.tenant_id})"

    def __repr__(self) -> str:
        return f"IdentitySpec({self.describe()})"

    def ms_name(self) -> str:
        """How azfilesauthmanager names this source in "Error fetching <name> token: ..." messages."""
        if self.kind == "workload":
            return "Workload Identity"
        return "user-assigned managed identity" if self.client_id else "system-assigned managed identity"

    def with_emulator(self, emu: Mapping[str, Any]) -> IdentitySpec:
        """A workload identity spec whose missing tenant / authority come from the emulator."""
        return replace(self, tenant_id=self.tenant_id or emu.get("tenant_id"),
                       authority_host=self.authority_host or emu.get("authority_host"))

    def token_resource(self) -> str:
        """The resource to ask for. A ``--resource`` with a trailing slash (AzFilesAuthenticator's README
        suggests ``https://storage.azure.com/``) is asked for without it: the ticket exchange refuses a
        token whose audience ends in "/" (AzFilesSmbMIClient AzFilesSmbMI.cpp:1490-1494)."""
        if self.resource:
            return self.resource.removesuffix("/.default").rstrip("/")
        return STORAGE_RESOURCE_SMB


def acquire_token(spec: IdentitySpec, *, imds_host: str | None = None, ca_certs: str | None = None,
                  env: Mapping[str, str] | None = None) -> str:
    """A token for ``https://storage.azure.com`` (no trailing slash), from ``keyless.identity``."""
    if spec.kind == "token":
        if not spec.token:
            raise TokenUnavailable("the token given is empty")
        return spec.token.strip()
    from keyless.identity import IdentityError, IdentityNotFound, ManagedIdentityCredential

    kwargs: dict[str, Any] = {"env": env, "ca_certs": ca_certs}
    if spec.kind == "workload":
        kwargs.update(source="workload", client_id=spec.client_id, tenant_id=spec.tenant_id,
                      federated_token_file=spec.token_file, authority_host=spec.authority_host)
    else:
        if spec.kind == "imds" or imds_host is not None:
            kwargs.update(source="imds")
        if imds_host is not None:
            kwargs["imds_host"] = imds_host
        if spec.client_id:
            kwargs["client_id"] = spec.client_id
    try:
        credential = ManagedIdentityCredential(**kwargs)
        return credential.token(spec.token_resource()).token
    except IdentityNotFound as exc:
        raise IdentityNotAttached(
            f"{spec.describe()} is not attached to this machine ({exc}).",
            remedy="Attach the user-assigned identity to the VM (Identity > User assigned) or check the "
                   "client "
                   "id; note that Linux VMs need a user-assigned identity for SMB.") from None
    except IdentityError as exc:
        raise TokenUnavailable(f"could not get a token from {spec.describe()}: {exc}") from None


@dataclass(frozen=True)
class SetResult:
    endpoint: Endpoint
    cache: str
    reply: TicketReply

    @property
    def expires_in(self) -> int:
        return max(0, int(self.reply.credential.endtime - time.time()))


def set_credential(endpoint: Endpoint, token: str, *, cache_name: str, force: bool = False,
                   owner_uid: int | None = None, ca_certs: str | None = None,
                   connect_timeout: float = 10.0, total_timeout: float = 30.0) -> SetResult:
    log = oplog.log()
    log.info("Requesting a Kerberos ticket for %s from %s", endpoint.server, endpoint.exchange_url)
    try:
        reply = request_ticket(endpoint, token, ca_certs=ca_certs, connect_timeout=connect_timeout,
                               total_timeout=total_timeout)
        skewed = skew_warning(reply)
        if skewed is not None:
            # The service issued a ticket, but the SMB server checks this machine's authenticator timestamps
            # against its own clock and would refuse every mount: store nothing and say why.
            raise ClockSkew(f"{skewed.message} The ticket was not stored: the SMB server would refuse it.",
                            remedy=skewed.remedy)
        ccache.store(cache_name, reply.credential, force=force, owner_uid=owner_uid)
    except SmbError as exc:
        log.error("Setting the credential for %s failed (%s): %s", endpoint.server, exc.cause, exc.message)
        raise
    result = SetResult(endpoint, cache_name, reply)
    log.info("Stored the ticket for %s in %s (flags %d, expires in %d s)", reply.credential.server,
             cache_name, reply.credential.flags, result.expires_in)
    return result


def clear_credential(endpoint: Endpoint, *, cache_name: str) -> bool:
    log = oplog.log()
    log.info("Clear credential for %s in %s", endpoint.server, cache_name)
    try:
        removed = ccache.clear(cache_name, CLIENT_PRINCIPAL, endpoint.server)
    except SmbError as exc:
        log.error("Clearing %s failed (%s): %s", endpoint.server, exc.cause, exc.message)
        raise
    log.info("Removed creds for %s" if removed else "No ticket for %s to remove", endpoint.server)
    return removed


def list_credentials(cache_name: str) -> list[ccache.TicketInfo]:
    """The cifs tickets in ``cache_name`` (none when the cache does not exist)."""
    return ccache.list_tickets(cache_name)


def read_credentials(cache_name: str) -> list[ccache.TicketInfo] | None:
    """The cifs tickets in ``cache_name``, logged as ``list``; None when the cache does not exist."""
    log = oplog.log()
    log.info("Listing credentials in credential cache %s", cache_name)
    try:
        return ccache.read_tickets(cache_name)
    except SmbError as exc:
        log.error("Listing %s failed (%s): %s", cache_name, exc.cause, exc.message)
        raise
