"""Install the drop-in ``libazfilesauth.so`` where Microsoft's ``azfilesauthmanager`` looks for it.

Microsoft's manager loads the first of ``/usr/lib/libazfilesauth.so``, ``/usr/lib64/libazfilesauth.so`` and
``/usr/local/lib/libazfilesauth.so`` that exists (AzFilesAuthenticator src/azfilesauthmanager.py:24-39);
C programs link with ``-lazfilesauth`` and run against the SONAME ``libazfilesauth.so.0``. So the real file
``libazfilesauth.so.0.0.0`` goes into the library directory with both symlinks (the names libtool gives
Microsoft's build, ``Makefile.am:4-6``), and the headers into the include directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from keyless.smb.errors import SmbError

MANAGER_SEARCH_PATHS = ("/usr/lib", "/usr/lib64", "/usr/local/lib")
DEFAULT_LIBDIR = Path("/usr/local/lib")
DEFAULT_INCLUDEDIR = Path("/usr/local/include")
REAL_NAME = "libazfilesauth.so.0.0.0"
LINKS = (("libazfilesauth.so.0", REAL_NAME), ("libazfilesauth.so", "libazfilesauth.so.0"))
HEADERS = ("azfilesauth.h", "azfilesauthversion.h")


def native_dir() -> Path:
    """``native/`` of this source tree (keyless is installed in editable mode by scripts/install.sh)."""
    return Path(__file__).resolve().parents[3] / "native"


def install_library(build_dir: Path, libdir: Path = DEFAULT_LIBDIR,
                    includedir: Path = DEFAULT_INCLUDEDIR) -> list[Path]:
    """Copy the built library, its symlinks and the headers; returns what was written."""
    built = build_dir / REAL_NAME
    if not built.is_file():
        raise SmbError(f"no built library at {built}", cause="library_missing",
                       remedy="Build it first: scripts/install.sh (or native/build.sh <helper>).")
    headers = native_dir() / "include"
    written: list[Path] = []
    try:
        libdir.mkdir(parents=True, exist_ok=True)
        includedir.mkdir(parents=True, exist_ok=True)
        target = libdir / REAL_NAME
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(built, tmp)
        os.chmod(tmp, 0o644)  # what ld.so and dlopen need; nothing executes it directly
        os.replace(tmp, target)  # a process that has the old one mapped keeps it
        written.append(target)
        for name, points_to in LINKS:
            link = libdir / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(points_to)
            written.append(link)
        for header in HEADERS:
            dest = includedir / header
            shutil.copyfile(headers / header, dest)
            os.chmod(dest, 0o644)
            written.append(dest)
    except OSError as exc:
        raise SmbError(f"cannot install into {libdir} / {includedir}: {exc.strerror}", cause="install_failed",
                       remedy="Run as root, or choose --libdir and --includedir you can write.") from None
    if os.geteuid() == 0 and str(libdir) in MANAGER_SEARCH_PATHS and shutil.which("ldconfig"):
        subprocess.run(["ldconfig"], check=False, capture_output=True, timeout=60)
    return written
