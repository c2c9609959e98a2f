"""The ``USER_UID`` account whose cache holds the SMB tickets: azfilesauth's ``azfilesuser`` bootstrap.

The real manager runs ``init_new_user()`` before every command but ``--version``
(AzFilesAuthenticator src/azfilesauthmanager.py:52-102,238): keep ``USER_UID`` from the config when that
uid exists; otherwise reuse or create the user ``azfilesuser`` and append ``USER_UID: <uid>`` to the config.
The library then writes ``FILE:/tmp/krb5cc_<USER_UID>`` unless ``KRB5_CC_NAME`` says otherwise
(src/azfilesauth.cpp:566-578), and that uid is the ``cruid=`` of the mounts made for the real tool, so
keyless must put its tickets in the same place.

What keyless does not copy: the real tool adds ``azfilesuser`` to ``sudo``/``wheel``, giving a password-less
account administrator rights for no purpose (it only owns a ticket cache). keyless creates a system
account with no login shell, no home directory and no extra groups. An ``azfilesuser`` the real tool made
is reused as it is. Without root nothing is created: the cache is the caller's own, as before.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from keyless.smb.errors import ConfigFileError, SmbError

ACCOUNT_NAME = "azfilesuser"


class AccountError(SmbError):
    cause = "account_error"
    exit_code = 9


class Accounts(Protocol):
    """The system's user database, as much of it as the bootstrap needs (tests pass a double)."""

    def can_create(self) -> bool: ...

    def uid_exists(self, uid: int) -> bool: ...

    def uid_of(self, name: str) -> int | None: ...

    def create(self, name: str) -> None: ...


@dataclass(frozen=True)
class SystemAccounts:
    """The real user database; creation goes through ``useradd``."""

    useradd: str = "useradd"

    def can_create(self) -> bool:
        return os.geteuid() == 0

    def uid_exists(self, uid: int) -> bool:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return False
        return True

    def uid_of(self, name: str) -> int | None:
        try:
            return pwd.getpwnam(name).pw_uid
        except KeyError:
            return None

    def create(self, name: str) -> None:
        nologin = next((p for p in ("/usr/sbin/nologin", "/sbin/nologin") if Path(p).exists()), "/bin/false")
        argv = [self.useradd, "--system", "--user-group", "--no-create-home", "--shell", nologin,
                "--comment", "Azure Files SMB ticket cache owner (keyless)", name]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        except OSError as exc:
            raise AccountError(f"could not run {self.useradd} to create the user {name!r} ({exc}).",
                               remedy=f"Create it yourself (useradd --system {name}) or set USER_UID "
                                      "in the config.") from None
        if done.returncode != 0:
            raise AccountError(
                f"useradd could not create the user {name!r}: {done.stderr.strip() or done.returncode}.",
                remedy=f"Create it yourself (useradd --system {name}) or set USER_UID in the config.")


def first_user_uid(text: str) -> str | None:
    """The first ``USER_UID`` value, as the real manager's line scan finds it."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "USER_UID":
            return value.strip().strip("\"'")
    return None


def ensure_user_uid(config_path: Path, accounts: Accounts) -> int | None:
    """The uid whose cache holds the tickets, creating ``azfilesuser`` the first time (root only).

    Returns None when there is none and none can be made (not root): the caller's own uid is used then.
    """
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        raise ConfigFileError(f"{config_path}: cannot read the config file ({exc.strerror})") from None
    raw = first_user_uid(text)
    if raw:
        try:
            uid = int(raw)
        except ValueError:
            uid = -1
        if uid >= 0 and accounts.uid_exists(uid):
            return uid
    if not accounts.can_create():
        return None
    uid_found = accounts.uid_of(ACCOUNT_NAME)
    if uid_found is None:
        accounts.create(ACCOUNT_NAME)
        uid_found = accounts.uid_of(ACCOUNT_NAME)
        if uid_found is None:
            raise AccountError(f"the user {ACCOUNT_NAME!r} was created but cannot be found.")
    _append_user_uid(config_path, text, uid_found)
    return uid_found


def _append_user_uid(config_path: Path, text: str, uid: int) -> None:
    """Append ``USER_UID: n`` as the real manager does; a stale earlier value would win (first-wins), so
    it is commented out first."""
    lines = text.splitlines(keepends=True)
    kept = [f"# {line}" if line.partition(":")[0].strip() == "USER_UID" else line for line in lines]
    body = "".join(kept)
    if body and not body.endswith("\n"):
        body += "\n"
    try:
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(f"{body}USER_UID: {uid}\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(f"{config_path}: cannot record USER_UID {uid} ({exc.strerror})",
                              remedy=f"Add 'USER_UID: {uid}' to the config yourself.") from None
