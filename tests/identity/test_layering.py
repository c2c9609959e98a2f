"""Which package may import which, checked on the source:

- keyless.identity imports nothing from keyless but itself and the shared leaves;
- the shared leaves (protocol, emulator_info, fsutil, clock, backoff, claims) import only the standard
  library, so both the emulator and the client can use them without importing each other;
- keyless.files and keyless.smb never import the emulator;
- keyless.files, keyless.identity and keyless.cli have no import cycles, nor has everything outside the
  emulator taken together (imports inside functions and under ``TYPE_CHECKING`` count: a cycle hidden in
  a function is still a cycle);
- no module of files/, identity/ or cli/ is longer than about 500 lines unless its docstring says why;
- the REST path (identity, files, the CLI's REST commands and every keyless module they import) uses no
  POSIX-only module or ``os`` function except through ``keyless.localos``, which has a Windows form of each.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import keyless

SRC = Path(keyless.__file__).resolve().parent
SHARED_LEAVES = ("protocol", "emulator_info", "fsutil", "clock", "backoff", "claims", "localos")
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


# --- the REST path runs on Windows ----------------------------------------------------------------------

REST_ENTRY_POINTS = ("keyless.identity", "keyless.files", "keyless.cli.main", "keyless.cli.test_cmd",
                     "keyless.cli.token_cmd", "keyless.cli.doctor_cmd", "keyless.cli.files_cmd")
POSIX_ONLY_MODULES = {"fcntl", "pwd", "grp", "termios", "tty", "pty", "resource", "posix", "syslog",
                      "krb5", "gssapi"}
POSIX_ONLY_OS = {"getuid", "geteuid", "getgid", "getegid", "fchmod", "fchown", "chown", "pread", "pwrite",
                 "O_NOFOLLOW", "O_CLOEXEC", "getpwuid", "setsid", "killpg", "fork", "uname", "sync"}
POSIX_ONLY_SIGNALS = {"SIGHUP", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGCHLD", "SIGALRM", "SIGPIPE", "SIGQUIT",
                      "alarm", "setitimer", "set_wakeup_fd", "pthread_kill", "pause"}
#: The seam itself: it names the POSIX calls, each behind a check for whether they exist.
PLATFORM_SEAM = "keyless.localos"


def rest_path_modules() -> set[str]:
    """Every keyless module the REST entry points reach through imports (at module level or inside
    functions: a lazy import on Windows fails all the same)."""
    todo = [m for m in MODULES if any(in_package(m, entry) for entry in REST_ENTRY_POINTS)]
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen or module not in MODULES:
            continue
        seen.add(module)
        todo.extend(keyless_imports(MODULES[module]))
    return seen


def posix_only_uses(path: Path) -> list[str]:
    """POSIX-only imports and ``os``/``signal`` attributes; an ``os`` name the module checks with
    ``hasattr(os, "name")`` is guarded (it has another branch for Windows) and not counted."""
    tree = ast.parse(path.read_text())
    guarded = {node.args[1].value for node in ast.walk(tree)
               if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "hasattr"
               and len(node.args) == 2 and isinstance(node.args[0], ast.Name) and node.args[0].id == "os"
               and isinstance(node.args[1], ast.Constant)}
    found = []
    for node in ast.walk(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                 else [])
        found += [f"import {n}" for n in names if n.split(".")[0] in POSIX_ONLY_MODULES]
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "os" and node.attr in POSIX_ONLY_OS and node.attr not in guarded:
                found.append(f"os.{node.attr} (line {node.lineno})")
            if node.value.id == "signal" and node.attr in POSIX_ONLY_SIGNALS:
                found.append(f"signal.{node.attr} (line {node.lineno})")
    return found


def test_the_rest_path_is_what_it_should_be() -> None:
    modules = rest_path_modules()
    assert {"keyless.identity.shared_cache", "keyless.files.transfer", "keyless.localos",
            "keyless.cli.test_cmd", "keyless.fsutil"} <= modules
    assert not any(in_package(m, "keyless.smb") or in_package(m, "keyless.emulator") for m in modules), (
        sorted(m for m in modules if m.startswith(("keyless.smb", "keyless.emulator"))))


def test_no_posix_only_imports_on_the_rest_path() -> None:
    offenders = {m: uses for m in sorted(rest_path_modules() - {PLATFORM_SEAM})
                 if (uses := posix_only_uses(MODULES[m]))}
    assert offenders == {}, f"use keyless.localos (it has a Windows form) instead: {offenders}"


def test_the_posix_only_check_finds_uses(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import fcntl\nimport os\nimport signal\nos.getuid()\nsignal.SIGHUP\nos.getpid()\n"
                      "if hasattr(os, 'pread'):\n    os.pread(0, 1, 0)\nos.pwrite(0, b'', 0)\n")
    assert sorted(posix_only_uses(sample)) == ["import fcntl", "os.getuid (line 4)", "os.pwrite (line 9)",
                                               "signal.SIGHUP (line 5)"]
