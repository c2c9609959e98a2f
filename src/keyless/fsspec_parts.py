"""Killed downloads' part files, looked for once per local directory during one ``get`` of ``azfiles://``.

fsspec's ``get`` calls ``get_file`` once per file; each download removes the part files a killed earlier
download of its target left (:func:`keyless.files.parts.remove_stale_parts`), which lists the directory.
Per file, a ``get`` of n files into one directory would list it n times (n² entries read); inside
:func:`one_listing_per_directory`, each directory is listed once, on first use.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from pathlib import Path

from keyless.files.parts import part_names_in

_LISTINGS: contextvars.ContextVar[dict[str, list[str]] | None] = contextvars.ContextVar(
    "azfiles_part_listings", default=None)


@contextlib.contextmanager
def one_listing_per_directory() -> Iterator[None]:
    """Within this block (in this thread or context), :func:`part_names_for` lists each directory once."""
    token = _LISTINGS.set({})
    try:
        yield
    finally:
        _LISTINGS.reset(token)


def part_names_for(directory: str) -> list[str] | None:
    """The part files in ``directory`` inside :func:`one_listing_per_directory` (listed on first use);
    None outside it, and the download lists them itself."""
    listings = _LISTINGS.get()
    if listings is None:
        return None
    key = os.path.abspath(directory or ".")
    names = listings.get(key)
    if names is None:
        names = listings[key] = part_names_in(Path(key))
    return names
