"""Which package may import which, checked on the source:

- keyless.identity imports nothing from keyless but itself and the shared leaves;
- the shared leaves (protocol, emulator_info, fsutil, clock, backoff, claims) import only the standard
  library, so both the emulator and the client can use them without importing each other;
- keyless.files and keyless.smb never import the emulator;
- keyless.files, keyless.identity and keyless.cli have no import cycles, nor has everything outside the
  emulator taken together (imports inside functions and under ``TYPE_CHECKING`` count: a cycle hidden in
  a function is still a cycle);
- no module of files/, identity/ or cli/ is longer than about 500 lines unless its docstring says why.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import keyless

SRC = Path(keyless.__file__).resolve().parent
SHARED_LEAVES = ("protocol", "emulator_info", "fsutil", "clock", "backoff", "claims")
MAX_LINES = 520  # "about 500"
LONG_MODULE_REASON = "Kept as one module because"


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


def _cycles(nodes: set[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, set()) & nodes:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, set()):
                found.append(sorted(component))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("package", ["keyless.files", "keyless.identity", "keyless.cli"])
def test_no_import_cycles(package: str) -> None:
    nodes = {m for m in MODULES if in_package(m, package)}
    edges = {m: keyless_imports(MODULES[m]) - {m} for m in nodes}
    assert _cycles(nodes, edges) == []


def test_no_import_cycles_across_the_client_side() -> None:
    """Everything but the emulator's own modules, together (the emulator's are reshaped separately)."""
    nodes = {m for m in MODULES if not in_package(m, "keyless.emulator")}
    edges = {m: keyless_imports(MODULES[m]) - {m} for m in nodes}
    assert _cycles(nodes, edges) == []


def test_the_cycle_check_finds_cycles() -> None:
    assert _cycles({"a", "b", "c"}, {"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _cycles({"a", "b"}, {"a": {"b"}}) == []


@pytest.mark.parametrize("package", ["files", "identity", "cli"])
def test_modules_stay_small_or_say_why(package: str) -> None:
    for path in (SRC / package).rglob("*.py"):
        lines = path.read_text().count("\n")
        if lines > MAX_LINES:
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            assert LONG_MODULE_REASON in doc, (
                f"{path.relative_to(SRC)} has {lines} lines: split it, or say at its top why it is one "
                f"module ('{LONG_MODULE_REASON} ...')"
            )
