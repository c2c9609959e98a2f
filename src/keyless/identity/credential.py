"""``ManagedIdentityCredential``: the public entry point, an azure-core ``TokenCredential``.

Named like azure-identity's so users find it, and usable wherever an Azure SDK takes a credential::

    from keyless.identity import ManagedIdentityCredential
    cred = ManagedIdentityCredential(client_id="...")            # or object_id= / resource_id=
    ShareServiceClient(url, credential=cred, token_intent="backup")

It gives single flight (N threads missing the cache make one request), advisory / mandatory refresh
windows with back-off after a failed refresh, an optional cache shared by the processes of a user
(``shared_cache=True``), IMDS retries as documented (410 for 70 s, 400 never), a lock-free cache hit, and
errors that say what to do. Token sources are detected from the environment
(``keyless.identity.detect``) unless ``source=`` names one (or is a source object, or any object with
azure-core's ``get_token``).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from keyless.clock import SYSTEM_CLOCK, Clock, SystemClock
from keyless.identity._azure import SafeAccessToken, SafeAccessTokenInfo, options_get
from keyless.identity.audience import resolve_audience, resource_for_scopes
from keyless.identity.cache import CacheKey, TokenCache
from keyless.identity.detect import Detection, detect_source
from keyless.identity.errors import CredentialConfigError
from keyless.identity.retry import DEFAULT_RETRY, RetryPolicy
from keyless.identity.shared_cache import SharedTokenCache, default_directory
from keyless.identity.sources.appservice import AppServiceSource
from keyless.identity.sources.arc import ArcSource
from keyless.identity.sources.azure_core import AzureCoreSource
from keyless.identity.sources.base import Selector, TokenSource
from keyless.identity.sources.imds import ImdsSource
from keyless.identity.sources.static import StaticTokenSource
from keyless.identity.sources.workload import WorkloadIdentitySource
from keyless.identity.token import Token
from keyless.identity.transport import Transport, Urllib3Transport

log = logging.getLogger("keyless.identity")


def build_source(name: str, selector: Selector, *, env: Mapping[str, str], transport: Transport | None,
                 retry: RetryPolicy, clock: Clock, timeout: float | None, imds_host: str | None = None,
                 arc_key_dir: str | Path | None = None, token: str | None = None,
                 token_file: str | Path | None = None, tenant_id: str | None = None,
                 authority_host: str | None = None, federated_token_file: str | Path | None = None,
                 rng: random.Random | None = None) -> TokenSource:
    """A token source by name (``imds``, ``appservice``, ``arc``, ``workload``, ``static``)."""
    common: dict[str, Any] = {"env": env, "transport": transport, "retry": retry, "clock": clock,
                              "timeout": timeout, "rng": rng}
    if name == "imds":
        return ImdsSource(selector, host=imds_host, **common)
    if name == "appservice":
        return AppServiceSource(selector, **common)
    if name == "arc":
        return ArcSource(selector, key_dir=arc_key_dir, **common)
    if name == "workload":
        return WorkloadIdentitySource(selector, tenant_id=tenant_id, token_file=federated_token_file,
                                      authority_host=authority_host, **common)
    if name == "static":
        if not selector.is_system:
            raise CredentialConfigError(f"a static token has a fixed identity; remove {selector.describe()}")
        return StaticTokenSource(token, token_file=token_file, env=env, clock=clock)
    raise CredentialConfigError(f"unknown token source {name!r}")


class ManagedIdentityCredential:
    """Managed identity tokens, cached and refreshed; implements azure-core's ``TokenCredential``.

    Selectors (at most one): ``client_id``, ``object_id`` (principal id), ``resource_id`` (ARM id of a
    user-assigned identity); none means system-assigned. ``source``: ``"imds"``, ``"appservice"``,
    ``"arc"``, ``"workload"``, ``"static"``, a source object, or any azure-core credential; None detects.
    ``shared_cache``: False (default), True (``$KEYLESS_TOKEN_CACHE_DIR`` or ``$XDG_RUNTIME_DIR/keyless``),
    a directory, or a ``SharedTokenCache``. ``env`` replaces ``os.environ`` for detection and endpoints
    (the ``--emulator`` switch uses it). ``clock`` and ``transport`` are for tests.
    """

    def __init__(self, *, client_id: str | None = None, object_id: str | None = None,
                 resource_id: str | None = None, source: str | TokenSource | Any | None = None,
                 env: Mapping[str, str] | None = None, imds_host: str | None = None,
                 arc_key_dir: str | Path | None = None, token: str | None = None,
                 token_file: str | Path | None = None, tenant_id: str | None = None,
                 authority_host: str | None = None, federated_token_file: str | Path | None = None,
                 shared_cache: bool | str | Path | SharedTokenCache = False,
                 cache: TokenCache | None = None, retry: RetryPolicy = DEFAULT_RETRY,
                 timeout: float | None = None, transport: Transport | None = None,
                 ca_certs: str | None = None, clock: Clock = SYSTEM_CLOCK,
                 rng: random.Random | None = None) -> None:
        env = dict(os.environ) if env is None else dict(env)
        self._selector = Selector(client_id or None, object_id or None, resource_id or None)
        self._clock = clock
        self._owned_transport: Transport | None = None
        if isinstance(source, str) or source is None:
            explicit = source
            if explicit is None and (token is not None or token_file is not None):
                explicit = "static"
            self.detection = detect_source(env, explicit)
            if transport is None:
                transport = self._owned_transport = Urllib3Transport(ca_certs=ca_certs)
            self.source: TokenSource = build_source(
                self.detection.source, self._selector, env=env, transport=transport, retry=retry, clock=clock,
                timeout=timeout, imds_host=imds_host, arc_key_dir=arc_key_dir, token=token,
                token_file=token_file, tenant_id=tenant_id, authority_host=authority_host,
                federated_token_file=federated_token_file, rng=rng)
        elif callable(getattr(source, "fetch", None)) and hasattr(source, "cache_scope"):
            self.source = source
            self.detection = Detection(source.name, "source object given")
        else:
            self.source = AzureCoreSource(source, clock=clock)
            self.detection = Detection(self.source.name, f"wrapping {type(source).__name__}")
        self._cache = cache or TokenCache(clock=clock)
        self._shared = self._make_shared(shared_cache, env, clock)
        # scopes tuple -> (key, fetcher): the hit path does one dict lookup instead of parsing scopes.
        self._keys: dict[tuple[str, ...], tuple[CacheKey, Callable[[], Token]]] = {}
        # The hit path of get_token: scopes -> (advisory point, AccessToken, cache generation). One dict
        # lookup, one clock read, two comparisons; anything else (a stale memo, an invalidation, a
        # claims challenge) falls through to the cache proper.
        self._hot: dict[tuple[str, ...], tuple[float, SafeAccessToken, int]] = {}
        self._now: Callable[[], float] = time.time if isinstance(clock, SystemClock) else clock.now

    @staticmethod
    def _make_shared(value: bool | str | Path | SharedTokenCache, env: Mapping[str, str],
                     clock: Clock) -> SharedTokenCache | None:
        if isinstance(value, SharedTokenCache):
            return value
        if value is False:
            return None
        if value is True:
            directory = default_directory(env)
            if directory is None:
                log.info("shared token cache off: neither KEYLESS_TOKEN_CACHE_DIR nor XDG_RUNTIME_DIR is set")
                return None
            return SharedTokenCache(directory, clock=clock)
        return SharedTokenCache(Path(value), clock=clock)

    # --- who ---------------------------------------------------------------------------------------

    @property
    def source_name(self) -> str:
        return self.source.name

    @property
    def identity(self) -> str:
        return self.source.identity

    @property
    def cache(self) -> TokenCache:
        return self._cache

    @property
    def shared_cache(self) -> SharedTokenCache | None:
        return self._shared

    # --- tokens ------------------------------------------------------------------------------------

    def _entry(self, resource: str) -> tuple[CacheKey, Callable[[], Token]]:
        key = CacheKey(self.source.cache_scope, resource)
        source, shared = self.source, self._shared
        if shared is None:
            def fetch() -> Token:
                return source.fetch(resource)
        else:
            def fetch() -> Token:
                return shared.get_or_fetch(key, lambda: source.fetch(resource))
        return key, fetch

    def _lookup(self, scopes: tuple[str, ...]) -> tuple[CacheKey, Callable[[], Token]]:
        hit = self._keys.get(scopes)
        if hit is None:
            hit = self._keys[scopes] = self._entry(resource_for_scopes(scopes))
        return hit

    def token(self, audience: str | None = None, *, force_refresh: bool = False) -> Token:
        """keyless's own call: a ``Token`` (with source and identity).

        ``audience``: a resource, a ``.default`` scope, ``rest`` or ``smb``; None means REST storage.
        """
        resource = resolve_audience(audience)
        key, fetch = self._lookup((resource,))
        if force_refresh:
            self._cache.invalidate(key)
        return self._cache.get(key, fetch)

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> SafeAccessToken:
        """azure-core ``TokenCredential.get_token``. One scope; ``R/.default`` means resource ``R/``.

        ``claims`` (a claims challenge from a 401) drops the cached token so the next one is fresh;
        ``tenant_id`` and ``enable_cae`` do not apply to managed identities and are ignored, as in
        azure-identity.
        """
        if not claims:
            hot = self._hot.get(scopes)
            if hot is not None and self._now() < hot[0] and hot[2] == self._cache.generation:
                return hot[1]
        key, fetch = self._lookup(scopes)
        if claims:
            self._cache.invalidate(key)
        generation = self._cache.generation
        token = self._cache.get(key, fetch)
        access = token.to_access_token()
        self._hot[scopes] = (token.refresh_on, access, generation)
        return access

    def get_token_info(self, *scopes: str, options: Any = None) -> SafeAccessTokenInfo:
        """azure-core ``SupportsTokenInfo.get_token_info`` (adds ``refresh_on`` and ``token_type``)."""
        key, fetch = self._lookup(scopes)
        if options_get(options, "claims"):
            self._cache.invalidate(key)
        return self._cache.get(key, fetch).to_access_token_info()

    def invalidate(self, audience: str | None = None, *, token: str | None = None) -> bool:
        """The 401 path: drop the cached token (for ``audience``, or all; only if it is still ``token``).

        Dropped here and in the shared cache, so no process of this user is handed the refused token again.
        """
        if audience is None:
            keys = {key for key, _ in self._keys.values()}
            dropped = self._cache.invalidate(None, token=token)
        else:
            key, _ = self._lookup((resolve_audience(audience),))
            keys = {key}
            dropped = self._cache.invalidate(key, token=token)
        if self._shared is not None:
            for key in keys:
                dropped = self._shared.evict(key, token=token) or dropped
        return dropped

    # --- lifetime ----------------------------------------------------------------------------------

    def close(self) -> None:
        self.source.close()
        if self._owned_transport is not None:
            self._owned_transport.close()

    def __enter__(self) -> ManagedIdentityCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"ManagedIdentityCredential(source={self.source_name!r}, identity={self.identity!r}, "
                f"shared_cache={self._shared is not None})")
