"""An ``azfiles`` filesystem on the session's emulator process (real HTTPS, real managed-identity tokens)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from keyless.fsspec import AzureFilesFileSystem
from keyless.testing import EmulatorProcess

ACCOUNT, SHARE = "devaccount", "demo"


@pytest.fixture(scope="session")
def emulator_env(emulator: EmulatorProcess) -> Iterator[str]:
    """``KEYLESS_EMULATOR`` for this process and the processes it starts (Dask workers inherit it)."""
    previous = os.environ.get("KEYLESS_EMULATOR")
    os.environ["KEYLESS_EMULATOR"] = str(emulator.data_dir)
    yield str(emulator.data_dir)
    if previous is None:
        os.environ.pop("KEYLESS_EMULATOR", None)
    else:
        os.environ["KEYLESS_EMULATOR"] = previous


@pytest.fixture
def azfs(emulator_env: str) -> AzureFilesFileSystem:
    """``share/path`` form (account_name given); a fresh instance, not fsspec's cached one."""
    return AzureFilesFileSystem(account_name=ACCOUNT, skip_instance_cache=True)


@pytest.fixture
def root(azfs: AzureFilesFileSystem) -> Iterator[str]:
    """A directory of its own for one test, removed afterwards."""
    path = f"{SHARE}/fsspec-{secrets.token_hex(4)}"
    azfs.mkdir(path)
    yield path
    if azfs.exists(path):
        azfs.rm(path, recursive=True)
