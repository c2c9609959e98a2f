"""The emulator's token issuer: key persistence, claims, verification failures, federated assertions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from keyless.emulator.clock import Clock
from keyless.emulator.config import Identity, default_config
from keyless.emulator.errors import TokenRejected
from keyless.emulator.issuer import (
    DETAIL_AUDIENCE,
    DETAIL_EXPIRED,
    DETAIL_ISSUER,
    DETAIL_MALFORMED,
    DETAIL_NOT_YET_VALID,
    DETAIL_SIGNATURE,
    AssertionRejected,
    TokenIssuer,
)

CONFIG = default_config()
VM = CONFIG.identities[0]
USER = Identity(
    "app1", "user", "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222",
    "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app1",
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def issuer(tmp_path: Path, clock: Clock) -> TokenIssuer:
    return TokenIssuer(tmp_path, CONFIG, clock)


def test_signing_key_is_private_and_reused(tmp_path: Path, clock: Clock) -> None:
    first = TokenIssuer(tmp_path, CONFIG, clock)
    key = tmp_path / "signing-key.pem"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    second = TokenIssuer(tmp_path, CONFIG, clock)
    assert first.kid == second.kid
    token = first.mint(VM, "https://storage.azure.com/").access_token
    assert second.verify_storage_token(token, "devaccount")["oid"] == VM.object_id


def test_minted_token_has_managed_identity_claims(issuer: TokenIssuer) -> None:
    minted = issuer.mint(VM, "https://storage.azure.com")
    header = jwt.get_unverified_header(minted.access_token)
    assert header == {"typ": "JWT", "alg": "RS256", "kid": issuer.kid, "x5t": issuer.x5t}
    claims = jwt.decode(minted.access_token, options={"verify_signature": False})
    tid = CONFIG.tenant_id
    assert claims["aud"] == "https://storage.azure.com"  # exactly as requested, no slash added
    assert claims["iss"] == claims["idp"] == f"https://sts.windows.net/{tid}/"
    assert claims["tid"] == tid
    assert claims["oid"] == claims["sub"] == VM.object_id
    assert claims["appid"] == VM.client_id
    assert (claims["appidacr"], claims["idtyp"], claims["ver"]) == ("2", "app", "1.0")
    assert claims["xms_mirid"] == VM.resource_id
    assert claims["nbf"] == claims["iat"] == minted.not_before
    assert claims["exp"] == minted.expires_on == minted.not_before + minted.expires_in
    assert minted.expires_in == int(CONFIG.token_lifetime)
    assert isinstance(claims["uti"], str) and claims["uti"]


def test_token_verifies_against_published_jwks(issuer: TokenIssuer) -> None:
    token = issuer.mint(USER, "https://storage.azure.com/", lifetime=60).access_token
    jwks = issuer.jwks()
    key = jwt.PyJWK(jwks["keys"][0])
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience="https://storage.azure.com/")
    assert claims["appid"] == USER.client_id
    assert jwks["keys"][0]["kid"] == issuer.kid and jwks["keys"][0]["x5c"]


@pytest.mark.parametrize(
    "audience",
    [
        "https://storage.azure.com",
        "https://storage.azure.com/",
        "https://devaccount.file.core.windows.net",
        "https://devaccount.file.core.windows.net/",
        "https://127.0.0.1:44300/devaccount",
    ],
)
def test_accepted_audiences(issuer: TokenIssuer, audience: str) -> None:
    token = issuer.mint(VM, audience).access_token
    claims = issuer.verify_storage_token(token, "devaccount", ["https://127.0.0.1:44300/devaccount"])
    assert claims["aud"] == audience


@pytest.mark.parametrize(
    "audience",
    ["https://management.azure.com/", "https://otheraccount.file.core.windows.net", "https://storage.azure.com//"],
)
def test_wrong_audience(issuer: TokenIssuer, audience: str) -> None:
    token = issuer.mint(VM, audience).access_token
    with pytest.raises(TokenRejected) as info:
        issuer.verify_storage_token(token, "devaccount")
    assert info.value.detail == DETAIL_AUDIENCE


def test_lifetime_uses_emulator_clock_with_five_minutes_skew(issuer: TokenIssuer, clock: Clock) -> None:
    token = issuer.mint(VM, "https://storage.azure.com/", lifetime=60).access_token
    clock.offset = 60 + 240  # expired four minutes ago: still inside the allowance
    issuer.verify_storage_token(token, "devaccount")
    clock.offset = 60 + 360
    with pytest.raises(TokenRejected) as info:
        issuer.verify_storage_token(token, "devaccount")
    assert info.value.detail == DETAIL_EXPIRED
    clock.offset = -600  # the token's nbf is ten minutes in the future
    with pytest.raises(TokenRejected) as info:
        issuer.verify_storage_token(token, "devaccount")
    assert info.value.detail == DETAIL_NOT_YET_VALID


def test_cached_token_still_expires(issuer: TokenIssuer, clock: Clock) -> None:
    token = issuer.mint(VM, "https://storage.azure.com/", lifetime=10).access_token
    for _ in range(3):
        issuer.verify_storage_token(token, "devaccount")  # second and third calls hit the cache
    clock.offset = 10 + 301
    with pytest.raises(TokenRejected, match="expired"):
        issuer.verify_storage_token(token, "devaccount")


def test_foreign_signature_issuer_and_garbage(issuer: TokenIssuer) -> None:
    good = jwt.decode(issuer.mint(VM, "https://storage.azure.com/").access_token,
                      options={"verify_signature": False})
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(good, other_key, algorithm="RS256", headers={"kid": issuer.kid})
    with pytest.raises(TokenRejected) as info:
        issuer.verify_storage_token(forged, "devaccount")
    assert info.value.detail == DETAIL_SIGNATURE

    wrong_iss = jwt.encode({**good, "iss": "https://sts.windows.net/other/"}, issuer._key, algorithm="RS256")
    with pytest.raises(TokenRejected) as info:
        issuer.verify_storage_token(wrong_iss, "devaccount")
    assert info.value.detail == DETAIL_ISSUER

    unsigned = jwt.encode(good, None, algorithm="none")  # type: ignore[arg-type]
    with pytest.raises(TokenRejected) as info:
        issuer.verify_storage_token(unsigned, "devaccount")
    assert info.value.detail == DETAIL_SIGNATURE

    for garbage in ("", "abc", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30"):
        with pytest.raises(TokenRejected) as info:
            issuer.verify_storage_token(garbage, "devaccount")
        assert info.value.detail == DETAIL_MALFORMED


def test_rejection_text_never_holds_the_token(issuer: TokenIssuer, clock: Clock) -> None:
    token = issuer.mint(VM, "https://example.org/").access_token
    with pytest.raises(TokenRejected) as info:
        issuer.verify_storage_token(token, "devaccount")
    assert token not in str(info.value) and token.split(".")[1] not in info.value.detail


def test_federated_assertion_round_trip(issuer: TokenIssuer, clock: Clock) -> None:
    assertion = issuer.mint_federated_assertion(USER, lifetime=600)
    claims = issuer.verify_federated_assertion(assertion, USER)
    assert claims["sub"] == "system:serviceaccount:default:app1"
    assert claims["aud"] == ["api://AzureADTokenExchange"]
    assert claims["iss"] == issuer.federation_issuer

    other = Identity("app2", "user", "33333333-3333-3333-3333-333333333333",
                     "44444444-4444-4444-4444-444444444444", "/x/app2")
    with pytest.raises(AssertionRejected) as info:
        issuer.verify_federated_assertion(assertion, other)
    assert info.value.aadsts == 70021

    # An access token is not an assertion, and an assertion is not an access token.
    with pytest.raises(AssertionRejected):
        issuer.verify_federated_assertion(issuer.mint(USER, "api://AzureADTokenExchange").access_token, USER)
    with pytest.raises(TokenRejected):
        issuer.verify_storage_token(assertion, "devaccount")

    clock.offset = 600 + 301
    with pytest.raises(AssertionRejected) as info:
        issuer.verify_federated_assertion(assertion, USER)
    assert (info.value.aadsts, info.value.error) == (700024, "invalid_client")


def test_openid_configuration_points_at_the_asking_listener(issuer: TokenIssuer) -> None:
    doc = issuer.openid_configuration("https://127.0.0.1:9443/")
    tid = CONFIG.tenant_id
    assert doc["token_endpoint"] == f"https://127.0.0.1:9443/{tid}/oauth2/v2.0/token"
    assert doc["jwks_uri"] == f"https://127.0.0.1:9443/{tid}/discovery/v2.0/keys"
    assert doc["authorization_endpoint"].startswith("https://127.0.0.1:9443/")
    assert doc["issuer"] == f"https://127.0.0.1:9443/{tid}/v2.0"
