"""The Windows forms of the operating-system seams, run on Linux through injection."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from keyless import localos
from keyless.clock import SYSTEM_CLOCK
from keyless.identity.cache import CacheKey
from keyless.identity.shared_cache import SharedTokenCache, default_directory
from keyless.identity.token import Token

BLOCKER = Path(__file__).resolve().parent / "blocker"


def fake_msvcrt() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fake_msvcrt", BLOCKER / "fake_msvcrt.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    made = module.make()
    assert isinstance(made, ModuleType)
    return made


def test_msvcrt_locker_excludes_another_process(tmp_path: Path) -> None:
    lock = tmp_path / "k.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import os, sys, time\nsys.path.insert(0, sys.argv[1])\nimport fake_msvcrt\nm = fake_msvcrt.make()\n"
         "fd = os.open(sys.argv[2], os.O_RDWR | os.O_CREAT)\nm.locking(fd, m.LK_NBLCK, 1)\n"
         "print('locked', flush=True)\nsys.stdin.readline()\n",
         str(BLOCKER), str(lock)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        locker = localos.MsvcrtLocker(fake_msvcrt())
        fd = os.open(lock, os.O_RDWR)
        try:
            assert locker.try_lock(fd) is False  # held elsewhere: refused at once, not blocked
            assert holder.stdin is not None
            holder.stdin.write("\n")
            holder.stdin.flush()
            holder.wait(10)
            assert locker.try_lock(fd) is True
            locker.unlock(fd)
        finally:
            os.close(fd)
    finally:
        holder.kill()
        holder.wait()


def test_shared_cache_in_windows_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """msvcrt locking, no uids, no O_NOFOLLOW: a token written is read back; junk and links are ignored."""
    monkeypatch.setattr(localos, "NOFOLLOW", 0)
    profile = {"LOCALAPPDATA": str(tmp_path)}
    cache = SharedTokenCache(tmp_path / "tokens", locker=localos.MsvcrtLocker(fake_msvcrt()), uid=None,
                             env=profile)
    key = CacheKey(scope="https://storage.azure.com/.default", resource="https://storage.azure.com/")
    now = SYSTEM_CLOCK.now()
    token = Token(token="secret-value", expires_on=now + 3600, received_at=now,
                  resource="https://storage.azure.com/")
    calls = []

    def fetch() -> Token:
        calls.append(1)
        return token

    assert cache.get_or_fetch(key, fetch).token == "secret-value"
    again = SharedTokenCache(tmp_path / "tokens", locker=localos.MsvcrtLocker(fake_msvcrt()), uid=None,
                             env=profile)
    assert again.get_or_fetch(key, fetch).token == "secret-value"
    assert len(calls) == 1 and again.reads == 1
    # The mode bits mean nothing on Windows and are not checked there; the content still is.
    (data,) = (tmp_path / "tokens").glob("*.json")
    data.chmod(0o644)
    assert again.read(key) is not None
    data.write_text("{not json")
    assert again.read(key) is None
    # ... and a link is never followed, even without O_NOFOLLOW's help.
    data.unlink()
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("{}")
    data.symlink_to(elsewhere)
    assert again.read(key) is None


def test_posix_form_still_refuses_open_files(tmp_path: Path) -> None:
    cache = SharedTokenCache(tmp_path / "tokens")
    key = CacheKey(scope="s", resource="r")
    now = SYSTEM_CLOCK.now()
    cache.get_or_fetch(key, lambda: Token(token="t", expires_on=now + 3600, received_at=now, resource="r"))
    (data,) = (tmp_path / "tokens").glob("*.json")
    assert cache.read(key) is not None
    data.chmod(0o644)
    assert cache.read(key) is None


def test_windows_cache_directory_is_under_local_app_data() -> None:
    env = {"LOCALAPPDATA": r"C:\Users\ana\AppData\Local", "XDG_RUNTIME_DIR": "/run/user/1000"}
    assert default_directory(env, windows=True) == Path(r"C:\Users\ana\AppData\Local") / "keyless" / "tokens"
    assert default_directory({}, windows=True) is None  # no profile: the shared cache is off
    assert default_directory({"KEYLESS_TOKEN_CACHE_DIR": "D:/c"}, windows=True) == Path("D:/c")
    assert default_directory(env, windows=False) == Path("/run/user/1000/keyless")


def test_privacy_problem_per_platform(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    path.chmod(0o640)
    st = os.stat(path)
    assert localos.privacy_problem(st, uid=os.getuid()) == "group or others may read it"
    assert localos.privacy_problem(st, uid=os.getuid() + 1) is not None
    assert localos.privacy_problem(st, uid=None) is None  # Windows: the place, not the bits


def test_seek_pread_and_pwrite_match_the_positional_calls(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"0123456789")
    fd = os.open(path, os.O_RDWR)
    try:
        assert localos.seek_pread(fd, 4, 3) == os.pread(fd, 4, 3) == b"3456"
        assert localos.seek_pread(fd, 100, 8) == b"89"
        assert localos.seek_pwrite(fd, b"ab", 20) == 2
    finally:
        os.close(fd)
    assert path.read_bytes() == b"0123456789" + b"\0" * 10 + b"ab"


def test_seek_pread_is_safe_across_threads(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    data = os.urandom(1 << 20)
    path = tmp_path / "data"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        chunk = 4096
        with ThreadPoolExecutor(8) as pool:
            parts = list(pool.map(lambda off: localos.seek_pread(fd, chunk, off), range(0, len(data), chunk)))
    finally:
        os.close(fd)
    assert b"".join(parts) == data


def test_lock_timeout_still_applies_with_msvcrt(tmp_path: Path) -> None:
    class Held:
        def try_lock(self, fd: int) -> bool:
            return False

        def unlock(self, fd: int) -> None:
            raise AssertionError("never locked")

    cache = SharedTokenCache(tmp_path / "tokens", locker=Held(), uid=None, lock_timeout=0.05,
                             env={"USERPROFILE": str(tmp_path)})
    now = SYSTEM_CLOCK.now()
    started = time.monotonic()
    token = cache.get_or_fetch(CacheKey(scope="s", resource="r"),
                               lambda: Token(token="t", expires_on=now + 3600, received_at=now, resource="r"))
    assert token.token == "t" and time.monotonic() - started < 5


def test_windows_cache_outside_the_profile_is_not_used(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """Outside the user's profile nothing keeps other users out (keyless sets no ACLs): cache off."""
    profile, elsewhere = tmp_path / "Users" / "ana", tmp_path / "temp"
    profile.mkdir(parents=True)
    now = SYSTEM_CLOCK.now()
    key = CacheKey(scope="s", resource="r")

    def fetch() -> Token:
        return Token(token="t", expires_on=now + 3600, received_at=now, resource="r")

    outside = SharedTokenCache(elsewhere / "tokens", locker=localos.MsvcrtLocker(fake_msvcrt()), uid=None,
                               env={"USERPROFILE": str(profile)})
    outside.get_or_fetch(key, fetch)
    assert outside.fetches == 1 and not elsewhere.exists()  # not even the directory was made
    assert "not under the user's profile" in caplog.text
    assert localos.profile_problem(elsewhere, {}) is not None  # no profile known: nowhere is private
    inside = SharedTokenCache(profile / "AppData" / "keyless", locker=localos.MsvcrtLocker(fake_msvcrt()),
                              uid=None, env={"USERPROFILE": str(profile)})
    inside.get_or_fetch(key, fetch)
    assert len(list((profile / "AppData" / "keyless").glob("*.json"))) == 1
