"""Request-scoped types: who is calling, and the typed per-request slots the layers fill for the audit log.

A leaf module (it imports nothing of the emulator), so authentication, fault injection, the handlers and
the server middleware can all share these types without importing each other. aiohttp's typed keys
instead of bare strings: the type checker sees what each slot holds, and aiohttp does not warn about
string keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

AUTH_OAUTH = "OAuth"
AUTH_ACCOUNT_KEY = "AccountKey"
AUTH_ANONYMOUS = "Anonymous"


@dataclass(frozen=True)
class Caller:
    auth_type: str  # AUTH_OAUTH | AUTH_ACCOUNT_KEY | AUTH_ANONYMOUS
    object_id: str | None
    app_id: str | None


CALLER: web.RequestKey[Caller] = web.RequestKey("keyless.caller", Caller)
OPERATION: web.RequestKey[str] = web.RequestKey("keyless.operation", str)
REQUEST_ID: web.RequestKey[str] = web.RequestKey("keyless.request_id", str)
FAULT: web.RequestKey[str] = web.RequestKey("keyless.fault", str)
