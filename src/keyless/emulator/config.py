"""The emulator's configuration: what Azure "looks like" for one emulated machine and tenant.

Loaded from TOML (see README, "Emulator configuration"). Every field has a default so that an empty file,
or no file at all, serves the demo: account ``devaccount`` with SMB OAuth, share ``demo``, and one
system-assigned identity holding the two roles the seeds assign, both scoped to that share.

Errors name the offending key and say how to fix it; nothing here raises a bare KeyError or TypeError.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keyless.emulator import management_actions
from keyless.protocol import ROLE_DATA_ACTIONS

_NAMESPACE = uuid.UUID("5b1f8f7e-3c0a-4f7d-9a55-6b6579657373")  # stable ids derived from names
DEFAULT_TENANT = str(uuid.uuid5(_NAMESPACE, "tenant"))
DEFAULT_SUBSCRIPTION = str(uuid.uuid5(_NAMESPACE, "subscription"))
DEFAULT_RESOURCE_GROUP = "keyless-emulator"
_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
_SHARE_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.ASCII)


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and the fix."""


def stable_id(*parts: str) -> str:
    """A GUID derived from names, so ids are the same on every start and in every test."""
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


def parse_duration(value: object, key: str) -> float:
    """Seconds from ``3600``, ``"90s"``, ``"10m"``, ``"24h"``, ``"1d"``, ``"250ms"``."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration such as 3600, '10m' or '24h', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2) or "s"]
        seconds = float(m.group(1)) * unit
    else:
        raise ConfigError(f"{key}: expected a duration such as 3600, '10m' or '24h', got {value!r}")
    if not math.isfinite(seconds):
        raise ConfigError(f"{key}: expected a finite duration such as 3600, '10m' or '24h', got {value!r}")
    if seconds < 0:
        raise ConfigError(f"{key}: a duration cannot be negative ({value!r})")
    return seconds


# The clock offset moves every timestamp the emulator writes (HTTP dates, token lifetimes); beyond a
# century those no longer format, so larger (or non-finite) offsets are refused where they are given.
MAX_CLOCK_OFFSET = 100 * 365 * 86400.0
# Fault codes and methods end up in reply headers and in matching: header-safe tokens only (no CR/LF).
_HEADER_TOKEN = re.compile(r"^[A-Za-z0-9._-]*$")


def clock_offset(value: object, key: str) -> float:
    """A finite number of seconds within a century either way (config file and control endpoint)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: expected a number of seconds, got {value!r}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or abs(seconds) > MAX_CLOCK_OFFSET:
        raise ConfigError(f"{key}: expected a finite number of seconds within ±{MAX_CLOCK_OFFSET:.0f}, "
                          f"got {value!r}")
    return seconds


def _account_key(value: str | None, where: str) -> str | None:
    """A configured account key must be base64 (Shared Key signs with its decoded bytes)."""
    if value is None:
        return None
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if not decoded:
        # The value is a secret: the message names the key, never echoes it.
        raise ConfigError(f"{where}.key: expected a base64 account key (such as one printed by "
                          "'openssl rand -base64 64'); remove it to let the emulator generate one")
    return value


def _app_service_header(value: str | None) -> str | None:
    """Clients send it back as the X-IDENTITY-HEADER value: printable ASCII, nothing a header cannot hold."""
    if value is not None and (not value or not all(0x21 <= ord(c) < 0x7F for c in value)):
        raise ConfigError("app_service_header: printable ASCII without spaces, at least one character "
                          "(clients send it back in a header)")
    return value


# Management-plane roles (Azure Resource Manager) the emulator knows, with the storage account and
# FileService / FileShare actions each grants (built-in roles "Owner", "Contributor", "Reader", "Storage
# Account Contributor"; see management_actions). They never grant data actions: a file operation needs a
# data role, and a share-management operation over FileREST needs one of each (management_actions).
ACCOUNT_READ = "Microsoft.Storage/storageAccounts/read"
ACCOUNT_WRITE = "Microsoft.Storage/storageAccounts/write"
_ALL = frozenset({ACCOUNT_READ, ACCOUNT_WRITE}) | management_actions.ALL
MANAGEMENT_ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "Owner": _ALL,
    "Contributor": _ALL,
    "Storage Account Contributor": _ALL,
    "Reader": frozenset({ACCOUNT_READ}) | management_actions.READS,
}


@dataclass(frozen=True)
class Share:
    name: str
    quota_gib: int = 5120


@dataclass(frozen=True)
class Account:
    name: str
    key: str | None = None  # base64; None: generated once and kept in the data directory
    allow_shared_key: bool = True
    smb_oauth: bool = False
    shares: tuple[Share, ...] = ()


@dataclass(frozen=True)
class Identity:
    """A managed identity. ``kind`` is ``system`` or ``user``; ``attached`` means the machine has it."""

    name: str
    kind: str
    client_id: str
    object_id: str
    resource_id: str
    attached: bool = True

    @property
    def mirid(self) -> str:
        """The ``xms_mirid`` claim: the VM for a system-assigned identity, else the identity's ARM id."""
        return self.resource_id


@dataclass(frozen=True)
class RoleAssignment:
    role: str
    principal_object_id: str
    account: str
    share: str | None  # None: the whole account

    @property
    def scope(self) -> str:
        base = (
            f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/{DEFAULT_RESOURCE_GROUP}"
            f"/providers/Microsoft.Storage/storageAccounts/{self.account}"
        )
        return base if self.share is None else f"{base}/fileServices/default/fileshares/{self.share}"


@dataclass(frozen=True)
class FaultRule:
    """One scripted misbehaviour.

    ``target`` is ``files`` or ``imds`` (``imds`` covers every identity endpoint). ``action`` is
    ``status`` (answer ``status`` with ``code``), ``delay`` (wait ``seconds`` then serve normally),
    ``drop`` (close the connection without an answer) or ``timeout`` (hold the request ``seconds``,
    then drop it). ``count`` limits how many requests it hits (None: unlimited); ``rate`` is the share of
    matching requests it hits (1.0: all). ``retry_after`` adds that header to status answers.
    """

    target: str
    action: str
    status: int = 503
    code: str = ""
    seconds: float = 0.0
    count: int | None = None
    rate: float = 1.0
    retry_after: float | None = None
    method: str | None = None  # only requests with this method, e.g. "PUT"


@dataclass(frozen=True)
class EmulatorConfig:
    tenant_id: str = DEFAULT_TENANT
    subscription_id: str = DEFAULT_SUBSCRIPTION
    token_lifetime: float = 24 * 3600.0
    clock_offset: float = 0.0  # seconds added to the emulator's clock, to test skew handling
    accounts: tuple[Account, ...] = ()
    identities: tuple[Identity, ...] = ()
    role_assignments: tuple[RoleAssignment, ...] = ()
    faults: tuple[FaultRule, ...] = ()
    app_service_header: str | None = None  # None: generated per data directory
    seed: int | None = None  # makes fault sampling repeatable

    def account(self, name: str) -> Account | None:
        for acct in self.accounts:
            if acct.name == name:
                return acct
        return None

    def identity_by(self, *, client_id: str | None = None, object_id: str | None = None,
                    resource_id: str | None = None) -> Identity | None:
        return match_identity(self.identities, client_id=client_id, object_id=object_id,
                              resource_id=resource_id)


def match_identity(identities: tuple[Identity, ...] | list[Identity], *, client_id: str | None = None,
                   object_id: str | None = None, resource_id: str | None = None) -> Identity | None:
    """The identity a selector names (ids compare case-insensitively, as Azure does)."""
    for ident in identities:
        if client_id is not None and ident.client_id.lower() == client_id.lower():
            return ident
        if object_id is not None and ident.object_id.lower() == object_id.lower():
            return ident
        if resource_id is not None and ident.resource_id.lower() == resource_id.lower():
            return ident
    return None


def _identity(name: str, kind: str, subscription: str, *, client_id: str | None = None,
              object_id: str | None = None, resource_id: str | None = None,
              attached: bool = True) -> Identity:
    if resource_id is None:
        rg = f"/subscriptions/{subscription}/resourcegroups/{DEFAULT_RESOURCE_GROUP}/providers"
        resource_id = (
            f"{rg}/Microsoft.Compute/virtualMachines/{name}"
            if kind == "system"
            else f"{rg}/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
        )
    return Identity(
        name=name,
        kind=kind,
        client_id=client_id or stable_id("client", name),
        object_id=object_id or stable_id("object", name),
        resource_id=resource_id,
        attached=attached,
    )


def default_config() -> EmulatorConfig:
    """The demo: one account, one share, one system-assigned identity with the seeds' two roles."""
    vm = _identity("demo-vm", "system", DEFAULT_SUBSCRIPTION)
    return EmulatorConfig(
        accounts=(Account(name="devaccount", smb_oauth=True, shares=(Share("demo"),)),),
        identities=(vm,),
        role_assignments=(
            RoleAssignment("Storage File Data Privileged Contributor", vm.object_id, "devaccount", "demo"),
            RoleAssignment("Storage File Data SMB MI Admin", vm.object_id, "devaccount", "demo"),
        ),
    )


# --- TOML loading --------------------------------------------------------------------------------------


def _take(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{where}.{key}: expected {names}, got {value!r}")
    return value


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _parse_accounts(raw: list[Any]) -> tuple[Account, ...]:
    accounts: list[Account] = []
    for i, table in enumerate(raw):
        where = f"accounts[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table ([[accounts]])")
        _check_keys(table, {"name", "key", "allow_shared_key", "smb_oauth", "shares"}, where)
        name = _take(table, "name", str, where, None)
        if name is None or not _ACCOUNT_NAME.match(name):
            raise ConfigError(
                f"{where}.name: an account name is 3-24 lowercase letters and digits, got {name!r}"
            )
        shares = []
        for j, share in enumerate(_take(table, "shares", list, where, [])):
            swhere = f"{where}.shares[{j}]"
            if isinstance(share, str):
                share = {"name": share}
            if not isinstance(share, dict):
                raise ConfigError(f"{swhere}: expected a share name or a table with name and quota_gib")
            _check_keys(share, {"name", "quota_gib"}, swhere)
            sname = _take(share, "name", str, swhere, "")
            if not _SHARE_NAME.match(sname):
                raise ConfigError(
                    f"{swhere}.name: a share name is 3-63 lowercase letters, digits and single hyphens, "
                    f"got {sname!r}"
                )
            shares.append(Share(sname, _take(share, "quota_gib", int, swhere, 5120)))
        accounts.append(
            Account(
                name=name,
                key=_account_key(_take(table, "key", str, where, None), where),
                allow_shared_key=_take(table, "allow_shared_key", bool, where, True),
                smb_oauth=_take(table, "smb_oauth", bool, where, False),
                shares=tuple(shares),
            )
        )
    names = [a.name for a in accounts]
    if len(set(names)) != len(names):
        raise ConfigError("accounts: two accounts have the same name; account names must be unique")
    return tuple(accounts)


def _parse_identities(raw: list[Any], subscription: str) -> tuple[Identity, ...]:
    out: list[Identity] = []
    for i, table in enumerate(raw):
        where = f"identities[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table ([[identities]])")
        _check_keys(table, {"name", "type", "client_id", "object_id", "resource_id", "attached"}, where)
        name = _take(table, "name", str, where, None)
        if not name:
            raise ConfigError(f"{where}.name: every identity needs a name (used in role assignments)")
        kind = _take(table, "type", str, where, "user")
        if kind not in ("system", "user"):
            raise ConfigError(f"{where}.type: 'system' or 'user', got {kind!r}")
        for key in ("client_id", "object_id"):
            if key in table:
                try:
                    uuid.UUID(_take(table, key, str, where, ""))
                except ValueError:
                    raise ConfigError(f"{where}.{key}: expected a GUID, got {table[key]!r}") from None
        out.append(
            _identity(
                name, kind, subscription,
                client_id=table.get("client_id"), object_id=table.get("object_id"),
                resource_id=_take(table, "resource_id", str, where, None),
                attached=_take(table, "attached", bool, where, True),
            )
        )
    if sum(1 for ident in out if ident.kind == "system") > 1:
        raise ConfigError("identities: a machine has at most one system-assigned identity")
    if len({ident.name for ident in out}) != len(out):
        raise ConfigError("identities: two identities have the same name; names must be unique")
    return tuple(out)


def _parse_roles(raw: list[Any], identities: tuple[Identity, ...],
                 accounts: tuple[Account, ...]) -> tuple[RoleAssignment, ...]:
    out: list[RoleAssignment] = []
    by_name = {ident.name: ident for ident in identities}
    for i, table in enumerate(raw):
        where = f"role_assignments[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table ([[role_assignments]])")
        _check_keys(table, {"role", "principal", "scope"}, where)
        role = _take(table, "role", str, where, "")
        if role not in ROLE_DATA_ACTIONS and role not in MANAGEMENT_ROLE_ACTIONS:
            known = ", ".join([*ROLE_DATA_ACTIONS, *MANAGEMENT_ROLE_ACTIONS])
            raise ConfigError(f"{where}.role: unknown role {role!r}; known: {known}")
        principal = _take(table, "principal", str, where, "")
        ident = by_name.get(principal)
        if ident is not None:
            object_id = ident.object_id
        else:
            try:
                object_id = str(uuid.UUID(principal))
            except ValueError:
                raise ConfigError(
                    f"{where}.principal: {principal!r} is neither an identity name nor an object id"
                ) from None
        scope = _take(table, "scope", str, where, "")
        account, share = _parse_scope(scope, where)
        acct = next((a for a in accounts if a.name == account), None)
        if acct is None:
            raise ConfigError(f"{where}.scope: no account named {account!r} is configured")
        if share is not None and share not in {s.name for s in acct.shares}:
            raise ConfigError(f"{where}.scope: account {account!r} has no share {share!r}")
        if share is not None and role in MANAGEMENT_ROLE_ACTIONS:
            raise ConfigError(f"{where}.scope: {role!r} is a management-plane role: scope it to the account "
                              f"({account!r}), not a share")
        out.append(RoleAssignment(role, object_id, account, share))
    return tuple(out)


def _parse_scope(scope: str, where: str) -> tuple[str, str | None]:
    """Accepts ``account``, ``account/share`` or an ARM scope ending in either."""
    arm = re.search(r"/storageAccounts/([^/]+)(?:/fileServices/default/fileshares/([^/]+))?/?$", scope, re.I)
    if arm:
        return arm.group(1), arm.group(2)
    parts = [p for p in scope.split("/") if p]
    if len(parts) in (1, 2):
        return parts[0], parts[1] if len(parts) == 2 else None
    raise ConfigError(f"{where}.scope: expected 'account', 'account/share' or an ARM scope, got {scope!r}")


def _parse_faults(raw: list[Any]) -> tuple[FaultRule, ...]:
    out: list[FaultRule] = []
    for i, table in enumerate(raw):
        where = f"faults[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table ([[faults]])")
        out.append(fault_from_dict(table, where))
    return tuple(out)


def fault_from_dict(table: dict[str, Any], where: str = "fault") -> FaultRule:
    """Used by the config file and by the control endpoint, so both accept the same shape."""
    _check_keys(
        table,
        {"target", "action", "status", "code", "seconds", "count", "rate", "retry_after", "method"},
        where,
    )
    target = _take(table, "target", str, where, "files")
    if target not in ("files", "imds"):
        raise ConfigError(f"{where}.target: 'files' or 'imds', got {target!r}")
    action = _take(table, "action", str, where, "status")
    if action not in ("status", "delay", "drop", "timeout"):
        raise ConfigError(f"{where}.action: one of status, delay, drop, timeout; got {action!r}")
    status = _take(table, "status", int, where, 503)
    if not 100 <= status <= 599:
        raise ConfigError(f"{where}.status: an HTTP status 100-599, got {status}")
    rate = float(_take(table, "rate", (int, float), where, 1.0))
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"{where}.rate: a share between 0 and 1, got {rate}")
    count = _take(table, "count", int, where, None)
    if count is not None and count < 0:
        raise ConfigError(f"{where}.count: a number of requests (0 or more), got {count}")
    retry_after = table.get("retry_after")
    method = _take(table, "method", str, where, None)
    code = _take(table, "code", str, where, "")
    for name, value in (("code", code), ("method", method or "")):
        if not _HEADER_TOKEN.match(value):
            raise ConfigError(f"{where}.{name}: letters, digits, '.', '_' or '-' only (it becomes part of "
                              f"a reply header), got {value!r}")
    return FaultRule(
        target=target,
        action=action,
        status=status,
        code=code,
        seconds=parse_duration(table.get("seconds", 0), f"{where}.seconds"),
        count=count,
        rate=rate,
        retry_after=None if retry_after is None else parse_duration(retry_after, f"{where}.retry_after"),
        method=method.upper() if method else None,
    )


def load_config(path: Path | None) -> EmulatorConfig:
    """The defaults when ``path`` is None; otherwise the file, validated as a whole before use."""
    if path is None:
        return default_config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file; pass an existing TOML file or omit --config"
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the file and start again") from None
    return config_from_dict(raw)


def config_from_dict(raw: dict[str, Any]) -> EmulatorConfig:
    where = "config"
    _check_keys(
        raw,
        {"tenant_id", "subscription_id", "token_lifetime", "clock_offset", "accounts", "identities",
         "role_assignments", "faults", "app_service_header", "seed"},
        where,
    )
    defaults = default_config()
    tenant = _take(raw, "tenant_id", str, where, DEFAULT_TENANT)
    try:
        uuid.UUID(tenant)
    except ValueError:
        raise ConfigError(f"tenant_id: expected a GUID, got {tenant!r}") from None
    subscription = _take(raw, "subscription_id", str, where, DEFAULT_SUBSCRIPTION)
    accounts = _parse_accounts(raw["accounts"]) if "accounts" in raw else defaults.accounts
    identities = (
        _parse_identities(raw["identities"], subscription) if "identities" in raw else defaults.identities
    )
    if "role_assignments" in raw:
        roles = _parse_roles(raw["role_assignments"], identities, accounts)
    elif "accounts" in raw or "identities" in raw:
        roles = ()  # a custom world starts with no grants: nothing is allowed that was not declared
    else:
        roles = defaults.role_assignments
    lifetime = parse_duration(raw.get("token_lifetime", defaults.token_lifetime), "token_lifetime")
    if lifetime < 1:
        raise ConfigError("token_lifetime: at least one second")
    return EmulatorConfig(
        tenant_id=tenant,
        subscription_id=subscription,
        token_lifetime=lifetime,
        clock_offset=clock_offset(raw.get("clock_offset", 0.0), "clock_offset"),
        accounts=accounts,
        identities=identities,
        role_assignments=roles,
        faults=_parse_faults(raw.get("faults", [])),
        app_service_header=_app_service_header(_take(raw, "app_service_header", str, where, None)),
        seed=_take(raw, "seed", int, where, None),
    )


@dataclass
class RuntimeState:
    """Mutable parts changed at run time through the control endpoint (roles, faults)."""

    role_assignments: list[RoleAssignment] = field(default_factory=list)
    faults: list[FaultRule] = field(default_factory=list)
