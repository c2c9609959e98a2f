"""SMB test fixtures: an in-process ticket endpoint over HTTPS, a private krb5.conf, GSSAPI helpers.

The endpoint is the emulator's own HTTPS app (routing, middleware, error rendering) served in a thread
around a context whose world is SMB_WORLD, so unit tests can mint tokens for any identity directly.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from inprocess_emulator import make_emulator, serve_app
from keyless.emulator.ca import ensure_tls
from keyless.emulator.config import config_from_dict
from keyless.emulator.context import Emulator
from keyless.emulator.kerberos import ensure_keytab
from keyless.emulator.server import build_https_app

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
    ctx = make_emulator(tmp_path / "emu", config_from_dict(json.loads(json.dumps(SMB_WORLD))))
    ctx.kerberos = ensure_keytab(ctx.data_dir, [a.name for a in ctx.config.accounts])
    tls = ensure_tls(tmp_path / "emu" / "tls", ["127.0.0.1"])
    sslctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    sslctx.load_cert_chain(tls.server_cert, tls.server_key)
    # The emulator's real HTTPS app: the ticket request goes through the same routing and middleware.
    with serve_app(build_https_app(ctx), sslctx) as url:
        yield from _ticket_server(ctx, url, tls.ca_cert, tmp_path)


def _ticket_server(ctx: Emulator, url: str, ca_cert: Path, tmp_path: Path) -> Iterator[TicketServer]:
    ctx.files_url = url
    info = {"files_url": url, "imds_url": "http://127.0.0.1:9", "ca_cert": str(ca_cert),
            "data_dir": str(ctx.data_dir), "keytab": str(ctx.data_dir / "cifs.keytab"),
            "tenant_id": ctx.config.tenant_id}
    emu_json = tmp_path / "emu" / "emulator.json"
    emu_json.write_text(json.dumps(info))
    try:
        yield TicketServer(ctx, url, str(ca_cert), emu_json)
    finally:
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
