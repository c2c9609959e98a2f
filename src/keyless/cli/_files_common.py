"""What the file commands share: the emulator selection, the credential, and building a client."""

from __future__ import annotations

import unicodedata
from typing import Any

import click

from keyless.cli import hints
from keyless.emulator_info import ENV_EMULATOR, EmulatorInfo, EmulatorInfoError, load_emulator_info
from keyless.files import errors as fe
from keyless.files.client import ShareClient
from keyless.files.urls import FileUrl

EMULATOR_ENV = ENV_EMULATOR


# The emulator a command targets: the typed emulator.json shared by every client-side command.
EmulatorTarget = EmulatorInfo


def load_emulator(path: str | None) -> EmulatorInfo | None:
    """Read an ``emulator.json`` (or the directory holding it); None when no emulator is selected."""
    if not path:
        return None
    try:
        return load_emulator_info(path)
    except EmulatorInfoError as exc:
        raise click.UsageError(f"{exc}\n{hints.identity_hint(exc)}") from None


def make_credential(
    client_id: str | None = None,
    object_id: str | None = None,
    resource_id: str | None = None,
    emu: EmulatorTarget | None = None,
) -> Any:
    """A managed identity credential from ``keyless.identity`` (any azure-core TokenCredential works).

    With an emulator, tokens come from its IMDS (the identity library's ``imds_host`` option), whatever
    App Service / Arc variables this shell happens to have.
    """
    from keyless.identity import ManagedIdentityCredential

    kwargs: dict[str, Any] = {
        k: v
        for k, v in (("client_id", client_id), ("object_id", object_id), ("resource_id", resource_id))
        if v
    }
    if emu is not None:
        kwargs.update(source="imds", imds_host=emu.imds_url)
    # The CLI shares its token cache between processes (many `keyless cp` in a script: one IMDS call).
    return ManagedIdentityCredential(shared_cache=True, **kwargs)


def build_client(
    target: FileUrl,
    credential: Any,
    emu: EmulatorTarget | None,
    *,
    concurrency: int | None = None,
    wait_for_access: float = 0.0,
    account_key: str | None = None,
) -> ShareClient:
    return ShareClient(
        target,
        None if account_key else credential,
        account_key=account_key,
        ca_cert=emu.ca_cert if emu else None,
        emulator_url=emu.files_url if emu else None,
        concurrency=concurrency,
        wait_for_access=wait_for_access,
    )


def parse_duration(text: str) -> float:
    """``30m``, ``90s``, ``1h``, ``45`` (seconds) -> seconds."""
    text = text.strip().lower()
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise click.BadParameter(f"not a duration: {text!r} (try 30m, 90s, 1h)") from None


# --- exit codes -------------------------------------------------------------------------------------------
EXIT_OK = 0
EXIT_OTHER = 1
EXIT_TOKEN = 3
EXIT_BAD_REQUEST = 4
EXIT_AUTHENTICATION = 5
EXIT_PERMISSION = 6
EXIT_NOT_FOUND = 7
EXIT_CONNECTION = 8
EXIT_INTEGRITY = 9
EXIT_SERVICE = 10
EXIT_CONFLICT = 11


def exit_code_for(error: BaseException) -> int:
    """The documented exit code for a failure (see ``keyless.cli.test_cmd``'s table)."""
    table: list[tuple[type[BaseException], int]] = [
        (fe.TokenError, EXIT_TOKEN),
        (fe.MissingIntentHeader, EXIT_BAD_REQUEST),
        (fe.BadRequest, EXIT_BAD_REQUEST),
        (fe.AuthenticationFailed, EXIT_AUTHENTICATION),
        (fe.PermissionDenied, EXIT_PERMISSION),
        (fe.NotFound, EXIT_NOT_FOUND),
        (fe.ConnectionFailed, EXIT_CONNECTION),
        (fe.UnsafeDestination, EXIT_CONNECTION),
        (fe.IntegrityError, EXIT_INTEGRITY),
        (fe.UnsafeName, EXIT_INTEGRITY),
        (fe.ServiceError, EXIT_SERVICE),
        (fe.Conflict, EXIT_CONFLICT),
    ]
    for cls, code in table:
        if isinstance(error, cls):
            return code
    return EXIT_OTHER


# --- names on a terminal --------------------------------------------------------------------------------

#: Unicode categories never printed raw: controls (C0, C1 such as U+009B, a terminal's CSI), format
#: characters (bidi overrides such as U+202E that reverse what follows, zero-width ones), line and
#: paragraph separators, surrogates, private use and unassigned code points.
_UNPRINTED = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def printable(text: str, *, keep: str = "") -> str:
    """``text`` for a terminal: every character a terminal could act on or display deceptively is shown as
    an escape (``\\x1b``, ``\\u202e``); ``keep``: characters left as they are (a message's newlines).
    ``--json`` output keeps names exact instead."""
    out = []
    for ch in text:
        if ch in keep or unicodedata.category(ch) not in _UNPRINTED:
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)
