"""Server assembly: two listeners, the middleware every request passes, and the run loop.

- plain HTTP (as in Azure): IMDS, App Service, Arc, the authority (token exchange, discovery, JWKS) and
  the control endpoint tests use to change faults and role assignments at run time;
- HTTPS (certificate from the emulator's own CA): Azure Files REST, IP-style
  ``https://127.0.0.1:PORT/<account>/<share>/<path>``, plus the authority for clients that insist on TLS.

When both listeners are bound, ``DIR/emulator.json`` is written atomically (0600: it holds account keys
and the control secret) and one line goes to stdout. SIGINT/SIGTERM stop it cleanly: listeners close,
in-flight requests finish, the store is closed and ``emulator.json`` removed, so a stale file never points
at a dead emulator after a clean stop (after a kill -9 its ``pid`` tells).
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import hmac
import json
import logging
import os
import signal
import ssl
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from keyless.emulator import arm, sas
from keyless.emulator import request_keys as keys
from keyless.emulator.audit import AuditLog
from keyless.emulator.auth import authenticate, authorize
from keyless.emulator.ca import ensure_tls
from keyless.emulator.clock import Clock
from keyless.emulator.config import ConfigError, EmulatorConfig, _parse_roles, clock_offset, fault_from_dict
from keyless.emulator.context import Emulator, load_or_create_secrets
from keyless.emulator.errors import StorageError, error_body
from keyless.emulator.faults import DropConnection, FaultInjector
from keyless.emulator.files import Security, handle_files_request
from keyless.emulator.files.replies import http_date
from keyless.emulator.identity_endpoints import authority_routes, identity_routes, write_federated_token_files
from keyless.emulator.issuer import TokenIssuer
from keyless.emulator.kerberos import ensure_keytab
from keyless.emulator.storage import Store
from keyless.emulator_info import CONTROL_HEADER, INFO_FILE, EmulatorAccount, EmulatorIdentity, EmulatorInfo
from keyless.fsutil import atomic_write
from keyless.protocol import H_CLIENT_REQUEST_ID, H_ERROR_CODE, H_REQUEST_ID, H_VERSION

log = logging.getLogger("keyless.emulator")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _QuietMalformedHttp(logging.Filter):
    """aiohttp answers malformed HTTP with a 400 by itself and then logs a traceback at ERROR; that is a
    client's mistake, not the emulator's, so it goes to DEBUG-only silence while real errors still show."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, HttpProcessingError)


class DataDirError(RuntimeError):
    """The data directory cannot be used; the message names it and the fix."""


class DataDirInUse(DataDirError):
    """Another emulator holds the data directory's lock."""


def prepare_data_dir(data_dir: Path) -> None:
    """Create the data directory private (0700: account keys, signing key and file bytes live here).

    An existing directory keeps its mode: ``--data .`` or ``--data /tmp`` must not lock other users out
    of it. A directory others can read gets a warning instead, since the keys would be readable if the
    files inside were not 0600.
    """
    if not data_dir.exists():
        try:
            data_dir.mkdir(parents=True, mode=0o700)
        except OSError as exc:
            raise DataDirError(f"cannot create the data directory {data_dir}: {exc.strerror or exc}; "
                               "pass a --data directory you can write") from None
        return
    mode = data_dir.stat().st_mode & 0o777
    if mode & 0o044:
        log.warning("data directory %s is readable by other users (mode %03o); it holds account keys and "
                    "the signing key: use a private directory, or chmod 700 it", data_dir, mode)


def lock_data_dir(data_dir: Path) -> int:
    """Hold an exclusive lock on ``DIR/.lock`` for the life of the process; returns its descriptor.

    Two emulators on one directory overwrite each other's emulator.json and sweep each other's blobs as
    orphans, so the second one refuses to start and names the first.
    """
    path = data_dir / ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:  # a symlink planted there (ELOOP), no permission, ...
        raise DataDirError(
            f"cannot lock the data directory: {path}: {exc.strerror or exc}; "
            "remove it if it is not a regular file, or pass another --data directory"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise DataDirInUse(
            f"data directory {data_dir} is in use by another keyless emulator (pid {holder}); "
            "stop that one, or pass another --data directory"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


def build_context(data_dir: Path, config: EmulatorConfig) -> Emulator:
    prepare_data_dir(data_dir)
    secrets = load_or_create_secrets(data_dir, config)
    keys = {a.name: (a.key or secrets["account_keys"][a.name]) for a in config.accounts}
    clock = Clock(config.clock_offset)
    store = Store(data_dir, clock)
    store.ensure_shares(config)
    return Emulator(
        config=config,
        data_dir=data_dir,
        clock=clock,
        audit=AuditLog(data_dir / "audit.log"),
        account_keys=keys,
        app_service_header=config.app_service_header or secrets["app_service_header"],
        control_secret=secrets["control_secret"],
        issuer=TokenIssuer(data_dir, config, clock),
        store=store,
        faults=FaultInjector(config.faults, seed=config.seed),
        role_assignments=list(config.role_assignments),
        kerberos=ensure_keytab(data_dir, [a.name for a in config.accounts]),
    )


# --- Files side --------------------------------------------------------------------------------------


def _files_middleware(ctx: Emulator) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        request[keys.REQUEST_ID] = request_id
        status = 500
        error_code: str | None = None
        try:
            response = await ctx.faults.apply(request, "files")
            if response is None:
                response = await handler(request)
            status = response.status
            error_code = response.headers.get(H_ERROR_CODE)
        except StorageError as err:
            status, error_code = err.status, err.code
            response = _error_response(request, err, request_id)
        except DropConnection:
            status, error_code = 0, "ConnectionDropped"
            response = _drop(request)
        except web.HTTPException:
            raise
        except ConnectionResetError:
            # The client went away mid-request (a body cut short): nothing to answer and no server fault.
            status, error_code = 499, "ClientDisconnected"
            response = web.Response(status=499)
        except Exception:
            # A bug must never take the server down or leak a traceback to the client.
            log.exception("internal error on %s %s", request.method, request.path)
            status, error_code = 500, "InternalError"
            response = _error_response(request, StorageError(500, "InternalError"), request_id)
        finally:
            caller = request.get(keys.CALLER)
            headers = request.headers
            ctx.audit.files_request(
                request,
                operation=request.get(keys.OPERATION) or "Unknown",
                status=status,
                error_code=error_code,
                auth_type=getattr(caller, "auth_type", keys.AUTH_ANONYMOUS),
                object_id=getattr(caller, "object_id", None),
                app_id=getattr(caller, "app_id", None),
                request_id=request_id,
                client_request_id=headers.get(H_CLIENT_REQUEST_ID),
                version=headers.get(H_VERSION),
                fault=request.get(keys.FAULT),
                authentication_hash=request.get(sas.AUTH_HASH),
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
        _common_headers(request, response, request_id, ctx.clock.now())
        return response

    return middleware


def _echoable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\r" not in value and "\n" not in value


def _common_headers(request: web.Request, response: web.StreamResponse, request_id: str, now: float) -> None:
    if response.prepared:
        return  # a streamed body already sent its headers (the handler set them)
    response.headers.setdefault(H_REQUEST_ID, request_id)
    # The emulator's clock (with its configured offset), so clock-skew checks see errors' Date too.
    if "Date" not in response.headers:
        response.headers["Date"] = http_date(now)
    response.headers.setdefault("Server", "Windows-Azure-File/1.0 Microsoft-HTTPAPI/2.0")
    for name in (H_VERSION, H_CLIENT_REQUEST_ID):
        if name in request.headers and _echoable(request.headers[name]):
            response.headers.setdefault(name, request.headers[name])


def _error_response(request: web.Request, err: StorageError, request_id: str) -> web.Response:
    headers = {H_ERROR_CODE: err.code, **err.headers}
    # HEAD answers carry no body: the SDK reads the code from the header.
    body = b"" if request.method == "HEAD" else error_body(err, request_id)
    return web.Response(status=err.status, body=body, headers=headers,
                        content_type="application/xml" if body else None)


def _drop(request: web.Request) -> web.StreamResponse:
    """Abort the socket; the placeholder answer is never sent (aiohttp sees the transport gone)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=499)


def _drop_middleware(ctx: Emulator) -> Any:
    """Identity side: turn DropConnection from a fault into a closed socket, and log nothing secret."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except DropConnection:
            return _drop(request)

    return middleware


# --- Control endpoint (tests change the world while it runs) --------------------------------------------


def control_routes(ctx: Emulator) -> list[web.RouteDef]:
    def check(request: web.Request) -> None:
        given = request.headers.get(CONTROL_HEADER, "")
        # surrogateescape: header bytes that are not UTF-8 are simply a wrong secret, not an error.
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), ctx.control_secret.encode()):
            raise web.HTTPForbidden(text='{"error":"control secret missing or wrong"}',
                                    content_type="application/json")

    async def body_json(request: web.Request) -> Any:
        try:
            return await request.json()
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest(text='{"error":"body is not JSON"}', content_type="application/json") \
                from None

    async def faults(request: web.Request) -> web.Response:
        check(request)
        if request.method == "POST":
            data = await body_json(request)
            rules_raw = data.get("rules") if isinstance(data, dict) else None
            if not isinstance(rules_raw, list):
                raise web.HTTPBadRequest(text='{"error":"expected {\\"rules\\": [...]}"}',
                                         content_type="application/json")
            try:
                rules = [fault_from_dict(r, f"rules[{i}]") if isinstance(r, dict) else _bad(i)
                         for i, r in enumerate(rules_raw)]
            except ConfigError as exc:
                raise web.HTTPBadRequest(text=json.dumps({"error": str(exc)}),
                                         content_type="application/json") from None
            ctx.set_faults(rules)
        return web.json_response({"rules": ctx.faults.describe()})

    async def roles(request: web.Request) -> web.Response:
        check(request)
        if request.method == "POST":
            data = await body_json(request)
            raw = data.get("assignments") if isinstance(data, dict) else None
            if not isinstance(raw, list):
                raise web.HTTPBadRequest(text='{"error":"expected {\\"assignments\\": [...]}"}',
                                         content_type="application/json")
            try:
                parsed = _parse_roles(raw, ctx.config.identities, ctx.config.accounts)
            except ConfigError as exc:
                raise web.HTTPBadRequest(text=json.dumps({"error": str(exc)}),
                                         content_type="application/json") from None
            ctx.set_role_assignments(list(parsed))
        return web.json_response({"assignments": [
            {"role": r.role, "principal": r.principal_object_id, "scope": r.scope}
            for r in ctx.role_assignments
        ]})

    async def clock(request: web.Request) -> web.Response:
        check(request)
        if request.method == "POST":
            data = await body_json(request)
            if not isinstance(data, dict) or "offset" not in data:
                raise web.HTTPBadRequest(text='{"error":"expected {\\"offset\\": seconds}"}',
                                         content_type="application/json")
            try:
                ctx.clock.offset = clock_offset(data["offset"], "offset")
            except ConfigError as exc:
                raise web.HTTPBadRequest(text=json.dumps({"error": str(exc)}),
                                         content_type="application/json") from None
        return web.json_response({"offset": ctx.clock.offset, "now": ctx.clock.now()})

    async def copy_rate(request: web.Request) -> web.Response:
        # Copy File's pace (keyless.emulator.copy_engine): {"bytes_per_second": n} holds copies pending
        # (0: until changed), null lets same-account copies finish before the answer again.
        check(request)
        if request.method == "POST":
            data = await body_json(request)
            rate = data.get("bytes_per_second", ...) if isinstance(data, dict) else ...
            try:
                if rate is ... or not (rate is None or isinstance(rate, int)):
                    raise ValueError("expected {\"bytes_per_second\": n or null}")
                ctx.copies.set_rate(rate)
            except ValueError as exc:
                raise web.HTTPBadRequest(text=json.dumps({"error": str(exc)}),
                                         content_type="application/json") from None
        return web.json_response(ctx.copies.describe())

    return [
        web.route("*", "/keyless/control/copy", copy_rate),
        web.route("*", "/keyless/control/faults", faults),
        web.route("*", "/keyless/control/roles", roles),
        web.route("*", "/keyless/control/clock", clock),
    ]


def _bad(index: int) -> Any:
    raise ConfigError(f"rules[{index}]: expected a table of fault fields")


# --- Assembly ------------------------------------------------------------------------------------------


def build_http_app(ctx: Emulator) -> web.Application:
    app = web.Application(middlewares=[_drop_middleware(ctx)], client_max_size=1024 * 1024)
    app.add_routes(control_routes(ctx))
    app.add_routes(identity_routes(ctx))
    app.add_routes(authority_routes(ctx))
    return app


def build_https_app(ctx: Emulator, security: Security | None = None) -> web.Application:
    """One root app: the authority's routes first, then a catch-all for Files REST.

    aiohttp resolves resources in registration order and moves on when a path matches but the method
    does not, so ``GET /<account>/...`` always reaches the Files handler. ``security`` is the Files
    side's authentication and authorization; the emulator's own (bearer tokens, Shared Key, RBAC) unless
    a test passes others.
    """
    security = security or Security(authenticate=authenticate, authorize=authorize)
    root = web.Application(client_max_size=5 * 1024 * 1024)
    drop = _drop_middleware(ctx)
    for route in authority_routes(ctx):
        assert isinstance(route, web.RouteDef)
        root.router.add_route(route.method, route.path, _with(drop, route.handler))
    files_middleware = _files_middleware(ctx)

    async def files_entry(request: web.Request) -> web.StreamResponse:
        return await handle_files_request(ctx, security, request)

    root.router.add_route("*", "/{tail:.*}", _with(files_middleware, files_entry))
    return root


def _with(middleware: Any, handler: Any) -> Handler:
    async def run(request: web.Request) -> web.StreamResponse:
        response: web.StreamResponse = await middleware(request, handler)
        return response

    return run


def tls_context(ctx: Emulator, hosts: list[str]) -> tuple[ssl.SSLContext, Path]:
    files = ensure_tls(ctx.data_dir / "tls", hosts)
    sslctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    sslctx.load_cert_chain(files.server_cert, files.server_key)
    return sslctx, files.ca_cert


def emulator_info(ctx: Emulator, ca_cert: Path, workload: dict[str, str],
                  arm_url: str = "") -> dict[str, Any]:
    return EmulatorInfo(
        arm_url=arm_url,
        path=ctx.data_dir / INFO_FILE,
        pid=os.getpid(),
        files_url=ctx.files_url,
        imds_url=ctx.imds_url,
        app_service_endpoint=f"{ctx.imds_url}/msi/token",
        app_service_header=ctx.app_service_header,
        arc_endpoint=f"{ctx.imds_url}/arc/metadata/identity/oauth2/token",
        arc_imds_endpoint=f"{ctx.imds_url}/arc",
        arc_key_dir=str(ctx.data_dir / "arc-tokens"),
        authority_host=ctx.files_url,
        authority_host_http=ctx.imds_url,
        tenant_id=ctx.config.tenant_id,
        ca_cert=str(ca_cert),
        audit_log=str(ctx.audit.path),
        keytab=str(ctx.data_dir / "cifs.keytab"),
        data_dir=str(ctx.data_dir),
        token_lifetime=ctx.config.token_lifetime,
        accounts=tuple(
            EmulatorAccount(name=a.name, key=ctx.account_keys[a.name], url=f"{ctx.files_url}/{a.name}",
                            allow_shared_key=a.allow_shared_key, smb_oauth=a.smb_oauth,
                            shares=tuple(s.name for s in a.shares))
            for a in ctx.config.accounts
        ),
        identities=tuple(
            EmulatorIdentity(name=i.name, type=i.kind, client_id=i.client_id, object_id=i.object_id,
                             resource_id=i.resource_id, attached=i.attached)
            for i in ctx.config.identities
        ),
        workload=workload,
        control_url=f"{ctx.imds_url}/keyless/control",
        control_secret=ctx.control_secret,
    ).to_json()


async def serve(data_dir: Path, config: EmulatorConfig, host: str, port: int, imds_port: int,
                ready: Callable[[dict[str, Any]], None] | None = None) -> None:
    logging.getLogger("aiohttp.server").addFilter(_QuietMalformedHttp())
    # Signal handlers go in first: a client may send SIGTERM the instant emulator.json appears.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    prepare_data_dir(data_dir)
    lock_fd = lock_data_dir(data_dir)
    try:
        await _serve_locked(data_dir, config, host, port, imds_port, stop, ready)
    finally:
        os.close(lock_fd)  # releases the lock (after everything else is closed)


async def _serve_locked(data_dir: Path, config: EmulatorConfig, host: str, port: int, imds_port: int,
                        stop: asyncio.Event, ready: Callable[[dict[str, Any]], None] | None) -> None:
    ctx = build_context(data_dir, config)
    arm.apply_saved_state(ctx)
    info_path = data_dir / INFO_FILE
    info_path.unlink(missing_ok=True)  # a file from an earlier run must not look ready
    sslctx, ca_cert = tls_context(ctx, [host])

    http_runner = web.AppRunner(build_http_app(ctx), access_log=None, handle_signals=False)
    # Azure accepts up to 8 KiB of metadata; aiohttp's default 8 KiB header-field cap would answer a
    # bare 400 before the handler could give the service's MetadataTooLarge, so the parser allows more.
    https_runner = web.AppRunner(build_https_app(ctx), access_log=None, handle_signals=False,
                                 shutdown_timeout=5.0, max_field_size=64 * 1024, max_line_size=64 * 1024)
    # Resource Manager is a host of its own in Azure: here a listener of its own, on the same address.
    arm_runner = web.AppRunner(arm.build_arm_app(ctx), access_log=None, handle_signals=False,
                               shutdown_timeout=5.0)
    await http_runner.setup()
    await https_runner.setup()
    await arm_runner.setup()
    try:
        https_site = web.TCPSite(https_runner, host, port, ssl_context=sslctx, reuse_address=True)
        http_site = web.TCPSite(http_runner, host, imds_port, reuse_address=True)
        arm_site = web.TCPSite(arm_runner, host, 0, ssl_context=sslctx, reuse_address=True)
        await https_site.start()
        await http_site.start()
        await arm_site.start()
        url_host = f"[{host}]" if ":" in host else host
        ctx.files_url = f"https://{url_host}:{_bound_port(https_runner)}"
        ctx.imds_url = f"http://{url_host}:{_bound_port(http_runner)}"
        workload = write_federated_token_files(ctx)
        info = emulator_info(ctx, ca_cert, workload, f"https://{url_host}:{_bound_port(arm_runner)}")
        atomic_write(info_path, json.dumps(info, indent=2).encode("utf-8"))
        if ready is not None:
            ready(info)
        # What start-up built (modules, config, keys, routes) lives until exit: out of the collector's
        # scans, so the collections that requests trigger walk only what requests allocate.
        gc.freeze()

        await stop.wait()
    finally:
        info_path.unlink(missing_ok=True)
        await https_runner.cleanup()
        await http_runner.cleanup()
        await arm_runner.cleanup()
        await ctx.copies.close()
        ctx.store.close()
        ctx.audit.close()


def run(data_dir: Path, config: EmulatorConfig, host: str, port: int, imds_port: int,
        ready: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM on uvloop where it is installed (every platform but Windows), else on
    asyncio's own loop. uvloop's event loop and TLS transport are compiled, where asyncio's SSL protocol
    is Python run for every record: the emulator spends less CPU per Files request on it."""
    try:
        import uvloop
    except ImportError:  # Windows: no uvloop wheel; asyncio serves the same protocol, only slower
        asyncio.run(serve(data_dir, config, host, port, imds_port, ready))
        return
    uvloop.run(serve(data_dir, config, host, port, imds_port, ready))


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    raise RuntimeError("listener has no bound address")


def print_ready(info: dict[str, Any]) -> None:
    accounts = ", ".join(a["name"] for a in info["accounts"])
    print(
        f"keyless emulator ready: files {info['files_url']} (accounts: {accounts}), "
        f"identity {info['imds_url']}; details in {Path(info['data_dir']) / INFO_FILE}",
        flush=True,
    )
    sys.stdout.flush()


__all__ = ["DataDirError", "DataDirInUse", "build_context", "run", "serve"]
