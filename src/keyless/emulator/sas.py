"""Shared access signatures on the Files endpoint: account SAS, service SAS (share and file) and user
delegation SAS, validated as Azure validates them.

The string-to-sign of each kind is built exactly as the official SDK builds it
(azure-storage-file-share ``_shared/shared_access_signature.py`` ``add_account_signature`` and
``_shared_access_signature.py`` ``add_resource_signature``) and as the REST docs "Create an account SAS",
"Create a service SAS" and "Create a user delegation SAS" describe it. Failures are the service's:

* a signature that does not match, a malformed or unsupported field, a time window that does not hold:
  403 ``AuthenticationFailed`` with Azure's ``AuthenticationErrorDetail`` ("Signature did not match. String
  to sign used was …", "Signature not valid in the specified time frame: Start […] - Expiry […] - Current
  […]", "Signed expiry time […] has to be after signed start time […]");
* a valid signature used outside its grant: 403 with the code Azure's "Common REST API error codes" page
  gives (``AuthorizationSourceIPMismatch``, ``AuthorizationProtocolMismatch``,
  ``AuthorizationPermissionMismatch``, ``AuthorizationServiceMismatch``,
  ``AuthorizationResourceTypeMismatch``).

A user delegation SAS is signed with a user delegation key (Get User Delegation Key). The emulator derives
that key from the account key and the key's own signed fields, so it needs no storage and a key for other
fields (another object id, a later expiry) cannot be forged from it. The delegator's role is checked at
request time (:func:`keyless.emulator.auth.authorize`), so the SAS is only as strong as its delegator's
current role.

Audit: every SAS request is logged with ``AuthenticationType`` ``SAS`` and an ``AuthenticationHash`` in the
form Microsoft documents for ``identity.tokenHash`` ("key1(<SHA-256 of the key>),SasSignature(<SHA-256 of
the signature>)", MicrosoftDocs/azure-docs includes/azure-storage-logs-properties-authentication.md); a user
delegation SAS is logged as ``UserDelegationKey(<SHA-256 of the delegation key>),SasSignature(…)``, which
``keyless migrate report`` counts as not key-signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING
from urllib.parse import unquote

from aiohttp import web

from keyless.emulator import request_keys as keys
from keyless.emulator.errors import StorageError
from keyless.emulator.request_keys import Caller
from keyless.protocol import E_AUTH_FAILED, E_KEY_NOT_PERMITTED, E_PERMISSION_MISMATCH

if TYPE_CHECKING:
    from keyless.emulator.context import Emulator

AUTH_SAS = "SAS"
# The first version whose service SAS signs the IP and protocol fields (the only layout accepted here).
MIN_SERVICE_SAS_VERSION = "2015-04-05"
# Account SAS versions from here on sign an encryption scope line (empty for Files).
ACCOUNT_SAS_SCOPE_VERSION = "2020-12-06"
USER_DELEGATION_SERVICE = "f"  # ``sks`` of a key for the File service

AUTH_HASH: web.RequestKey[str] = web.RequestKey("keyless.authentication_hash", str)

_VERSION = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_TIME_FORMATS = ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ", "%Y-%m-%d")
_SIGNATURE_MISMATCH = "Signature did not match. String to sign used was {}"
_NOT_WELL_FORMED = "Signature fields not well formed."

E_IP_MISMATCH = "AuthorizationSourceIPMismatch"
E_PROTOCOL_MISMATCH = "AuthorizationProtocolMismatch"
E_SERVICE_MISMATCH = "AuthorizationServiceMismatch"
E_RESOURCE_TYPE_MISMATCH = "AuthorizationResourceTypeMismatch"


def is_sas_request(request: web.Request) -> bool:
    """A request without an Authorization header whose query carries a signature."""
    return not request.headers.get("Authorization") and "sig" in request.query


def _failed(detail: str) -> StorageError:
    return StorageError(403, E_AUTH_FAILED, extra={"AuthenticationErrorDetail": detail})


def sign(key: bytes, string_to_sign: str) -> str:
    return base64.b64encode(hmac.digest(key, string_to_sign.encode("utf-8"), hashlib.sha256)).decode("ascii")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest().upper()


# --- user delegation keys ----------------------------------------------------------------------


@dataclass(frozen=True)
class DelegationKeyFields:
    """The signed fields of a user delegation key, as Get User Delegation Key returns them."""

    oid: str  # skoid
    tid: str  # sktid
    start: str  # skt
    expiry: str  # ske
    service: str  # sks
    version: str  # skv

    def canonical(self) -> str:
        return "\n".join((self.oid, self.tid, self.start, self.expiry, self.service, self.version))


def delegation_key(account_key: bytes, fields: DelegationKeyFields) -> bytes:
    """The key's value: an HMAC of its own fields under the account key (deterministic, nothing stored)."""
    return hmac.digest(account_key, b"user-delegation-key\n" + fields.canonical().encode("utf-8"),
                       hashlib.sha256)


# --- time and address fields ----------------------------------------------------------------------


def parse_time(value: str) -> float | None:
    """An ISO 8601 UTC time in one of the formats Azure accepts for ``st``/``se``; None if malformed."""
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


def _http_date(epoch: float) -> str:
    return format_datetime(datetime.fromtimestamp(int(epoch), UTC), usegmt=True)


def _check_window(start_raw: str, expiry_raw: str, now: float) -> None:
    expiry = parse_time(expiry_raw) if expiry_raw else None
    start = parse_time(start_raw) if start_raw else None
    if expiry is None or (start_raw and start is None):
        raise _failed(_NOT_WELL_FORMED)
    if start is not None:
        if not start <= now < expiry:
            raise _failed(
                f"Signature not valid in the specified time frame: Start [{_http_date(start)}] - "
                f"Expiry [{_http_date(expiry)}] - Current [{_http_date(now)}]"
            )
    elif now >= expiry:
        raise _failed(f"Signed expiry time [{_http_date(expiry)}] has to be after signed start time "
                      f"[{_http_date(now)}]")


def _check_ip(sip: str, remote: str | None) -> None:
    if not sip:
        return
    low_raw, _, high_raw = sip.partition("-")
    try:
        low = ipaddress.ip_address(low_raw)
        high = ipaddress.ip_address(high_raw) if high_raw else low
    except ValueError:
        raise _failed(_NOT_WELL_FORMED) from None
    try:
        caller = ipaddress.ip_address(remote or "")
        if isinstance(caller, ipaddress.IPv6Address) and caller.ipv4_mapped is not None:
            caller = caller.ipv4_mapped
        same_family = type(caller) is type(low) is type(high)
        inside = same_family and low <= caller <= high  # type: ignore[operator]
    except ValueError:
        inside = False
    if not inside:
        raise StorageError(403, E_IP_MISMATCH,
                           message=f"This request is not authorized to perform this operation using this "
                                   f"source IP {remote}.")


def _check_protocol(spr: str, secure: bool) -> None:
    if not spr:
        return
    allowed = {p.strip() for p in spr.split(",")}
    if not allowed <= {"https", "http"} or not allowed:
        raise _failed(_NOT_WELL_FORMED)
    if not secure and "http" not in allowed:
        raise StorageError(403, E_PROTOCOL_MISMATCH)


# --- what a request needs ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Resource:
    share: str | None  # decoded
    path: str  # decoded, "/"-joined, "" for the share itself
    level: str  # "service", "share", "directory" or "file"


def _resource(request: web.Request) -> _Resource:
    segments = [unquote(s) for s in request.raw_path.split("?", 1)[0].split("/")[2:]]
    while segments and segments[-1] == "":
        segments.pop()
    restype = request.query.get("restype")
    if not segments:
        return _Resource(None, "", "service")
    if len(segments) == 1 and restype == "share":
        return _Resource(segments[0], "", "share")
    level = "directory" if restype == "directory" else "file"
    return _Resource(segments[0], "/".join(segments[1:]), level)


def _needed_permissions(method: str, comp: str | None, resource: _Resource) -> str:
    """Any one of these permission letters allows the operation (REST "Create a service SAS" table)."""
    if method in ("GET", "HEAD"):
        if comp == "list":
            return "l"
        return "r"
    if method == "DELETE":
        return "d"
    if method == "PUT" and comp is None and resource.level in ("file", "directory", "share"):
        return "cw"  # create: either Create or Write
    return "w"


def _account_resource_type(resource: _Resource, comp: str | None) -> str:
    """``srt`` letter an account SAS needs: s (service APIs), c (share APIs, listing), o (files, dirs)."""
    if resource.level == "service":
        return "s"
    if resource.level == "share" or (resource.level == "directory" and comp == "list"):
        return "c"
    return "o"


def _check_permission(granted: str, needed: str) -> None:
    if not any(p in granted for p in needed):
        raise StorageError(403, E_PERMISSION_MISMATCH,
                           message="This request is not authorized to perform this operation using this "
                                   "permission.")


# --- the three kinds ----------------------------------------------------------------------


def authenticate_sas(ctx: Emulator, request: web.Request, account: str) -> Caller:
    """Validate the request's SAS; returns the caller (``SAS``; the delegator's object id for a user
    delegation SAS). Sets the caller before any refusal, so a refused SAS is still logged as ``SAS``."""
    query = {k: v for k, v in request.query.items()}
    request[keys.CALLER] = Caller(AUTH_SAS, None, None)
    version = query.get("sv", "")
    if not _VERSION.match(version):
        raise _failed(_NOT_WELL_FORMED)
    key = ctx.account_key_bytes(account)
    acct = ctx.config.account(account)
    key_signed = "skoid" not in query
    if key_signed and acct is not None and not acct.allow_shared_key:
        # Disallowing Shared Key refuses SAS signed with the account key too (Microsoft's "Prevent Shared
        # Key authorization"); a user delegation SAS keeps working.
        raise StorageError(403, E_KEY_NOT_PERMITTED)
    if key is None:
        raise _failed(_NOT_WELL_FORMED)
    signature = query.get("sig", "")
    try:
        given = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise _failed(_NOT_WELL_FORMED) from None
    resource = _resource(request)
    comp = request.query.get("comp")
    delegator: str | None = None
    if "ss" in query or "srt" in query:
        string_to_sign = _account_string(account, query)
        signing_key = key
        key_label = f"key1({_sha256(key)})"
        _check_account_scope(query, resource, comp)
    elif "skoid" in query:
        if "si" in query:
            # A user delegation SAS has no stored access policy ("Create a user delegation SAS") and no
            # ``si`` in its string-to-sign: an ``si`` on one was added after signing. Refused, not ignored.
            raise _failed(_NOT_WELL_FORMED)
        signing_key, delegator = _delegation_signing_key(ctx, key, query)
        string_to_sign = _resource_string(account, query, resource, delegated=True)
        key_label = f"UserDelegationKey({_sha256(signing_key)})"
        request[keys.CALLER] = Caller(AUTH_SAS, delegator, None)
    else:
        string_to_sign = _resource_string(account, query, resource, delegated=False)
        signing_key = key
        key_label = f"key1({_sha256(key)})"
    request[AUTH_HASH] = f"{key_label},SasSignature({_sha256(signature.encode('ascii', 'replace'))})"
    expected = hmac.digest(signing_key, string_to_sign.encode("utf-8"), hashlib.sha256)
    if not hmac.compare_digest(expected, given):
        raise _failed(_SIGNATURE_MISMATCH.format(string_to_sign))
    if query.get("si") and delegator is None and "ss" not in query:
        query = _with_stored_policy(ctx, account, resource, query)
    _check_window(query.get("st", ""), query.get("se", ""), ctx.clock.now())
    _check_ip(query.get("sip", ""), request.remote)
    _check_protocol(query.get("spr", ""), request.secure)
    _check_permission(query.get("sp", ""), _needed_permissions(request.method, comp, resource))
    return Caller(AUTH_SAS, delegator, None)


def _account_string(account: str, q: dict[str, str]) -> str:
    fields = [account, q.get("sp", ""), q.get("ss", ""), q.get("srt", ""), q.get("st", ""), q.get("se", ""),
              q.get("sip", ""), q.get("spr", ""), q.get("sv", "")]
    if q.get("sv", "") >= ACCOUNT_SAS_SCOPE_VERSION:
        fields.append(q.get("ses", ""))
    return "\n".join(fields) + "\n"


def _check_account_scope(q: dict[str, str], resource: _Resource, comp: str | None) -> None:
    if "f" not in q.get("ss", ""):
        raise StorageError(403, E_SERVICE_MISMATCH,
                           message="This request is not authorized to perform this operation using this "
                                   "service.")
    if _account_resource_type(resource, comp) not in q.get("srt", ""):
        raise StorageError(403, E_RESOURCE_TYPE_MISMATCH,
                           message="This request is not authorized to perform this operation using this "
                                   "resource type.")


def _resource_string(account: str, q: dict[str, str], resource: _Resource, *, delegated: bool) -> str:
    """Service SAS / user delegation SAS string-to-sign (the SDK's ``add_resource_signature``)."""
    if q.get("sv", "") < MIN_SERVICE_SAS_VERSION:
        raise _failed(_NOT_WELL_FORMED)
    sr = q.get("sr", "")
    if resource.share is None or sr not in ("s", "f"):
        raise _failed(_NOT_WELL_FORMED)
    canonical = f"/file/{account}/{resource.share}"
    if sr == "f":
        canonical += f"/{resource.path}"
    parts = [q.get("sp", ""), q.get("st", ""), q.get("se", ""), canonical]
    if delegated:
        delegation = ("skoid", "sktid", "skt", "ske", "sks", "skv", "skdutid", "sduoid")
        parts += [q.get(name, "") for name in delegation]
    else:
        parts.append(q.get("si", ""))
    parts += [q.get(name, "") for name in ("sip", "spr", "sv", "rscc", "rscd", "rsce", "rscl", "rsct")]
    return "\n".join(parts)


def _with_stored_policy(ctx: Emulator, account: str, resource: _Resource,
                        q: dict[str, str]) -> dict[str, str]:
    """The SAS's fields completed from the share's stored access policy ``si`` (REST "Define a stored
    access policy"): a field may be in the SAS or in the policy, never in both; the policy is read now,
    so changing or deleting it changes or revokes the SAS at once."""
    try:
        acl = ctx.store.get_share(account, resource.share or "").acl
    except StorageError:
        acl = ()
    policy = next((p for p in acl if p.id == q["si"]), None)
    if policy is None:
        raise _failed(f"The specified signed identifier '{q['si'][:64]}' does not exist on the share.")
    merged = dict(q)
    for name, value in (("st", policy.start), ("se", policy.expiry), ("sp", policy.permission)):
        if value and q.get(name):
            raise _failed(_NOT_WELL_FORMED)
        if value:
            merged[name] = value
    return merged


def _delegation_signing_key(ctx: Emulator, account_key: bytes, q: dict[str, str]) -> tuple[bytes, str]:
    fields = DelegationKeyFields(q.get("skoid", ""), q.get("sktid", ""), q.get("skt", ""), q.get("ske", ""),
                                 q.get("sks", ""), q.get("skv", ""))
    if not all((fields.oid, fields.tid, fields.start, fields.expiry, fields.service, fields.version)):
        raise _failed(_NOT_WELL_FORMED)
    if fields.tid.lower() != ctx.config.tenant_id.lower() or fields.service != USER_DELEGATION_SERVICE:
        raise _failed(_NOT_WELL_FORMED)
    if q.get("sduoid"):
        raise _failed("A delegated user object id (sduoid) is not supported by the emulator.")
    # The key itself must be valid now, as well as the SAS (REST "Create a user delegation SAS").
    _check_window(fields.start, fields.expiry, ctx.clock.now())
    return delegation_key(account_key, fields), fields.oid
