"""Console output that cannot crash on the characters it prints.

A Windows console whose code page is cp1252 or cp437 (or any stream redirected with a legacy
``PYTHONIOENCODING``) cannot encode every file name a share may hold; Python's default ``strict`` error
handler would then turn ``keyless ls`` into a traceback halfway through the listing. Unencodable
characters are written as ``\\uXXXX`` escapes instead: the output stays complete and unambiguous.

Colours: the commands use ``click.style``, which drops ANSI codes when the output is not a terminal.
On a Windows console, click (8.5+) writes them as they are, and the console interprets them only in
virtual-terminal mode, which Windows Terminal turns on but the classic console host leaves off for the
process to enable (``SetConsoleMode`` with ``ENABLE_VIRTUAL_TERMINAL_PROCESSING``). keyless enables it;
where that fails (Windows before 10 1511, or a console that refuses) colour is switched off rather than
printing ``\x1b[32m`` to the user. ``NO_COLOR`` is honoured too (https://no-color.org).
"""

from __future__ import annotations

import ctypes
import io
import os
import sys
from collections.abc import Mapping
from typing import Any

_STD_HANDLES = (-11, -12)  # STD_OUTPUT_HANDLE, STD_ERROR_HANDLE
ENABLE_VIRTUAL_TERMINAL_PROCESSING = 0x0004


def make_output_safe() -> None:
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")


def enable_ansi(kernel32: Any | None = None) -> bool:
    """Whether the consoles behind stdout/stderr interpret ANSI codes, turning VT mode on where needed.

    Always True off Windows. ``kernel32`` is injectable (tests); a handle that is not a console
    (redirected output) is left alone: click strips the codes there anyway."""
    if kernel32 is None:
        if os.name != "nt":
            return True
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
    supported = True
    for which in _STD_HANDLES:
        handle = kernel32.GetStdHandle(which)
        mode = ctypes.c_uint32()
        if not kernel32.GetConsoleMode(handle, ctypes.byref(mode)):
            continue
        if mode.value & ENABLE_VIRTUAL_TERMINAL_PROCESSING:
            continue
        if not kernel32.SetConsoleMode(handle, mode.value | ENABLE_VIRTUAL_TERMINAL_PROCESSING):
            supported = False
    return supported


def color_wanted(env: Mapping[str, str] | None = None, kernel32: Any | None = None) -> bool | None:
    """False when ``NO_COLOR`` is set or the console cannot show ANSI colours, else None: click then
    decides by whether the output is a terminal."""
    env = os.environ if env is None else env
    if env.get("NO_COLOR") or not enable_ansi(kernel32):
        return False
    return None
