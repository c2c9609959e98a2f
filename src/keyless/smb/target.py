"""Which URL a ticket exchange goes to: Azure's File endpoint, or a keyless emulator's account URL.

Shared by ``keyless smb`` and the agent, so a refresh resolves an endpoint exactly as ``smb set`` did.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from keyless.smb.errors import InvalidEndpoint, SmbError
from keyless.smb.exchange import Endpoint, emulator_endpoint, parse_endpoint


class EmulatorMissing(SmbError):
    cause = "emulator_missing"
    exit_code = 2


def read_emulator(path: str | Path) -> dict[str, Any]:
    """The emulator.json at ``path`` (or in the directory ``path``)."""
    p = Path(path)
    if p.is_dir():
        p = p / "emulator.json"
    try:
        info = json.loads(p.read_text())
    except FileNotFoundError:
        raise EmulatorMissing(f"no emulator.json at {p}: the emulator is not running",
                              remedy="Start it with: keyless emulator") from None
    except ValueError as exc:
        raise EmulatorMissing(f"{p} is not an emulator.json: {exc}") from None
    if not isinstance(info, dict) or "files_url" not in info:
        raise EmulatorMissing(f"{p} is not an emulator.json: no files_url")
    return info


def endpoint_for(uri: str, emu: dict[str, Any] | None) -> Endpoint:
    if emu is None:
        return parse_endpoint(uri)
    # With an emulator, the URI may be the Azure name or the emulator's own account URL.
    try:
        account = parse_endpoint(uri).account
    except InvalidEndpoint:
        account = uri.rstrip("/").rsplit("/", 1)[-1]
    return emulator_endpoint(account, str(emu["files_url"]))
