"""In-process emulator parts for unit tests: a real Emulator context with stub store/faults, and a helper
that serves an aiohttp app on 127.0.0.1 in a thread (for synchronous clients). Shared by the emulator and
SMB unit tests; end-to-end tests use a real process instead (keyless.testing).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from aiohttp import web

from keyless.emulator.audit import AuditLog
from keyless.emulator.clock import Clock
from keyless.emulator.config import EmulatorConfig, default_config
from keyless.emulator.context import Emulator, load_or_create_secrets
from keyless.emulator.issuer import TokenIssuer

FILES_URL = "https://127.0.0.1:44300"


class StubFaults:
    """Answers with ``next_response`` (once) or raises ``next_error`` (once); otherwise serves normally."""

    def __init__(self) -> None:
        self.next_response: web.StreamResponse | None = None
        self.next_error: BaseException | None = None
        self.calls: list[str] = []

    async def apply(self, request: web.Request, target: str) -> web.StreamResponse | None:
        self.calls.append(target)
        if self.next_error is not None:
            err, self.next_error = self.next_error, None
            raise err
        answer, self.next_response = self.next_response, None
        return answer

    def replace(self, rules: list[Any]) -> None:
        pass


class StubStore:
    """Stands in for keyless.emulator.storage.Store in tests that never touch file data."""

    def close(self) -> None:
        pass


def make_emulator(data_dir: Path, config: EmulatorConfig | None = None, *, store: Any = None,
                  faults: Any = None, files_url: str = FILES_URL,
                  imds_url: str = "http://127.0.0.1:44301") -> Emulator:
    config = config or default_config()
    data_dir.mkdir(parents=True, exist_ok=True)
    secrets = load_or_create_secrets(data_dir, config)
    clock = Clock(config.clock_offset)
    return Emulator(
        config=config,
        data_dir=data_dir,
        clock=clock,
        audit=AuditLog(data_dir / "audit.log"),
        account_keys={a.name: (a.key or secrets["account_keys"][a.name]) for a in config.accounts},
        app_service_header=config.app_service_header or secrets["app_service_header"],
        control_secret=secrets["control_secret"],
        issuer=TokenIssuer(data_dir, config, clock),
        # The stubs are duck-typed stand-ins for Store and FaultInjector.
        store=cast(Any, store if store is not None else StubStore()),
        faults=cast(Any, faults if faults is not None else StubFaults()),
        role_assignments=list(config.role_assignments),
        files_url=files_url,
        imds_url=imds_url,
    )


@contextmanager
def serve_app(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 (ephemeral port) in a thread; yields its base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    started = threading.Event()
    port: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        for address in runner.addresses:
            if isinstance(address, tuple):
                port.append(int(address[1]))
                break
        started.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10), "test server did not start"
    scheme = "https" if ssl_context else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port[0]}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
