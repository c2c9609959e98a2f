"""fsspec's own abstract test suite (``fsspec.tests.abstract``) against the emulator."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest
from fsspec.tests.abstract import AbstractFixtures
from fsspec.tests.abstract.copy import AbstractCopyTests
from fsspec.tests.abstract.get import AbstractGetTests
from fsspec.tests.abstract.open import AbstractOpenTests
from fsspec.tests.abstract.pipe import AbstractPipeTests
from fsspec.tests.abstract.put import AbstractPutTests

from keyless.fsspec import AzureFilesFileSystem

SHARE = "demo"


class AzFilesFixtures(AbstractFixtures):  # type: ignore[misc]
    @pytest.fixture(scope="class")
    def fs(self, emulator_env: str) -> AzureFilesFileSystem:
        return AzureFilesFileSystem(account_name="devaccount", skip_instance_cache=True)

    @pytest.fixture
    def fs_join(self) -> Callable[..., str]:
        """Share paths are always '/'-separated (the default, os.path.join, is not on Windows)."""
        return lambda *parts: "/".join([*(p.rstrip("/") for p in parts[:-1]), parts[-1]]) if parts else ""

    @pytest.fixture
    def fs_path(self, fs: AzureFilesFileSystem) -> Iterator[str]:
        path = f"{SHARE}/abstract-{secrets.token_hex(4)}"
        fs.mkdir(path)
        yield path
        if fs.exists(path):
            fs.rm(path, recursive=True)


class TestAzFilesCopy(AbstractCopyTests, AzFilesFixtures):  # type: ignore[misc]
    pass


class TestAzFilesGet(AbstractGetTests, AzFilesFixtures):  # type: ignore[misc]
    pass


class TestAzFilesPut(AbstractPutTests, AzFilesFixtures):  # type: ignore[misc]
    pass


class TestAzFilesOpen(AbstractOpenTests, AzFilesFixtures):  # type: ignore[misc]
    pass


class TestAzFilesPipe(AbstractPipeTests, AzFilesFixtures):  # type: ignore[misc]
    pass
