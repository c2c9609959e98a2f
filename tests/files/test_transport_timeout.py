"""Every request of the Files client waits a bounded time for its reply: a lost reply fails, never hangs."""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import urllib3

from keyless.files.client import ShareClient
from keyless.files.transport import DEFAULT_TIMEOUT, SendError, Transport


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A listener that accepts connections and reads the request but never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


def test_a_reply_that_never_comes_fails_after_the_read_timeout(silent_server: str) -> None:
    transport = Transport(timeout=urllib3.Timeout(connect=2.0, read=0.5))
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            transport.request("GET", f"{silent_server}/share/file", headers={"x-ms-range": "bytes=0-3"})
            outcome.append(None)
        except BaseException as exc:  # handed to the test thread to check
            outcome.append(exc)

    started = time.monotonic()
    # In a thread, so that a missing timeout fails this test instead of hanging the suite.
    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "the request was still waiting for a reply after 10 s"
    assert len(outcome) == 1 and isinstance(outcome[0], SendError), outcome
    # The request went out, so a retry policy must treat it as possibly received.
    assert outcome[0].sent and "timed out" in str(outcome[0]).lower()
    assert time.monotonic() - started < 5


def test_clients_get_a_finite_read_timeout_by_default() -> None:
    read = DEFAULT_TIMEOUT.read_timeout
    assert isinstance(read, (int, float)) and math.isfinite(read) and 0 < read <= 300
    client = ShareClient("https://devaccount.file.core.windows.net/demo", account_key="a2V5")
    assert isinstance(client.transport, Transport)
    # Every connection the pool opens gets these timeouts.
    assert client.transport.timeout is DEFAULT_TIMEOUT
    assert client.transport._pool.read_timeout == read
