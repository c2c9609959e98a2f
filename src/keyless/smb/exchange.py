"""The SMB ticket exchange: an OAuth token for ``https://storage.azure.com`` becomes a Kerberos ticket.

``POST https://<account>.file.core.windows.net/?restype=service&comp=kerbticket`` with an empty body and
the headers ``azfilesauth`` sends (protocol.md §3). Where ``azfilesauth`` answers every failure with "-1",
each failure here is an exception naming its cause: role missing, SMB OAuth disabled, token audience with
a trailing slash, clock skew, endpoint unreachable, token refused.

The token goes only over HTTPS, only to a host under a File service endpoint suffix or to an emulator URL
the caller configured explicitly, and never across a redirect. It is never logged or put in an error.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import urllib3

from keyless import __version__
from keyless.claims import decode_claims
from keyless.protocol import (
    E_AUTH_FAILED,
    E_INVALID_AUTH,
    E_NO_AUTH,
    E_PERMISSION_MISMATCH,
    FILE_ENDPOINT_SUFFIX,
    FILE_ENDPOINT_SUFFIXES,
    H_CLIENT_REQUEST_ID,
    H_DATE,
    H_ERROR_CODE,
    H_REQUEST_ID,
    H_VERSION,
    SMB_CLIENT_PRINCIPAL,
    SMB_REALM,
    SMB_TICKET_VERSION,
    STORAGE_RESOURCE_SMB,
    smb_server_principal,
)
from keyless.smb.errors import (
    AudienceTrailingSlash,
    BadReply,
    ClockSkew,
    EndpointUnreachable,
    InvalidEndpoint,
    RoleMissing,
    SmbError,
    SmbOAuthDisabled,
    TokenRejected,
)
from keyless.smb.krbcred import Credential, Principal, decode_krb_cred

# Azure's File endpoints in the public and sovereign clouds.
ENDPOINT_SUFFIXES = FILE_ENDPOINT_SUFFIXES
MAX_CLOCK_SKEW = 300.0  # Kerberos' and Entra's default tolerance
USER_AGENT = f"keyless-smb/{__version__}"
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")

CLIENT_PRINCIPAL = Principal(1, (SMB_CLIENT_PRINCIPAL,), SMB_REALM)


def server_principal(account: str) -> Principal:
    return Principal(2, tuple(smb_server_principal(account).split("/")), SMB_REALM)


@dataclass(frozen=True)
class Endpoint:
    """Where the exchange goes, and which host the ticket names."""

    account: str
    url: str  # the account's File service root, e.g. https://acct.file.core.windows.net/
    private_link: bool = False  # the URI used a privatelink name (tickets still name the canonical host)
    emulator: bool = False
    host: str = ""  # the host the ticket names; empty means <account>.file.core.windows.net

    @property
    def canonical_host(self) -> str:
        return self.host or f"{self.account}.{FILE_ENDPOINT_SUFFIX}"

    @property
    def exchange_url(self) -> str:
        return self.url.rstrip("/") + "/?restype=service&comp=kerbticket"

    @property
    def server(self) -> Principal:
        """``cifs/<canonical host>``: the service follows the endpoint's host, so a sovereign cloud's
        ticket names ``<account>.file.core.chinacloudapi.cn`` (or ``.usgovcloudapi.net``)."""
        return Principal(2, ("cifs", self.canonical_host), SMB_REALM)


def parse_endpoint(uri: str) -> Endpoint:
    """Any ``https://`` File endpoint, as azfilesauth accepts any (src/azfilesauth.cpp:376-389).

    Also ``acct.file.core.windows.net`` and ``//acct.../share``. Still refused, with the reason:
    ``http://`` (the bearer token would cross the network in clear), a user name or password in the URL (a
    credential that would be sent and logged), and an IP address (the service issues tickets for names
    only, so no ticket could ever match it). A ``privatelink`` name asks for the canonical name's ticket.
    """
    raw = uri.strip()
    if raw.startswith("//"):
        raw = "https:" + raw
    elif "://" not in raw:
        raw = "https://" + raw
    parts = urlsplit(raw)
    if parts.scheme != "https":
        raise InvalidEndpoint(
            f"{uri!r} is not an https:// address; the ticket exchange sends a bearer token and only ever "
            "over HTTPS.", remedy="Use https://<account>.file.core.windows.net.")
    if parts.username is not None or parts.password is not None:
        raise InvalidEndpoint(
            "the endpoint URL carries a user name or password; the exchange authenticates with the token "
            "only, and a credential in a URL ends up in logs.",
            remedy="Remove the user:password@ part: https://<account>.file.core.windows.net.")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise InvalidEndpoint(f"{uri!r} has no host name.",
                              remedy="Use https://<account>.file.core.windows.net.")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise InvalidEndpoint(
            f"{uri!r} is an IP address; Kerberos tickets name the storage account's host, never an address.",
            remedy="Use the account's name (https://<account>.file.core.windows.net); for a private "
                   "endpoint make that name resolve to the private IP.")
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    for suffix in ENDPOINT_SUFFIXES:
        if host.endswith("." + suffix):
            label = host[: -len(suffix) - 1]
            private = label.endswith(".privatelink")
            account = label.removesuffix(".privatelink")
            if _ACCOUNT.match(account):
                return Endpoint(account, f"https://{netloc}/", private_link=private,
                                host=f"{account}.{suffix}")
    # Another https host (Azure Stack Hub, a new cloud, a custom name): the real tool sends the token there
    # as given; so does keyless, since the caller named the host explicitly.
    return Endpoint(host.split(".", 1)[0], f"https://{netloc}/", host=host)


def emulator_endpoint(account: str, files_url: str) -> Endpoint:
    """The emulator serves accounts IP-style: ``<files_url>/<account>/``; tickets keep the Azure name."""
    if not _ACCOUNT.match(account):
        raise InvalidEndpoint(
            f"{account!r} is not a storage account name (3-24 lowercase letters and digits).")
    if urlsplit(files_url).scheme != "https":
        raise InvalidEndpoint(f"the emulator's files_url {files_url!r} is not https")
    return Endpoint(account, f"{files_url.rstrip('/')}/{account}/", emulator=True)


@dataclass(frozen=True)
class TicketReply:
    credential: Credential
    expiration: float  # epoch seconds, from the reply's expirationTime
    session_key: bytes = field(repr=False)
    server_time: float | None = None  # from the reply's Date header
    clock_skew: float = 0.0  # local minus server, seconds (positive: local clock is ahead)
    request_id: str = ""


def token_claims(token: str) -> dict[str, Any]:
    """The token's payload, unverified: only to explain failures (audience, expiry), never to trust."""
    return decode_claims(token)


def check_token_audience(token: str) -> None:
    """Refuse before sending a token the exchange will refuse: the classic trailing-slash mistake."""
    aud = token_claims(token).get("aud")
    if aud == STORAGE_RESOURCE_SMB + "/":
        raise AudienceTrailingSlash(
            f"the token's audience is '{STORAGE_RESOURCE_SMB}/' (with a trailing slash); the SMB ticket "
            f"exchange needs a token for '{STORAGE_RESOURCE_SMB}' exactly.",
            remedy=f"Request the token with resource={STORAGE_RESOURCE_SMB} (no trailing slash); "
                   "keyless's own identity options do this for you.")


def _detail(body: bytes) -> tuple[str, str, str]:
    """Code, message and the most specific detail element of a service error body."""
    try:
        root = ElementTree.fromstring(body)  # noqa: S314 - a bounded reply from the service we called
    except ElementTree.ParseError:
        return "", body[:200].decode(errors="replace"), ""
    code = root.findtext("Code") or ""
    message = (root.findtext("Message") or "").split("\n", 1)[0]
    detail = ""
    for name in ("AuthenticationErrorDetail", "AuthorizationErrorDetail"):
        detail = root.findtext(name) or detail
    return code, message, detail


def _skew(response: urllib3.BaseHTTPResponse, local_now: float) -> tuple[float | None, float]:
    raw = response.headers.get("Date")
    if not raw:
        return None, 0.0
    try:
        server = parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError, IndexError):
        return None, 0.0
    return server, local_now - server


def _skew_error(skew: float) -> ClockSkew:
    ahead = "ahead of" if skew > 0 else "behind"
    return ClockSkew(
        f"this machine's clock is {abs(skew):.0f} s {ahead} the storage service's; tokens and Kerberos "
        f"tickets tolerate at most {MAX_CLOCK_SKEW:.0f} s.",
        remedy="Synchronise the clock (timedatectl set-ntp true, or chrony) and try again.")


def _refusal(status: int, code: str, message: str, detail: str, token: str, endpoint: Endpoint,
             skew: float) -> SmbError:
    text = " ".join(t for t in (message, detail) if t)
    low = text.lower()
    claims = token_claims(token)
    if status == 401 or code in (E_INVALID_AUTH, E_NO_AUTH):
        if "trailing slash" in low or claims.get("aud") == STORAGE_RESOURCE_SMB + "/":
            return AudienceTrailingSlash(
                f"the ticket exchange refused the token's audience: {detail or message}",
                remedy=f"Request the token with resource={STORAGE_RESOURCE_SMB} (no trailing slash).")
        if abs(skew) > MAX_CLOCK_SKEW:
            return _skew_error(skew)
        if "expired" in low or "not yet valid" in low:
            exp = claims.get("exp")
            if isinstance(exp, int | float) and exp > time.time() + 60 and "expired" in low:
                # Our clock says the token is fresh, the service says it expired: the clocks disagree.
                return ClockSkew(
                    f"the service says the token expired, but by this machine's clock it is valid for "
                    f"{exp - time.time():.0f} s more: {detail}",
                    remedy="Synchronise the clock (timedatectl set-ntp true, or chrony) and try again.")
            return TokenRejected(f"the ticket exchange refused the token: {detail or message}",
                                 remedy="Get a fresh token and try again.")
        return TokenRejected(
            f"the ticket exchange refused the token ({status} {code}): {detail or message}",
            remedy=f"Use a Microsoft Entra token for '{STORAGE_RESOURCE_SMB}' issued to an identity of this "
                   "storage account's tenant.")
    if code == E_PERMISSION_MISMATCH:
        who = claims.get("oid") or claims.get("appid") or "the identity"
        return RoleMissing(
            f"the identity (object id {who}) may not get SMB Kerberos tickets for account "
            f"'{endpoint.account}': it has no role with the SMB managed-identity data actions there.",
            remedy="Assign 'Storage File Data SMB MI Admin' to it on the storage account "
                   f"'{endpoint.account}' "
                   "or on a share; new role assignments can take 5-30 minutes to apply.")
    if "smb oauth" in low or "smboauth" in low or code == "FeatureNotSupportedOnStorageAccount":
        return SmbOAuthDisabled(
            f"SMB OAuth is not enabled on storage account '{endpoint.account}': {message}",
            remedy="Enable it: Set-AzStorageAccount -ResourceGroupName <rg> -Name "
                   f"{endpoint.account} -EnableSmbOAuth $true")
    if code == E_AUTH_FAILED:
        return TokenRejected(f"the ticket exchange refused the credentials: {detail or message}")
    return SmbError(f"the ticket exchange failed with {status} {code or ''}: {detail or message}".rstrip(),
                    cause="exchange_failed")


def request_ticket(endpoint: Endpoint, token: str, *, ca_certs: str | None = None,
                   connect_timeout: float = 10.0, total_timeout: float = 30.0,
                   pool: urllib3.PoolManager | None = None,
                   clock: Callable[[], float] = time.time) -> TicketReply:
    """POST the exchange and decode the reply; raises an ``SmbError`` subclass naming the cause."""
    if not token.strip():
        raise TokenRejected("no token was given", remedy="Pass a token, or an identity option.")
    check_token_audience(token)
    headers = {
        "Authorization": f"Bearer {token.strip()}",
        H_VERSION: SMB_TICKET_VERSION,
        H_DATE: formatdate(usegmt=True),
        H_CLIENT_REQUEST_ID: str(uuid.uuid4()),
        "Accept": "*/*",
        "User-Agent": USER_AGENT,
    }
    timeout = urllib3.Timeout(connect=connect_timeout, total=total_timeout)
    http = pool or urllib3.PoolManager(ca_certs=ca_certs, cert_reqs="CERT_REQUIRED")
    try:
        response = http.request("POST", endpoint.exchange_url, body=b"", headers=headers, timeout=timeout,
                                retries=False, redirect=False)
    except urllib3.exceptions.SSLError as exc:
        raise EndpointUnreachable(
            f"TLS to {urlsplit(endpoint.url).netloc} failed ({type(exc).__name__}).",
            remedy="Check that nothing intercepts TLS (proxy) and that the CA bundle is current; for the "
                   "emulator pass --emulator so its CA is trusted.") from None
    except urllib3.exceptions.HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        hint = (" The name is a private endpoint: it must resolve to its private IP from here."
                if endpoint.private_link else "")
        raise EndpointUnreachable(
            f"could not reach {urlsplit(endpoint.url).netloc} ({type(reason).__name__}).{hint}",
            remedy="Check DNS, firewalls and the storage account's network rules (port 443 must be open "
                   "to the File endpoint; with a private endpoint the canonical name must resolve to it).",
        ) from None
    local_now = clock()
    server_time, skew = _skew(response, local_now)
    request_id = response.headers.get(H_REQUEST_ID, "")
    if response.status != 200:
        code_header = response.headers.get(H_ERROR_CODE, "")
        code, message, detail = _detail(response.data)
        raise _refusal(response.status, code_header or code, message, detail, token, endpoint, skew)
    # Only what makes a ticket unusable is refused: no KRB-CRED, or one for another host. sessionKey is
    # never read by AzFilesAuthenticator on Linux (the key inside the KRB-CRED is the one used) and
    # expirationTime is optional there, a parse failure only logged (src/azfilesauth.cpp:758-781); the
    # ticket's own end time stands in for it. The realm is whatever the service names (sovereign clouds').
    try:
        body = json.loads(response.data)
        krb_cred = base64.b64decode(body["kerberosServiceTicket"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BadReply("the ticket exchange answered 200 but without a base64 kerberosServiceTicket") \
            from None
    creds = decode_krb_cred(krb_cred)
    cred = creds[0]
    if cred.server.components[:1] != ("cifs",) or \
            tuple(c.lower() for c in cred.server.components[1:]) != (endpoint.canonical_host,):
        raise BadReply(f"the ticket names {cred.server}, not cifs/{endpoint.canonical_host}")
    session_key = _optional_base64(body.get("sessionKey")) or cred.session_key
    try:
        expiration = _parse_expiration(str(body["expirationTime"]))
    except (KeyError, ValueError):
        expiration = float(cred.endtime)
    if server_time is None and cred.authtime:
        # No Date header: the ticket's authtime is the service's clock at issue, as good a witness.
        skew = local_now - cred.authtime
    return TicketReply(credential=cred, expiration=expiration, session_key=session_key,
                       server_time=server_time, clock_skew=skew, request_id=request_id)


def _optional_base64(value: Any) -> bytes | None:
    try:
        return base64.b64decode(str(value), validate=True) if value else None
    except (ValueError, binascii.Error):
        return None


def _parse_expiration(text: str) -> float:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def skew_warning(reply: TicketReply) -> ClockSkew | None:
    """A ticket was issued, but the local clock is too far off for the SMB server to accept it."""
    return _skew_error(reply.clock_skew) if abs(reply.clock_skew) > MAX_CLOCK_SKEW else None
