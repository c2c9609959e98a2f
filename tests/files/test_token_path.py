"""The Files client takes its tokens from the credential's cache, which alone decides when to refresh.

A keyless credential refreshes a managed identity token (24 h) at its half-life, in the background of the
callers: the first caller past the advisory point fetches while every other caller keeps the still-valid
token. The Files client must not hide that window behind a token copy of its own, and must not make its
workers wait on a lock while a token is fetched. Time is a fake clock; the fake service refuses tokens
the fake clock says have expired.
"""

from __future__ import annotations

import threading
import time

from files_fake import BASE, FakeTransport

from keyless.files.client import ShareClient
from keyless.files.transport import Response
from keyless.identity import FakeClock, IdentityUnavailable, ManagedIdentityCredential, Token

DAY = 86400.0
WAIT = 10.0  # seconds of real time a step may take before the test calls it stuck


class _Endpoint:
    """A token source (like IMDS) that can be held mid-request or made to fail."""

    name = "imds"
    identity = "system-assigned"
    cache_scope = "imds|fake|system-assigned"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.fetches = 0
        self.issued: dict[str, float] = {}  # token -> expires_on
        self.started = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.outage = False

    def fetch(self, resource: str) -> Token:
        self.fetches += 1
        self.started.set()
        if not self.gate.wait(WAIT):
            raise AssertionError("the token request was never let through")
        if self.outage:
            raise IdentityUnavailable("the identity endpoint is down")
        now = self.clock.now()
        token = f"tok{self.fetches}"
        self.issued[token] = now + DAY
        return Token(token=token, expires_on=now + DAY, received_at=now, resource=resource)

    def close(self) -> None:
        pass


class _ExpiringService(FakeTransport):
    """The fake share, refusing (401) a token the identity endpoint did not issue or that has expired."""

    def __init__(self, endpoint: _Endpoint) -> None:
        super().__init__(tokens=set())
        self.endpoint = endpoint
        self.used: list[str] = []

    def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None = None) -> Response:
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        self.used.append(token)
        expires = self.endpoint.issued.get(token)
        self.tokens = {token} if expires is not None and self.endpoint.clock.now() < expires else set()
        return super().request(method, url, headers, body)


def test_a_long_transfer_refreshes_early_without_blocking_and_survives_an_outage_near_expiry() -> None:
    # Start at the real time, so a client that compares token expiry with the system clock sees the same.
    clock = FakeClock(start=time.time())
    endpoint = _Endpoint(clock)
    service = _ExpiringService(endpoint)
    credential = ManagedIdentityCredential(source=endpoint, clock=clock)
    client = ShareClient(BASE, credential, transport=service)
    client.mkdir("d")
    assert endpoint.fetches == 1 and service.used == ["tok1"]

    # 13 h into the transfer: past tok1's half-life, its advisory window. The next request starts the early
    # refresh; the identity endpoint is slow to answer.
    clock.advance(13 * 3600)
    endpoint.gate.clear()
    endpoint.started.clear()
    leader = threading.Thread(target=client.mkdir, args=("d/leader",))
    leader.start()
    assert endpoint.started.wait(WAIT), "no early refresh: the client kept its own copy of the token"
    # While that refresh is in flight, the other workers keep going with the still-valid token.
    others = threading.Thread(target=lambda: [client.mkdir(f"d/w{i}") for i in range(5)])
    others.start()
    others.join(WAIT)
    assert not others.is_alive(), "workers waited for the token refresh instead of using the valid token"
    assert service.used[-5:] == ["tok1"] * 5
    endpoint.gate.set()
    leader.join(WAIT)
    assert not leader.is_alive()
    assert endpoint.fetches == 2

    # The identity endpoint goes down; a minute before tok1 would have expired the transfer goes on with tok2.
    endpoint.outage = True
    clock.set(endpoint.issued["tok1"] - 60)
    for i in range(3):
        client.mkdir(f"d/late{i}")
    assert service.used[-3:] == ["tok2"] * 3
    # ... and past tok1's expiry too: nothing needed the endpoint.
    clock.advance(120)
    client.mkdir("d/after")
    assert service.used[-1] == "tok2"
    assert endpoint.fetches == 2
