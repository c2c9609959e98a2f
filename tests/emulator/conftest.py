"""In-process emulator contexts for unit tests of the emulator's parts.

``emulator_ctx`` is a real :class:`Emulator` (real AuditLog, Clock and TokenIssuer) for the demo world,
with a stub store and a stub fault injector; ``make_emulator`` builds one for any config. ``serve_app``
runs an aiohttp app on 127.0.0.1 in a background thread, for synchronous clients such as azure-identity.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inprocess_emulator import make_emulator, serve_app
from keyless.emulator.config import config_from_dict
from keyless.emulator.context import Emulator

# A world with two accounts, two shares, a system identity, two user identities (one detached) and
# share-scoped and account-scoped roles: enough to exercise selection, scope and refusal paths.
RICH_CONFIG: dict[str, Any] = {
    "accounts": [
        {"name": "devaccount", "smb_oauth": True, "shares": ["demo", "other"]},
        {"name": "nokeyacct", "allow_shared_key": False, "shares": ["data"]},
    ],
    "identities": [
        {"name": "vm", "type": "system"},
        {"name": "app1", "type": "user"},
        {"name": "app2", "type": "user"},
        {"name": "gone", "type": "user", "attached": False},
    ],
    "role_assignments": [
        {"role": "Storage File Data Privileged Contributor", "principal": "vm", "scope": "devaccount/demo"},
        {"role": "Storage File Data Privileged Reader", "principal": "app1", "scope": "devaccount"},
        {"role": "Storage File Data Privileged Contributor", "principal": "app2", "scope": "nokeyacct"},
    ],
}


@pytest.fixture
def emulator_ctx(tmp_path: Path) -> Iterator[Emulator]:
    """The demo world (account devaccount, share demo, one system identity with both roles)."""
    ctx = make_emulator(tmp_path / "emu")
    yield ctx
    ctx.audit.close()


@pytest.fixture
def rich_ctx(tmp_path: Path) -> Iterator[Emulator]:
    ctx = make_emulator(tmp_path / "emu", config_from_dict(json.loads(json.dumps(RICH_CONFIG))))
    yield ctx
    ctx.audit.close()


def audit_lines(ctx: Emulator) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ctx.audit.path.read_text().splitlines() if line]


@pytest.fixture
def served() -> Callable[..., Any]:
    return serve_app
