"""What the command line adds to a library's message: the flag or command that applies the remedy.

The libraries name concepts ("select a user-assigned identity by its client id"); only the CLI knows its
flags.
"""

from __future__ import annotations

from keyless.emulator_info import EmulatorInfoError
from keyless.files import errors as fe
from keyless.identity.errors import IdentityError, IdentityNotFound, IdentityUnavailable

_FILES_HINTS: list[tuple[type[fe.FilesError], str]] = [
    (fe.ParentNotFound, "keyless mkdir -p creates missing parents."),
    (fe.DirectoryNotEmpty, "keyless rm -r deletes a directory with its contents."),
    (fe.KeyAuthNotPermitted, "Unset AZURE_STORAGE_KEY to use the managed identity."),
    (fe.PermissionDenied, "--wait-for-access 30m makes the file commands wait for a new role assignment."),
    (fe.ServiceError, "--concurrency lowers the number of requests in parallel."),
    (fe.UnsafeDestination, "--emulator selects an emulator; --cloud a sovereign cloud."),
    (fe.TokenError, "--client-id (or --object-id, --resource-id) selects a user-assigned identity."),
]

_IDENTITY_HINTS: list[tuple[type[Exception], str]] = [
    (IdentityNotFound, "--client-id, --object-id or --resource-id selects a user-assigned identity."),
    (IdentityUnavailable, "--source chooses the token source; --emulator points at a local emulator."),
    (
        EmulatorInfoError,
        "keyless emulator --data DIR starts an emulator and --emulator DIR (or KEYLESS_EMULATOR) "
        "selects it; --client-id chooses among its identities.",
    ),
]


def remedy_for(error: fe.FilesError) -> str:
    """The library's remedy plus the command-line way to apply it."""
    hint = next((text for cls, text in _FILES_HINTS if isinstance(error, cls)), "")
    return " ".join(part for part in (error.remedy, hint) if part)


def identity_hint(error: IdentityError | EmulatorInfoError) -> str:
    """The command-line way out of an identity failure, or ""."""
    return next((text for cls, text in _IDENTITY_HINTS if isinstance(error, cls)), "")
