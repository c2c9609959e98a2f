"""Identity endpoints: reply shapes and errors of IMDS, App Service, Arc and the workload exchange, checked
directly and, where a public client exists, through azure-identity itself."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from inprocess_emulator import serve_app
from keyless.emulator.context import Emulator
from keyless.emulator.faults import DropConnection
from keyless.emulator.identity_endpoints import (
    authority_routes,
    identity_request_counts,
    identity_routes,
    write_federated_token_files,
)

from .conftest import audit_lines

STORAGE = "https://storage.azure.com/"
IMDS = "/metadata/identity/oauth2/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def build_app(ctx: Emulator) -> web.Application:
    app = web.Application()
    app.add_routes(identity_routes(ctx))
    app.add_routes(authority_routes(ctx))
    return app


def run(ctx: Emulator, body: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(build_app(ctx))) as client:
            await body(client)

    asyncio.run(main())


def ident(ctx: Emulator, name: str) -> Any:
    return next(i for i in ctx.config.identities if i.name == name)


# --- IMDS ----------------------------------------------------------------------------------------------


def test_imds_reply_shape(emulator_ctx: Emulator) -> None:
    vm = emulator_ctx.config.identities[0]

    async def body(client: TestClient[Any, Any]) -> None:
        resp = await client.get(IMDS, params={"api-version": "2018-02-01", "resource": STORAGE},
                                headers={"Metadata": "true"})
        assert resp.status == 200
        assert resp.content_type == "application/json"
        data = await resp.json()
        assert set(data) == {"access_token", "client_id", "expires_in", "expires_on", "ext_expires_in",
                             "not_before", "resource", "token_type"}
        assert all(isinstance(v, str) for v in data.values())  # IMDS sends every number as a string
        assert data["resource"] == STORAGE and data["token_type"] == "Bearer"
        assert data["client_id"] == vm.client_id
        assert int(data["expires_on"]) - int(data["not_before"]) == int(data["expires_in"])
        claims = emulator_ctx.issuer.verify_storage_token(data["access_token"], "devaccount")
        assert claims["aud"] == STORAGE and claims["oid"] == vm.object_id

    run(emulator_ctx, body)
    line = audit_lines(emulator_ctx)[-1]
    assert line["Type"] == "TokenIssuance" and line["source"] == "imds" and line["status"] == 200
    assert line["object_id"] == vm.object_id and line["resource"] == STORAGE


@pytest.mark.parametrize(
    ("params", "headers", "description"),
    [
        ({"api-version": "2018-02-01", "resource": STORAGE}, {}, "Required metadata header not specified"),
        ({"api-version": "2018-02-01", "resource": STORAGE}, {"Metadata": "false"},
         "Required metadata header not specified"),
        ({"resource": STORAGE}, {"Metadata": "true"}, "Required query variable 'api-version' is missing"),
        ({"api-version": "2018-02-01"}, {"Metadata": "true"},
         "Required query variable 'resource' is missing"),
        ({"api-version": "2018-02-01", "resource": STORAGE},
         {"Metadata": "true", "X-Forwarded-For": "10.0.0.1"}, "Request contains X-Forwarded-For header"),
        ({"api-version": "2018-02-01", "resource": STORAGE,
          "client_id": "00000000-0000-0000-0000-000000000000"}, {"Metadata": "true"}, "Identity not found"),
    ],
)
def test_imds_errors(emulator_ctx: Emulator, params: dict[str, str], headers: dict[str, str],
                     description: str) -> None:
    async def body(client: TestClient[Any, Any]) -> None:
        resp = await client.get(IMDS, params=params, headers=headers)
        assert resp.status == 400
        assert await resp.json() == {"error": "invalid_request", "error_description": description}

    run(emulator_ctx, body)
    assert audit_lines(emulator_ctx)[-1]["error"] == description


def test_imds_selectors(rich_ctx: Emulator) -> None:
    app1, app2, gone = ident(rich_ctx, "app1"), ident(rich_ctx, "app2"), ident(rich_ctx, "gone")
    vm = ident(rich_ctx, "vm")

    async def get(client: TestClient[Any, Any], **sel: str) -> tuple[int, dict[str, str]]:
        resp = await client.get(IMDS, params={"api-version": "2019-08-01", "resource": STORAGE, **sel},
                                headers={"Metadata": "true"})
        return resp.status, await resp.json()

    async def body(client: TestClient[Any, Any]) -> None:
        status, data = await get(client)
        assert status == 200 and data["client_id"] == vm.client_id  # system-assigned wins without selector
        for sel in ({"client_id": app1.client_id.upper()}, {"object_id": app1.object_id},
                    {"msi_res_id": app1.resource_id}):
            status, data = await get(client, **sel)
            assert status == 200 and data["client_id"] == app1.client_id
        status, data = await get(client, client_id=gone.client_id)  # configured but not attached
        assert (status, data["error_description"]) == (400, "Identity not found")
        status, data = await get(client, client_id=app1.client_id, object_id=app2.object_id)
        assert status == 400 and data["error"] == "invalid_request"
        status, data = await get(client, resource="not a resource")
        assert status == 400 and data["error"] == "invalid_resource"

    run(rich_ctx, body)


def test_imds_without_selector_and_several_user_identities(tmp_path: Path) -> None:
    from inprocess_emulator import make_emulator
    from keyless.emulator.config import config_from_dict

    ctx = make_emulator(tmp_path, config_from_dict({
        "accounts": [{"name": "devaccount", "shares": ["demo"]}],
        "identities": [{"name": "a", "type": "user"}, {"name": "b", "type": "user"}],
    }))

    async def body(client: TestClient[Any, Any]) -> None:
        resp = await client.get(IMDS, params={"api-version": "2018-02-01", "resource": STORAGE},
                                headers={"Metadata": "true"})
        assert resp.status == 400
        assert "Multiple user assigned identities" in (await resp.json())["error_description"]

    run(ctx, body)
    ctx.audit.close()


def test_faults_are_applied_and_counted(emulator_ctx: Emulator) -> None:
    faults: Any = emulator_ctx.faults

    async def body(client: TestClient[Any, Any]) -> None:
        faults.next_response = web.json_response({"error": "too_many_requests"}, status=429)
        resp = await client.get(IMDS, params={"api-version": "2018-02-01", "resource": STORAGE},
                                headers={"Metadata": "true"})
        assert resp.status == 429
        resp = await client.get(IMDS, params={"api-version": "2018-02-01", "resource": STORAGE},
                                headers={"Metadata": "true"})
        assert resp.status == 200

    run(emulator_ctx, body)
    assert faults.calls == ["imds", "imds"]
    assert identity_request_counts(emulator_ctx) == {"imds": 2}
    statuses = [(x["source"], x["status"]) for x in audit_lines(emulator_ctx)]
    assert statuses == [("imds", 429), ("imds", 200)]


def test_dropped_connection_propagates(emulator_ctx: Emulator) -> None:
    faults: Any = emulator_ctx.faults
    app = build_app(emulator_ctx)

    async def main() -> None:
        async with TestServer(app) as server:
            faults.next_error = DropConnection()
            req_handler = next(r for r in app.router.routes() if r.resource and
                               r.resource.canonical == IMDS and r.method == "GET").handler
            from aiohttp.test_utils import make_mocked_request

            with pytest.raises(DropConnection):
                await req_handler(make_mocked_request("GET", IMDS, headers={"Metadata": "true"}))
            del server

    asyncio.run(main())
    assert audit_lines(emulator_ctx)[-1]["error"] == "ConnectionDropped"


# --- App Service ---------------------------------------------------------------------------------------


def test_app_service(rich_ctx: Emulator) -> None:
    app1 = ident(rich_ctx, "app1")

    async def body(client: TestClient[Any, Any]) -> None:
        ok = {"api-version": "2019-08-01", "resource": STORAGE}
        hdr = {"X-IDENTITY-HEADER": rich_ctx.app_service_header}
        resp = await client.get("/msi/token", params=ok, headers=hdr)
        data = await resp.json()
        assert resp.status == 200
        assert set(data) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
        assert abs(int(data["expires_on"]) - time.time() - rich_ctx.config.token_lifetime) < 5
        resp = await client.get("/msi/token", params={**ok, "mi_res_id": app1.resource_id}, headers=hdr)
        assert (await resp.json())["client_id"] == app1.client_id
        resp = await client.get("/msi/token", params=ok, headers={"X-IDENTITY-HEADER": "wrong"})
        assert resp.status == 400 and "statusCode" in await resp.json()
        resp = await client.get("/msi/token", params={**ok, "api-version": "2017-09-01"}, headers=hdr)
        assert resp.status == 400
        resp = await client.get("/msi/token", params={**ok, "client_id": "nope"}, headers=hdr)
        data = await resp.json()
        assert resp.status == 400 and data["message"] == "Unable to load the proper Managed Identity."

    run(rich_ctx, body)


# --- Azure Arc -----------------------------------------------------------------------------------------


def test_arc_challenge_and_key_file(rich_ctx: Emulator) -> None:
    app1 = ident(rich_ctx, "app1")
    path = "/arc/metadata/identity/oauth2/token"
    params = {"api-version": "2020-06-01", "resource": STORAGE}

    async def body(client: TestClient[Any, Any]) -> None:
        resp = await client.get(path, params=params, headers={"Metadata": "true"})
        assert resp.status == 401
        challenge = resp.headers["WWW-Authenticate"]
        scheme, realm = challenge.split("=")  # exactly how msal parses it
        assert scheme == "Basic realm"
        key_file = Path(realm)
        assert key_file.parent == rich_ctx.data_dir / "arc-tokens" and key_file.suffix == ".key"
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600 and key_file.stat().st_size <= 4096
        secret = key_file.read_text()
        resp = await client.get(path, params=params,
                                headers={"Metadata": "true", "Authorization": "Basic wrong"})
        assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Basic realm=")
        resp = await client.get(path, params={**params, "client_id": app1.client_id},
                                headers={"Metadata": "true", "Authorization": f"Basic {secret}"})
        data = await resp.json()
        assert resp.status == 200 and data["client_id"] == app1.client_id
        assert isinstance(data["expires_in"], str)
        resp = await client.get(path, params=params, headers={"Authorization": f"Basic {secret}"})
        assert resp.status == 400  # Metadata header still required

    run(rich_ctx, body)
    text = rich_ctx.audit.path.read_text()
    assert all(p.read_text() not in text for p in (rich_ctx.data_dir / "arc-tokens").glob("*.key"))


# --- workload identity ---------------------------------------------------------------------------------


def test_workload_exchange(rich_ctx: Emulator) -> None:
    app1, app2 = ident(rich_ctx, "app1"), ident(rich_ctx, "app2")
    files = write_federated_token_files(rich_ctx)
    assert set(files) == {app1.client_id, app2.client_id, ident(rich_ctx, "gone").client_id}
    assert stat.S_IMODE(os.stat(files[app1.client_id]).st_mode) == 0o600
    tid = rich_ctx.config.tenant_id
    form = {
        "grant_type": "client_credentials",
        "client_id": app1.client_id,
        "scope": "https://storage.azure.com/.default",
        "client_assertion": Path(files[app1.client_id]).read_text(),
        "client_assertion_type": ASSERTION_TYPE,
    }

    async def post(client: TestClient[Any, Any], tenant: str = tid, **changes: str) -> tuple[int, Any]:
        resp = await client.post(f"/{tenant}/oauth2/v2.0/token", data={**form, **changes})
        return resp.status, await resp.json()

    async def body(client: TestClient[Any, Any]) -> None:
        status, data = await post(client)
        assert status == 200
        assert set(data) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
        assert isinstance(data["expires_in"], int)
        claims = rich_ctx.issuer.verify_storage_token(data["access_token"], "devaccount")
        assert claims["aud"] == "https://storage.azure.com" and claims["appid"] == app1.client_id

        status, data = await post(client, client_assertion=Path(files[app2.client_id]).read_text())
        assert status == 400 and data["error_codes"] == [70021]
        status, data = await post(client, client_id="99999999-9999-9999-9999-999999999999")
        assert (status, data["error"], data["error_codes"]) == (400, "unauthorized_client", [700016])
        status, data = await post(client, scope="https://storage.azure.com/user_impersonation")
        assert (status, data["error"]) == (400, "invalid_scope")
        status, data = await post(client, grant_type="password")
        assert data["error"] == "unsupported_grant_type"
        status, data = await post(client, client_assertion="garbage")
        assert status == 400 and data["error_codes"] == [50027]
        status, data = await post(client, client_assertion="")
        assert (status, data["error"]) == (401, "invalid_client")
        rich_ctx.clock.offset = 2 * 86400
        status, data = await post(client)
        assert (status, data["error"], data["error_codes"]) == (401, "invalid_client", [700024])
        rich_ctx.clock.offset = 0
        assert data["error_description"].startswith("AADSTS700024: Client assertion is not within its valid")

        # discovery
        resp = await client.get(f"/{tid}/v2.0/.well-known/openid-configuration")
        doc = await resp.json()
        assert doc["token_endpoint"] == str(client.make_url(f"/{tid}/oauth2/v2.0/token"))
        resp = await client.get(f"/{tid}/discovery/v2.0/keys")
        assert (await resp.json())["keys"][0]["kid"] == rich_ctx.issuer.kid
        resp = await client.get("/common/discovery/instance",
                                params={"api-version": "1.1",
                                        "authorization_endpoint": f"https://x/{tid}/oauth2/v2.0/authorize"})
        assert (await resp.json())["tenant_discovery_endpoint"].endswith(
            f"/{tid}/v2.0/.well-known/openid-configuration")
        resp = await client.get("/devaccount/discovery/keys")
        assert resp.status == 404  # a Files-shaped path is not the authority's

    run(rich_ctx, body)
    text = rich_ctx.audit.path.read_text()
    assert form["client_assertion"] not in text
    assert next(x["status"] for x in audit_lines(rich_ctx) if x["source"] == "workload") == 200


def test_federated_token_control_endpoint(rich_ctx: Emulator) -> None:
    app1 = ident(rich_ctx, "app1")

    async def body(client: TestClient[Any, Any]) -> None:
        resp = await client.get("/keyless/federated-token", params={"client_id": app1.client_id})
        assert resp.status == 403
        resp = await client.get("/keyless/federated-token", params={"client_id": app1.client_id},
                                headers={"X-Keyless-Control": rich_ctx.control_secret})
        assertion = await resp.text()
        assert jwt.decode(assertion, options={"verify_signature": False})["sub"] == (
            "system:serviceaccount:default:app1")
        resp = await client.get("/keyless/identity-stats",
                                headers={"X-Keyless-Control": rich_ctx.control_secret})
        assert (await resp.json()) == {"requests": {}}

    run(rich_ctx, body)


# --- secrets never logged ------------------------------------------------------------------------------


def test_audit_log_never_holds_a_token(rich_ctx: Emulator) -> None:
    tokens: list[str] = []

    async def body(client: TestClient[Any, Any]) -> None:
        for sel in ({}, {"client_id": ident(rich_ctx, "app1").client_id}):
            resp = await client.get(IMDS, params={"api-version": "2018-02-01", "resource": STORAGE, **sel},
                                    headers={"Metadata": "true"})
            tokens.append((await resp.json())["access_token"])
        resp = await client.get("/msi/token", params={"api-version": "2019-08-01", "resource": STORAGE},
                                headers={"X-IDENTITY-HEADER": rich_ctx.app_service_header})
        tokens.append((await resp.json())["access_token"])

    run(rich_ctx, body)
    text = rich_ctx.audit.path.read_text()
    assert len(audit_lines(rich_ctx)) == 3
    for token in tokens:
        for part in token.split("."):
            assert part not in text
    assert rich_ctx.app_service_header not in text


# --- azure-identity as the oracle ----------------------------------------------------------------------


def _clean_identity_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
                 "MSI_ENDPOINT", "MSI_SECRET", "AZURE_POD_IDENTITY_AUTHORITY_HOST", "AZURE_CLIENT_ID",
                 "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST"):
        monkeypatch.delenv(name, raising=False)


def test_azure_identity_imds_and_app_service(rich_ctx: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import CredentialUnavailableError, ManagedIdentityCredential

    _clean_identity_env(monkeypatch)
    app1 = ident(rich_ctx, "app1")
    with serve_app(build_app(rich_ctx)) as base:
        monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", base)
        token = ManagedIdentityCredential().get_token("https://storage.azure.com/.default")
        claims = rich_ctx.issuer.verify_storage_token(token.token, "devaccount")
        assert claims["oid"] == ident(rich_ctx, "vm").object_id
        assert abs(token.expires_on - time.time() - rich_ctx.config.token_lifetime) < 10
        cred = ManagedIdentityCredential(client_id=app1.client_id)
        token = cred.get_token("https://storage.azure.com/.default")
        assert rich_ctx.issuer.verify_storage_token(token.token, "devaccount")["appid"] == app1.client_id
        refused = (CredentialUnavailableError, ClientAuthenticationError)
        with pytest.raises(refused, match="Identity not found"):
            ManagedIdentityCredential(client_id="00000000-0000-0000-0000-000000000001").get_token(
                "https://storage.azure.com/.default")

        monkeypatch.delenv("AZURE_POD_IDENTITY_AUTHORITY_HOST")
        monkeypatch.setenv("IDENTITY_ENDPOINT", f"{base}/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", rich_ctx.app_service_header)
        cred = ManagedIdentityCredential(identity_config={"resource_id": app1.resource_id})
        token = cred.get_token("https://storage.azure.com/.default")
        assert rich_ctx.issuer.verify_storage_token(token.token, "devaccount")["appid"] == app1.client_id
        assert abs(token.expires_on - time.time() - rich_ctx.config.token_lifetime) < 10
    sources = [x["source"] for x in audit_lines(rich_ctx)]
    assert sources.count("imds") == 3 and sources.count("appservice") == 1


def test_azure_identity_workload_identity_over_https(rich_ctx: Emulator, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    import ssl

    from azure.identity import WorkloadIdentityCredential

    from keyless.emulator.ca import ensure_tls

    _clean_identity_env(monkeypatch)
    tls = ensure_tls(tmp_path / "tls", ["127.0.0.1"])
    sslctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    sslctx.load_cert_chain(tls.server_cert, tls.server_key)
    app = web.Application()
    app.add_routes(authority_routes(rich_ctx))
    app1 = ident(rich_ctx, "app1")
    token_file = write_federated_token_files(rich_ctx)[app1.client_id]
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_cert))
    with serve_app(app, sslctx) as base:
        cred = WorkloadIdentityCredential(tenant_id=rich_ctx.config.tenant_id, client_id=app1.client_id,
                                          token_file_path=token_file, authority=base,
                                          disable_instance_discovery=True)
        token = cred.get_token("https://storage.azure.com/.default")
    claims = rich_ctx.issuer.verify_storage_token(token.token, "devaccount")
    assert claims["appid"] == app1.client_id and claims["aud"] == "https://storage.azure.com"
    assert json.dumps(audit_lines(rich_ctx)).count('"workload"') == 1
