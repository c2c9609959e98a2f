"""IMDS source against a scripted transport: request shape, every failure script, error mapping.

Retries sleep on a FakeClock, so 70 s of 410 take no real time.
"""

from __future__ import annotations

import random

import pytest

from identity.identity_fakes import FakeTransport, connect_error, err, ok, timeout_error
from keyless.identity import (
    DEFAULT_RETRY,
    FakeClock,
    IdentityNotFound,
    IdentityUnavailable,
    ImdsSource,
    Selector,
    TokenRequestFailed,
)
from keyless.identity.transport import Response

RESOURCE = "https://storage.azure.com/"


SYSTEM = Selector()


def source(transport: FakeTransport, selector: Selector = SYSTEM, clock: FakeClock | None = None,
           **kw: object) -> tuple[ImdsSource, FakeClock]:
    clock = clock or FakeClock()
    return ImdsSource(selector, transport=transport, clock=clock, rng=random.Random(0), **kw), clock  # type: ignore[arg-type]


def test_request_shape_system_assigned() -> None:
    t = FakeTransport(ok())
    src, _ = source(t)
    src.fetch(RESOURCE)
    sent = t.sent[0]
    assert sent.method == "GET"
    assert sent.url.startswith("http://169.254.169.254/metadata/identity/oauth2/token?")
    assert sent.query == {"api-version": "2018-02-01", "resource": RESOURCE}
    assert sent.headers == {"Metadata": "true"}  # and nothing else: no X-Forwarded-For


@pytest.mark.parametrize(("selector", "param"), [
    (Selector(client_id="c1"), ("client_id", "c1")),
    (Selector(object_id="o1"), ("object_id", "o1")),
    (Selector(resource_id="/subscriptions/s/x"), ("msi_res_id", "/subscriptions/s/x")),
])
def test_user_assigned_selectors(selector: Selector, param: tuple[str, str]) -> None:
    t = FakeTransport(ok())
    src, _ = source(t, selector)
    src.fetch(RESOURCE)
    assert t.sent[0].query[param[0]] == param[1]


def test_pod_identity_host_override() -> None:
    t = FakeTransport(ok())
    src, _ = source(t, env={"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:9999/"})
    src.fetch(RESOURCE)
    assert t.sent[0].url.startswith("http://127.0.0.1:9999/metadata/identity/oauth2/token?")


def test_expiry_from_receipt_plus_expires_in() -> None:
    # IMDS serves cached tokens: expires_on may be older than expires_in says; expires_in wins.
    clock = FakeClock()
    t = FakeTransport(ok(expires_in=5000, expires_on=clock.now() + 99999))
    src, _ = source(t, clock=clock)
    token = src.fetch(RESOURCE)
    assert token.expires_on == pytest.approx(clock.now() + 5000)
    assert token.source == "imds" and token.identity == "system-assigned" and token.resource == RESOURCE


def test_expires_on_only_and_skewed_clock() -> None:
    from identity.identity_fakes import make_jwt
    from keyless.identity.token import parse_token_response

    now = 1_750_000_000.0
    jwt = make_jwt(iat=now - 7200, exp=now - 3600)  # the issuer's clock is 2 h behind ours
    token = parse_token_response({"access_token": jwt, "expires_on": str(int(now - 3600))},
                                 received_at=now, resource=RESOURCE, source="appservice", identity="x")
    assert token.expires_on == pytest.approx(now + 3600)  # the token's own lifetime, from receipt


def test_400_is_identity_not_found_naming_the_selector_and_never_retried() -> None:
    t = FakeTransport(err(400, "invalid_request", "Identity not found"))
    src, clock = source(t, Selector(client_id="11111111-2222"))
    with pytest.raises(IdentityNotFound) as info:
        src.fetch(RESOURCE)
    assert t.count == 1
    assert clock.sleeps == []
    assert "client_id=11111111-2222" in str(info.value)
    assert info.value.selector == "client_id=11111111-2222"
    assert "az vm identity assign" in str(info.value)


def test_400_system_assigned_says_enable_it() -> None:
    t = FakeTransport(err(400, "invalid_request", "Identity not found"))
    src, _ = source(t)
    with pytest.raises(IdentityNotFound, match="system-assigned"):
        src.fetch(RESOURCE)


def test_404_then_success() -> None:
    t = FakeTransport(err(404), err(404), ok())
    src, clock = source(t)
    assert src.fetch(RESOURCE).token == "secret-token-value"
    assert t.count == 3
    assert len(clock.sleeps) == 2 and clock.sleeps[0] < clock.sleeps[1] * 2


def test_410_retried_for_70_seconds_of_fake_time() -> None:
    t = FakeTransport(err(410, "gone"))
    src, clock = source(t)
    start = clock.now()
    with pytest.raises(TokenRequestFailed) as info:
        src.fetch(RESOURCE)
    assert clock.now() - start == pytest.approx(70.0)
    assert t.count > 6  # more than the ordinary five retries
    assert info.value.status == 410 and "410" in str(info.value)


def test_410_that_clears_within_the_window() -> None:
    t = FakeTransport(*[err(410)] * 8, ok())
    src, _clock = source(t)
    assert src.fetch(RESOURCE).token == "secret-token-value"
    assert t.count == 9


def test_429_honours_retry_after() -> None:
    t = FakeTransport(err(429, headers={"Retry-After": "3"}), err(429, headers={"Retry-After": "3"}), ok())
    src, clock = source(t)
    src.fetch(RESOURCE)
    assert clock.sleeps == [3.0, 3.0]


def test_500_exhausts_the_retries() -> None:
    t = FakeTransport(err(500, "unknown_error", "boom"))
    src, _ = source(t)
    with pytest.raises(TokenRequestFailed) as info:
        src.fetch(RESOURCE)
    assert t.count == DEFAULT_RETRY.total + 1
    assert info.value.status == 500 and info.value.attempts == DEFAULT_RETRY.total + 1
    assert "boom" in str(info.value)


def test_timeouts_are_retried() -> None:
    t = FakeTransport(timeout_error(), timeout_error(), ok())
    src, clock = source(t)
    assert src.fetch(RESOURCE).token == "secret-token-value"
    assert len(clock.sleeps) == 2


def test_timeouts_forever_fail_with_advice() -> None:
    t = FakeTransport(timeout_error())
    src, _ = source(t)
    with pytest.raises(TokenRequestFailed, match="did not answer"):
        src.fetch(RESOURCE)
    assert t.count == DEFAULT_RETRY.total + 1


def test_unreachable_is_unavailable_quickly() -> None:
    t = FakeTransport(connect_error())
    src, _ = source(t)
    with pytest.raises(IdentityUnavailable, match="not an Azure VM"):
        src.fetch(RESOURCE)
    assert t.count == 2


def test_garbage_reply() -> None:
    t = FakeTransport(Response(200, {}, b"<html>captive portal</html>"))
    src, _ = source(t)
    with pytest.raises(TokenRequestFailed, match="not a JSON object"):
        src.fetch(RESOURCE)
