"""Get User Delegation Key on the Files endpoint (``POST /?restype=service&comp=userdelegationkey``).

Bearer tokens only, and, as Azure accepts it, without ``x-ms-file-request-intent``: the official SDK's
``ShareServiceClient.get_user_delegation_key`` sends none on this call. The caller must hold a Files data
role on the account (or one of its shares); what a SAS signed with the key may do is checked against the
delegator's roles on every request that uses it (:mod:`keyless.emulator.sas`).

Body and reply as the REST reference "Get User Delegation Key" gives them: ``<KeyInfo><Start>`` (optional)
``<Expiry>`` in, ``<UserDelegationKey>`` with ``SignedOid``, ``SignedTid``, ``SignedStart``,
``SignedExpiry``, ``SignedService``, ``SignedVersion`` and ``Value`` out. The expiry must be in the future
and at most seven days from now.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from aiohttp import web

from keyless.emulator import auth, sas
from keyless.emulator import request_keys as keys
from keyless.emulator.errors import StorageError
from keyless.emulator.files.model import Call
from keyless.emulator.files.replies import xml_reply
from keyless.protocol import E_AUTH_FAILED, E_NO_AUTH, E_PERMISSION_MISMATCH, H_VERSION

OPERATION = "GetUserDelegationKey"
MAX_KEY_LIFETIME = 7 * 24 * 3600.0
MAX_BODY = 64 * 1024
_BEARER_ONLY = "Only authentication scheme Bearer is supported for this operation."


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bad_node(name: str, value: str) -> StorageError:
    return StorageError(400, "InvalidXmlNodeValue",
                        "The value for one of the XML nodes is not in the correct format.",
                        extra={"XmlNodeName": name, "XmlNodeValue": value[:64]})


def _has_files_role(call: Call, object_id: str) -> bool:
    ctx, account = call.ctx, call.target.account
    acct = ctx.config.account(account)
    shares: list[str | None] = [None, *(s.name for s in (acct.shares if acct else ()))]
    shares += [r.share for r in ctx.role_assignments if r.account == account and r.share not in shares]
    return any(auth.granted_actions(ctx, object_id, account, share) for share in shares)


async def get_user_delegation_key(call: Call) -> web.StreamResponse:
    ctx, request, account = call.ctx, call.request, call.target.account
    if ctx.config.account(account) is None:
        raise StorageError(400, "InvalidUri")
    header = request.headers.get("Authorization", "").strip()
    if not header:
        raise StorageError(401, E_NO_AUTH, headers=auth.challenge_header(ctx.config.tenant_id))
    if header.partition(" ")[0].lower() != "bearer":
        raise StorageError(403, E_AUTH_FAILED, extra={"AuthenticationErrorDetail": _BEARER_ONLY})
    caller = auth.authenticate(ctx, request, account, require_intent=False)
    request[keys.CALLER] = caller
    if caller.object_id is None or not _has_files_role(call, caller.object_id):
        raise StorageError(403, E_PERMISSION_MISMATCH)

    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise StorageError(413, "RequestBodyTooLarge")
    if b"<!DOCTYPE" in body.upper():
        raise StorageError(400, "InvalidXmlDocument", "XML specified is not syntactically valid.")
    try:
        # Bounded (MAX_BODY), no DOCTYPE, and expat >= 2.4 limits entity expansion.
        root = ET.fromstring(body)  # noqa: S314
    except ET.ParseError:
        raise StorageError(400, "InvalidXmlDocument",
                           "XML specified is not syntactically valid.") from None
    if root.tag != "KeyInfo":
        raise StorageError(400, "InvalidXmlDocument", "XML specified is not syntactically valid.")
    now = ctx.clock.now()
    start_raw = (root.findtext("Start") or "").strip()
    expiry_raw = (root.findtext("Expiry") or "").strip()
    start = sas.parse_time(start_raw) if start_raw else float(int(now))
    expiry = sas.parse_time(expiry_raw)
    if start is None:
        raise _bad_node("Start", start_raw)
    if expiry is None or expiry <= now or expiry <= start or expiry > now + MAX_KEY_LIFETIME:
        raise _bad_node("Expiry", expiry_raw)

    fields = sas.DelegationKeyFields(
        oid=caller.object_id, tid=ctx.config.tenant_id, start=_iso(start), expiry=_iso(expiry),
        service=sas.USER_DELEGATION_SERVICE, version=request.headers.get(H_VERSION, ""),
    )
    key = ctx.account_key_bytes(account)
    if key is None:  # pragma: no cover - every configured account has a key (generated when not given)
        raise StorageError(500, "InternalError")
    value = base64.b64encode(sas.delegation_key(key, fields)).decode("ascii")
    reply = (
        '<?xml version="1.0" encoding="utf-8"?><UserDelegationKey>'
        f"<SignedOid>{fields.oid}</SignedOid><SignedTid>{fields.tid}</SignedTid>"
        f"<SignedStart>{fields.start}</SignedStart><SignedExpiry>{fields.expiry}</SignedExpiry>"
        f"<SignedService>{fields.service}</SignedService><SignedVersion>{fields.version}</SignedVersion>"
        f"<Value>{value}</Value></UserDelegationKey>"
    )
    return xml_reply(call, reply)
