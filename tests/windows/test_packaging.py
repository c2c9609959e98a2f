"""The package installs on Windows: no Linux-only dependency outside the ``smb`` extra."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Wheels that exist only for Linux (or need MIT Kerberos headers to build): never a base dependency.
LINUX_ONLY = {"krb5"}


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~\[;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_linux_only_dependencies_are_in_the_smb_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert names(project["dependencies"]) & LINUX_ONLY == set()
    assert names(project["optional-dependencies"]["smb"]) >= LINUX_ONLY


def test_install_script_still_installs_the_smb_extra_on_linux() -> None:
    script = (ROOT / "scripts" / "install.sh").read_text()
    assert 'extras="[smb]"' in script and 'extras="[smb,test]"' in script
