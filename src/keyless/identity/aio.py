"""Async twin: ``keyless.identity.aio.ManagedIdentityCredential`` implements azure-core's
``AsyncTokenCredential`` (``async get_token``), for ``azure.storage.fileshare.aio`` and asyncio code.

A cache hit is answered on the event loop without a thread hop or a lock. A miss runs the sync
credential's fetch in a worker thread (the token endpoints are reached with urllib3, which blocks), where
the sync cache's single flight already makes every concurrent miss, from coroutines and threads alike,
share one request. The event loop is never blocked by a retry back-off.
"""

from __future__ import annotations

import asyncio
from typing import Any

from keyless.identity._azure import SafeAccessToken, SafeAccessTokenInfo, options_get
from keyless.identity.credential import ManagedIdentityCredential as _SyncCredential
from keyless.identity.token import Token


class ManagedIdentityCredential:
    """Same arguments as ``keyless.identity.ManagedIdentityCredential``; awaitable methods."""

    def __init__(self, **kwargs: Any) -> None:
        self._sync = _SyncCredential(**kwargs)

    @property
    def sync(self) -> _SyncCredential:
        """The sync credential sharing this one's cache (hand it to sync code in the same process)."""
        return self._sync

    @property
    def source_name(self) -> str:
        return self._sync.source_name

    @property
    def identity(self) -> str:
        return self._sync.identity

    async def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                        enable_cae: bool = False, **kwargs: Any) -> SafeAccessToken:
        if not claims:
            key, _ = self._sync._lookup(scopes)
            token = self._sync.cache.peek(key)
            if token is not None:
                return token.to_access_token()
        return await asyncio.to_thread(self._sync.get_token, *scopes, claims=claims)

    async def get_token_info(self, *scopes: str, options: Any = None) -> SafeAccessTokenInfo:
        if not options_get(options, "claims"):
            key, _ = self._sync._lookup(scopes)
            token = self._sync.cache.peek(key)
            if token is not None:
                return token.to_access_token_info()
        return await asyncio.to_thread(self._sync.get_token_info, *scopes, options=options)

    async def token(self, audience: str | None = None, *, force_refresh: bool = False) -> Token:
        return await asyncio.to_thread(self._sync.token, audience, force_refresh=force_refresh)

    def invalidate(self, audience: str | None = None, *, token: str | None = None) -> bool:
        return self._sync.invalidate(audience, token=token)

    async def close(self) -> None:
        self._sync.close()

    async def __aenter__(self) -> ManagedIdentityCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"aio.{self._sync!r}"


__all__ = ["ManagedIdentityCredential"]
