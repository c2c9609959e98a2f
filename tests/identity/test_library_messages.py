"""Library messages name concepts, never the command line's flags; the CLI adds its flags to them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import keyless
from keyless.cli import hints
from keyless.emulator_info import EmulatorInfoError
from keyless.files import errors as fe
from keyless.identity import IdentityNotFound, IdentityUnavailable

SRC = Path(keyless.__file__).resolve().parent
LIBRARIES = [*(SRC / "files").rglob("*.py"), *(SRC / "identity").rglob("*.py"), SRC / "emulator_info.py"]
_FLAG = re.compile(r"(^|[\s(/])--[a-z]|[\s(]-[a-z]\b")
_AZ_COMMAND = re.compile(r"\(az [^)]*(\)|$)")  # the Azure CLI's own flags, in an example command, are fine


def _messages(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


@pytest.mark.parametrize("path", LIBRARIES, ids=lambda p: str(p.relative_to(SRC)))
def test_library_strings_name_no_command_line_flags(path: Path) -> None:
    for text in _messages(path):
        assert not _FLAG.search(_AZ_COMMAND.sub("", text)), f"{path.relative_to(SRC)}: {text!r}"


def test_the_flag_check_catches_flags() -> None:
    assert _FLAG.search("choose another --source")
    assert _FLAG.search("(keyless mkdir -p)")
    assert not _FLAG.search(_AZ_COMMAND.sub("", "Attach it (az vm identity assign -g RG --identities ID)"))
    assert not _FLAG.search("5-30 minutes, x-ms-version")


def test_the_cli_adds_its_flags() -> None:
    assert "--wait-for-access" in hints.remedy_for(fe.PermissionDenied("refused"))
    assert "keyless mkdir -p" in hints.remedy_for(fe.ParentNotFound("no parent"))
    assert "--client-id" in hints.identity_hint(IdentityNotFound("none", selector="x", source="imds"))
    assert "--source" in hints.identity_hint(IdentityUnavailable("down"))
    assert "--client-id" in hints.identity_hint(EmulatorInfoError("choose"))
