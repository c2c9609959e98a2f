"""What ``libazfilesauth``'s three calls do, with the library's stdout output and return values.

AzFilesAuthenticator's library (src/azfilesauth.cpp ``extern_smb_*``) returns 0 or -1 and prints only a
few fixed lines on stdout; the ``azfilesauthmanager`` command adds its own lines around them. Both keyless
front ends run these functions: the ``azfilesauthmanager`` drop-in (``keyless.smb.azfilesauthmanager``) and
the helper behind the drop-in ``libazfilesauth.so`` (``keyless.smb.libhelper``), so the C library, the
command and the ``azfilesauth`` Python module cannot drift apart. The precise cause of a failure goes to
stderr, which the real library leaves to syslog.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from keyless.smb import compat
from keyless.smb.account import Accounts, ensure_user_uid
from keyless.smb.errors import (
    CacheError,
    CacheOtherClient,
    CachePermissionDenied,
    CacheTypeUnsupported,
    InvalidEndpoint,
    SmbError,
)

_CACHE_ERRORS = (CacheError, CacheOtherClient, CachePermissionDenied, CacheTypeUnsupported)


class Exit(Exception):
    """A control-flow signal carrying the exit status."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Console:
    out: TextIO
    err: TextIO

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def cause(self, exc: SmbError) -> None:
        """keyless's addition: what exactly failed and how to fix it, on stderr only."""
        print(f"error ({exc.cause}): {exc.message}", file=self.err, flush=True)
        if exc.remedy:
            print(f"  fix: {exc.remedy}", file=self.err, flush=True)

    def usage(self) -> Exit:
        self.say(compat.USAGE)
        return Exit(1)


@dataclass
class Session:
    """The settings one command runs with: config, cache name, emulator."""

    config: Any
    cache: str
    emulator: dict[str, Any] | None

    @classmethod
    def open(cls, config: str | None, ccache: str | None, emulator: str | None,
             accounts: Accounts) -> Session:
        from keyless.smb.config import DEFAULT_CONFIG_PATH, load_config
        from keyless.smb.target import read_emulator

        path = Path(config) if config else None
        cfg = load_config(path)
        # init_new_user() before every command but --version (src/azfilesauthmanager.py:238).
        if (cfg.user_uid is None or not accounts.uid_exists(cfg.user_uid)) \
                and ensure_user_uid(path or DEFAULT_CONFIG_PATH, accounts) is not None:
            cfg = load_config(path or DEFAULT_CONFIG_PATH)
        emu = read_emulator(emulator) if emulator else None
        # The real library never reads $KRB5CCNAME: KRB5_CC_NAME from the config, else the USER_UID cache
        # (src/azfilesauth.cpp:566-578).
        return cls(cfg, cfg.cache_name(ccache, env={}), emu)


def lib_list(session: Session, con: Console, as_json: bool) -> int:
    """``extern_smb_list_credential``: the list on stdout; 0, or -1 when the cache cannot be read."""
    from keyless.smb.manager import read_credentials

    try:
        tickets = read_credentials(session.cache)
    except SmbError as exc:
        # The real library prints nothing (or "[]") and returns 0 here; keyless says why, and fails.
        con.cause(exc)
        return -1
    con.out.write(compat.format_list_json(tickets) if as_json else compat.format_list_text(tickets or []))
    con.out.flush()
    return 0


def lib_clear(session: Session, con: Console, uri: str) -> tuple[int, Any]:
    """``extern_smb_clear_credential``: 0 (also when no ticket matched) or -1; and the endpoint.

    No matching ticket is success there too: smb_clear_credential returns what
    ``krb5_cc_remove_cred(KRB5_TC_MATCH_SRV_NAMEONLY)`` returns, and MIT libkrb5 (1.20 and later, whose
    FILE caches implement it) returns 0 when nothing matches; only a missing cache fails."""
    from keyless.smb.ccache import read_tickets
    from keyless.smb.manager import clear_credential
    from keyless.smb.target import endpoint_for

    if not uri.startswith("https://"):
        # src/azfilesauth.cpp smb_clear_credential: this one message goes to stderr, and -1 is returned.
        print(f"file_endpoint_uri is not prefixed with 'https://'. Provided: {uri}", file=con.err, flush=True)
        return -1, None
    try:
        endpoint = endpoint_for(uri, session.emulator)
        if read_tickets(session.cache) is None:
            # Clearing from a cache that does not exist is an error there (krb5_cc_get_principal fails).
            con.say(compat.CLEAR_ERROR)
            return -1, None
        clear_credential(endpoint, cache_name=session.cache)
    except SmbError as exc:
        con.say(compat.CLEAR_ERROR)
        con.cause(exc)
        return -1, None
    return 0, endpoint


def lib_set(session: Session, con: Console, uri: str, token: str, *,
            force: bool = False) -> tuple[int, int, Any]:
    """``extern_smb_set_credential_oauth_token``: (0 or -1, seconds until expiry, the endpoint).

    Nothing is printed on success. A failure prints the real library's line for its stage: getting the
    ticket ("Error getting Kerberos service ticket, ...") or storing it ("Error inserting credential,
    ..."); an empty or non-https URI or an empty token is -1 with no line, as there.
    """
    from keyless.smb.manager import set_credential
    from keyless.smb.target import endpoint_for

    cfg = session.config
    emu = session.emulator
    try:
        if not uri or not token:
            raise InvalidEndpoint("the endpoint URI and the token must not be empty")
        if not uri.startswith("https://"):
            # get_kerberos_service_ticket: http:// or no scheme is EINVAL, -1, no output.
            raise InvalidEndpoint(f"{uri!r} is not prefixed with 'https://'",
                                  remedy="Use https://<account>.file.core.windows.net.")
        endpoint = endpoint_for(uri, emu)
    except SmbError as exc:
        con.cause(exc)
        return -1, 0, None
    try:
        result = set_credential(endpoint, token, cache_name=session.cache, force=force,
                                owner_uid=cfg.user_uid, ca_certs=str(emu["ca_cert"]) if emu else None,
                                connect_timeout=cfg.connect_timeout, total_timeout=cfg.total_timeout)
    except SmbError as exc:
        con.say(compat.INSERT_ERROR if isinstance(exc, _CACHE_ERRORS) else compat.SET_ERROR)
        con.cause(exc)
        return -1, 0, None
    # The TTL comes from the reply's expirationTime, as there (src/azfilesauth.cpp:758-781).
    return 0, max(0, int(result.reply.expiration - time.time())), endpoint
