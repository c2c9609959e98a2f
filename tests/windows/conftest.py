"""The Windows simulation's fixture."""

from __future__ import annotations

from pathlib import Path

import pytest

from windows.windows_sim import WindowsLikeRunner


@pytest.fixture
def windows_like(tmp_path: Path) -> WindowsLikeRunner:
    return WindowsLikeRunner(tmp_path)
