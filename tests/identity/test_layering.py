"""The design's arrows: keyless.identity imports nothing from keyless but protocol and fsutil, and the
client-side emulator_info never imports the emulator."""

from __future__ import annotations

import ast
from pathlib import Path

import keyless

SRC = Path(keyless.__file__).resolve().parent


def keyless_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keyless"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("keyless"))
    return found


def test_identity_depends_only_on_protocol_and_fsutil() -> None:
    for path in (SRC / "identity").rglob("*.py"):
        for module in keyless_imports(path):
            allowed = module.startswith("keyless.identity") or module in {"keyless.protocol",
                                                                          "keyless.fsutil"}
            assert allowed, f"{path.relative_to(SRC)} imports {module}"


def test_emulator_info_does_not_import_the_emulator() -> None:
    assert not any(m.startswith("keyless.emulator.") or m == "keyless.emulator"
                   for m in keyless_imports(SRC / "emulator_info.py"))
