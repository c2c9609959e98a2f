# size: every token endpoint (IMDS, App Service, Arc, the authority) lives here because they share the
# identity selection, fault, resource-check and request-counting helpers and one audit dialect.
"""The identity side of the emulator: IMDS, App Service, Azure Arc, the workload-identity exchange and
the authority's discovery documents.

Each endpoint speaks its real counterpart's dialect (parameter names, headers, reply shapes, error
bodies), because the clients under test, azure-identity/msal and keyless's own, parse exactly that:
IMDS and Arc reply with every number as a string and ``expires_in``; App Service replies with
``expires_on`` only; the Entra v2 token endpoint replies with integers. Every issuance and refusal is one
``TokenIssuance`` audit line (never the token) and counts toward the per-source request counters.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from aiohttp import web

from keyless.emulator import request_keys as keys
from keyless.emulator.config import Identity, match_identity
from keyless.emulator.issuer import AssertionRejected, MintedToken
from keyless.emulator_info import CONTROL_HEADER
from keyless.fsutil import atomic_write
from keyless.protocol import (
    APP_SERVICE_API_VERSION,
    ARC_API_VERSION,
    ARC_KEY_MAX_BYTES,
    CLIENT_ASSERTION_TYPE,
    IMDS_API_VERSION,
    IMDS_TOKEN_PATH,
)

if TYPE_CHECKING:
    from keyless.emulator.context import Emulator

SOURCE_IMDS = "imds"
SOURCE_APP_SERVICE = "appservice"
SOURCE_ARC = "arc"
SOURCE_WORKLOAD = "workload"

APP_SERVICE_PATH = "/msi/token"
ARC_PATH = "/arc" + IMDS_TOKEN_PATH
FEDERATED_TOKEN_PATH = "/keyless/federated-token"  # noqa: S105 - a URL path, not a secret
IDENTITY_STATS_PATH = "/keyless/identity-stats"

FEDERATED_FILE_LIFETIME = 24 * 3600.0  # files are written once at start-up; a day outlives most test runs
ARC_SECRET_LIFETIME = 600.0
_ARC_MAX_PENDING = 256
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_JSON = "application/json"
_MISSING_API_VERSION = {"error": "invalid_request",
                        "error_description": "Required query variable 'api-version' is missing"}


# --- shared helpers ------------------------------------------------------------------------------------


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body, separators=(",", ":")), content_type=_JSON,
                        charset="utf-8", headers=headers)


def _first(request: web.Request, *names: str) -> str | None:
    for name in names:
        value = request.query.get(name)
        if value:
            return value
    return None


def attached_identities(ctx: Emulator) -> list[Identity]:
    return [ident for ident in ctx.config.identities if ident.attached]


def _valid_resource(resource: str) -> bool:
    """Entra knows resources by URI or application id; anything else is AADSTS500011."""
    if resource.startswith(("https://", "http://", "api://")):
        return bool(urlparse(resource).netloc)
    try:
        uuid.UUID(resource)
    except ValueError:
        return False
    return True


class _Tracker:
    """Per-source request counters and the audit line of each issuance or refusal."""

    def __init__(self, ctx: Emulator) -> None:
        self.ctx = ctx
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def seen(self, source: str) -> None:
        with self._lock:
            self.counts[source] += 1

    def record(self, request: web.Request, source: str, status: int, *, error: str | None = None,
               identity: Identity | None = None, resource: str | None = None) -> None:
        self.ctx.audit.write(
            "TokenIssuance",
            source=source,
            status=status,
            error=error,
            object_id=identity.object_id if identity else None,
            app_id=identity.client_id if identity else None,
            resource=resource,
            method=request.method,
            uri=request.path,
            client_request_id=request.headers.get("x-ms-client-request-id"),
            fault=request.get(keys.FAULT),
        )


async def _fault(ctx: Emulator, tracker: _Tracker, request: web.Request,
                 source: str) -> web.StreamResponse | None:
    """The fault injector's answer, if it has one; a dropped connection propagates as it raises."""
    tracker.seen(source)
    try:
        answer = await ctx.faults.apply(request, "imds")
    except Exception:
        tracker.record(request, source, 0, error="ConnectionDropped")
        raise
    if answer is not None:
        tracker.record(request, source, answer.status, error="InjectedFault")
    return answer


def _select_identity(ctx: Emulator, client_id: str | None, object_id: str | None,
                     resource_id: str | None) -> Identity | None:
    candidates = attached_identities(ctx)
    if client_id is None and object_id is None and resource_id is None:
        system = [i for i in candidates if i.kind == "system"]
        if system:
            return system[0]
        users = [i for i in candidates if i.kind == "user"]
        return users[0] if len(users) == 1 else None
    return match_identity(candidates, client_id=client_id, object_id=object_id, resource_id=resource_id)


def _not_found_message(ctx: Emulator, selector: str | None) -> str:
    if selector:
        return "Identity not found"
    users = [i for i in attached_identities(ctx) if i.kind == "user"]
    if len(users) > 1:
        return ("Multiple user assigned identities exist, please specify the clientId / resourceId of the "
                "identity in the token request")
    return "Identity not found"


def _check_control(ctx: Emulator, request: web.Request) -> None:
    given = request.headers.get(CONTROL_HEADER, "")
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), ctx.control_secret.encode()):
        raise web.HTTPForbidden(text='{"error":"control secret missing or wrong"}', content_type=_JSON)


def _imds_reply(token: MintedToken, identity: Identity) -> dict[str, str]:
    return {
        "access_token": token.access_token,
        "client_id": identity.client_id,
        "expires_in": str(token.expires_in),
        "expires_on": str(token.expires_on),
        "ext_expires_in": str(token.expires_in),
        "not_before": str(token.not_before),
        "resource": token.resource,
        "token_type": "Bearer",
    }


def _oauth_error(error: str, description: str) -> dict[str, str]:
    return {"error": error, "error_description": description}


def _invalid_resource(ctx: Emulator, resource: str) -> dict[str, str]:
    return _oauth_error(
        "invalid_resource",
        f"AADSTS500011: The resource principal named {resource} was not found in the tenant named "
        f"{ctx.config.tenant_id}. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You might have sent your "
        "authentication request to the wrong tenant.",
    )


# --- IMDS, App Service, Arc ----------------------------------------------------------------------------


def _oauth_failer(tracker: _Tracker, request: web.Request, source: str) -> Callable[..., web.Response]:
    """An OAuth-style error reply for IMDS-shaped endpoints, recorded (never with a token) as it goes."""

    def fail(status: int, body: dict[str, str], identity: Identity | None = None,
             resource: str | None = None) -> web.Response:
        tracker.record(request, source, status, error=body["error_description"], identity=identity,
                       resource=resource)
        return _json(status, body)

    return fail


def _metadata_request(request: web.Request, min_version: str,
                      fail: Callable[..., web.Response]) -> str | web.Response:
    """The checks IMDS and Arc share: ``Metadata: true``, a known api-version, a resource. The resource,
    or the error reply to send."""
    if request.headers.get("Metadata", "").lower() != "true":
        return fail(400, _oauth_error("invalid_request", "Required metadata header not specified"))
    api_version = request.query.get("api-version")
    if not api_version:
        return fail(400, _MISSING_API_VERSION)
    if not _API_VERSION.match(api_version) or api_version < min_version:
        return fail(400, _oauth_error("invalid_request", "Invalid api-version specified"))
    resource = request.query.get("resource")
    if not resource:
        return fail(400, _oauth_error("invalid_request", "Required query variable 'resource' is missing"))
    return resource


def _mint_for_selector(
    ctx: Emulator, request: web.Request, resource: str, resource_id_params: tuple[str, ...],
    fail: Callable[..., web.Response],
) -> tuple[MintedToken, Identity] | web.Response:
    """IMDS-style identity selection (one of client_id / object_id / resource id), then a token."""
    client_id = _first(request, "client_id")
    object_id = _first(request, "object_id")
    res_id = _first(request, *resource_id_params)
    if sum(x is not None for x in (client_id, object_id, res_id)) > 1:
        return fail(400, _oauth_error(
            "invalid_request", "Only one of client_id, object_id or msi_res_id can be specified"
        ), resource=resource)
    identity = _select_identity(ctx, client_id, object_id, res_id)
    if identity is None:
        message = _not_found_message(ctx, client_id or object_id or res_id)
        return fail(400, _oauth_error("invalid_request", message), resource=resource)
    if not _valid_resource(resource):
        return fail(400, _invalid_resource(ctx, resource), identity=identity, resource=resource)
    return ctx.issuer.mint(identity, resource), identity


def identity_routes(ctx: Emulator) -> list[web.RouteDef]:
    tracker = _tracker_for(ctx)
    arc_state = _ArcState(ctx.data_dir / "arc-tokens")

    async def imds_token(request: web.Request) -> web.StreamResponse:
        source = SOURCE_IMDS
        if (answer := await _fault(ctx, tracker, request, source)) is not None:
            return answer

        fail = _oauth_failer(tracker, request, source)

        # IMDS refuses anything that came through a proxy, so a token never leaves the machine.
        if "X-Forwarded-For" in request.headers:
            return fail(400, _oauth_error("invalid_request", "Request contains X-Forwarded-For header"))
        resource = _metadata_request(request, IMDS_API_VERSION, fail)
        if isinstance(resource, web.Response):
            return resource
        outcome = _mint_for_selector(ctx, request, resource, ("msi_res_id", "mi_res_id"), fail)
        if isinstance(outcome, web.Response):
            return outcome
        token, identity = outcome
        tracker.record(request, source, 200, identity=identity, resource=resource)
        return _json(200, _imds_reply(token, identity))

    async def app_service_token(request: web.Request) -> web.StreamResponse:
        source = SOURCE_APP_SERVICE
        if (answer := await _fault(ctx, tracker, request, source)) is not None:
            return answer
        correlation = str(uuid.uuid4())

        def fail(status: int, message: str, identity: Identity | None = None,
                 resource: str | None = None) -> web.Response:
            tracker.record(request, source, status, error=message, identity=identity, resource=resource)
            # App Service's own error shape (msal folds it into "statusCode, message").
            return _json(status, {"statusCode": status, "message": message, "correlationId": correlation})

        given = request.headers.get("X-IDENTITY-HEADER", "")
        # surrogateescape: header bytes that are not UTF-8 are simply a wrong header value.
        if not given or not hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                                                ctx.app_service_header.encode()):
            return fail(400, "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.")
        if request.query.get("api-version") != APP_SERVICE_API_VERSION:
            return fail(400, f"The api-version is missing or unsupported; use {APP_SERVICE_API_VERSION}.")
        resource = request.query.get("resource")
        if not resource:
            return fail(400, "The resource parameter is required.")
        client_id = _first(request, "client_id")
        object_id = _first(request, "object_id", "principal_id")
        res_id = _first(request, "mi_res_id", "msi_res_id")
        if sum(x is not None for x in (client_id, object_id, res_id)) > 1:
            return fail(400, "Only one of client_id, object_id or mi_res_id can be specified.",
                        resource=resource)
        identity = _select_identity(ctx, client_id, object_id, res_id)
        if identity is None:
            return fail(400, "Unable to load the proper Managed Identity.", resource=resource)
        if not _valid_resource(resource):
            return fail(500, _invalid_resource(ctx, resource)["error_description"], identity, resource)
        token = ctx.issuer.mint(identity, resource)
        tracker.record(request, source, 200, identity=identity, resource=resource)
        return _json(200, {
            "access_token": token.access_token,
            "expires_on": str(token.expires_on),
            "resource": token.resource,
            "token_type": "Bearer",
            "client_id": identity.client_id,
        })

    async def arc_token(request: web.Request) -> web.StreamResponse:
        source = SOURCE_ARC
        if (answer := await _fault(ctx, tracker, request, source)) is not None:
            return answer

        fail = _oauth_failer(tracker, request, source)

        resource = _metadata_request(request, ARC_API_VERSION, fail)
        if isinstance(resource, web.Response):
            return resource

        authorization = request.headers.get("Authorization", "")
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "basic" or not arc_state.accept(secret.strip(), time.monotonic()):
            path = arc_state.challenge(time.monotonic())
            tracker.record(request, source, 401,
                           error="challenge" if not authorization else "wrong secret", resource=resource)
            # msal splits this header on '=', so the realm is the bare path, unquoted.
            return _json(401, _oauth_error("unauthorized", "Authorization header is missing or invalid"),
                         headers={"WWW-Authenticate": f"Basic realm={path}"})

        outcome = _mint_for_selector(ctx, request, resource, ("msi_res_id",), fail)
        if isinstance(outcome, web.Response):
            return outcome
        token, identity = outcome
        tracker.record(request, source, 200, identity=identity, resource=resource)
        reply: dict[str, str] = _imds_reply(token, identity)
        # Agents that support user-assigned identities echo the selector; msal insists on it.
        if _first(request, "object_id") is not None:
            reply["object_id"] = identity.object_id
        if _first(request, "msi_res_id") is not None:
            reply["msi_res_id"] = identity.resource_id
        return _json(200, reply)

    async def federated_token(request: web.Request) -> web.StreamResponse:
        _check_control(ctx, request)
        client_id = request.query.get("client_id", "")
        identity = ctx.config.identity_by(client_id=client_id) if client_id else None
        if identity is None:
            raise web.HTTPNotFound(text=json.dumps({"error": f"no identity with client_id {client_id!r}"}),
                                   content_type=_JSON)
        try:
            lifetime = float(request.query.get("lifetime", "3600"))
        except ValueError:
            raise web.HTTPBadRequest(text='{"error":"lifetime: seconds"}', content_type=_JSON) from None
        return web.Response(text=ctx.issuer.mint_federated_assertion(identity, lifetime),
                            content_type="text/plain")

    async def identity_stats(request: web.Request) -> web.StreamResponse:
        _check_control(ctx, request)
        return web.json_response({"requests": identity_request_counts(ctx)})

    routes = [
        web.get(IMDS_TOKEN_PATH, imds_token),
        web.get(APP_SERVICE_PATH, app_service_token),
        web.get(ARC_PATH, arc_token),
        web.get(FEDERATED_TOKEN_PATH, federated_token),
        web.get(IDENTITY_STATS_PATH, identity_stats),
    ]
    return routes


class _ArcState:
    """Secrets the Arc endpoint has handed out through key files, each valid for a few minutes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._pending: OrderedDict[str, tuple[float, Path]] = OrderedDict()
        self._lock = threading.Lock()

    def challenge(self, now: float) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        secret = secrets.token_hex(32)  # 64 bytes: far below the 4096-byte limit clients enforce
        assert len(secret) <= ARC_KEY_MAX_BYTES
        path = self.directory / f"{uuid.uuid4()}.key"
        atomic_write(path, secret.encode("ascii"))
        with self._lock:
            self._pending[secret] = (now + ARC_SECRET_LIFETIME, path)
            self._expire(now)
        return path

    def accept(self, secret: str, now: float) -> bool:
        if not secret:
            return False
        with self._lock:
            self._expire(now)
            for known in self._pending:
                if hmac.compare_digest(known.encode(), secret.encode("utf-8", "surrogateescape")):
                    return True
        return False

    def _expire(self, now: float) -> None:
        while self._pending:
            secret, (deadline, path) = next(iter(self._pending.items()))
            if deadline > now and len(self._pending) <= _ARC_MAX_PENDING:
                break
            del self._pending[secret]
            path.unlink(missing_ok=True)


_TRACKER_ATTR = "_keyless_identity_tracker"


def _tracker_for(ctx: Emulator) -> _Tracker:
    """One tracker per emulator, shared by the HTTP and HTTPS listeners' routes."""
    tracker = getattr(ctx, _TRACKER_ATTR, None)
    if not isinstance(tracker, _Tracker):
        tracker = _Tracker(ctx)
        setattr(ctx, _TRACKER_ATTR, tracker)
    return tracker


def identity_request_counts(ctx: Emulator) -> dict[str, int]:
    """Requests seen per source (imds, appservice, arc, workload), faults included."""
    tracker = _tracker_for(ctx)
    with tracker._lock:
        return dict(tracker.counts)


# --- the authority (Entra ID): workload-identity exchange and discovery --------------------------------


def _aad_error(status: int, error: str, aadsts: int, message: str, **extra: Any) -> web.Response:
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    body = {
        "error": error,
        "error_description": f"AADSTS{aadsts}: {message} Trace ID: {trace} Correlation ID: {correlation} "
        f"Timestamp: {stamp}",
        "error_codes": [aadsts],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={aadsts}",
        **extra,
    }
    return _json(status, body)


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def authority_routes(ctx: Emulator) -> list[web.RouteDef]:
    tenant_id = ctx.config.tenant_id
    known_tenants = {tenant_id.lower(), "common", "organizations"}

    def tenant_ok(tenant: str) -> bool:
        return tenant.lower() in known_tenants

    def tenant_missing(tenant: str) -> web.Response:
        return _aad_error(400, "invalid_tenant", 90002,
                          f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                          "and are signing into the correct cloud.")

    async def token(request: web.Request) -> web.StreamResponse:
        tracker = _tracker_for(ctx)
        source = SOURCE_WORKLOAD
        if (answer := await _fault(ctx, tracker, request, source)) is not None:
            return answer
        tenant = request.match_info["tenant"]
        try:
            form = await request.post()
        except (UnicodeDecodeError, ValueError):
            # A form body that is not UTF-8 url-encoded text: the client's mistake, answered like any other.
            tracker.record(request, source, 400, error="AADSTS900144")
            return _aad_error(400, "invalid_request", 900144,
                              "The request body must be UTF-8 application/x-www-form-urlencoded form data.")
        field = {k: v for k, v in form.items() if isinstance(v, str)}
        scope = field.get("scope", "")

        def fail(status: int, error: str, aadsts: int, message: str, identity: Identity | None = None,
                 resource: str | None = None) -> web.Response:
            tracker.record(request, source, status, error=f"AADSTS{aadsts}", identity=identity,
                           resource=resource)
            return _aad_error(status, error, aadsts, message)

        if not tenant_ok(tenant):
            tracker.record(request, source, 400, error="AADSTS90002")
            return tenant_missing(tenant)
        grant = field.get("grant_type", "")
        if not grant:
            return fail(400, "invalid_request", 900144,
                        "The request body must contain the following parameter: 'grant_type'.")
        if grant != "client_credentials":
            return fail(400, "unsupported_grant_type", 70003,
                        f"The app requested an unsupported grant type '{grant[:64]}'.")
        client_id = field.get("client_id", "")
        if not client_id:
            return fail(400, "invalid_request", 900144,
                        "The request body must contain the following parameter: 'client_id'.")
        if not scope:
            return fail(400, "invalid_request", 900144,
                        "The request body must contain the following parameter: 'scope'.")
        scopes = [s for s in scope.split() if s not in ("openid", "profile", "offline_access")]
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            return fail(400, "invalid_scope", 1002012,
                        f"The provided value for scope {scope[:200]} is not valid. Client credential flows "
                        "must have a scope value with /.default suffixed to the resource identifier "
                        "(application ID URI).")
        resource = scopes[0][: -len("/.default")]
        assertion = field.get("client_assertion", "")
        if not assertion:
            return fail(401, "invalid_client", 7000218,
                        "The request body must contain the following parameter: 'client_assertion' or "
                        "'client_secret'.")
        if field.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            return fail(400, "invalid_request", 900144,
                        "The request body must contain the following parameter: 'client_assertion_type'.")
        identity = ctx.config.identity_by(client_id=client_id)
        if identity is None or identity.kind != "user":
            return fail(400, "unauthorized_client", 700016,
                        f"Application with identifier '{client_id[:64]}' was not found in the directory "
                        f"'{tenant_id}'. This can happen if the application has not been installed by the "
                        "administrator of the tenant or consented to by any user in the tenant. You may have "
                        "sent your authentication request to the wrong tenant.")
        try:
            ctx.issuer.verify_federated_assertion(assertion, identity)
        except AssertionRejected as rejected:
            status = 401 if rejected.error == "invalid_client" else 400
            return fail(status, rejected.error, rejected.aadsts, rejected.message, identity, resource)
        if not _valid_resource(resource):
            return fail(400, "invalid_resource", 500011,
                        f"The resource principal named {resource[:200]} was not found in the tenant named "
                        f"{tenant_id}.", identity, resource)
        minted = ctx.issuer.mint(identity, resource)
        tracker.record(request, source, 200, identity=identity, resource=resource)
        return _json(200, {
            "token_type": "Bearer",
            "expires_in": minted.expires_in,
            "ext_expires_in": minted.expires_in,
            "access_token": minted.access_token,
        })

    async def openid_v2(request: web.Request) -> web.StreamResponse:
        tenant = request.match_info["tenant"]
        if not tenant_ok(tenant):
            return tenant_missing(tenant)
        return _json(200, ctx.issuer.openid_configuration(_base_url(request)))

    async def openid_v1(request: web.Request) -> web.StreamResponse:
        tenant = request.match_info["tenant"]
        if not tenant_ok(tenant):
            return tenant_missing(tenant)
        base = _base_url(request)
        doc = ctx.issuer.openid_configuration(base)
        doc.update({
            "token_endpoint": f"{base}/{tenant_id}/oauth2/token",
            "jwks_uri": f"{base}/common/discovery/keys",
            "issuer": ctx.issuer.issuer,
            "authorization_endpoint": f"{base}/{tenant_id}/oauth2/authorize",
        })
        return _json(200, doc)

    async def keys(request: web.Request) -> web.StreamResponse:
        tenant = request.match_info.get("tenant", "common")
        if not tenant_ok(tenant):
            return tenant_missing(tenant)
        return _json(200, ctx.issuer.jwks())

    async def instance_discovery(request: web.Request) -> web.StreamResponse:
        # What msal asks when told to use this host for instance discovery: where the tenant's
        # OpenID configuration lives, and which host aliases are the same cloud.
        base = _base_url(request)
        endpoint = request.query.get("authorization_endpoint", "")
        parts = [p for p in urlparse(endpoint).path.split("/") if p]
        tenant = parts[0] if parts else "common"
        return _json(200, {
            "tenant_discovery_endpoint": f"{base}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": request.query.get("api-version", "1.1"),
            "metadata": [{"preferred_network": request.host, "preferred_cache": request.host,
                          "aliases": [request.host]}],
        })

    # The tenant segment only matches the emulator's tenant, common and organizations, so that on the
    # HTTPS listener a Files path such as /<account>/discovery/keys still reaches the Files handlers.
    t = "{tenant:(?i:" + re.escape(tenant_id) + "|common|organizations)}"
    return [
        web.get("/common/discovery/instance", instance_discovery),
        web.post(f"/{t}/oauth2/v2.0/token", token),
        web.get(f"/{t}/v2.0/.well-known/openid-configuration", openid_v2),
        web.get(f"/{t}/.well-known/openid-configuration", openid_v1),
        web.get(f"/{t}/discovery/v2.0/keys", keys),
        web.get(f"/{t}/discovery/keys", keys),
    ]


def write_federated_token_files(ctx: Emulator) -> dict[str, str]:
    """One assertion file per user-assigned identity (what AKS projects into a pod), 0600.

    Returns client id -> path, for ``emulator.json`` and AZURE_FEDERATED_TOKEN_FILE.
    """
    directory = ctx.data_dir / "workload"
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    out: dict[str, str] = {}
    for identity in ctx.config.identities:
        if identity.kind != "user":
            continue
        path = directory / f"{identity.client_id}.token"
        assertion = ctx.issuer.mint_federated_assertion(identity, FEDERATED_FILE_LIFETIME)
        atomic_write(path, assertion.encode("ascii"))
        out[identity.client_id] = str(path)
    return out
