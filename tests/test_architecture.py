"""Guardrails on the shape of the code: no import cycles anywhere in ``src/``, what the emulator may import,
module sizes (over ``MAX_LINES`` only with a ``# size:`` reason near the top). Which client package may
import which is in ``tests/identity/test_layering.py``.

The import graph is read from the source with ``ast`` (nothing is imported or run). Every import counts:
module level, inside functions and under ``if TYPE_CHECKING`` alike, since each is a dependency a reader
has to follow. ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
EMULATOR = "keyless.emulator"
# Client code the emulator must never depend on: it has to stand in for Azure, not lean on keyless.
CLIENT_PACKAGES = ("keyless.files", "keyless.smb", "keyless.identity", "keyless.cli", "keyless.doctor")
MAX_LINES = 550
SIZE_REASON = "# size:"
STORAGE = "keyless.emulator.storage"


def module_files(src: Path = SRC) -> dict[str, Path]:
    """Dotted module name -> file, for every module under ``src`` (packages by their ``__init__``)."""
    out: dict[str, Path] = {}
    for path in sorted(src.rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([target] if target else [])])


def imports_of(module: str, path: Path, known: Iterable[str]) -> set[str]:
    """The modules of ``known`` that ``module`` (source at ``path``) imports, anywhere in the file."""
    known = set(known)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _resolve_relative(module, is_package, node.level, node.module)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    out: set[str] = set()
    for name in found:
        # ``import a.b.c`` where only ``a.b`` is ours still depends on ``a.b``.
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            out.add(name)
    return out


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        # Iterative depth-first search, so a deep graph cannot hit the recursion limit.
        work: list[tuple[str, list[str]]] = [(start, sorted(graph.get(start, ())))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return cycles


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _emulator_graph() -> dict[str, set[str]]:
    graph = import_graph(module_files())
    return {name: deps for name, deps in graph.items() if _in(name, EMULATOR)}


# --- the finder itself ----------------------------------------------------------------------------------


def test_cycle_finder_sees_a_loop_and_only_the_loop() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_import_reader_counts_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import X\n"
        "def f():\n    from . import c\n"
    )
    (pkg / "b.py").write_text("import pkg.a\n")
    (pkg / "c.py").write_text("")
    modules = module_files(tmp_path)
    graph = import_graph(modules)
    assert graph["pkg.a"] == {"pkg.b", "pkg.c"}
    assert find_cycles(graph) == [["pkg.a", "pkg.b"]]


# --- the rules ------------------------------------------------------------------------------------------


def test_no_import_cycles_anywhere_in_src() -> None:
    graph = import_graph(module_files())
    assert len(_emulator_graph()) > 10 and "keyless.files.client" in graph, "the modules were not found"
    assert find_cycles(graph) == []


def _top_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names - {"__future__"}


def test_emulator_shares_only_standard_library_leaves_with_the_client() -> None:
    """What the emulator takes from outside itself (``keyless.protocol``, ...) imports only the standard
    library, so the emulator and the client share facts, never code that could make them agree wrongly."""
    modules = module_files()
    shared = {dep for deps in _emulator_graph().values() for dep in deps if not _in(dep, EMULATOR)}
    assert "keyless.protocol" in shared
    not_leaves = {name: sorted(_top_level_imports(modules[name]) - set(sys.stdlib_module_names))
                  for name in shared}
    assert {name: deps for name, deps in not_leaves.items() if deps} == {}


def test_emulator_imports_no_client_code() -> None:
    offending = {
        name: sorted(dep for dep in deps if any(_in(dep, client) for client in CLIENT_PACKAGES))
        for name, deps in _emulator_graph().items()
    }
    assert {name: deps for name, deps in offending.items() if deps} == {}


@pytest.mark.parametrize("module", sorted(module_files()))
def test_module_size_is_bounded_or_explained(module: str) -> None:
    text = module_files()[module].read_text(encoding="utf-8")
    lines = text.count("\n")
    if lines > MAX_LINES:
        head = text.splitlines()[:30]
        assert any(line.startswith(SIZE_REASON) for line in head), (
            f"{module} has {lines} lines (over {MAX_LINES}); split it, or say why near its top in a "
            f"'{SIZE_REASON} <reason>' line"
        )


def test_storage_knows_no_http_header() -> None:
    """The handlers translate headers into typed values; the store below them never sees a header name."""
    found = []
    for name, path in module_files().items():
        if not _in(name, STORAGE):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and node.value.lower().startswith(("x-ms-", "content-", "if-match", "range")):
                found.append(f"{name}:{node.lineno}: {node.value!r}")
    assert found == []


def test_only_the_files_model_moves_work_to_threads() -> None:
    """The one worker-thread rule (``Call.run``, per the routing table's ``Worker``): no handler decides
    for itself."""
    modules = module_files()
    offenders = sorted(
        name for name, path in modules.items()
        if _in(name, "keyless.emulator.files") and name != "keyless.emulator.files.model"
        and "to_thread" in path.read_text(encoding="utf-8")
    )
    assert offenders == []
