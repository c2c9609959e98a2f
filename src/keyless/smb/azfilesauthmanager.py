"""``azfilesauthmanager``: Microsoft's command line (AzFilesAuthenticator 1.0.11), argument for argument.

Scripts written for the real tool see the same arguments, stdout, and exit statuses: the argv rules of
``src/azfilesauthmanager.py:211-356`` (``set <uri>`` alone is a usage error, unknown ``list`` arguments are
ignored, one identity option at most), its messages, ``list`` output from ``keyless.smb.compat``, and
``clear`` of a missing cache failing. What keyless adds stays out of stdout: the precise cause of a failure
and its fix go to stderr, and nothing here needs root.

keyless's own options are accepted anywhere after the command and removed before the real tool's rules
apply: ``--config PATH``, ``--ccache NAME``, ``--emulator PATH`` (env ``KEYLESS_EMULATOR``), ``--state
PATH``, ``--no-register``, ``--force``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from keyless.emulator_info import ENV_EMULATOR
from keyless.smb import compat, library, oplog
from keyless.smb.account import Accounts, SystemAccounts
from keyless.smb.config import report_warnings
from keyless.smb.errors import SmbError
from keyless.smb.library import Console, Exit, Session

# The real tool's usage text (src/azfilesauthmanager.py:14-22, 1.0.11 adds the sovereign-cloud options);
# it is printed with print(), so a blank line follows it.

_VALUED = ("--config", "--ccache", "--emulator", "--state")
_FLAGS = ("--no-register", "--force")


@dataclass
class Options:
    """keyless's additions, taken out of argv before the real tool's rules see it."""

    config: str | None = None
    ccache: str | None = None
    emulator: str | None = None
    state: str | None = None
    no_register: bool = False
    force: bool = False
    rest: list[str] = field(default_factory=list)


def split_options(args: Sequence[str], env: dict[str, str] | None = None) -> Options:
    env = dict(os.environ) if env is None else env
    opts = Options(emulator=env.get(ENV_EMULATOR) or None)
    it = iter(range(len(args)))
    for i in it:
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name in _VALUED and i > 0:
            if not eq:
                if i + 1 >= len(args):
                    opts.rest.append(arg)
                    continue
                value = args[i + 1]
                next(it, None)
            setattr(opts, name[2:], value)
        elif arg in _FLAGS and i > 0:
            setattr(opts, arg[2:].replace("-", "_"), True)
        else:
            opts.rest.append(arg)
    return opts


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None,
         env: dict[str, str] | None = None, accounts: Accounts | None = None) -> int:
    """Run one ``azfilesauthmanager`` command; returns the exit status."""
    con = Console(out or sys.stdout, err or sys.stderr)
    opts = split_options(list(sys.argv[1:] if argv is None else argv), env)
    try:
        return _run(opts, con, accounts or SystemAccounts())
    except Exit as done:
        return done.code


def _run(opts: Options, con: Console, accounts: Accounts) -> int:
    args = opts.rest
    if not args:
        raise con.usage()
    command = args[0]
    if command == "--version":
        con.say(compat.AZFILESAUTH_VERSION)
        return 0
    handlers: dict[str, Callable[[Options, Console, Any], int]] = {
        "list": _list, "set": _set, "clear": _clear}
    handler = handlers.get(command)
    if handler is None:
        raise con.usage()
    try:
        session = Session.open(opts.config, opts.ccache, opts.emulator, accounts)
        report_warnings(session.config, con.err)
        oplog.configure(session.config, con.err)
    except SmbError as exc:
        con.cause(exc)
        return 1
    return handler(opts, con, session)


# --- list ---------------------------------------------------------------------------------------------


def _list(opts: Options, con: Console, session: Session) -> int:
    # argv is [prog, "list"] or [prog, "list", <anything>] (src/azfilesauthmanager.py:240-249).
    if len(opts.rest) not in (1, 2):
        raise con.usage()
    rc = library.lib_list(session, con, "--json" in opts.rest)
    if rc != 0:
        # azfiles_list: sys.exit(rc), so -1 is status 255 (src/azfilesauthmanager.py:200-208).
        con.say(compat.LIB_ERROR.format(rc=rc))
        return rc & 0xFF
    return 0


# --- clear --------------------------------------------------------------------------------------------


def _clear(opts: Options, con: Console, session: Session) -> int:
    if len(opts.rest) != 2:
        raise con.usage()
    rc, endpoint = library.lib_clear(session, con, opts.rest[1])
    if rc == 0 and endpoint is not None:
        _unregister(opts, endpoint, session.cache, con)
    con.say(compat.CLEAR_RESULT.format(rc=rc))
    if rc != 0:
        con.say(compat.LIB_ERROR.format(rc=rc))
        return 1
    return 0


def _unregister(opts: Options, endpoint: Any, cache: str, con: Console) -> None:
    from keyless.smb import state

    if opts.no_register:
        return
    try:
        state.unregister(state.state_path(opts.state), str(endpoint.server), cache)
    except SmbError as exc:
        print(f"warning ({exc.cause}): the agent may still refresh it: {exc.message}", file=con.err,
              flush=True)


# --- set ----------------------------------------------------------------------------------------------


def _set(opts: Options, con: Console, session: Session) -> int:
    from keyless.smb.manager import IdentitySpec

    argv = ["azfilesauthmanager", *opts.rest]
    if len(argv) < 4:
        raise con.usage()
    uri = argv[2]
    modes = [m for m in ("--system", "--imds-client-id", "--workload-identity") if m in argv]
    if len(modes) > 1:
        con.say("Cannot specify more than one of --system, --imds-client-id, or --workload-identity")
        return 1
    if modes == ["--imds-client-id"]:
        if len(argv) != 5:
            raise con.usage()
        spec = IdentitySpec("imds", client_id=argv[4])
    elif modes == ["--system"]:
        remaining = [a for a in argv[3:] if a != "--system"]
        if remaining:
            con.say(f"Error: unknown argument '{remaining[0]}'")
            raise con.usage()
        spec = IdentitySpec("imds")  # --system means IMDS, as in the real tool (not auto-detection)
    elif modes == ["--workload-identity"]:
        values: dict[str, str | None] = {}
        for name in ("--tenant-id", "--client-id", "--token-file", "--authority-host", "--resource"):
            if name in argv:
                idx = argv.index(name) + 1
                if idx >= len(argv):
                    raise con.usage()
                values[name] = argv[idx]
        if not all(values.get(n) for n in ("--tenant-id", "--client-id", "--token-file")):
            con.say("Missing required parameters for workload identity.")
            raise con.usage()
        spec = IdentitySpec("workload", client_id=values["--client-id"], tenant_id=values["--tenant-id"],
                            token_file=values["--token-file"], authority_host=values.get("--authority-host"),
                            resource=values.get("--resource"))
    else:
        if len(argv) != 4:
            raise con.usage()
        # keyless's addition: "-" reads the token from stdin, out of every local user's sight in /proc.
        spec = IdentitySpec("token", token=sys.stdin.read().strip() if argv[3] == "-" else argv[3])
    return _set_with(opts, con, session, uri, spec)


def _set_with(opts: Options, con: Console, session: Session, uri: str, spec: Any) -> int:
    from keyless.smb.manager import acquire_token

    emu = session.emulator
    ca = str(emu["ca_cert"]) if emu else None
    if spec.kind == "workload" and emu is not None:
        spec = spec.with_emulator(emu)
    try:
        token = acquire_token(spec, imds_host=str(emu["imds_url"]) if emu else None, ca_certs=ca)
    except SmbError as exc:
        # The real manager prints its own token error on stdout and exits 1 without calling the library.
        con.say(f"Error fetching {spec.ms_name()} token: {exc.message}")
        con.cause(exc)
        return 1
    rc, _expires, endpoint = library.lib_set(session, con, uri, token, force=opts.force)
    if rc != 0:
        con.say(compat.LIB_ERROR.format(rc=rc))
        return 1
    if not opts.no_register and endpoint is not None:
        from keyless.smb.registration import register

        register(opts.state, uri, endpoint, spec, session.cache, opts.config, opts.emulator, con.err)
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
