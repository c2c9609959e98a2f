"""User delegation SAS for Azure Files from a managed identity: no account key anywhere.

Two steps, as the official SDK does them (azure-storage-file-share ≥ 12.24,
``ShareServiceClient.get_user_delegation_key`` then ``generate_file_sas``/``generate_share_sas`` with
``user_delegation_key=``):

1. Get User Delegation Key (``POST /?restype=service&comp=userdelegationkey``) with the identity's bearer
   token: a key valid for at most seven days, bound to the identity's object id;
2. sign the SAS's fields with that key (HMAC-SHA256), in the string-to-sign order of the SDK's
   ``_FileSharedAccessHelper.add_resource_signature`` and the REST doc "Create a user delegation SAS".

The query string is built like the SDK's (same field order, same percent-encoding), so for the same key and
inputs the token is the same string. A SAS is a bearer credential: callers print it only where the user
asked for it and never log it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from keyless import protocol as p
from keyless.files.client import ShareClient
from keyless.files.errors import FilesError, RequestInfo, from_response
from keyless.files.pipeline import Pipeline, Request
from keyless.files.retry import AccessWait
from keyless.files.transport import SendError
from keyless.files.urls import FileUrl

# The service version signed into the SAS (``sv``) and sent on Get User Delegation Key (which becomes the
# key's ``skv``): the official SDK 12.27's default (its X_MS_VERSION), so both sign the same string.
SAS_VERSION = "2026-10-06"
MAX_KEY_LIFETIME_SECONDS = 7 * 24 * 3600
PERMISSION_ORDER = "rcwdl"  # the SDK's FileSasPermissions / ShareSasPermissions order


class SasError(ValueError):
    """An input to SAS generation that Azure would refuse; the message names the input and the fix."""


def parse_ip(value: str) -> str:
    """A SAS's ``sip`` as Azure takes it: one IPv4 address or an inclusive range ``low-high`` with
    ``low <= high`` ("Create a user delegation SAS": "Only IPv4 addresses are supported"), surrounding
    blanks removed. Dotted decimal only: ``ipaddress`` refuses leading zeros, which some parsers read as
    octal. The one definition: ``keyless sas --ip`` uses it too."""
    text = value.strip()
    ends = text.split("-")
    usage = (f"IP range {value!r} is not an address Azure can check: give one IPv4 address (168.1.5.65) "
             f"or a range low-high (168.1.5.60-168.1.5.70)")
    if len(ends) > 2:
        raise SasError(usage)
    try:
        addresses = [ipaddress.IPv4Address(end) for end in ends]
    except ValueError:
        raise SasError(usage) from None
    if addresses[0] > addresses[-1]:
        raise SasError(f"IP range {value!r} starts after it ends (no address is in it); give "
                       f"{addresses[-1]}-{addresses[0]}")
    return text


@dataclass(frozen=True)
class UserDelegationKey:
    signed_oid: str
    signed_tid: str
    signed_start: str
    signed_expiry: str
    signed_service: str
    signed_version: str
    value: str  # base64; a secret: never printed or logged
    signed_delegated_user_tid: str | None = None

    def __repr__(self) -> str:
        return f"UserDelegationKey(oid={self.signed_oid}, expiry={self.signed_expiry}, value=<redacted>)"


def format_time(when: datetime) -> str:
    """``YYYY-MM-DDThh:mm:ssZ`` in UTC, as the SDK's ``_to_utc_datetime`` writes it."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalize_permissions(permissions: str, *, share: bool) -> str:
    """The letters in the SDK's order; ``l`` (list) exists only on a share SAS."""
    allowed = PERMISSION_ORDER if share else PERMISSION_ORDER.replace("l", "")
    unknown = sorted(set(permissions) - set(allowed))
    if unknown or not permissions:
        kind = "a share" if share else "a file"
        raise SasError(f"permissions {permissions!r}: {kind} SAS takes letters from {allowed!r} "
                       f"(r read, c create, w write, d delete{', l list' if share else ''})")
    return "".join(c for c in allowed if c in permissions)


class _VersionedPipeline(Pipeline):
    """The client's pipeline (destinations, retries, token refresh) with the SAS version on the wire."""

    def _common_headers(self, request: Request) -> dict[str, str]:
        headers = super()._common_headers(request)
        headers[p.H_VERSION] = SAS_VERSION
        return headers


def get_user_delegation_key(client: ShareClient, start: datetime, expiry: datetime) -> UserDelegationKey:
    """Get User Delegation Key with ``client``'s bearer credential (the Files endpoint of its account)."""
    if client.auth.scheme != "Bearer":
        raise SasError("a user delegation key needs a managed identity (bearer token), not an account key")
    body = (f'<?xml version="1.0" encoding="utf-8"?><KeyInfo><Start>{format_time(start)}</Start>'
            f"<Expiry>{format_time(expiry)}</Expiry></KeyInfo>").encode()
    url = f"{client.target.endpoint}/?restype=service&comp=userdelegationkey"
    pipeline = _VersionedPipeline(client.transport, client.destinations, client.auth, client.retry,
                                  AccessWait(client.wait_for_access), client.clock)
    info = RequestInfo(method="POST", url=url, account=client.account, share=client.share,
                       operation="GetUserDelegationKey", action=p.ACTION_READ, backup_intent=True)
    try:
        result = pipeline.send(Request("POST", url, {"Content-Type": "application/xml"}, body, True))
    except SendError as exc:
        raise FilesError(f"Get User Delegation Key {url}: no reply ({exc})", request=info) from None
    resp = result.response
    if not 200 <= resp.status < 300:
        raise from_response(resp.status, resp.headers, resp.data, info, token_refreshed=result.refreshed)
    try:
        root = ET.fromstring(resp.data)  # noqa: S314 - a reply from the service we called
        fields = {child.tag: (child.text or "") for child in root}
        return UserDelegationKey(
            fields["SignedOid"], fields["SignedTid"], fields["SignedStart"], fields["SignedExpiry"],
            fields["SignedService"], fields["SignedVersion"], fields["Value"],
            fields.get("SignedDelegatedUserTid") or None,
        )
    except (ET.ParseError, KeyError):
        raise FilesError(f"Get User Delegation Key {url}: the reply is not a UserDelegationKey document",
                         request=info) from None


def user_delegation_sas(key: UserDelegationKey, target: FileUrl, *, permissions: str, expiry: datetime,
                        start: datetime | None = None, ip: str | None = None, https_only: bool = False,
                        is_file: bool) -> str:
    """The SAS query string (without ``?``) for the share (``is_file=False``) or the file ``target``."""
    share_sas = not is_file
    if is_file and not target.path:
        raise SasError("a file SAS needs a file path after the share (azfiles://account/share/dir/file)")
    sp = normalize_permissions(permissions, share=share_sas)
    st = format_time(start) if start else ""
    se = format_time(expiry)
    if start is not None and start >= expiry:
        raise SasError(f"the start {st} is not before the expiry {se}")
    if key.signed_expiry and se > key.signed_expiry:
        raise SasError(f"the expiry {se} is after the user delegation key's expiry {key.signed_expiry}")
    if ip:  # None or "": no address restriction
        ip = parse_ip(ip)
    spr = "https" if https_only else ""
    resource = f"/file/{target.account}/{target.share}" + (f"/{target.path}" if is_file else "")
    string_to_sign = "\n".join([
        sp, st, se, resource,
        key.signed_oid, key.signed_tid, key.signed_start, key.signed_expiry, key.signed_service,
        key.signed_version, key.signed_delegated_user_tid or "", "",  # skdutid, sduoid
        ip or "", spr, SAS_VERSION, "", "", "", "", "",  # sip, spr, sv, rscc, rscd, rsce, rscl, rsct
    ])
    signature = base64.b64encode(
        hmac.digest(base64.b64decode(key.value), string_to_sign.encode("utf-8"), hashlib.sha256)
    ).decode("ascii")
    # Query order as the SDK's _SharedAccessHelper fills it (add_base, add_resource, then the key fields).
    fields = [("st", st), ("se", se), ("sp", sp), ("sip", ip or ""), ("spr", spr), ("sv", SAS_VERSION),
              ("sr", "f" if is_file else "s"), ("skoid", key.signed_oid), ("sktid", key.signed_tid),
              ("skt", key.signed_start), ("ske", key.signed_expiry), ("sks", key.signed_service),
              ("skv", key.signed_version), ("skdutid", key.signed_delegated_user_tid or ""),
              ("sig", signature)]
    return "&".join(f"{name}={quote(value)}" for name, value in fields if value)


def sas_url(target: FileUrl, token: str, *, is_file: bool) -> str:
    """The file's URL with a file SAS; the share's URL with a share SAS."""
    return f"{target.url if is_file else target.share_url}?{token}"

