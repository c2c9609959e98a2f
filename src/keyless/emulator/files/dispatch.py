"""Azure Files REST data plane: one entry point, dispatch by method + ``restype`` + ``comp``.

Order of work for every request: headers whose bytes are not UTF-8 and unknown ``x-ms-version`` values
(400 ``InvalidHeaderValue``), then the account (unknown: 400 ``InvalidUri``, the nearest thing the service
says about a URI naming nothing it hosts; on Azure the host name would simply not resolve), then the
injected authentication, then path and query validation and routing, then the OAuth rule for
management operations, then the injected authorization with the operation's data actions, then the
handler. Every failure is a :class:`StorageError`, which the
server turns into the service's XML reply.

Operations that authenticate themselves (the SMB ticket exchange) are matched first, on the service URL,
and skip the account check and authentication: they have rules of their own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from itertools import chain
from typing import TYPE_CHECKING

from aiohttp import web

from keyless.emulator import request_keys as keys
from keyless.emulator.errors import StorageError
from keyless.emulator.files import routes
from keyless.emulator.files.headers import check_encoding, check_version, flag
from keyless.emulator.files.model import Call, Op, Security, Target
from keyless.emulator.files.urls import bad_query, decode_segment, parse_query, parse_target
from keyless.protocol import H_VERSION

if TYPE_CHECKING:
    from keyless.emulator.context import Emulator


async def handle_files_request(ctx: Emulator, security: Security,
                               request: web.Request) -> web.StreamResponse:
    """The single entry point for ``https://host:port/<account>/...`` requests."""
    if not b"".join(chain.from_iterable(request.raw_headers)).isascii():
        check_encoding(request.headers)  # ASCII bytes always decode: only other bytes need the check
    check_version(request.headers)
    raw_path, _, raw_query = request.raw_path.partition("?")
    segments = raw_path.split("/")[1:]
    own = _self_authenticating(request, segments)
    if own is not None:
        request[keys.OPERATION] = own.name
        query = {k.lower(): v for k, v in request.query.items()}
        target = Target(segments[0] if segments else "", None, ())
        return await own.handler(Call(ctx, security, request, target, query, own))
    account = decode_segment(segments[0]) if segments else ""
    if not account or ctx.config.account(account) is None:
        raise StorageError(400, "InvalidUri")
    caller = security.authenticate(ctx, request, account)
    request[keys.CALLER] = caller
    target = parse_target(account, segments[1:], flag(request.headers, "x-ms-allow-trailing-dot"))
    query = parse_query(raw_query)
    op = route(request.method, target, query, request.headers)
    request[keys.OPERATION] = op.name
    if op.manages and caller.auth_type == keys.AUTH_OAUTH \
            and request.headers.get(H_VERSION, "") < OAUTH_MANAGEMENT_VERSION:
        raise StorageError(409, "FileOAuthManagementApiRestrictedToSrp", _SRP_ONLY)
    security.authorize(ctx, caller, account, target.share, op.actions)
    return await op.handler(Call(ctx, security, request, target, query, op))


# The operations that manage the FileService and FileShare resources took no bearer token before version
# 2024-11-04 ("Authorize access to file data" / "Azure Files OAuth over REST": these management APIs are
# exposed on the data plane for legacy reasons and were keys or SAS only; the 2024-11-04 release notes:
# "token-based authentication for all data plane APIs in the files service"). Azure's answer, as recorded
# by azure-sdk-for-js against the service at version 2022-11-02, is 409 with this code and message.
OAUTH_MANAGEMENT_VERSION = "2024-11-04"
_SRP_ONLY = ("This API does not support bearer tokens. For OAuth, use the Storage Resource Provider APIs "
             "instead. Learn more: https://aka.ms/azurefiles/restapi.")


def _self_authenticating(request: web.Request, segments: list[str]) -> Op | None:
    if segments[1:] not in ([], [""]):
        return None  # not the service URL
    query = request.query
    return routes.SELF_AUTHENTICATING_OPS.get((request.method, query.get("restype"), query.get("comp")))


def route(method: str, target: Target, query: dict[str, str], headers: Mapping[str, str]) -> Op:
    op = _route(method, target, query, headers)
    snapshot = query.get("sharesnapshot")
    if snapshot is not None:
        if not _SNAPSHOT.match(snapshot):
            raise bad_query("sharesnapshot")
        if not op.on_snapshot:
            raise StorageError(400, "ShareSnapshotOperationNotSupported",
                               "The operation is not supported on a share snapshot.")
    return op


# x-ms-snapshot values: the service's DateTime with 7 fractional digits (Create Share Snapshot).
_SNAPSHOT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?Z$", re.ASCII)


def _route(method: str, target: Target, query: dict[str, str], headers: Mapping[str, str]) -> Op:
    restype = query.get("restype")
    comp = query.get("comp")
    if target.share is None:
        table = routes.SERVICE_OPS if restype in (None, "service") else {}
        return _pick(table, method, comp, "restype" if restype else "comp")
    if restype == "share":
        if target.path:
            raise bad_query("restype")
        return _pick(routes.SHARE_OPS, method, comp, "comp")
    if restype == "directory":
        return _pick(routes.DIRECTORY_OPS, method, comp, "comp")
    if restype is not None:
        raise bad_query("restype")
    if not target.path:
        if comp in ("listhandles", "forceclosehandles"):
            # The share root is a directory: its handles are listed and closed at the share's URL
            # (the SDK's ShareDirectoryClient for "" sends no restype).
            return _pick(routes.DIRECTORY_OPS, method, comp, "comp")
        raise StorageError(400, "InvalidUri")
    if method == "PUT" and comp is None and "x-ms-copy-source" in headers:
        return routes.COPY_OP
    if method == "PUT" and comp == "range" and "x-ms-copy-source" in headers:
        return routes.RANGE_FROM_URL_OP
    return _pick(routes.FILE_OPS, method, comp, "comp")


def _pick(table: routes.Table, method: str, comp: str | None, param: str) -> Op:
    op = table.get((method, comp))
    if op is not None:
        return op
    if any(c == comp for _, c in table):
        raise StorageError(405, "UnsupportedHttpVerb")
    raise bad_query(param)
