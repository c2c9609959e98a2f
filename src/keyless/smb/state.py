"""The agent's state: which endpoints to keep fresh, with which identity, and how each one is doing.

Two JSON files side by side, both 0600 and replaced atomically (``keyless.fsutil.atomic_write``):

- ``agent.json`` (the *registry*): written by ``keyless smb set`` / ``clear``, read by the agent. Each entry
  records where the token comes from (the source kind and its non-secret selectors: client id, tenant,
  federated token *file*, authority host), the cache, the config and emulator paths. Never a token: a
  ticket made from a token given on the command line is recorded as ``manual``, which the agent cannot
  refresh and ``status`` says so.
- ``agent.status.json``: written by the agent only (last refresh, ticket end, next attempt, last error).

Read-modify-write of either file happens under an exclusive ``fcntl`` lock on a sibling ``.lock`` file
(the data files themselves are replaced by rename, so a lock on them would lock a stale inode).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from keyless.fsutil import atomic_write
from keyless.smb.errors import SmbError

STATE_ENV = "KEYLESS_AGENT_STATE"
DEFAULT_STATE_PATH = Path("/var/lib/keyless/agent.json")
STATE_VERSION = 1
MANUAL = "manual"  # a token given directly: nothing to refresh it from


class StateError(SmbError):
    cause = "state_error"
    exit_code = 10


def state_path(explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Path:
    """``--state`` first, then ``$KEYLESS_AGENT_STATE``, then ``/var/lib/keyless/agent.json``."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if env.get(STATE_ENV):
        return Path(env[STATE_ENV])
    return DEFAULT_STATE_PATH


def status_path(path: Path) -> Path:
    return path.with_name(path.stem + ".status.json")


@dataclass(frozen=True)
class Source:
    """Where a token comes from; the same fields as ``manager.IdentitySpec`` minus the token itself."""

    kind: str  # manual | system | imds | client-id | workload
    client_id: str | None = None
    tenant_id: str | None = None
    token_file: str | None = None
    authority_host: str | None = None

    def describe(self) -> str:
        if self.kind == MANUAL:
            return "a token given directly (manual: the agent cannot refresh it)"
        if self.kind == "system":
            return "system-assigned managed identity"
        if self.kind == "imds":
            if not self.client_id:
                return "system-assigned managed identity (IMDS)"
            return f"user-assigned identity {self.client_id} (IMDS)"
        if self.kind == "client-id":
            return f"user-assigned identity {self.client_id}"
        return f"workload identity {self.client_id} (tenant {self.tenant_id})"


@dataclass(frozen=True)
class Registration:
    uri: str
    account: str
    server: str  # cifs/<account>.file.core.windows.net@REALM: with the cache, what identifies the ticket
    ccache: str
    source: Source
    config: str | None = None
    emulator: str | None = None
    registered_at: float = 0.0

    @property
    def key(self) -> str:
        return registration_key(self.server, self.ccache)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["source"] = {k: v for k, v in asdict(self.source).items() if v is not None}
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Registration:
        names = {f.name for f in fields(cls)}
        src_names = {f.name for f in fields(Source)}
        src = raw.get("source") or {}
        return cls(**{k: v for k, v in raw.items() if k in names and k != "source"},
                   source=Source(**{k: v for k, v in src.items() if k in src_names}))


def registration_key(server: str, ccache: str) -> str:
    return f"{server} {ccache}"


@dataclass
class EndpointStatus:
    """What the agent last did for one registration (written by the agent, read by ``status``)."""

    last_attempt: float | None = None
    last_success: float | None = None
    ticket_end: float | None = None
    next_attempt: float | None = None
    failures: int = 0
    last_error: dict[str, Any] | None = None  # {"cause", "message", "remedy", "at"}; never a token
    note: str | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> EndpointStatus:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


@dataclass
class AgentStatus:
    pid: int | None = None
    started: float | None = None
    heartbeat: float | None = None
    endpoints: dict[str, EndpointStatus] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "pid": self.pid, "started": self.started,
                "heartbeat": self.heartbeat,
                "endpoints": {k: asdict(v) for k, v in self.endpoints.items()}}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> AgentStatus:
        endpoints = raw.get("endpoints") or {}
        return cls(pid=raw.get("pid"), started=raw.get("started"), heartbeat=raw.get("heartbeat"),
                   endpoints={k: EndpointStatus.from_json(v) for k, v in endpoints.items()})


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Exclusive lock shared by every writer of ``path`` (smb set, smb clear, the agent)."""
    lock = path.with_name(path.name + ".lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StateError(f"cannot use the agent state directory {path.parent}: {exc.strerror}",
                         remedy="Run as root, or choose a writable file with --state or "
                                "KEYLESS_AGENT_STATE.") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except PermissionError:
        raise StateError(f"not permitted to read {path}",
                         remedy="Run as root, or choose a file with --state.") from None
    except ValueError as exc:
        raise StateError(f"{path} is not valid JSON ({exc}); move it aside and register the endpoints "
                         "again with keyless smb set") from None
    if not isinstance(raw, dict):
        raise StateError(f"{path}: expected a JSON object")
    return raw


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    try:
        atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), mode=0o600)
    except OSError as exc:
        raise StateError(f"cannot write {path}: {exc.strerror}",
                         remedy="Run as root, or choose a writable file with --state.") from None


def load_registrations(path: Path) -> dict[str, Registration]:
    raw = _read_json(path)
    out: dict[str, Registration] = {}
    for key, entry in (raw.get("endpoints") or {}).items():
        try:
            reg = Registration.from_json(entry)
        except TypeError as exc:
            raise StateError(f"{path}: endpoint {key!r} is malformed ({exc})") from None
        out[reg.key] = reg
    return out


def register(path: Path, reg: Registration) -> None:
    """Add or replace ``reg`` (same server and cache: the newest ``smb set`` wins)."""
    with locked(path):
        raw = _read_json(path)
        endpoints = dict(raw.get("endpoints") or {})
        endpoints[reg.key] = reg.to_json()
        _write_json(path, {"version": STATE_VERSION, "endpoints": endpoints})


def unregister(path: Path, server: str, ccache: str) -> bool:
    with locked(path):
        raw = _read_json(path)
        endpoints = dict(raw.get("endpoints") or {})
        if endpoints.pop(registration_key(server, ccache), None) is None:
            return False
        _write_json(path, {"version": STATE_VERSION, "endpoints": endpoints})
        return True


def load_status(path: Path) -> AgentStatus:
    return AgentStatus.from_json(_read_json(status_path(path)))


def save_status(path: Path, status: AgentStatus) -> None:
    target = status_path(path)
    with locked(target):
        _write_json(target, status.to_json())
