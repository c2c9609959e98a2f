"""Everything a request handler needs, in one object built once at start-up.

The parts (token issuer, file store, fault injector, audit log) are separate modules with one job each;
this module only wires them and keeps the secrets the emulator generates for itself (account keys,
App Service header, control secret) in ``DIR/secrets.json`` (0600), so they survive restarts.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyless.emulator.audit import AuditLog
from keyless.emulator.clock import Clock
from keyless.emulator.config import EmulatorConfig, FaultRule, RoleAssignment
from keyless.emulator.copy_engine import CopyEngine
from keyless.fsutil import atomic_write

if TYPE_CHECKING:
    from keyless.emulator.faults import FaultInjector
    from keyless.emulator.issuer import TokenIssuer
    from keyless.emulator.kerberos import KerberosMinter
    from keyless.emulator.storage import Store


def load_or_create_secrets(data_dir: Path, config: EmulatorConfig) -> dict[str, Any]:
    """Generated secrets, stable per data directory; configured values always win."""
    path = data_dir / "secrets.json"
    stored: dict[str, Any] = {}
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ValueError(f"{path}: unreadable; delete it to have new secrets generated") from None
    changed = False
    keys: dict[str, str] = stored.setdefault("account_keys", {})
    for acct in config.accounts:
        if acct.key is None and acct.name not in keys:
            keys[acct.name] = base64.b64encode(secrets.token_bytes(64)).decode("ascii")
            changed = True
    for name in ("app_service_header", "control_secret"):
        if name not in stored:
            stored[name] = secrets.token_urlsafe(24)
            changed = True
    if changed or not path.exists():
        atomic_write(path, json.dumps(stored, indent=2).encode("utf-8"))
    return stored


@dataclass
class Emulator:
    config: EmulatorConfig
    data_dir: Path
    clock: Clock
    audit: AuditLog
    account_keys: dict[str, str]  # base64, as the portal shows them
    app_service_header: str
    control_secret: str
    issuer: TokenIssuer
    store: Store
    faults: FaultInjector
    role_assignments: list[RoleAssignment] = field(default_factory=list)
    kerberos: KerberosMinter | None = None  # service keys (DIR/cifs.keytab) and ticket minting
    files_url: str = ""  # set once the HTTPS listener is bound
    imds_url: str = ""  # set once the HTTP listener is bound
    copies: CopyEngine = field(default_factory=CopyEngine)  # pending Copy File operations and their rate
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def account_key_bytes(self, account: str) -> bytes | None:
        key = self.account_keys.get(account)
        return base64.b64decode(key) if key else None

    def set_role_assignments(self, roles: list[RoleAssignment]) -> None:
        with self._lock:
            self.role_assignments = list(roles)

    def set_faults(self, rules: list[FaultRule]) -> None:
        self.faults.replace(rules)
