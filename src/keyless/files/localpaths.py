"""Which share names a local file system can hold, and how to spell their local paths.

A share's names come from another machine: a Linux client may have stored ``CON``, ``notes.``,
``a<b`` or two names that differ only in case (on services that allow it). Windows cannot hold those
under the same name (``CreateFile`` silently strips trailing dots and spaces, ``CON`` opens the
console), so writing them would put the bytes under another name, or somewhere else entirely. keyless
refuses such a name with an error that names it, before anything is written; it never renames.

Rules (Microsoft, "Naming Files, Paths, and Namespaces", learn.microsoft.com/windows/win32/fileio/
naming-a-file), applied when the local platform is Windows:

* reserved device names ``CON PRN AUX NUL COM0-9 LPT0-9`` (also with superscript digits, ``CONIN$``,
  ``CONOUT$``), with or without an extension (``nul.txt`` is the NUL device too);
* the characters ``< > : " / \\ | ? *`` and control characters 0-31;
* a trailing dot or space;
* components longer than 255 characters.

Everywhere: empty, ``.`` and ``..`` components, NUL, backslashes and absolute or drive-letter names are
refused (they could escape the target directory). Windows and macOS file systems are case-insensitive
by default: ``case_key`` is what two local names must differ in to be two files there.
Long paths: ``os_path`` adds the ``\\\\?\\`` prefix on Windows from 248 characters (``MAX_PATH``, 260,
less room for an 8.3 name), which works whether or not the machine enabled long paths in the registry.

``platform`` is injectable everywhere ("windows", "darwin", "posix"), so Linux tests exercise the
Windows rules.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path, PureWindowsPath

from keyless.files.errors import UnsafeName

WINDOWS = "windows"
DARWIN = "darwin"
POSIX = "posix"

MAX_COMPONENT = 255
#: ``MAX_PATH`` counts the terminating NUL; a directory must leave room for an 8.3 name too, so
#: ``CreateDirectory`` stops at 248 characters: from there on, paths get the extended-length prefix.
MAX_PATH = 260
PREFIX_FROM = MAX_PATH - 12
_DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{base}{digit}" for base in ("COM", "LPT") for digit in "0123456789\u00b9\u00b2\u00b3"
}
_FORBIDDEN = set('<>:"/\\|?*') | {chr(c) for c in range(32)}


def local_platform() -> str:
    if os.name == "nt":
        return WINDOWS
    return DARWIN if sys.platform == "darwin" else POSIX


def component_problem(name: str, platform: str) -> str | None:
    """Why ``name`` (one path component) cannot be a local file name on ``platform``, or None."""
    if name in ("", ".", ".."):
        return "it would escape the target directory"
    if "\x00" in name or "/" in name or "\\" in name:
        return "it holds a path separator or NUL"
    if platform != WINDOWS:
        return None
    bad = sorted({c for c in name if c in _FORBIDDEN})
    if bad:
        return f"Windows file names cannot contain {' '.join(repr(c) for c in bad)}"
    if name[-1] in ". ":
        return "Windows drops a trailing dot or space, so the file would be written under another name"
    if name.split(".", 1)[0].rstrip(" ").upper() in _DEVICES:
        return f"{name.split('.', 1)[0]!r} is a reserved device name on Windows"
    if len(name) > MAX_COMPONENT:
        return f"a Windows file name is at most {MAX_COMPONENT} characters"
    return None


def check_relative(relative: str, platform: str | None = None) -> list[str]:
    """The components of a share-relative ``a/b/c`` name, or ``UnsafeName`` saying which part and why."""
    platform = platform or local_platform()
    if not relative or relative.startswith("/") or (len(relative) > 1 and relative[1] == ":"):
        raise UnsafeName(f"refusing remote name {relative!r}: it is empty or absolute")
    parts = relative.split("/")
    for part in parts:
        problem = component_problem(part, platform)
        if problem:
            raise UnsafeName(
                f"refusing remote name {relative!r}: {problem}; rename it on the share "
                f"(e.g. with `keyless mv`) or download it on another system"
            )
    return parts


def case_key(relative: str, platform: str | None = None) -> str:
    """The name as a case-insensitive local file system compares it (Windows, macOS), else unchanged."""
    platform = platform or local_platform()
    return relative.casefold() if platform in (WINDOWS, DARWIN) else relative


def check_case_collisions(relatives: Iterable[str], platform: str | None = None) -> None:
    """Refuse a set of names of which two would be one file locally (``Readme`` and ``README``)."""
    platform = platform or local_platform()
    seen: dict[str, str] = {}
    for rel in relatives:
        other = seen.setdefault(case_key(rel, platform), rel)
        if other != rel:
            raise UnsafeName(
                f"refusing remote names {other!r} and {rel!r}: they differ only in case and would be "
                f"one file on this system's case-insensitive file system; rename one on the share"
            )


def ends_with_separator(local: str, platform: str | None = None) -> bool:
    """``dir/`` (and on Windows ``dir\\``): "the contents of dir", as ``cp -r`` and ``rsync`` read it."""
    platform = platform or local_platform()
    return local.endswith("/") or (platform == WINDOWS and local.endswith("\\"))


def os_path(path: str | os.PathLike[str], platform: str | None = None) -> str:
    """``path`` as the operating system must be given it: on Windows an absolute path of ``MAX_PATH``
    characters or more gets the extended-length prefix (``\\\\?\\C:\\...``, ``\\\\?\\UNC\\server\\...``)."""
    platform = platform or local_platform()
    text = os.fspath(path)
    if platform != WINDOWS or len(text) < PREFIX_FROM or text.startswith("\\\\?\\"):
        return text
    win = PureWindowsPath(text)
    if not win.is_absolute():
        return text  # only absolute paths may carry the prefix; callers pass resolved ones
    text = str(win)  # forward slashes become backslashes: the prefix turns off that normalisation
    if text.startswith("\\\\"):
        return "\\\\?\\UNC\\" + text[2:]
    return "\\\\?\\" + text


def for_os(path: Path, platform: str | None = None) -> Path:
    """A local path as given by the user, made usable beyond ``MAX_PATH`` on Windows (absolute, then
    ``os_path``); unchanged elsewhere, so messages keep showing the path as it was typed."""
    platform = platform or local_platform()
    if platform != WINDOWS:
        return path
    return Path(os_path(path.absolute(), platform))
