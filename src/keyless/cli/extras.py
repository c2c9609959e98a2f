"""Optional parts of keyless that a command needs, checked before anything of them is imported.

The SMB side is Linux-only (it needs ``fcntl`` and MIT Kerberos through ``krb5``, which has no Windows
wheel, so it is the ``smb`` extra). Commands that reach it call :func:`require_smb_extra` first, so a
Windows user or a plain ``pip install keyless`` gets a sentence instead of a traceback.
"""

from __future__ import annotations

import sys

import click


def require_smb_extra() -> None:
    """The SMB side is Linux-only and its Kerberos bindings are an extra: say so instead of a traceback."""
    import importlib

    missing = []
    for module in ("fcntl", "krb5"):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if not missing:
        return
    if "fcntl" in missing:
        why = ("the SMB commands run on Linux only (Windows has Microsoft's own SMB client and Kerberos; "
               "the REST commands work there)")
    else:
        why = "the SMB commands need the 'smb' extra (MIT Kerberos bindings): pip install 'keyless[smb]'"
    click.echo(f"error (missing_extra): {why}", err=True)
    sys.exit(2)
