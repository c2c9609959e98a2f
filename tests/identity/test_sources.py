"""Source details that need no server: Arc key-file checks, workload file rotation and authority rules,
App Service request shape, static tokens."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from identity.identity_fakes import FakeTransport, Sent, make_jwt, ok
from keyless.identity import (
    AppServiceSource,
    ArcKeyFileError,
    ArcSource,
    CredentialConfigError,
    FakeClock,
    IdentityUnavailable,
    Selector,
    StaticTokenSource,
    WorkloadIdentitySource,
)
from keyless.identity.sources.arc import read_key_file
from keyless.identity.sources.workload import FederatedTokenFile
from keyless.identity.transport import Response

R = "https://storage.azure.com/"


# --- Arc ---------------------------------------------------------------------------------------------


def test_arc_key_file_checks(tmp_path: Path) -> None:
    keys = tmp_path / "tokens"
    keys.mkdir()
    good = keys / "abc.key"
    good.write_text("s3cret")
    assert read_key_file(str(good), keys) == "s3cret"
    other = tmp_path / "elsewhere.key"
    other.write_text("x")
    with pytest.raises(ArcKeyFileError, match="outside"):
        read_key_file(str(other), keys)
    with pytest.raises(ArcKeyFileError, match="outside"):
        read_key_file(str(keys / ".." / "elsewhere.key"), keys)
    wrong_suffix = keys / "abc.txt"
    wrong_suffix.write_text("x")
    with pytest.raises(ArcKeyFileError, match=r"\.key"):
        read_key_file(str(wrong_suffix), keys)
    big = keys / "big.key"
    big.write_bytes(b"x" * 4097)
    with pytest.raises(ArcKeyFileError, match="4096"):
        read_key_file(str(big), keys)
    link = keys / "link.key"
    os.symlink(other, link)  # a planted link must not lead out of the directory
    with pytest.raises(ArcKeyFileError, match="outside"):
        read_key_file(str(link), keys)


def test_arc_challenge_flow(tmp_path: Path) -> None:
    (tmp_path / "k.key").write_text("the-key")

    def answer(sent: Sent) -> Response:
        if "Authorization" not in sent.headers:
            return Response(401, {"WWW-Authenticate": f"Basic realm={tmp_path / 'k.key'}"}, b"")
        assert sent.headers["Authorization"] == "Basic the-key"
        return ok()

    t = FakeTransport(answer)
    src = ArcSource(endpoint="http://127.0.0.1:40342/metadata/identity/oauth2/token", key_dir=tmp_path,
                    transport=t, clock=FakeClock())
    assert src.fetch(R).token == "secret-token-value"
    assert t.sent[0].query == {"api-version": "2020-06-01", "resource": R}
    assert t.sent[0].headers["Metadata"] == "true"


def test_arc_is_system_assigned_only() -> None:
    with pytest.raises(CredentialConfigError, match="system-assigned"):
        ArcSource(Selector(client_id="x"), endpoint="http://localhost:40342/x")


# --- App Service ------------------------------------------------------------------------------------


def test_app_service_request_shape_and_repr_hides_header() -> None:
    t = FakeTransport(ok(expires_in=None, expires_on=time.time() + 3600))
    src = AppServiceSource(Selector(resource_id="/sub/x"), transport=t,
                           env={"IDENTITY_ENDPOINT": "http://127.0.0.1:8081/msi/token",
                                "IDENTITY_HEADER": "hdr-secret"})
    tok = src.fetch(R)
    assert tok.remaining(time.time()) == pytest.approx(3600, abs=5)
    sent = t.sent[0]
    assert sent.headers == {"X-IDENTITY-HEADER": "hdr-secret"}
    assert sent.query == {"api-version": "2019-08-01", "resource": R, "mi_res_id": "/sub/x"}
    assert "hdr-secret" not in repr(src)


def test_app_service_needs_its_env() -> None:
    with pytest.raises(IdentityUnavailable, match="IDENTITY_HEADER"):
        AppServiceSource(env={"IDENTITY_ENDPOINT": "http://x"})


# --- workload identity -----------------------------------------------------------------------------


def test_federated_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text("one")
    ftf = FederatedTokenFile(f)
    assert ftf.read() == "one"
    f.write_text("two!")  # size changes
    assert ftf.read() == "two!"
    os.utime(f, ns=(0, 0))
    f.write_text("thr!")  # same size, new mtime
    assert ftf.read() == "thr!"


def test_workload_request_shape(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text("assertion-jwt")
    t = FakeTransport(ok(expires_in=3599))
    src = WorkloadIdentitySource(transport=t, env={"AZURE_CLIENT_ID": "cid", "AZURE_TENANT_ID": "tid",
                                                  "AZURE_FEDERATED_TOKEN_FILE": str(f)})
    src.fetch(R)
    sent = t.sent[0]
    assert sent.method == "POST"
    assert sent.url == "https://login.microsoftonline.com/tid/oauth2/v2.0/token"
    from urllib.parse import parse_qs
    form = {k: v[0] for k, v in parse_qs((sent.body or b"").decode()).items()}
    assert form == {"grant_type": "client_credentials", "client_id": "cid",
                    "scope": "https://storage.azure.com/.default", "client_assertion": "assertion-jwt",
                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}


def test_workload_refuses_plain_http_authority_except_loopback(tmp_path: Path) -> None:
    env = {"AZURE_CLIENT_ID": "c", "AZURE_TENANT_ID": "t", "AZURE_FEDERATED_TOKEN_FILE": str(tmp_path)}
    with pytest.raises(CredentialConfigError, match="not HTTPS"):
        WorkloadIdentitySource(env={**env, "AZURE_AUTHORITY_HOST": "http://login.example.com"})
    WorkloadIdentitySource(env={**env, "AZURE_AUTHORITY_HOST": "http://127.0.0.1:8080"})


def test_workload_missing_env_names_what_is_missing() -> None:
    with pytest.raises(IdentityUnavailable, match="AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE"):
        WorkloadIdentitySource(env={"AZURE_CLIENT_ID": "c"})


# --- static -------------------------------------------------------------------------------------------


def test_static_file_expiry_and_audience(tmp_path: Path) -> None:
    now = time.time()
    f = tmp_path / "tok"
    f.write_text(make_jwt(aud="https://storage.azure.com", exp=now + 600, iat=now - 10))
    src = StaticTokenSource(token_file=f)
    tok = src.fetch(R)  # aud without the slash serves the REST form too
    assert tok.expires_on == pytest.approx(now + 600, abs=1)
    f.write_text(make_jwt(aud="https://storage.azure.com", exp=now - 5))
    with pytest.raises(IdentityUnavailable, match="expired"):
        src.fetch(R)
