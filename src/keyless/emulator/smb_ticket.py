"""``POST /<account>/?restype=service&comp=kerbticket``: the SMB managed-identity ticket exchange.

What the service does for ``azfilesauth`` (protocol.md §3): a bearer token for ``https://storage.azure.com``
(exactly, without the trailing slash) becomes a KRB-CRED for ``AzureFileClient`` to
``cifs/<account>.file.core.windows.net``, plus its session key and expiry, as JSON.

Checks, in order, each with its own precise refusal:
1. a bearer token (``authenticate`` without the intent header, which azfilesauth does not send);
   Shared Key is refused: a ticket names an identity, and a key has none;
2. the audience is exactly ``https://storage.azure.com``;
3. the token has not expired (strictly: no clock-skew grace, a ticket cannot outlive its token);
4. SMB OAuth is enabled on the account;
5. the caller holds the SMB managed-identity data actions through one role assignment scope, on the
   account or on one of its shares.

Error codes and statuses for 2, 4 and 5 are this emulator's guesses (unverified against the service):
401 ``InvalidAuthenticationInfo`` with an ``AuthenticationErrorDetail`` for the audience (as for any
audience mismatch), 403 ``FeatureNotSupportedOnStorageAccount`` for SMB OAuth disabled, 403
``AuthorizationPermissionMismatch`` with an ``AuthorizationErrorDetail`` naming the role for RBAC.

Ticket lifetime: from now until the earliest of the token's ``exp``, now + the emulator's
``token_lifetime`` and now + 24 h. Tying it to the token means a test with ``token_lifetime = "2m"`` gets
two-minute tickets, and no ticket outlives the token that vouched for it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from email.utils import formatdate
from typing import TYPE_CHECKING

from aiohttp import web

from keyless.emulator import auth
from keyless.emulator import request_keys as keys
from keyless.emulator.errors import StorageError, TokenRejected
from keyless.emulator.issuer import DETAIL_EXPIRED
from keyless.emulator.kerberos import MAX_TICKET_LIFETIME, KerberosMinter
from keyless.protocol import (
    E_AUTH_FAILED,
    E_INVALID_AUTH,
    E_NO_AUTH,
    E_PERMISSION_MISMATCH,
    SMB_MI_DATA_ACTIONS,
    STORAGE_RESOURCE_SMB,
)

if TYPE_CHECKING:
    from keyless.emulator.context import Emulator

OPERATION = "GetKerberosTicket"
E_SMB_OAUTH_DISABLED = "FeatureNotSupportedOnStorageAccount"  # unverified guess at the service's code

DETAIL_TRAILING_SLASH = (
    "Audience validation failed. The SMB Kerberos ticket exchange requires a token for audience "
    f"'{STORAGE_RESOURCE_SMB}' without a trailing slash; this token's audience is '{STORAGE_RESOURCE_SMB}/'. "
    f"Request the token for resource '{STORAGE_RESOURCE_SMB}'."
)
DETAIL_WRONG_AUDIENCE = (
    "Audience validation failed. The SMB Kerberos ticket exchange requires a token for audience "
    f"'{STORAGE_RESOURCE_SMB}'."
)
DETAIL_BEARER_ONLY = (
    "The SMB Kerberos ticket exchange accepts only a bearer token of a Microsoft Entra identity; "
    "Shared Key and SAS cannot obtain a Kerberos ticket."
)
MESSAGE_SMB_OAUTH_DISABLED = (
    "SMB OAuth (managed identity access over SMB) is not enabled on this storage account. "
    "Enable it with Set-AzStorageAccount -EnableSmbOAuth $true."
)
DETAIL_ROLE_MISSING = (
    "The identity holds no role with the SMB managed-identity data actions "
    "(Microsoft.Storage/storageAccounts/fileServices/takeOwnership/action and "
    "runAsBuiltInFileAdministrator/action) on this storage account or any of its shares. "
    "Assign 'Storage File Data SMB MI Admin' at the account or share scope."
)

def minter_for(ctx: Emulator) -> KerberosMinter:
    """The context's minter; contexts built without one (unit tests) get theirs on first use."""
    if ctx.kerberos is None:
        ctx.kerberos = KerberosMinter(ctx.data_dir, [a.name for a in ctx.config.accounts])
    return ctx.kerberos


def _format_time(when: float) -> str:
    return dt.datetime.fromtimestamp(int(when), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def has_smb_mi_role(ctx: Emulator, object_id: str, account: str) -> bool:
    """True when one scope (the account, or one share of it) grants every SMB MI data action."""
    acct = ctx.config.account(account)
    shares: list[str | None] = [None, *(s.name for s in (acct.shares if acct else ()))]
    # Shares created at run time through REST also count: look at every share named in an assignment.
    shares += [r.share for r in ctx.role_assignments if r.account == account and r.share not in shares]
    return any(auth.granted_actions(ctx, object_id, account, share) >= SMB_MI_DATA_ACTIONS
               for share in shares)


async def handle_kerbticket(ctx: Emulator, request: web.Request, account: str) -> web.Response:
    # The Date header comes from the emulator's clock (the server middleware would use the host's), so
    # a test that shifts that clock sees what a client with a skewed clock sees against Azure.
    date = {"Date": formatdate(ctx.clock.now(), usegmt=True)}
    try:
        response = await _kerbticket(ctx, request, account)
    except StorageError as err:
        err.headers.update(date)
        raise
    response.headers.update(date)
    return response


async def _kerbticket(ctx: Emulator, request: web.Request, account: str) -> web.Response:
    request[keys.OPERATION] = OPERATION
    header = request.headers.get("Authorization", "").strip()
    if not header:
        raise StorageError(401, E_NO_AUTH, headers=auth.challenge_header(ctx.config.tenant_id))
    if header.partition(" ")[0].lower() != "bearer":
        raise StorageError(403, E_AUTH_FAILED, extra={"AuthenticationErrorDetail": DETAIL_BEARER_ONLY})
    caller = auth.authenticate(ctx, request, account, require_intent=False)
    request[keys.CALLER] = caller
    token = header.partition(" ")[2].strip()
    try:  # a cache hit: authenticate just verified this token
        claims = ctx.issuer.verify_storage_token(token, account, auth.account_urls(ctx, account))
    except TokenRejected as rejected:  # pragma: no cover - authenticate already refused these
        raise StorageError(401, E_INVALID_AUTH, headers=auth.challenge_header(ctx.config.tenant_id),
                           extra={"AuthenticationErrorDetail": rejected.detail}) from None

    aud = claims.get("aud")
    if aud != STORAGE_RESOURCE_SMB:
        detail = DETAIL_TRAILING_SLASH if aud == STORAGE_RESOURCE_SMB + "/" else DETAIL_WRONG_AUDIENCE
        raise StorageError(401, E_INVALID_AUTH, headers=auth.challenge_header(ctx.config.tenant_id),
                           extra={"AuthenticationErrorDetail": detail})
    now = ctx.clock.now()
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= now:
        raise StorageError(401, E_INVALID_AUTH, headers=auth.challenge_header(ctx.config.tenant_id),
                           extra={"AuthenticationErrorDetail": DETAIL_EXPIRED})

    acct = ctx.config.account(account)
    if acct is None:
        raise StorageError(404, "ResourceNotFound")
    if not acct.smb_oauth:
        raise StorageError(403, E_SMB_OAUTH_DISABLED, MESSAGE_SMB_OAUTH_DISABLED)
    if caller.object_id is None or not has_smb_mi_role(ctx, caller.object_id, account):
        raise StorageError(403, E_PERMISSION_MISMATCH,
                           extra={"AuthorizationErrorDetail": DETAIL_ROLE_MISSING})

    end = min(float(exp), now + min(ctx.config.token_lifetime, MAX_TICKET_LIFETIME))
    minted = minter_for(ctx).mint(account, now=now, end=end)
    body = {
        "kerberosServiceTicket": base64.b64encode(minted.krb_cred).decode("ascii"),
        "sessionKey": base64.b64encode(minted.session_key).decode("ascii"),
        "expirationTime": _format_time(minted.end),
    }
    # Compact JSON, as the service sends it: both of Microsoft's clients find each value by searching for
    # the literal '"<key>":"' with no whitespace (AzFilesAuthenticator src/azfilesauth.cpp:255-266,
    # AzFilesSmbMIClient Windows/dll/src/AzFilesSmbMI.cpp:197); json.dumps' default ": " breaks both.
    return web.Response(text=json.dumps(body, separators=(",", ":")), content_type="application/json")
