"""SMB test fixtures: an in-process ticket endpoint over HTTPS, a private krb5.conf, GSSAPI helpers.

Until server assembly routes ``comp=kerbticket``, the endpoint is served by a tiny aiohttp app that calls
``handle_kerbticket`` the way the Files dispatcher will, with the emulator's error rendering.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from keyless.emulator import request_keys as keys
from keyless.emulator.audit import AuditLog
from keyless.emulator.ca import ensure_tls
from keyless.emulator.clock import Clock
from keyless.emulator.config import EmulatorConfig, config_from_dict
from keyless.emulator.context import Emulator, load_or_create_secrets
from keyless.emulator.errors import StorageError, error_body
from keyless.emulator.issuer import TokenIssuer
from keyless.emulator.smb_ticket import handle_kerbticket

SMB_WORLD: dict[str, Any] = {
    "token_lifetime": "10m",
    "accounts": [
        {"name": "devaccount", "smb_oauth": True, "shares": ["demo", "other"]},
        {"name": "nosmbacct", "smb_oauth": False, "shares": ["data"]},
    ],
    "identities": [
        {"name": "vm", "type": "user"},  # SMB MI Admin on the account
        {"name": "shareadmin", "type": "user"},  # SMB MI Admin on one share
        {"name": "reader", "type": "user"},  # only REST roles
    ],
    "role_assignments": [
        {"role": "Storage File Data SMB MI Admin", "principal": "vm", "scope": "devaccount"},
        {"role": "Storage File Data SMB MI Admin", "principal": "vm", "scope": "nosmbacct"},
        {"role": "Storage File Data SMB MI Admin", "principal": "shareadmin", "scope": "devaccount/other"},
        {"role": "Storage File Data Privileged Contributor", "principal": "reader", "scope": "devaccount"},
    ],
}


class _NoFaults:
    async def apply(self, request: web.Request, target: str) -> None:
        return None

    def replace(self, rules: list[Any]) -> None:
        pass


class _NoStore:
    def close(self) -> None:
        pass


def build_ctx(data_dir: Path, config: EmulatorConfig) -> Emulator:
    data_dir.mkdir(parents=True, exist_ok=True)
    secrets = load_or_create_secrets(data_dir, config)
    clock = Clock(config.clock_offset)
    return Emulator(
        config=config, data_dir=data_dir, clock=clock, audit=AuditLog(data_dir / "audit.log"),
        account_keys={a.name: (a.key or secrets["account_keys"][a.name]) for a in config.accounts},
        app_service_header="x", control_secret=secrets["control_secret"],
        issuer=TokenIssuer(data_dir, config, clock), store=_NoStore(), faults=_NoFaults(),  # type: ignore[arg-type]
        role_assignments=list(config.role_assignments),
    )


def build_app(ctx: Emulator) -> web.Application:
    async def entry(request: web.Request) -> web.StreamResponse:
        account = request.match_info["account"]
        q = request.query
        try:
            if request.method == "POST" and q.get("restype") == "service" and q.get("comp") == "kerbticket":
                return await handle_kerbticket(ctx, request, account)
            raise StorageError(400, "InvalidUri")
        except StorageError as err:
            return web.Response(status=err.status, body=error_body(err, "test-request"),
                                headers={"x-ms-error-code": err.code, **err.headers},
                                content_type="application/xml")
        finally:
            ctx.audit.write("StorageFileLogs", operation=request.get(keys.OPERATION, "Unknown"),
                            object_id=getattr(request.get(keys.CALLER), "object_id", None))

    app = web.Application()
    app.router.add_route("*", "/{account}/", entry)
    app.router.add_route("*", "/{account}", entry)
    return app


@dataclass
class TicketServer:
    ctx: Emulator
    url: str
    ca_cert: str
    emulator_json: Path

    def token(self, identity: str, resource: str = "https://storage.azure.com",
              lifetime: float | None = None) -> str:
        ident = next(i for i in self.ctx.config.identities if i.name == identity)
        return self.ctx.issuer.mint(ident, resource, lifetime).access_token

    @property
    def keytab(self) -> Path:
        return self.ctx.data_dir / "cifs.keytab"


@pytest.fixture
def ticket_server(tmp_path: Path) -> Iterator[TicketServer]:
    ctx = build_ctx(tmp_path / "emu", config_from_dict(json.loads(json.dumps(SMB_WORLD))))
    tls = ensure_tls(tmp_path / "emu" / "tls", ["127.0.0.1"])
    sslctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    sslctx.load_cert_chain(tls.server_cert, tls.server_key)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(build_app(ctx), access_log=None, handle_signals=False)
    started = threading.Event()
    port: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=sslctx)
        await site.start()
        port.extend(int(a[1]) for a in runner.addresses if isinstance(a, tuple))
        started.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    url = f"https://127.0.0.1:{port[0]}"
    ctx.files_url = url
    info = {"files_url": url, "imds_url": "http://127.0.0.1:9", "ca_cert": str(tls.ca_cert),
            "data_dir": str(ctx.data_dir), "keytab": str(ctx.data_dir / "cifs.keytab"),
            "tenant_id": ctx.config.tenant_id}
    emu_json = tmp_path / "emu" / "emulator.json"
    emu_json.write_text(json.dumps(info))
    try:
        yield TicketServer(ctx, url, str(tls.ca_cert), emu_json)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        ctx.audit.close()


@pytest.fixture(autouse=True)
def _private_krb5(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No system krb5.conf (no DNS lookups, no default realm surprises), no replay cache on disk."""
    conf = tmp_path_factory.getbasetemp() / "krb5.conf"
    if not conf.exists():
        conf.write_text("[libdefaults]\n  dns_lookup_realm = false\n  dns_lookup_kdc = false\n"
                        "  rdns = false\n  dns_canonicalize_hostname = false\n")
    monkeypatch.setenv("KRB5_CONFIG", str(conf))
    monkeypatch.setenv("KRB5RCACHETYPE", "none")
    monkeypatch.delenv("KRB5CCNAME", raising=False)
    # Running as root, smb set would otherwise register endpoints in the real /var/lib/keyless/agent.json.
    monkeypatch.setenv("KEYLESS_AGENT_STATE", str(tmp_path_factory.mktemp("agent") / "agent.json"))


def gssapi_handshake(ccache: str, keytab: Path, account: str = "devaccount") -> str:
    """What cifs.upcall and the SMB server do: initiate from the cache, accept with the keytab."""
    import gssapi

    spn = f"cifs/{account}.file.core.windows.net@FILES.AZURE.STORAGE.MICROSOFT.COM"
    name = gssapi.Name(spn, gssapi.NameType.kerberos_principal)
    icred = gssapi.Credentials(usage="initiate", store={"ccache": ccache})
    acred = gssapi.Credentials(usage="accept", store={"keytab": str(keytab)})
    ictx = gssapi.SecurityContext(name=name, creds=icred, usage="initiate", mech=gssapi.MechType.kerberos)
    actx = gssapi.SecurityContext(creds=acred, usage="accept")
    reply = actx.step(ictx.step())
    if reply:
        ictx.step(reply)
    assert actx.complete and ictx.complete
    return str(actx.initiator_name)


@pytest.fixture
def handshake() -> Any:
    return gssapi_handshake
