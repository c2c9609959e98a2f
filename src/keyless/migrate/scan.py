"""Walk the given roots and report every storage credential found, by fingerprint, never by value.

The walk never leaves the roots: a symbolic link is followed only when its target (resolved) lies inside
one of them, a directory is entered once however many links lead to it (so link loops end), and
``EnvironmentFile=`` / ``credentials=`` references are only read when they point inside the roots.
Unreadable, binary, huge and special files are counted and skipped; nothing stops the walk.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from keyless.migrate.detect import detect, environment_files, fingerprint, might_hold_secret

DEFAULT_ROOTS = ("/etc", "/root", "/home", "/opt", "/srv", "/usr/local/etc")
DEFAULT_MAX_BYTES = 4 << 20
BINARY_PROBE = 8192
# Directories that hold no configuration and are large: skipped by name below a root.
SKIP_DIRS = frozenset({".git", "node_modules", "__pycache__", ".venv", ".tox", ".mypy_cache", ".cache"})


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    kind: str
    account: str
    fingerprint: str
    replacement: str


@dataclass
class ScanResult:
    findings: list[Finding] = field(default_factory=list)
    files_scanned: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> count
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, path: str) -> None:
        self.skipped[reason] += 1
        examples = self.skipped_examples.setdefault(reason, [])
        if len(examples) < 5:
            examples.append(path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "findings": [asdict(f) for f in self.findings],
            "files_scanned": self.files_scanned,
            "skipped": dict(self.skipped),
            "skipped_examples": self.skipped_examples,
        }


class _Walker:
    def __init__(self, roots: list[Path], max_bytes: int, result: ScanResult) -> None:
        self.roots = [Path(os.path.realpath(r)) for r in roots]
        self.max_bytes = max_bytes
        self.result = result
        self.seen_dirs: set[tuple[int, int]] = set()
        self.seen_files: set[tuple[int, int]] = set()

    def inside(self, real: str) -> bool:
        return any(real == str(root) or real.startswith(str(root).rstrip("/") + "/") for root in self.roots)

    def files(self, given: list[Path]) -> Iterator[tuple[str, os.stat_result]]:
        for root in given:
            try:
                st = os.stat(root)
            except FileNotFoundError:
                self.result.skip("missing", str(root))
                continue
            except OSError:
                self.result.skip("unreadable", str(root))
                continue
            if stat.S_ISDIR(st.st_mode):
                yield from self._walk(str(root), st)
            elif stat.S_ISREG(st.st_mode):
                yield str(root), st
            else:
                self.result.skip("special", str(root))

    def _walk(self, top: str, top_st: os.stat_result) -> Iterator[tuple[str, os.stat_result]]:
        stack = [(top, top_st)]
        while stack:
            directory, dst = stack.pop()
            ident = (dst.st_dev, dst.st_ino)
            if ident in self.seen_dirs:
                self.result.skip("symlink-loop", directory)
                continue
            self.seen_dirs.add(ident)
            try:
                entries = list(os.scandir(directory))
            except OSError:
                self.result.skip("unreadable", directory)
                continue
            entries.sort(key=lambda e: e.name, reverse=True)  # popped in name order
            for entry in entries:
                path = entry.path
                try:
                    if entry.is_symlink():
                        real = os.path.realpath(path)
                        if not self.inside(real):
                            self.result.skip("outside-roots", path)
                            continue
                        try:
                            st = os.stat(path)
                        except OSError:  # dangling, or a loop the OS refused to resolve
                            self.result.skip("symlink-loop" if _is_loop(path) else "broken-symlink", path)
                            continue
                    else:
                        st = entry.stat(follow_symlinks=False)
                except OSError:
                    self.result.skip("unreadable", path)
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if entry.name in SKIP_DIRS:
                        self.result.skip("ignored-directory", path)
                        continue
                    stack.append((path, st))
                elif stat.S_ISREG(st.st_mode):
                    yield path, st
                else:
                    self.result.skip("special", path)

    def read(self, path: str, st: os.stat_result) -> str | None:
        ident = (st.st_dev, st.st_ino)
        if ident in self.seen_files:
            return None  # the same file reached again through a link: reported once
        self.seen_files.add(ident)
        if st.st_size > self.max_bytes:
            self.result.skip("huge", path)
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO swapped in never blocks us
        except OSError:
            self.result.skip("unreadable", path)
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped for something else since the stat
                self.result.skip("special", path)
                return None
            chunks = []
            remaining = self.max_bytes + 1
            while remaining > 0:
                chunk = os.read(fd, min(remaining, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
            data = b"".join(chunks)
        except OSError:
            self.result.skip("unreadable", path)
            return None
        finally:
            os.close(fd)
        if len(data) > self.max_bytes:
            self.result.skip("huge", path)
            return None
        if b"\0" in data[:BINARY_PROBE]:
            self.result.skip("binary", path)
            return None
        self.result.files_scanned += 1
        if not might_hold_secret(data):
            return ""
        return data.decode("utf-8", "replace")


def _is_loop(path: str) -> bool:
    try:
        os.stat(path)
    except OSError as err:
        return err.errno == errno.ELOOP
    return False


def scan(paths: list[Path] | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ScanResult:
    """Scan ``paths`` (default: the usual system locations that exist)."""
    given = paths if paths else [Path(p) for p in DEFAULT_ROOTS if os.path.exists(p)]
    result = ScanResult()
    walker = _Walker(given, max_bytes, result)
    units: list[tuple[str, list[tuple[int, str]]]] = []
    by_file: dict[str, list[Finding]] = {}
    for path, st in walker.files(given):
        text = walker.read(path, st)
        if not text:
            continue
        found = [Finding(path, h.line, h.kind, h.account, fingerprint(h.kind, h.account, h.secret),
                         h.replacement) for h in detect(text)]
        if found:
            by_file[os.path.realpath(path)] = found
            result.findings.extend(found)
        refs = environment_files(text)
        if refs:
            units.append((path, refs))
    # A unit's EnvironmentFile= holding a storage secret is itself something to change.
    for unit, refs in units:
        for line, ref in refs:
            real = os.path.realpath(ref)
            for target in by_file.get(real, []) if walker.inside(real) else []:
                result.findings.append(Finding(
                    unit, line, "systemd-environment-file", target.account, target.fingerprint,
                    f"drop EnvironmentFile={ref} (it holds {target.kind} at line {target.line}) or remove "
                    "the secret from it; the service then needs only its managed identity"))
    result.findings.sort(key=lambda f: (f.path, f.line, f.kind))
    return result


def render_text(result: ScanResult) -> str:
    lines = []
    for f in result.findings:
        account = f" account={f.account}" if f.account else ""
        lines.append(f"{f.path}:{f.line}: {f.kind}{account} [{f.fingerprint}]")
        lines.append(f"    -> {f.replacement}")
    skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(result.skipped.items()))
    lines.append(f"{len(result.findings)} finding(s) in {result.files_scanned} file(s) scanned"
                 + (f"; skipped: {skipped}" if skipped else ""))
    return "\n".join(lines) + "\n"
