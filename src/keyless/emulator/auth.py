"""Files-side authentication (bearer tokens, Shared Key, shared access signatures in
:mod:`keyless.emulator.sas`) and authorization (RBAC data actions).

The Files handlers call :func:`authenticate` once per request and :func:`authorize` with the data
actions of the operation. Every failure is the service's: status, error code, message and the extra
elements (``AuthenticationErrorDetail``, ``HeaderName``) of protocol.md §1, plus the ``WWW-Authenticate``
challenge that azure-core's bearer policy needs to re-authorize. No failure text holds a token or key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from aiohttp import web

from keyless.emulator import request_keys as keys
from keyless.emulator import sas
from keyless.emulator.config import MANAGEMENT_ROLE_ACTIONS
from keyless.emulator.errors import StorageError, TokenRejected
from keyless.emulator.request_keys import AUTH_ACCOUNT_KEY, AUTH_OAUTH, Caller
from keyless.protocol import (
    E_AUTH_FAILED,
    E_INVALID_AUTH,
    E_KEY_NOT_PERMITTED,
    E_MISSING_HEADER,
    E_NO_AUTH,
    E_PERMISSION_MISMATCH,
    H_DATE,
    H_INTENT,
    H_VERSION,
    INTENT_BACKUP,
    MIN_OAUTH_VERSION,
    ROLE_DATA_ACTIONS,
    SHARED_KEY_STANDARD_HEADERS,
    STORAGE_RESOURCE_SMB,
    sort_shared_key_headers,
)

if TYPE_CHECKING:
    from keyless.emulator.context import Emulator

_VERSION_FORMAT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_BEARER_VERSION_DETAIL = "Authentication scheme Bearer is not supported in this version."

# Shared Key requests whose date is further than this from the server's clock are refused, as Azure does.
MAX_DATE_SKEW = 15 * 60.0


def challenge_header(tenant_id: str) -> dict[str, str]:
    """The service's bearer challenge: space separated and unquoted, exactly as Azure sends it."""
    return {
        "WWW-Authenticate": (
            f"Bearer authorization_uri=https://login.microsoftonline.com/{tenant_id}/oauth2/authorize "
            f"resource_id={STORAGE_RESOURCE_SMB}"
        )
    }


def account_urls(ctx: Emulator, account: str) -> tuple[str, ...]:
    """The emulator's own URLs for ``account``, accepted as token audiences next to the canonical ones."""
    if not ctx.files_url:
        return ()
    return (f"{ctx.files_url.rstrip('/')}/{account}",)


# --- authentication ------------------------------------------------------------------------------------


def authenticate(ctx: Emulator, request: web.Request, account: str, *, require_intent: bool = True) -> Caller:
    """Who is calling. Raises StorageError with the service's reply; sets ``request[keys.CALLER]``.

    ``require_intent=False`` is for the SMB ticket exchange (``comp=kerbticket``), which azfilesauth calls
    with a bearer token but without ``x-ms-file-request-intent``.
    """
    header = request.headers.get("Authorization", "").strip()
    if not header and sas.is_sas_request(request):
        caller = sas.authenticate_sas(ctx, request, account)
        request[keys.CALLER] = caller
        return caller
    if not header:
        raise StorageError(401, E_NO_AUTH, headers=challenge_header(ctx.config.tenant_id))
    scheme, _, credentials = header.partition(" ")
    scheme_l = scheme.lower()
    if scheme_l == "bearer":
        caller = _authenticate_bearer(ctx, request, account, credentials.strip(), require_intent)
    elif scheme_l in ("sharedkey", "sharedkeylite"):
        lite = scheme_l == "sharedkeylite"
        caller = _authenticate_shared_key(ctx, request, account, credentials.strip(), lite=lite)
    else:
        raise StorageError(
            403, E_AUTH_FAILED,
            extra={"AuthenticationErrorDetail": "The authentication scheme is not supported."},
        )
    request[keys.CALLER] = caller
    return caller


def _authenticate_bearer(ctx: Emulator, request: web.Request, account: str, token: str,
                         require_intent: bool) -> Caller:
    # A missing x-ms-version means the service's default (2009) version, which predates bearer support.
    version = request.headers.get(H_VERSION, "")
    if version and not _VERSION_FORMAT.match(version):
        raise StorageError(400, "InvalidHeaderValue",
                           extra={"HeaderName": H_VERSION, "HeaderValue": version[:64]})
    if version < MIN_OAUTH_VERSION:
        raise StorageError(
            403, E_AUTH_FAILED,
            extra={"AuthenticationErrorDetail": _BEARER_VERSION_DETAIL},
        )
    if require_intent and request.headers.get(H_INTENT, "").strip().lower() != INTENT_BACKUP:
        raise StorageError(400, E_MISSING_HEADER, extra={"HeaderName": H_INTENT})
    if not token:
        raise StorageError(401, E_INVALID_AUTH, headers=challenge_header(ctx.config.tenant_id),
                           extra={"AuthenticationErrorDetail": "The token is malformed."})
    try:
        claims = ctx.issuer.verify_storage_token(token, account, account_urls(ctx, account))
    except TokenRejected as rejected:
        raise StorageError(401, E_INVALID_AUTH, headers=challenge_header(ctx.config.tenant_id),
                           extra={"AuthenticationErrorDetail": rejected.detail}) from None
    oid = claims.get("oid")
    appid = claims.get("appid")
    return Caller(AUTH_OAUTH, oid if isinstance(oid, str) else None,
                  appid if isinstance(appid, str) else None)


def _authenticate_shared_key(ctx: Emulator, request: web.Request, account: str, credentials: str,
                             *, lite: bool) -> Caller:
    acct = ctx.config.account(account)
    if acct is not None and not acct.allow_shared_key:
        raise StorageError(403, E_KEY_NOT_PERMITTED)
    name, sep, signature = credentials.rpartition(":")
    if not sep or not name or not signature:
        raise StorageError(
            403, E_AUTH_FAILED,
            extra={"AuthenticationErrorDetail": "The Authorization header is not formed correctly."},
        )
    # A key for another account name (or none at all) simply cannot produce a matching signature.
    key = ctx.account_key_bytes(account) if name == account else None
    _check_date(ctx, request)
    string_to_sign = (shared_key_lite_string if lite else shared_key_string)(request, account)
    given = signature.encode("ascii", "replace")
    if key is not None:
        expected = base64.b64encode(hmac.digest(key, string_to_sign.encode("utf-8"), hashlib.sha256))
        if hmac.compare_digest(expected, given):
            return Caller(AUTH_ACCOUNT_KEY, None, None)
    # Like the service: the signature the client sent (an HMAC, not the key) and what the server signed.
    shown = string_to_sign.replace("\n", "\\n")
    raise StorageError(
        403, E_AUTH_FAILED,
        extra={"AuthenticationErrorDetail": (
            f"The MAC signature found in the HTTP request '{signature}' is not the same as any computed "
            f"signature. Server used following string to sign: '{shown}'."
        )},
    )


def _check_date(ctx: Emulator, request: web.Request) -> None:
    raw = request.headers.get(H_DATE) or request.headers.get("Date")
    if not raw:
        raise StorageError(
            403, E_AUTH_FAILED,
            extra={"AuthenticationErrorDetail": "Request date header not specified."},
        )
    try:
        when = parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError, IndexError):
        raise StorageError(
            403, E_AUTH_FAILED,
            extra={"AuthenticationErrorDetail": f"The Date header in the request is incorrect: '{raw[:64]}'"},
        ) from None
    now = ctx.clock.now()
    if when < now - MAX_DATE_SKEW:
        raise StorageError(403, E_AUTH_FAILED,
                           extra={"AuthenticationErrorDetail": f"Request date header too old: '{raw}'"})
    if when > now + MAX_DATE_SKEW:
        raise StorageError(403, E_AUTH_FAILED,
                           extra={"AuthenticationErrorDetail": f"Request date header too new: '{raw}'"})


# --- Shared Key string-to-sign (File service, versions 2009-09-19 and later) ------------------------------


def _canonical_headers(request: web.Request) -> str:
    values: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        lower = name.lower()
        if lower.startswith("x-ms-"):
            values.setdefault(lower, []).append(" ".join(value.split()))
    names = sort_shared_key_headers(values)
    return "".join(f"{n}:{','.join(values[n])}\n" for n in names)


def _canonical_resource(request: web.Request, account: str) -> str:
    """The canonicalized resource Azure signs: ``/{account}`` then the encoded URI path, exactly as sent.

    IP-style URLs put the account in the path as well, so the SDKs sign ``/acct/acct/share/...``
    (azure-storage-file-share ``SharedKeyCredentialPolicy._get_canonicalized_resource``). No other form is
    accepted: signing the account once, or the decoded path, would let one signature name two resources
    (``/acct/share/f`` is also share ``acct``'s ``share/f``; ``a%2Fb`` decodes to the file named ``a%2Fb``'s
    encoded form ``a%252Fb``).
    """
    return f"/{account}{request.raw_path.split('?', 1)[0] or '/'}"


def _canonical_query(request: web.Request) -> str:
    grouped: dict[str, list[str]] = {}
    for name, value in request.query.items():
        grouped.setdefault(name.lower(), []).append(value)
    return "".join(f"\n{name}:{','.join(sorted(grouped[name]))}" for name in sorted(grouped))


def shared_key_string(request: web.Request, account: str) -> str:
    """The string-to-sign for ``SharedKey`` (File service, 2015-02-21 and later), exactly as Azure builds it.

    The ``Range`` slot holds the request's ``Range`` header; the Python SDK signs it empty because it
    sends ``x-ms-range`` instead (which is signed among the ``x-ms-*`` headers), so an unsigned ``Range``
    added to a captured request no longer matches.
    """
    headers = request.headers
    standard = []
    for name in (*SHARED_KEY_STANDARD_HEADERS, "Range"):
        value = headers.get(name, "")
        if name == "content-length" and value == "0":
            value = ""  # 2015-02-21 and later sign an empty string for a zero length
        standard.append(value)
    return (request.method + "\n" + "\n".join(standard) + "\n" + _canonical_headers(request)
            + _canonical_resource(request, account) + _canonical_query(request))


def shared_key_lite_string(request: web.Request, account: str) -> str:
    """The string-to-sign for ``SharedKeyLite``: only ``comp`` survives in the resource."""
    headers = request.headers
    head = "\n".join(
        [request.method, headers.get("Content-MD5", ""), headers.get("Content-Type", ""),
         headers.get("Date", "")]
    ) + "\n" + _canonical_headers(request)
    comp = request.query.get("comp")
    suffix = f"?comp={comp}" if comp is not None else ""
    return head + _canonical_resource(request, account) + suffix


# --- authorization -------------------------------------------------------------------------------------


def granted_actions(ctx: Emulator, object_id: str, account: str, share: str | None) -> frozenset[str]:
    """The union of the actions the principal holds on ``account`` (and ``share``, when given): data
    actions from data roles, and the FileService / FileShare actions of management roles (which the
    share-management operations need besides a data action; see :mod:`keyless.emulator.management_actions`).

    The one place role assignments are read, so a propagation delay can be added here alone.
    An assignment on a share grants nothing on another share, nor on account-level operations.
    """
    oid = object_id.lower()
    actions: set[str] = set()
    for assignment in ctx.role_assignments:
        if assignment.principal_object_id.lower() != oid or assignment.account != account:
            continue
        if assignment.share is not None and assignment.share != share:
            continue
        actions |= ROLE_DATA_ACTIONS.get(assignment.role, frozenset())
        actions |= MANAGEMENT_ROLE_ACTIONS.get(assignment.role, frozenset())
    return frozenset(actions)


def authorize(ctx: Emulator, caller: Caller, account: str, share: str | None,
              actions: frozenset[str]) -> None:
    """Raises 403 ``AuthorizationPermissionMismatch`` unless ``caller`` holds every action in ``actions``."""
    if caller.auth_type == AUTH_ACCOUNT_KEY:
        return  # the account key is the keys to the kingdom: no RBAC applies
    if caller.auth_type == sas.AUTH_SAS and caller.object_id is None:
        return  # a key-signed SAS: its permissions were checked with its signature
    # A user delegation SAS (a SAS caller with the delegator's object id) is only as strong as its
    # delegator's role now: the same RBAC check as the delegator's own bearer requests, at request time.
    if caller.auth_type not in (AUTH_OAUTH, sas.AUTH_SAS) or caller.object_id is None:
        raise StorageError(403, E_PERMISSION_MISMATCH)
    if not actions <= granted_actions(ctx, caller.object_id, account, share):
        raise StorageError(403, E_PERMISSION_MISMATCH)
