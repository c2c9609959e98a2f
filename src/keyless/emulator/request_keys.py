"""Typed per-request slots the layers use to hand facts to the audit middleware.

aiohttp's typed keys instead of bare strings: the type checker sees what each slot holds, and aiohttp
does not warn about string keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from keyless.emulator.auth import Caller

CALLER: web.RequestKey[Caller] = web.RequestKey("keyless.caller", object)  # type: ignore[arg-type]
OPERATION: web.RequestKey[str] = web.RequestKey("keyless.operation", str)
REQUEST_ID: web.RequestKey[str] = web.RequestKey("keyless.request_id", str)
FAULT: web.RequestKey[str] = web.RequestKey("keyless.fault", str)
