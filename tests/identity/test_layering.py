"""Which package may import which, checked on the source:

- keyless.identity imports nothing from keyless but itself and the shared leaves;
- the shared leaves (protocol, emulator_info, fsutil, clock, backoff, claims) import only the standard
  library, so both the emulator and the client can use them without importing each other;
- keyless.files and keyless.smb never import the emulator;

Import cycles and module sizes are checked for the whole of ``src/`` in ``tests/test_architecture.py``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import keyless

SRC = Path(keyless.__file__).resolve().parent
SHARED_LEAVES = ("protocol", "emulator_info", "fsutil", "clock", "backoff", "claims")


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in SRC.rglob("*.py")}


MODULES = all_modules()


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names), wherever the import statement is."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "__future__":
                continue
            # ``from keyless.files import errors`` imports the submodule keyless.files.errors; anything
            # else named comes from the package (or module) ``base`` itself.
            submodules = {f"{base}.{a.name}" for a in node.names} & MODULES.keys()
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(base)
    return found


def keyless_imports(path: Path) -> set[str]:
    return {m for m in imports_of(path) if m == "keyless" or m.startswith("keyless.")}


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_identity_depends_only_on_itself_and_the_shared_leaves() -> None:
    allowed = {f"keyless.{leaf}" for leaf in SHARED_LEAVES}
    for path in (SRC / "identity").rglob("*.py"):
        for module in keyless_imports(path):
            assert in_package(module, "keyless.identity") or module in allowed, (
                f"{path.relative_to(SRC)} imports {module}"
            )


@pytest.mark.parametrize("leaf", SHARED_LEAVES)
def test_shared_leaves_import_only_the_standard_library(leaf: str) -> None:
    path = SRC / f"{leaf}.py"
    for module in imports_of(path):
        top = module.split(".")[0]
        assert top in sys.stdlib_module_names, f"{path.relative_to(SRC)} imports {module}"


@pytest.mark.parametrize("package", ["files", "smb"])
def test_client_packages_never_import_the_emulator(package: str) -> None:
    for path in (SRC / package).rglob("*.py"):
        for module in keyless_imports(path):
            assert not in_package(module, "keyless.emulator"), f"{path.relative_to(SRC)} imports {module}"


def test_emulator_info_does_not_import_the_emulator() -> None:
    assert not any(in_package(m, "keyless.emulator") for m in keyless_imports(SRC / "emulator_info.py"))
