"""A minimal Azure Resource Manager surface: get and patch a storage account's ``allowSharedKeyAccess``.

``GET`` and ``PATCH https://<arm>/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage/
storageAccounts/{name}?api-version=…`` on its own HTTPS listener (Resource Manager is its own host in
Azure: ``management.azure.com``), with:

* bearer tokens for the Resource Manager audience (``https://management.azure.com`` and the
  ``management.core.windows.net`` forms Azure also accepts), ARM's 401 codes otherwise
  (``AuthenticationFailed``, ``InvalidAuthenticationToken``, ``InvalidAuthenticationTokenAudience``,
  ``ExpiredAuthenticationToken``);
* management-plane RBAC: reading needs ``Microsoft.Storage/storageAccounts/read`` and patching
  ``…/write``, granted by Owner, Contributor, Storage Account Contributor (Reader reads) on the account;
  a data role is not enough: 403 ``AuthorizationFailed`` with ARM's message;
* ARM's error document ``{"error": {"code", "message"}}`` and its 400/404 codes
  (``MissingApiVersionParameter``, ``SubscriptionNotFound``, ``ResourceGroupNotFound``,
  ``ResourceNotFound``, ``InvalidRequestContent``).

A patched ``allowSharedKeyAccess`` applies to the Files side at once (the next Shared Key request gets 403
``KeyBasedAuthenticationNotPermitted``), survives restarts (``DIR/arm-state.json``) and is what
``emulator.json`` reports.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from keyless.emulator.config import (
    ACCOUNT_READ,
    ACCOUNT_WRITE,
    DEFAULT_RESOURCE_GROUP,
    MANAGEMENT_ROLE_ACTIONS,
)
from keyless.emulator.errors import TokenRejected
from keyless.emulator.issuer import DETAIL_AUDIENCE, DETAIL_EXPIRED
from keyless.emulator_info import INFO_FILE
from keyless.fsutil import atomic_write

if TYPE_CHECKING:
    from keyless.emulator.context import Emulator

MANAGEMENT_AUDIENCES = ("https://management.azure.com", "https://management.azure.com/",
                        "https://management.core.windows.net", "https://management.core.windows.net/")
STATE_FILE = "arm-state.json"
RESOURCE_GROUP = DEFAULT_RESOURCE_GROUP
_ACCOUNT_PATH = ("/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Storage/"
                 "storageAccounts/{name}")


def resource_id(ctx: Emulator, account: str) -> str:
    return (f"/subscriptions/{ctx.config.subscription_id}/resourceGroups/{RESOURCE_GROUP}"
            f"/providers/Microsoft.Storage/storageAccounts/{account}")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


class ArmError(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


# --- shared key state: config value, overridden by patches (persisted) ------------------------------------


def set_allow_shared_key(ctx: Emulator, account: str, allowed: bool, *, persist: bool = True) -> None:
    """Flip the account's ``allow_shared_key`` in the live config (read by every Files request)."""
    accounts = tuple(replace(a, allow_shared_key=allowed) if a.name == account else a
                     for a in ctx.config.accounts)
    ctx.config = replace(ctx.config, accounts=accounts)
    if persist:
        path = ctx.data_dir / STATE_FILE
        state = _read_state(path)
        state.setdefault("allow_shared_key", {})[account] = allowed
        atomic_write(path, json.dumps(state, indent=2).encode("utf-8"))
        _refresh_emulator_json(ctx, account, allowed)


def _refresh_emulator_json(ctx: Emulator, account: str, allowed: bool) -> None:
    """``emulator.json`` keeps telling the truth about ``allow_shared_key`` (clients and tests read it)."""
    info_path = ctx.data_dir / INFO_FILE
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return  # not written yet (or being replaced at shutdown): it is built from the live config
    for entry in info.get("accounts", []):
        if isinstance(entry, dict) and entry.get("name") == account:
            entry["allow_shared_key"] = allowed
    atomic_write(info_path, json.dumps(info, indent=2).encode("utf-8"))


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{path}: unreadable; delete it to return to the configured values") from None
    return state if isinstance(state, dict) else {}


def apply_saved_state(ctx: Emulator) -> None:
    """Patches made through Resource Manager before a restart still hold."""
    saved = _read_state(ctx.data_dir / STATE_FILE).get("allow_shared_key", {})
    if isinstance(saved, dict):
        for name, allowed in saved.items():
            if ctx.config.account(name) is not None and isinstance(allowed, bool):
                set_allow_shared_key(ctx, name, allowed, persist=False)


# --- the handlers ----------------------------------------------------------------------------------------


def _caller_object_id(ctx: Emulator, request: web.Request) -> str:
    header = request.headers.get("Authorization", "").strip()
    if not header:
        raise ArmError(_error(401, "AuthenticationFailed",
                              "Authentication failed. The 'Authorization' header is missing."))
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ArmError(_error(401, "AuthenticationFailed",
                              "Authentication failed. The 'Authorization' header is provided in an invalid "
                              "format."))
    try:
        claims = ctx.issuer.verify_token(token.strip(), MANAGEMENT_AUDIENCES)
    except TokenRejected as rejected:
        if rejected.detail == DETAIL_EXPIRED:
            raise ArmError(_error(
                401, "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.")) from None
        if rejected.detail == DETAIL_AUDIENCE:
            allowed = ",".join(f"'{a}'" for a in MANAGEMENT_AUDIENCES)
            raise ArmError(_error(
                401, "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource. It should exactly "
                f"match with one of the allowed audiences {allowed}.")) from None
        raise ArmError(_error(401, "InvalidAuthenticationToken", "The access token is invalid.")) from None
    oid = claims.get("oid")
    if not isinstance(oid, str):
        raise ArmError(_error(401, "InvalidAuthenticationToken", "The access token is invalid."))
    return oid


def _authorize(ctx: Emulator, object_id: str, account: str, action: str) -> None:
    for assignment in ctx.role_assignments:
        if (assignment.principal_object_id.lower() == object_id.lower() and assignment.account == account
                and assignment.share is None
                and action in MANAGEMENT_ROLE_ACTIONS.get(assignment.role, frozenset())):
            return
    scope = resource_id(ctx, account)
    raise ArmError(_error(
        403, "AuthorizationFailed",
        f"The client '{object_id}' with object id '{object_id}' does not have authorization to perform "
        f"action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, "
        f"please refresh your credentials."))


def _resolve(ctx: Emulator, request: web.Request) -> str:
    """The account the URL names, after ARM's own checks (api-version, subscription, group, resource)."""
    if not request.query.get("api-version"):
        raise ArmError(_error(
            400, "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests."))
    info = request.match_info
    subscription, group, name = info["subscription"], info["group"], info["name"]
    if subscription.lower() != ctx.config.subscription_id.lower():
        raise ArmError(_error(404, "SubscriptionNotFound", f"The subscription '{subscription}' could not be "
                                                           f"found."))
    if group.lower() != RESOURCE_GROUP.lower():
        raise ArmError(_error(404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found."))
    if ctx.config.account(name) is None:
        raise ArmError(_error(404, "ResourceNotFound",
                              f"The Resource 'Microsoft.Storage/storageAccounts/{name}' under resource group "
                              f"'{group}' was not found. For more details please go to "
                              f"https://aka.ms/ARMResourceNotFoundFix"))
    return name


def account_document(ctx: Emulator, name: str) -> dict[str, Any]:
    acct = ctx.config.account(name)
    assert acct is not None
    return {
        "id": resource_id(ctx, name),
        "name": name,
        "type": "Microsoft.Storage/storageAccounts",
        "location": "local",
        "kind": "StorageV2",
        "sku": {"name": "Standard_LRS", "tier": "Standard"},
        "properties": {
            "provisioningState": "Succeeded",
            "allowSharedKeyAccess": acct.allow_shared_key,
            "primaryEndpoints": {"file": f"{ctx.files_url}/{name}/"},
        },
    }


def routes(ctx: Emulator) -> list[web.RouteDef]:
    async def get_account(request: web.Request) -> web.Response:
        try:
            name = _resolve(ctx, request)
            _authorize(ctx, _caller_object_id(ctx, request), name, ACCOUNT_READ)
        except ArmError as err:
            return err.response
        return web.json_response(account_document(ctx, name))

    async def patch_account(request: web.Request) -> web.Response:
        try:
            name = _resolve(ctx, request)
            _authorize(ctx, _caller_object_id(ctx, request), name, ACCOUNT_WRITE)
            allowed = _patched_flag(await request.read())
        except ArmError as err:
            return err.response
        if allowed is not None:
            set_allow_shared_key(ctx, name, allowed)
        return web.json_response(account_document(ctx, name))

    return [web.get(_ACCOUNT_PATH, get_account), web.patch(_ACCOUNT_PATH, patch_account)]


def _patched_flag(body: bytes) -> bool | None:
    try:
        doc = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nesting too deep to parse
        raise ArmError(_error(400, "InvalidRequestContent",
                              "The request content was invalid and could not be deserialized.")) from None
    props = doc.get("properties", {}) if isinstance(doc, dict) else None
    if not isinstance(props, dict):
        raise ArmError(_error(400, "InvalidRequestContent",
                              "The request content was invalid and could not be deserialized: 'properties' "
                              "must be an object."))
    value = props.get("allowSharedKeyAccess")
    if value is not None and not isinstance(value, bool):
        raise ArmError(_error(400, "InvalidRequestContent",
                              "The request content was invalid and could not be deserialized: "
                              "'properties.allowSharedKeyAccess' must be true or false."))
    return value


def build_arm_app(ctx: Emulator) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app.add_routes(routes(ctx))
    return app
