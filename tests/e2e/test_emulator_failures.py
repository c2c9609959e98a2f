"""Every authentication/authorization failure of the reference, and bad input, over real HTTPS.

Raw urllib3 requests so each header is exactly what the test says; the official SDK confirms the
RBAC and key-not-permitted paths as a client would meet them.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from email.utils import formatdate
from pathlib import Path
from typing import Any

import jwt
import pytest
import urllib3
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.storage.fileshare import ShareClient, ShareServiceClient

from keyless.testing import EmulatorProcess, start_emulator

CUSTOM_WORLD = """
[[accounts]]
name = "rbacacct"
smb_oauth = true
shares = ["alpha", "beta"]
[[accounts]]
name = "nokeyacct"
allow_shared_key = false
shares = ["only"]
[[identities]]
name = "vm"
type = "system"
[[identities]]
name = "reader"
type = "user"
[[role_assignments]]
role = "Storage File Data Privileged Contributor"
principal = "vm"
scope = "rbacacct/alpha"
[[role_assignments]]
role = "Storage File Data Privileged Reader"
principal = "reader"
scope = "rbacacct"
[[role_assignments]]
role = "Storage File Data Privileged Contributor"
principal = "vm"
scope = "nokeyacct"
"""


def imds_token(emu: EmulatorProcess, resource: str = "https://storage.azure.com/", **selector: str) -> str:
    http = urllib3.PoolManager()
    resp = http.request(
        "GET", f"{emu.imds_url}/metadata/identity/oauth2/token",
        fields={"api-version": "2018-02-01", "resource": resource, **selector},
        headers={"Metadata": "true"},
    )
    assert resp.status == 200, resp.data
    return str(json.loads(resp.data)["access_token"])


def files_request(emu: EmulatorProcess, method: str, path: str, headers: dict[str, str] | None = None,
                  body: bytes | None = None, query: str = "") -> urllib3.BaseHTTPResponse:
    http = urllib3.PoolManager(ca_certs=emu.ca_cert, retries=False)
    base = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2025-05-05"}
    url = f"{emu.files_url}{path}" + (f"?{query}" if query else "")
    return http.request(method, url, headers={**base, **(headers or {})}, body=body)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "x-ms-file-request-intent": "backup"}


def error_code(resp: urllib3.BaseHTTPResponse) -> str | None:
    return resp.headers.get("x-ms-error-code")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with start_emulator(tmp_path_factory.mktemp("failures"), CUSTOM_WORLD) as emu:
        yield emu


def test_missing_intent_header_is_400(world: EmulatorProcess) -> None:
    token = imds_token(world)
    resp = files_request(world, "GET", "/rbacacct/alpha", {"Authorization": f"Bearer {token}"},
                         query="restype=directory&comp=list")
    assert resp.status == 400 and error_code(resp) == "MissingRequiredHeader"
    assert b"x-ms-file-request-intent" in resp.data


def test_old_version_with_bearer_is_403(world: EmulatorProcess) -> None:
    token = imds_token(world)
    resp = files_request(world, "GET", "/rbacacct/alpha", {**bearer(token), "x-ms-version": "2021-12-02"},
                         query="restype=directory&comp=list")
    assert resp.status == 403 and error_code(resp) == "AuthenticationFailed"
    assert b"Authentication scheme Bearer is not supported in this version." in resp.data


def test_no_authorization_is_401(world: EmulatorProcess) -> None:
    resp = files_request(world, "GET", "/rbacacct/alpha", query="restype=directory&comp=list")
    assert resp.status == 401 and error_code(resp) == "NoAuthenticationInformation"


@pytest.mark.parametrize("case", ["expired", "bad-signature", "wrong-audience", "garbage"])
def test_invalid_tokens_are_401_with_challenge(world: EmulatorProcess, case: str) -> None:
    good = imds_token(world)
    claims = jwt.decode(good, options={"verify_signature": False})
    if case == "expired":
        world.set_clock_offset(claims["exp"] - time.time() + 3600)  # the emulator lives two hours ahead
        token = good
    elif case == "bad-signature":
        head, body, sig = good.split(".")
        token = f"{head}.{body}.{sig[:-6]}AAAAAA"
    elif case == "wrong-audience":
        token = imds_token(world, resource="https://management.azure.com/")
    else:
        token = "not-a-jwt"
    try:
        resp = files_request(world, "GET", "/rbacacct/alpha", bearer(token),
                             query="restype=directory&comp=list")
    finally:
        world.set_clock_offset(0)
    assert resp.status == 401, resp.data
    assert error_code(resp) == "InvalidAuthenticationInfo"
    challenge = resp.headers["WWW-Authenticate"]
    tenant = world.info["tenant_id"]
    authorize = f"https://login.microsoftonline.com/{tenant}/oauth2/authorize"
    assert challenge == f"Bearer authorization_uri={authorize} resource_id=https://storage.azure.com"
    assert token.encode() not in resp.data


def test_rbac_scope_share_a_grants_nothing_on_b(world: EmulatorProcess) -> None:
    token = imds_token(world)
    ok = files_request(world, "PUT", "/rbacacct/alpha/newdir", bearer(token), query="restype=directory")
    assert ok.status == 201, ok.data
    denied = files_request(world, "PUT", "/rbacacct/beta/newdir", bearer(token), query="restype=directory")
    assert denied.status == 403 and error_code(denied) == "AuthorizationPermissionMismatch"


def test_reader_role_reads_but_cannot_write(world: EmulatorProcess) -> None:
    reader = world.identity("reader")
    token = imds_token(world, client_id=reader["client_id"])
    assert files_request(world, "GET", "/rbacacct/beta", bearer(token),
                         query="restype=directory&comp=list").status == 200
    denied = files_request(world, "PUT", "/rbacacct/beta/x", bearer(token), query="restype=directory")
    assert denied.status == 403 and error_code(denied) == "AuthorizationPermissionMismatch"


def test_roles_change_at_run_time(world: EmulatorProcess) -> None:
    token = imds_token(world)
    assert files_request(world, "PUT", "/rbacacct/beta/granted", bearer(token),
                         query="restype=directory").status == 403
    original = [
        {"role": "Storage File Data Privileged Contributor", "principal": "vm", "scope": "rbacacct/alpha"},
        {"role": "Storage File Data Privileged Reader", "principal": "reader", "scope": "rbacacct"},
        {"role": "Storage File Data Privileged Contributor", "principal": "vm", "scope": "nokeyacct"},
    ]
    world.set_roles([*original, {"role": "Storage File Data Privileged Contributor", "principal": "vm",
                                 "scope": "rbacacct/beta"}])
    try:
        assert files_request(world, "PUT", "/rbacacct/beta/granted", bearer(token),
                             query="restype=directory").status == 201
    finally:
        world.set_roles(original)


def test_key_based_auth_not_permitted_through_sdk(world: EmulatorProcess) -> None:
    acct = next(a for a in world.info["accounts"] if a["name"] == "nokeyacct")
    service = ShareServiceClient(account_url=acct["url"],
                                 credential={"account_name": "nokeyacct", "account_key": acct["key"]},
                                 connection_verify=world.ca_cert)
    with pytest.raises(HttpResponseError) as info:
        list(service.list_shares())
    assert info.value.status_code == 403
    assert info.value.error_code == "KeyBasedAuthenticationNotPermitted"


def test_sdk_sees_permission_mismatch(world: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", world.imds_url)
    share = ShareClient(account_url=f"{world.files_url}/rbacacct", share_name="beta",
                        credential=ManagedIdentityCredential(), token_intent="backup",
                        connection_verify=world.ca_cert)
    with pytest.raises(HttpResponseError) as info:
        share.get_file_client("nope.txt").upload_file(b"x")
    assert info.value.status_code == 403
    assert info.value.error_code == "AuthorizationPermissionMismatch"


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "body", "status"),
    [
        ("PUT", "/rbacacct/alpha/%2E%2E/beta/x", "restype=directory", {}, None, 400),
        ("PUT", "/rbacacct/alpha/%FF%FE", "restype=directory", {}, None, 400),
        ("PUT", "/rbacacct/alpha/bigmeta", "restype=directory", {"x-ms-meta-big": "v" * 9000}, None, 400),
        ("PUT", "/rbacacct/alpha/badmeta", "restype=directory", {"x-ms-meta-1bad": "v"}, None, 400),
        ("PUT", "/rbacacct/alpha/f", "", {"x-ms-type": "file", "x-ms-content-length": "-5"}, None, 400),
        ("PUT", "/rbacacct/alpha/f", "", {"x-ms-type": "file", "x-ms-content-length": "abc"}, None, 400),
        ("GET", "/rbacacct/alpha", "restype=directory&comp=list&maxresults=0", {}, None, 400),
        ("GET", "/rbacacct/alpha", "restype=directory&comp=list&maxresults=x", {}, None, 400),
        ("PUT", "/rbacacct/alpha/nofile", "comp=range", {"x-ms-range": "bytes=0-3", "x-ms-write": "update"},
         b"abcd", 404),
        ("DELETE", "/rbacacct/alpha/ghost", "", {}, None, 404),
        ("PATCH", "/rbacacct/alpha/x", "", {}, None, 405),
        ("PUT", "/rbacacct", "restype=share&comp=acl", {"Content-Type": "application/xml"}, b"<not xml", 400),
    ],
)
def test_bad_requests_get_service_errors(world: EmulatorProcess, method: str, path: str, query: str,
                                         headers: dict[str, str], body: bytes | None, status: int) -> None:
    token = imds_token(world)
    resp = files_request(world, method, path, {**bearer(token), **headers}, body=body, query=query)
    assert resp.status == status, (resp.status, resp.data[:300])
    assert error_code(resp), "every error carries x-ms-error-code"
    assert resp.headers.get("x-ms-request-id")


def test_invalid_range_is_416(world: EmulatorProcess) -> None:
    token = imds_token(world)
    name = f"/rbacacct/alpha/r{uuid.uuid4().hex}"
    assert files_request(world, "PUT", name, {**bearer(token), "x-ms-type": "file",
                                              "x-ms-content-length": "10"}).status == 201
    resp = files_request(world, "GET", name, {**bearer(token), "x-ms-range": "bytes=50-60"})
    assert resp.status == 416 and error_code(resp) == "InvalidRange"
    too_big = files_request(world, "PUT", name, {**bearer(token), "x-ms-range": "bytes=0-4194304",
                                                 "x-ms-write": "update"},
                            body=b"x" * 4194305, query="comp=range")
    assert too_big.status in (400, 413) and error_code(too_big)
    # the server is still serving after all of that
    assert files_request(world, "HEAD", name, bearer(token)).status == 200


def test_audit_log_attributes_identity_and_holds_no_token(world: EmulatorProcess) -> None:
    token = imds_token(world)
    request_id = str(uuid.uuid4())
    files_request(world, "GET", "/rbacacct/alpha", {**bearer(token), "x-ms-client-request-id": request_id},
                  query="restype=directory&comp=list")
    lines = world.audit("StorageFileLogs")
    mine = [r for r in lines if r.get("ClientRequestId") == request_id]
    assert len(mine) == 1
    vm = world.identity("vm")
    assert mine[0]["AuthenticationType"] == "OAuth" and mine[0]["RequesterObjectId"] == vm["object_id"]
    assert mine[0]["RequesterAppId"] == vm["client_id"]
    assert mine[0]["OperationName"] == "ListFilesAndDirectories"
    assert mine[0]["StatusCode"] == "200" and mine[0]["StatusText"] == "Success"
    assert mine[0]["Category"] == "StorageRead" and mine[0]["AccountName"] == "rbacacct"
    # what Azure logs about an OAuth caller: tenant from the token, the token's hash, never the token
    assert mine[0]["RequesterTenantId"] == world.info["tenant_id"]
    assert mine[0]["AuthenticationHash"] == hashlib.sha256(token.encode()).hexdigest().upper()
    assert mine[0]["CallerIpAddress"].startswith("127.0.0.1:") and mine[0]["UserAgentHeader"]
    issued = world.audit("TokenIssuance")
    assert any(r.get("source") == "imds" and r.get("object_id") == vm["object_id"] for r in issued)
    raw = Path(world.info["audit_log"]).read_text(encoding="utf-8")
    assert token not in raw and token.split(".")[2] not in raw
    assert token not in world.stderr()


def test_error_replies_carry_the_emulators_clock(world: EmulatorProcess) -> None:
    from email.utils import parsedate_to_datetime

    world.set_clock_offset(3600)
    try:
        resp = files_request(world, "GET", "/rbacacct/alpha", query="restype=directory&comp=list")
    finally:
        world.set_clock_offset(0)
    assert resp.status == 401
    skew = parsedate_to_datetime(resp.headers["Date"]).timestamp() - time.time()
    assert 3500 < skew < 3700
