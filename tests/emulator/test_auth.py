"""Files-side authentication and RBAC: the reference's exact failures, Shared Key against the SDK's signer."""

from __future__ import annotations

import base64
import hashlib
import hmac
from email.utils import formatdate
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.transport import HttpRequest as LegacyHttpRequest
from azure.storage.fileshare._shared.authentication import SharedKeyCredentialPolicy
from multidict import CIMultiDict

from inprocess_emulator import FILES_URL
from keyless.emulator import request_keys as keys
from keyless.emulator.auth import authenticate, authorize, granted_actions, shared_key_string
from keyless.emulator.context import Emulator
from keyless.emulator.errors import StorageError, error_body
from keyless.emulator.request_keys import AUTH_ACCOUNT_KEY, AUTH_OAUTH, Caller
from keyless.protocol import ACTION_DELETE, ACTION_READ, ACTION_READ_BACKUP, ACTION_WRITE, ACTION_WRITE_BACKUP

READ = frozenset({ACTION_READ, ACTION_READ_BACKUP})
WRITE = frozenset({ACTION_WRITE, ACTION_WRITE_BACKUP})


def ident(ctx: Emulator, name: str) -> Any:
    return next(i for i in ctx.config.identities if i.name == name)


def bearer_headers(token: str, **extra: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "x-ms-version": "2025-05-05",
        "x-ms-date": formatdate(usegmt=True),
        "x-ms-file-request-intent": "backup",
        **extra,
    }


def request(method: str, path: str, headers: dict[str, str]) -> web.Request:
    return make_mocked_request(method, path, headers=CIMultiDict(headers))


def fails(ctx: Emulator, req: web.Request, account: str = "devaccount") -> StorageError:
    with pytest.raises(StorageError) as info:
        authenticate(ctx, req, account)
    return info.value


# --- bearer --------------------------------------------------------------------------------------------


def test_valid_bearer_yields_oauth_caller(emulator_ctx: Emulator) -> None:
    vm = emulator_ctx.config.identities[0]
    token = emulator_ctx.issuer.mint(vm, "https://storage.azure.com/").access_token
    req = request("GET", "/devaccount/demo/dir?restype=directory", bearer_headers(token))
    caller = authenticate(emulator_ctx, req, "devaccount")
    assert caller == Caller(AUTH_OAUTH, vm.object_id, vm.client_id)
    assert req[keys.CALLER] is caller


def test_ip_style_account_url_is_an_accepted_audience(emulator_ctx: Emulator) -> None:
    vm = emulator_ctx.config.identities[0]
    token = emulator_ctx.issuer.mint(vm, f"{FILES_URL}/devaccount").access_token
    req = request("HEAD", "/devaccount/demo/f", bearer_headers(token))
    caller = authenticate(emulator_ctx, req, "devaccount")
    assert caller.auth_type == AUTH_OAUTH


def test_no_authorization_is_401_with_challenge(emulator_ctx: Emulator) -> None:
    err = fails(emulator_ctx, request("GET", "/devaccount/demo/f", {"x-ms-version": "2025-05-05"}))
    assert (err.status, err.code) == (401, "NoAuthenticationInformation")
    tid = emulator_ctx.config.tenant_id
    assert err.headers["WWW-Authenticate"] == (
        f"Bearer authorization_uri=https://login.microsoftonline.com/{tid}/oauth2/authorize "
        "resource_id=https://storage.azure.com"
    )


def test_bearer_without_intent_is_400_missing_header(emulator_ctx: Emulator) -> None:
    vm = emulator_ctx.config.identities[0]
    token = emulator_ctx.issuer.mint(vm, "https://storage.azure.com/").access_token
    headers = bearer_headers(token)
    del headers["x-ms-file-request-intent"]
    err = fails(emulator_ctx, request("GET", "/devaccount/demo/f", headers))
    assert (err.status, err.code, err.extra) == (400, "MissingRequiredHeader",
                                                 {"HeaderName": "x-ms-file-request-intent"})
    # The SMB ticket exchange is the one bearer call without the intent header.
    kerb = request("POST", "/devaccount/?restype=service&comp=kerbticket", headers)
    caller = authenticate(emulator_ctx, kerb, "devaccount", require_intent=False)
    assert caller.auth_type == AUTH_OAUTH


@pytest.mark.parametrize("version", ["2021-12-02", "2019-02-02", None])
def test_bearer_on_old_version_is_403(emulator_ctx: Emulator, version: str | None) -> None:
    vm = emulator_ctx.config.identities[0]
    headers = bearer_headers(emulator_ctx.issuer.mint(vm, "https://storage.azure.com/").access_token)
    if version is None:
        del headers["x-ms-version"]
    else:
        headers["x-ms-version"] = version
    err = fails(emulator_ctx, request("GET", "/devaccount/demo/f", headers))
    assert (err.status, err.code) == (403, "AuthenticationFailed")
    detail = "Authentication scheme Bearer is not supported in this version."
    assert err.extra["AuthenticationErrorDetail"] == detail


def test_bad_tokens_are_401_invalid_authentication_info(emulator_ctx: Emulator) -> None:
    vm = emulator_ctx.config.identities[0]
    cases = {
        emulator_ctx.issuer.mint(vm, "https://management.azure.com/").access_token:
            "Audience validation failed. Audience did not match.",
        emulator_ctx.issuer.mint(vm, "https://storage.azure.com/", lifetime=-600).access_token:
            "Lifetime validation failed. The token is expired.",
        "not-a-jwt": "The token is malformed.",
    }
    for token, detail in cases.items():
        err = fails(emulator_ctx, request("GET", "/devaccount/demo/f", bearer_headers(token)))
        assert (err.status, err.code) == (401, "InvalidAuthenticationInfo")
        assert err.extra["AuthenticationErrorDetail"] == detail
        assert err.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")
        body = error_body(err, "rid").decode()
        assert token not in body and token not in str(err)


# --- Shared Key ----------------------------------------------------------------------------------------


def sdk_sign(account: str, key: str, method: str, url: str, headers: dict[str, str]) -> dict[str, str]:
    """Signs with azure-storage-file-share's own policy: the oracle for the string-to-sign."""
    http_request = LegacyHttpRequest(method, url, headers=dict(headers))
    pipeline_request = PipelineRequest(http_request, PipelineContext(None))
    SharedKeyCredentialPolicy(account, key).on_request(pipeline_request)  # type: ignore[no-untyped-call]
    return dict(http_request.headers)


def test_shared_key_signed_by_the_sdk_ip_style(emulator_ctx: Emulator) -> None:
    key = emulator_ctx.account_keys["devaccount"]
    path = "/devaccount/demo/dir%20a/file%C3%A9.txt?comp=range&timeout=30"
    headers = {
        "x-ms-version": "2025-05-05",
        "x-ms-date": formatdate(usegmt=True),
        "x-ms-range": "bytes=0-9",
        "x-ms-write": "update",
        "x-ms-meta-a-b": "1",
        "x-ms-meta-ab": "2",
        "x-ms-meta-a_c": "3",
        "Content-Length": "10",
        "Content-Type": "application/octet-stream",
    }
    signed = sdk_sign("devaccount", key, "PUT", f"{FILES_URL}{path}", headers)
    caller = authenticate(emulator_ctx, request("PUT", path, signed), "devaccount")
    assert caller.auth_type == AUTH_ACCOUNT_KEY
    authorize(emulator_ctx, caller, "devaccount", "demo", WRITE)  # the key needs no role


def test_shared_key_signing_the_account_once_is_refused(emulator_ctx: Emulator) -> None:
    # Azure signs "/{account}" + the URI path; on an IP-style URL the path starts with the account too.
    # The once-signed form of /devaccount/devaccount/demo would also be the SDK's form of share "demo".
    key = base64.b64decode(emulator_ctx.account_keys["devaccount"])
    date = formatdate(usegmt=True)
    req_headers = {"x-ms-date": date, "x-ms-version": "2025-05-05"}
    head = "GET\n" + "\n" * 11 + f"x-ms-date:{date}\nx-ms-version:2025-05-05\n"
    tail = "\ncomp:list\nrestype:directory"
    path = "/devaccount/demo?restype=directory&comp=list"
    for resource, accepted in (("/devaccount/devaccount/demo", True), ("/devaccount/demo", False)):
        sig = base64.b64encode(hmac.digest(key, (head + resource + tail).encode(), hashlib.sha256)).decode()
        req = request("GET", path, {**req_headers, "Authorization": f"SharedKey devaccount:{sig}"})
        assert shared_key_string(req, "devaccount") == head + "/devaccount/devaccount/demo" + tail
        if accepted:
            assert authenticate(emulator_ctx, req, "devaccount").auth_type == AUTH_ACCOUNT_KEY
        else:
            assert fails(emulator_ctx, req).code == "AuthenticationFailed"


def test_shared_key_lite(emulator_ctx: Emulator) -> None:
    key = base64.b64decode(emulator_ctx.account_keys["devaccount"])
    date = formatdate(usegmt=True)
    sts = f"GET\n\n\n\nx-ms-date:{date}\nx-ms-version:2025-05-05\n/devaccount/devaccount/demo?comp=list"
    sig = base64.b64encode(hmac.digest(key, sts.encode(), hashlib.sha256)).decode()
    req = request("GET", "/devaccount/demo?restype=directory&comp=list",
                  {"x-ms-date": date, "x-ms-version": "2025-05-05",
                   "Authorization": f"SharedKeyLite devaccount:{sig}"})
    assert authenticate(emulator_ctx, req, "devaccount").auth_type == AUTH_ACCOUNT_KEY


def test_shared_key_wrong_key_never_echoes_the_key(emulator_ctx: Emulator) -> None:
    real_key = emulator_ctx.account_keys["devaccount"]
    wrong = base64.b64encode(b"x" * 64).decode()
    headers = {"x-ms-version": "2025-05-05", "x-ms-date": formatdate(usegmt=True)}
    signed = sdk_sign("devaccount", wrong, "GET", f"{FILES_URL}/devaccount/demo/f", headers)
    err = fails(emulator_ctx, request("GET", "/devaccount/demo/f", signed))
    assert (err.status, err.code) == (403, "AuthenticationFailed")
    detail = err.extra["AuthenticationErrorDetail"]
    assert detail.startswith("The MAC signature found in the HTTP request '")
    assert "is not the same as any computed signature" in detail
    body = error_body(err, "rid").decode()
    for secret in (real_key, wrong):
        assert secret not in body and secret not in str(err)


def test_shared_key_tampered_request_fails(emulator_ctx: Emulator) -> None:
    key = emulator_ctx.account_keys["devaccount"]
    headers = {"x-ms-version": "2025-05-05", "x-ms-date": formatdate(usegmt=True)}
    signed = sdk_sign("devaccount", key, "GET", f"{FILES_URL}/devaccount/demo/f", headers)
    assert fails(emulator_ctx, request("GET", "/devaccount/demo/g", signed)).code == "AuthenticationFailed"
    assert fails(emulator_ctx, request("DELETE", "/devaccount/demo/f", signed)).code == "AuthenticationFailed"


def test_shared_key_stale_date(emulator_ctx: Emulator) -> None:
    key = emulator_ctx.account_keys["devaccount"]
    import time

    headers = {"x-ms-version": "2025-05-05", "x-ms-date": formatdate(time.time() - 3600, usegmt=True)}
    signed = sdk_sign("devaccount", key, "GET", f"{FILES_URL}/devaccount/demo/f", headers)
    err = fails(emulator_ctx, request("GET", "/devaccount/demo/f", signed))
    assert err.code == "AuthenticationFailed" and "too old" in err.extra["AuthenticationErrorDetail"]


def test_shared_key_refused_when_account_disallows_it(rich_ctx: Emulator) -> None:
    key = rich_ctx.account_keys["nokeyacct"]
    headers = {"x-ms-version": "2025-05-05", "x-ms-date": formatdate(usegmt=True)}
    signed = sdk_sign("nokeyacct", key, "GET", f"{FILES_URL}/nokeyacct/data/f", headers)
    err = fails(rich_ctx, request("GET", "/nokeyacct/data/f", signed), "nokeyacct")
    assert (err.status, err.code) == (403, "KeyBasedAuthenticationNotPermitted")


# --- RBAC ----------------------------------------------------------------------------------------------


def oauth(ctx: Emulator, name: str) -> Caller:
    i = ident(ctx, name)
    return Caller(AUTH_OAUTH, i.object_id, i.client_id)


def denied(ctx: Emulator, caller: Caller, account: str, share: str | None, actions: frozenset[str]) -> None:
    with pytest.raises(StorageError) as info:
        authorize(ctx, caller, account, share, actions)
    assert (info.value.status, info.value.code) == (403, "AuthorizationPermissionMismatch")
    assert info.value.message == ("This request is not authorized to perform this operation using this "
                                  "permission.")


def test_share_scoped_role_grants_only_that_share(rich_ctx: Emulator) -> None:
    vm = oauth(rich_ctx, "vm")
    authorize(rich_ctx, vm, "devaccount", "demo", READ | WRITE | {ACTION_DELETE})
    denied(rich_ctx, vm, "devaccount", "other", READ)
    denied(rich_ctx, vm, "devaccount", None, READ)  # account-level operations need an account-scoped role
    denied(rich_ctx, vm, "nokeyacct", "data", READ)


def test_account_scoped_reader(rich_ctx: Emulator) -> None:
    app1 = oauth(rich_ctx, "app1")
    for share in ("demo", "other", None):
        authorize(rich_ctx, app1, "devaccount", share, READ)
    denied(rich_ctx, app1, "devaccount", "demo", WRITE)
    denied(rich_ctx, app1, "devaccount", "demo", frozenset({ACTION_READ, ACTION_WRITE}))


def test_roles_follow_runtime_changes_and_unknown_principals(rich_ctx: Emulator) -> None:
    app1 = oauth(rich_ctx, "app1")
    rich_ctx.set_role_assignments([])
    denied(rich_ctx, app1, "devaccount", "demo", READ)
    assert granted_actions(rich_ctx, app1.object_id or "", "devaccount", "demo") == frozenset()
    denied(rich_ctx, Caller(AUTH_OAUTH, None, None), "devaccount", "demo", READ)
    denied(rich_ctx, Caller("Anonymous", None, None), "devaccount", "demo", READ)
    authorize(rich_ctx, Caller(AUTH_ACCOUNT_KEY, None, None), "devaccount", "demo", READ | WRITE)
