"""Console output that cannot crash on the characters it prints.

A Windows console whose code page is cp1252 or cp437 (or any stream redirected with a legacy
``PYTHONIOENCODING``) cannot encode every file name a share may hold; Python's default ``strict`` error
handler would then turn ``keyless ls`` into a traceback halfway through the listing. Unencodable
characters are written as ``\\uXXXX`` escapes instead: the output stays complete and unambiguous.

Colours: the commands use ``click.style``, which drops ANSI codes when the output is not a terminal and,
on Windows, translates them for the console through ``colorama`` (a dependency click itself declares for
Windows). ``NO_COLOR`` is honoured on top (https://no-color.org).
"""

from __future__ import annotations

import io
import os
import sys


def make_output_safe() -> None:
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")


def color_wanted(env: dict[str, str] | None = None) -> bool | None:
    """False when ``NO_COLOR`` is set (any value), else None: click decides by whether it is a terminal."""
    env = dict(os.environ) if env is None else env
    return False if env.get("NO_COLOR") else None
