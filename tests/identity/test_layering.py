"""Which package may import which, checked on the source:

- keyless.identity imports nothing from keyless but itself and the shared leaves;
- the shared leaves (protocol, emulator_info, fsutil, clock, backoff, claims, localos) import only the
  standard library, so both the emulator and the client can use them without importing each other;
- keyless.files and keyless.smb never import the emulator;
- the REST path (identity, files, the CLI's REST commands and every keyless module they import) uses no
  POSIX-only module or ``os`` function except through ``keyless.localos``, which has a Windows form of each.

Import cycles and module sizes are checked for the whole of ``src/`` in ``tests/test_architecture.py``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import keyless

SRC = Path(keyless.__file__).resolve().parent
SHARED_LEAVES = ("protocol", "emulator_info", "fsutil", "clock", "backoff", "claims", "localos")


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
#: Lazy imports of the Linux-only SMB side from a REST command, each made only after
#: ``keyless.cli.extras.require_smb_extra`` has said it can load (on Windows it stops with a sentence).
GUARDED_EDGES = {("keyless.cli.doctor_cmd", "keyless.cli.doctor_smb")}


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
        todo.extend(m for m in keyless_imports(MODULES[module]) if (module, m) not in GUARDED_EDGES)
    return seen


def test_guarded_edges_are_guarded() -> None:
    for importer, imported in GUARDED_EDGES:
        text = MODULES[importer].read_text()
        guard, lazy = text.find("require_smb_extra()"), text.find(f"from {imported} import")
        assert 0 <= guard < lazy, f"{importer} must call require_smb_extra() before importing {imported}"


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
