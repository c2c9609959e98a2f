"""The process behind the drop-in ``libazfilesauth.so``: one library call per run.

``libazfilesauth.so`` (``native/azfilesauth.c``) is a small C shim: each ``extern_smb_*`` call spawns
``keyless-azfilesauth-lib <call> ...`` with ``posix_spawn``, hands it the token on stdin (never in argv or
the environment, which other users can read in ``/proc``), lets it write the library's output to the
caller's own stdout and stderr, and reads ``rc=<n> expires=<seconds>`` from file descriptor 3
(announced by ``KEYLESS_AZFILESAUTH_RESULT_FD=3`` in its environment). Running
keyless in its own process means a Python program loading the library with ``ctypes`` (as Microsoft's
manager does) never has a second interpreter, a second krb5 context or keyless's threads inside it.

Usage (not for people): ``set <uri>`` (token on stdin), ``clear <uri>``, ``list [--json]``. The config is
``$KEYLESS_AZFILESAUTH_CONFIG`` or ``/etc/azfilesauth/config.yaml``; ``$KEYLESS_EMULATOR`` as elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

from keyless.emulator_info import ENV_EMULATOR
from keyless.smb.account import SystemAccounts
from keyless.smb.errors import SmbError

CONFIG_ENV = "KEYLESS_AZFILESAUTH_CONFIG"
RESULT_FD = 3
# Set by the C shim in the helper's own environment: only then is fd 3 the result pipe (run by hand, fd 3
# may be any file, and must not be written to).
RESULT_FD_ENV = "KEYLESS_AZFILESAUTH_RESULT_FD"


class _ExistingAccountsOnly(SystemAccounts):
    """The library only reads USER_UID (creating the account is the manager's job)."""

    def can_create(self) -> bool:
        return False


def run(argv: Sequence[str], stdin_token: str) -> tuple[int, int]:
    from keyless.smb import library, oplog
    from keyless.smb.config import report_warnings

    con = library.Console(sys.stdout, sys.stderr)
    try:
        session = library.Session.open(os.environ.get(CONFIG_ENV) or None, None,
                                       os.environ.get(ENV_EMULATOR) or None, _ExistingAccountsOnly())
        report_warnings(session.config, sys.stderr)
        oplog.configure(session.config, sys.stderr)
    except SmbError as exc:
        con.cause(exc)
        return -1, 0
    call, args = (argv[0], list(argv[1:])) if argv else ("", [])
    if call == "list":
        return library.lib_list(session, con, "--json" in args), 0
    if call == "clear" and len(args) == 1:
        return library.lib_clear(session, con, args[0])[0], 0
    if call == "set" and len(args) == 1:
        rc, expires, _ = library.lib_set(session, con, args[0], stdin_token.strip())
        return rc, expires
    print(f"keyless-azfilesauth-lib: unknown call {' '.join(argv)!r}", file=sys.stderr)
    return -1, 0


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    token = sys.stdin.read() if args[:1] == ["set"] else ""
    try:
        rc, expires = run(args, token)
    except Exception as exc:  # a bug must reach the C caller as -1, never as a hang or a traceback
        print(f"keyless-azfilesauth-lib: internal error: {type(exc).__name__}", file=sys.stderr)
        rc, expires = -1, 0
    del token
    if os.environ.get(RESULT_FD_ENV) == str(RESULT_FD):
        with contextlib.suppress(OSError):  # the caller went away: nothing left to tell
            os.write(RESULT_FD, f"rc={rc} expires={expires}\n".encode())
    sys.stdout.flush()
    sys.exit(0 if rc == 0 else 1)


if __name__ == "__main__":
    main()
