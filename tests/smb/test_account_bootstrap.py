"""The ``azfilesuser`` / ``USER_UID`` bootstrap with a user database double: no real user is created."""

from __future__ import annotations

import io
import pwd
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from keyless.smb.account import ACCOUNT_NAME, SystemAccounts, ensure_user_uid
from keyless.smb.azfilesauthmanager import main


def free_uid() -> int:
    used = {p.pw_uid for p in pwd.getpwall()}
    return next(u for u in range(47000, 48000) if u not in used)


@dataclass
class FakeAccounts:
    """A user database in memory; ``create`` gives the next free uid."""

    root: bool = True
    users: dict[str, int] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    new_uid: int = field(default_factory=free_uid)

    def can_create(self) -> bool:
        return self.root

    def uid_exists(self, uid: int) -> bool:
        return uid in self.users.values()

    def uid_of(self, name: str) -> int | None:
        return self.users.get(name)

    def create(self, name: str) -> None:
        self.created.append(name)
        self.users[name] = self.new_uid


def test_creates_azfilesuser_and_records_user_uid(tmp_path: Path) -> None:
    accounts = FakeAccounts()
    config = tmp_path / "etc" / "config.yaml"
    config.parent.mkdir()
    config.write_text("KRB5_CC_NAME: FILE:/x\nUSER_UID: 999999")  # a uid that does not exist, no newline
    assert ensure_user_uid(config, accounts) == accounts.new_uid
    assert accounts.created == [ACCOUNT_NAME]
    # the stale value is commented out, or the first-wins readers would still take it
    assert config.read_text() == f"KRB5_CC_NAME: FILE:/x\n# USER_UID: 999999\nUSER_UID: {accounts.new_uid}\n"
    assert ensure_user_uid(config, accounts) == accounts.new_uid and accounts.created == [ACCOUNT_NAME]


def test_reuses_an_existing_azfilesuser(tmp_path: Path) -> None:
    accounts = FakeAccounts(users={ACCOUNT_NAME: 4321})
    config = tmp_path / "config.yaml"
    assert ensure_user_uid(config, accounts) == 4321
    assert accounts.created == [] and config.read_text() == "USER_UID: 4321\n"


def test_without_root_nothing_is_created(tmp_path: Path) -> None:
    accounts = FakeAccounts(root=False)
    config = tmp_path / "config.yaml"
    assert ensure_user_uid(config, accounts) is None
    assert accounts.created == [] and not config.exists()


def test_system_accounts_useradd_failure_is_explained(tmp_path: Path) -> None:
    fake = tmp_path / "useradd"
    fake.write_text("#!/bin/sh\necho 'useradd: cannot lock /etc/passwd' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(Exception, match="cannot lock /etc/passwd") as info:
        SystemAccounts(useradd=str(fake)).create("someone")
    assert "USER_UID" in str(info.value)


def test_first_set_bootstraps_and_writes_the_uid_cache(ticket_server: Any, tmp_path: Path) -> None:
    accounts = FakeAccounts()
    config = tmp_path / "config.yaml"
    config.write_text("LOG_DESTINATION: syslog\n")
    cache = Path(f"/tmp/krb5cc_{accounts.new_uid}")
    cache.unlink(missing_ok=True)
    out, err = io.StringIO(), io.StringIO()
    try:
        rc = main(["set", "https://devaccount.file.core.windows.net", ticket_server.token("vm"),
                   "--config", str(config), "--no-register"], out=out, err=err,
                  env={"KEYLESS_EMULATOR": str(ticket_server.emulator_json)}, accounts=accounts)
        assert (rc, out.getvalue()) == (0, ""), err.getvalue()
        assert config.read_text().endswith(f"USER_UID: {accounts.new_uid}\n")
        info = cache.stat()
        assert info.st_uid == accounts.new_uid and stat.S_IMODE(info.st_mode) == 0o600
    finally:
        cache.unlink(missing_ok=True)
        Path(f"{cache}.keyless.lock").unlink(missing_ok=True)
