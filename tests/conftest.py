"""Shared fixtures: a real emulator process for the whole session, and a factory for custom ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from keyless.testing import EmulatorProcess, start_emulator


@pytest.fixture(autouse=True)
def private_token_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI shares tokens between processes; each test gets its own cache so none sees another's."""
    cache = tmp_path_factory.mktemp("token-cache")
    cache.chmod(0o700)
    monkeypatch.setenv("KEYLESS_TOKEN_CACHE_DIR", str(cache))


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """The default emulator (the demo world), shared by tests that do not change its state globally."""
    with start_emulator(tmp_path_factory.mktemp("session-emulator")) as emu:
        yield emu
        # Whatever the tests threw at it, the emulator answered 500 only when a fault rule said so.
        unexpected = [r for r in emu.audit("StorageFileLogs")
                      if r["StatusCode"][:1] == "5" and not r.get("EmulatorFault")]
        assert not unexpected, f"the emulator answered 5xx on its own: {unexpected[:3]}"
        assert "Traceback" not in emu.stderr(), emu.stderr()


@pytest.fixture
def emulator_factory(tmp_path: Path) -> Iterator[Callable[..., EmulatorProcess]]:
    """Start emulators with their own config; all of them are stopped when the test ends."""
    started: list[EmulatorProcess] = []

    def factory(config_toml: str | None = None, name: str = "emu", **kw: int) -> EmulatorProcess:
        emu = start_emulator(tmp_path, config_toml, name=name, **kw)
        started.append(emu)
        return emu

    yield factory
    for emu in started:
        emu.__exit__(None, None, None)
