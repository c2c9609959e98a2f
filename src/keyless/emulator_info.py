"""The ``emulator.json`` format, defined once: the emulator writes it with :meth:`EmulatorInfo.to_json`,
clients read it with :func:`load_emulator_info`.

Every command that reaches Azure takes ``--emulator PATH`` (or ``KEYLESS_EMULATOR=PATH``); PATH is the
``emulator.json`` or the data directory holding it. Standard library only: the emulator and the client
both import this module and never each other.

Secrets in the file (account keys, the App Service header, the control secret) are kept out of ``repr``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_EMULATOR = "KEYLESS_EMULATOR"
#: The file the emulator writes into its data directory once both listeners are bound.
INFO_FILE = "emulator.json"
FORMAT_VERSION = 1
#: The header carrying the control secret on the emulator's control endpoint.
CONTROL_HEADER = "X-Keyless-Control"


class EmulatorInfoError(ValueError):
    """The path holds no usable emulator.json; the message says how to get one."""


@dataclass(frozen=True, slots=True)
class EmulatorAccount:
    name: str
    url: str
    key: str = field(repr=False)
    shares: tuple[str, ...] = ()
    allow_shared_key: bool = True
    smb_oauth: bool = False


@dataclass(frozen=True, slots=True)
class EmulatorIdentity:
    name: str
    type: str
    client_id: str
    object_id: str
    resource_id: str
    attached: bool = True


@dataclass(frozen=True, slots=True)
class EmulatorInfo:
    path: Path
    imds_url: str
    files_url: str
    ca_cert: str
    tenant_id: str
    authority_host: str
    authority_host_http: str | None
    app_service_endpoint: str
    app_service_header: str = field(repr=False)
    arc_endpoint: str = ""
    arc_imds_endpoint: str = ""
    arc_key_dir: str = ""
    workload: Mapping[str, str] = field(default_factory=dict)  # client id -> federated token file
    accounts: tuple[EmulatorAccount, ...] = ()
    identities: tuple[EmulatorIdentity, ...] = ()
    audit_log: str = ""
    data_dir: str = ""
    control_url: str = ""
    control_secret: str = field(default="", repr=False)
    pid: int | None = None
    keytab: str = ""
    token_lifetime: float = 0.0
    arm_url: str = ""  # the emulator's Azure Resource Manager endpoint (storage accounts only)

    def to_json(self) -> dict[str, Any]:
        """The ``emulator.json`` document (what the emulator writes; :func:`parse_emulator_info` reads it)."""
        return {
            "version": FORMAT_VERSION,
            "pid": self.pid,
            "files_url": self.files_url,
            "arm_url": self.arm_url,
            "imds_url": self.imds_url,
            "app_service": {"IDENTITY_ENDPOINT": self.app_service_endpoint,
                            "IDENTITY_HEADER": self.app_service_header},
            "arc": {"IDENTITY_ENDPOINT": self.arc_endpoint, "IMDS_ENDPOINT": self.arc_imds_endpoint,
                    "key_dir": self.arc_key_dir},
            "authority_host": self.authority_host,
            "authority_host_http": self.authority_host_http,
            "tenant_id": self.tenant_id,
            "ca_cert": self.ca_cert,
            "audit_log": self.audit_log,
            "keytab": self.keytab,
            "data_dir": self.data_dir,
            "token_lifetime": self.token_lifetime,
            "accounts": [
                {"name": a.name, "key": a.key, "url": a.url, "allow_shared_key": a.allow_shared_key,
                 "smb_oauth": a.smb_oauth, "shares": list(a.shares)}
                for a in self.accounts
            ],
            "identities": [
                {"name": i.name, "type": i.type, "client_id": i.client_id, "object_id": i.object_id,
                 "resource_id": i.resource_id, "attached": i.attached}
                for i in self.identities
            ],
            "workload": dict(self.workload),
            "control": {"url": self.control_url, "secret": self.control_secret},
        }

    def account(self, name: str | None = None) -> EmulatorAccount:
        """The named account, or the first one."""
        for acct in self.accounts:
            if name is None or acct.name == name:
                return acct
        names = ", ".join(a.name for a in self.accounts) or "none"
        raise EmulatorInfoError(f"the emulator has no account {name!r} (accounts: {names})")

    def identity_env(self, source: str = "imds", client_id: str | None = None) -> dict[str, str]:
        """Environment variables that point a token source at this emulator.

        ``imds``: ``AZURE_POD_IDENTITY_AUTHORITY_HOST``; ``appservice``: ``IDENTITY_ENDPOINT`` and
        ``IDENTITY_HEADER``; ``arc``: the two Arc endpoints plus ``KEYLESS_ARC_KEY_DIR`` (the emulator's key
        files live in its data directory); ``workload``: the federated token file of ``client_id`` (or of
        the only user-assigned identity) with client id, tenant and the authority host.
        """
        if source == "imds":
            return {"AZURE_POD_IDENTITY_AUTHORITY_HOST": self.imds_url}
        if source == "appservice":
            return {"IDENTITY_ENDPOINT": self.app_service_endpoint,
                    "IDENTITY_HEADER": self.app_service_header}
        if source == "arc":
            return {"IDENTITY_ENDPOINT": self.arc_endpoint, "IMDS_ENDPOINT": self.arc_imds_endpoint,
                    "KEYLESS_ARC_KEY_DIR": self.arc_key_dir}
        if source == "workload":
            if client_id is None:
                if len(self.workload) != 1:
                    raise EmulatorInfoError(
                        "choose the workload identity by its client id: the emulator has "
                        f"{len(self.workload)} user-assigned identities with federated token files")
                client_id = next(iter(self.workload))
            file = self.workload.get(client_id)
            if file is None:
                raise EmulatorInfoError(f"the emulator has no federated token file for client_id={client_id}")
            # Plain HTTP to the loopback authority when offered: no CA needed for the exchange.
            return {"AZURE_FEDERATED_TOKEN_FILE": file, "AZURE_CLIENT_ID": client_id,
                    "AZURE_TENANT_ID": self.tenant_id,
                    "AZURE_AUTHORITY_HOST": self.authority_host_http or self.authority_host}
        raise EmulatorInfoError(f"unknown token source {source!r}")


def _str(doc: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str):
        raise EmulatorInfoError(f"field {key!r} is missing or not a string")
    return value


def parse_emulator_info(doc: Any, path: Path) -> EmulatorInfo:
    if not isinstance(doc, dict):
        raise EmulatorInfoError("not a JSON object")
    app = doc.get("app_service") or {}
    arc = doc.get("arc") or {}
    control = doc.get("control") or {}
    workload = doc.get("workload") or {}
    accounts = tuple(
        EmulatorAccount(name=_str(a, "name"), url=_str(a, "url").rstrip("/"), key=str(a.get("key", "")),
                        shares=tuple(str(s) for s in a.get("shares", ())),
                        allow_shared_key=bool(a.get("allow_shared_key", True)),
                        smb_oauth=bool(a.get("smb_oauth", False)))
        for a in doc.get("accounts", ()) if isinstance(a, dict)
    )
    identities = tuple(
        EmulatorIdentity(name=_str(i, "name"), type=_str(i, "type", "user"), client_id=_str(i, "client_id"),
                         object_id=_str(i, "object_id"), resource_id=_str(i, "resource_id"),
                         attached=bool(i.get("attached", True)))
        for i in doc.get("identities", ()) if isinstance(i, dict)
    )
    pid = doc.get("pid")
    lifetime = doc.get("token_lifetime", 0)
    return EmulatorInfo(
        path=path,
        imds_url=_str(doc, "imds_url").rstrip("/"),
        files_url=_str(doc, "files_url").rstrip("/"),
        arm_url=_str(doc, "arm_url", "").rstrip("/"),
        ca_cert=_str(doc, "ca_cert"),
        tenant_id=_str(doc, "tenant_id", ""),
        authority_host=_str(doc, "authority_host", "").rstrip("/"),
        authority_host_http=(str(doc["authority_host_http"]).rstrip("/")
                             if isinstance(doc.get("authority_host_http"), str) else None),
        app_service_endpoint=str(app.get("IDENTITY_ENDPOINT", "")),
        app_service_header=str(app.get("IDENTITY_HEADER", "")),
        arc_endpoint=str(arc.get("IDENTITY_ENDPOINT", "")),
        arc_imds_endpoint=str(arc.get("IMDS_ENDPOINT", "")),
        arc_key_dir=str(arc.get("key_dir", "")),
        workload={str(k): str(v) for k, v in workload.items()} if isinstance(workload, dict) else {},
        accounts=accounts,
        identities=identities,
        audit_log=str(doc.get("audit_log", "")),
        data_dir=str(doc.get("data_dir", "")),
        control_url=str(control.get("url", "")),
        control_secret=str(control.get("secret", "")),
        pid=pid if isinstance(pid, int) else None,
        keytab=str(doc.get("keytab", "")),
        token_lifetime=lifetime if isinstance(lifetime, int | float) and not isinstance(lifetime, bool)
        else 0.0,
    )


def load_emulator_info(path: str | os.PathLike[str]) -> EmulatorInfo:
    """Read ``PATH`` (an emulator.json, or the emulator's data directory)."""
    p = Path(path)
    if p.is_dir():
        p = p / INFO_FILE
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EmulatorInfoError(
            f"no emulator.json at {p}: start an emulator with data directory DIR and pass DIR or "
            "DIR/emulator.json") from None
    except PermissionError:
        raise EmulatorInfoError(f"cannot read {p}: it is private to the user who started the emulator") \
            from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise EmulatorInfoError(f"{p} is not an emulator.json ({exc})") from None
    try:
        return parse_emulator_info(doc, p)
    except EmulatorInfoError as exc:
        raise EmulatorInfoError(f"{p} is not an emulator.json: {exc}") from None


def emulator_from_env(env: Mapping[str, str] | None = None) -> EmulatorInfo | None:
    """The emulator named by ``KEYLESS_EMULATOR``, if any."""
    value = (os.environ if env is None else env).get(ENV_EMULATOR)
    return load_emulator_info(value) if value else None
