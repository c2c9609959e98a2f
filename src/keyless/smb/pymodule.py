"""The ``azfilesauth`` Python module's public functions, for scripts written against Microsoft's.

Microsoft's package is ``azfilesauth/__init__.py`` = ``from .azfilesauthmanager import *``
(AzFilesAuthenticator Makefile.am:18-24); its refresher imports ``azfiles_set_oauth``,
``get_oauth_token`` and ``init_new_user`` from it (src/azfilesrefresh.py.in:7). Same names, arguments,
return values, stdout lines and ``sys.exit`` statuses as src/azfilesauthmanager.py. The work is
keyless's (``keyless.smb.library``), in this process, so a script importing the module needs no
``libazfilesauth.so``. Tokens come from IMDS as there (with retries).

Settings: ``/etc/azfilesauth/config.yaml`` (``$KEYLESS_AZFILESAUTH_CONFIG`` to use another), and
``$KEYLESS_EMULATOR`` for a keyless emulator, as for the other keyless commands.
"""

from __future__ import annotations

import os
import sys

from keyless.emulator_info import ENV_EMULATOR
from keyless.smb import compat, library
from keyless.smb.account import SystemAccounts, ensure_user_uid
from keyless.smb.config import DEFAULT_CONFIG_PATH
from keyless.smb.errors import SmbError
from keyless.smb.manager import IdentitySpec

__all__ = ["azfiles_clear", "azfiles_list", "azfiles_set_oauth", "get_oauth_token",
           "get_workload_identity_token", "init_new_user"]

CONFIG_ENV = "KEYLESS_AZFILESAUTH_CONFIG"


def _config_path() -> str | None:
    return os.environ.get(CONFIG_ENV) or None


def _session() -> library.Session:
    return library.Session.open(_config_path(), None, os.environ.get(ENV_EMULATOR) or None,
                                SystemAccounts())


def _console() -> library.Console:
    return library.Console(sys.stdout, sys.stderr)


def init_new_user() -> str:
    """The ``USER_UID`` (as a string), creating ``azfilesuser`` if needed (root only; no sudo group)."""
    from pathlib import Path

    uid = ensure_user_uid(Path(_config_path() or DEFAULT_CONFIG_PATH), SystemAccounts())
    return str(uid if uid is not None else os.geteuid())


def _token(spec: IdentitySpec, what: str) -> str | None:
    from keyless.smb.manager import acquire_token
    from keyless.smb.target import read_emulator

    emulator = os.environ.get(ENV_EMULATOR)
    try:
        emu = read_emulator(emulator) if emulator else None
        if emu is not None and spec.kind == "workload":
            spec = spec.with_emulator(emu)
        return acquire_token(spec, imds_host=str(emu["imds_url"]) if emu else None,
                             ca_certs=str(emu["ca_cert"]) if emu else None)
    except SmbError as exc:
        print(f"Error fetching {what} token: {exc.message}")
        return None


def get_oauth_token(client_id: str | None = None, identity_endpoint: str | None = None) -> str | None:
    """An IMDS token for https://storage.azure.com: system-assigned, or the user-assigned ``client_id``.

    ``identity_endpoint`` (Azure Arc in later azfilesauth releases) is not used: keyless's identity library
    finds Arc's endpoint itself when ``keyless smb set --client-id`` / auto-detection is used.
    """
    del identity_endpoint
    spec = IdentitySpec("imds", client_id=client_id)
    return _token(spec, spec.ms_name())


def get_workload_identity_token(tenant_id: str, client_id: str, token_file: str) -> str | None:
    if not all([tenant_id, client_id, token_file]):
        print("Error: Missing parameters for Workload Identity.")
        return None
    return _token(IdentitySpec("workload", client_id=client_id, tenant_id=tenant_id, token_file=token_file),
                  "Workload Identity")


def azfiles_set_oauth(file_endpoint_uri: str, oauth_token: str) -> None:
    con = _console()
    try:
        rc = library.lib_set(_session(), con, file_endpoint_uri, oauth_token)[0]
    except SmbError as exc:
        con.cause(exc)
        rc = -1
    if rc != 0:
        print(compat.LIB_ERROR.format(rc=rc))
        sys.exit(1)


def azfiles_clear(file_endpoint_uri: str) -> None:
    con = _console()
    try:
        rc = library.lib_clear(_session(), con, file_endpoint_uri)[0]
    except SmbError as exc:
        con.cause(exc)
        rc = -1
    print(compat.CLEAR_RESULT.format(rc=rc))
    if rc != 0:
        print(compat.LIB_ERROR.format(rc=rc))
        sys.exit(1)


def azfiles_list(is_json: bool) -> None:
    con = _console()
    try:
        rc = library.lib_list(_session(), con, is_json)
    except SmbError as exc:
        con.cause(exc)
        rc = -1
    if rc != 0:
        print(compat.LIB_ERROR.format(rc=rc))
        sys.exit(rc)
