"""The cross-process cache file: private, validated, and used only for the exact key."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from keyless.identity import FakeClock, SharedTokenCache, Token
from keyless.identity.cache import CacheKey
from keyless.identity.shared_cache import default_directory

KEY = CacheKey("imds|http://x|system-assigned", "https://storage.azure.com/")


def fetcher(clock: FakeClock, calls: list[int]) -> object:
    def fetch() -> Token:
        calls.append(1)
        now = clock.now()
        return Token(token=f"tok{len(calls)}", expires_on=now + 3600, received_at=now, resource=KEY.resource)
    return fetch


def test_second_reader_uses_the_file(tmp_path: Path) -> None:
    clock = FakeClock()
    calls: list[int] = []
    a = SharedTokenCache(tmp_path / "c", clock=clock)
    b = SharedTokenCache(tmp_path / "c", clock=clock)
    assert a.get_or_fetch(KEY, fetcher(clock, calls)).token == "tok1"  # type: ignore[arg-type]
    assert b.get_or_fetch(KEY, fetcher(clock, calls)).token == "tok1"  # type: ignore[arg-type]
    assert len(calls) == 1 and b.reads == 1
    other = CacheKey(KEY.scope, "https://storage.azure.com")  # exact keys: the SMB form is separate
    assert b.get_or_fetch(other, fetcher(clock, calls)).token == "tok2"  # type: ignore[arg-type]
    assert (tmp_path / "c").stat().st_mode & 0o777 == 0o700
    for f in (tmp_path / "c").iterdir():
        assert f.stat().st_mode & 0o777 == 0o600


def test_stale_file_is_refreshed(tmp_path: Path) -> None:
    clock = FakeClock()
    calls: list[int] = []
    cache = SharedTokenCache(tmp_path, clock=clock)
    cache.get_or_fetch(KEY, fetcher(clock, calls))  # type: ignore[arg-type]
    clock.advance(3100)  # past the advisory point
    assert cache.get_or_fetch(KEY, fetcher(clock, calls)).token == "tok2"  # type: ignore[arg-type]


def test_tampered_or_foreign_files_are_ignored(tmp_path: Path) -> None:
    clock = FakeClock()
    calls: list[int] = []
    cache = SharedTokenCache(tmp_path, clock=clock)
    cache.get_or_fetch(KEY, fetcher(clock, calls))  # type: ignore[arg-type]
    data = next(p for p in tmp_path.iterdir() if p.suffix == ".json")
    os.chmod(data, 0o644)  # readable by others: not trusted
    assert cache.read(KEY) is None
    os.chmod(data, 0o600)
    doc = json.loads(data.read_text())
    doc["resource"] = "https://evil/"  # a file for another key under this name
    data.write_text(json.dumps(doc))
    assert cache.read(KEY) is None
    data.write_text("{not json")
    assert cache.read(KEY) is None
    data.unlink()
    os.symlink(tmp_path / "elsewhere", data)
    assert cache.read(KEY) is None


def test_threads_with_separate_caches_fetch_once(tmp_path: Path) -> None:
    clock = FakeClock()
    calls: list[int] = []
    lock = threading.Lock()

    def fetch() -> Token:
        with lock:
            calls.append(1)
        now = clock.now()
        return Token(token="x", expires_on=now + 3600, received_at=now)

    def worker() -> None:
        SharedTokenCache(tmp_path, clock=clock).get_or_fetch(KEY, fetch)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(calls) == 1  # flock is per open file description: threads exclude each other too


def test_default_directory(tmp_path: Path) -> None:
    assert default_directory({"XDG_RUNTIME_DIR": "/run/user/1000"}) == Path("/run/user/1000/keyless")
    # no XDG_RUNTIME_DIR: systemd's per-user runtime dir when it exists and is ours, /run for root
    me = os.getuid()
    assert default_directory({}, uid=me + 54321, run_dir=tmp_path) is None  # a user without a session
    assert default_directory({}, uid=0, run_dir=tmp_path) == tmp_path / "keyless"
    (tmp_path / "user" / str(me)).mkdir(parents=True)
    assert default_directory({}, uid=me, run_dir=tmp_path) == tmp_path / "user" / str(me) / "keyless"
    assert default_directory({}, uid=0, run_dir=tmp_path / "absent") is None
    assert default_directory({"KEYLESS_TOKEN_CACHE_DIR": "/x", "XDG_RUNTIME_DIR": "/y"}) == Path("/x")


def test_failure_falls_back_to_a_valid_stored_token(tmp_path: Path) -> None:
    clock = FakeClock()
    calls: list[int] = []
    cache = SharedTokenCache(tmp_path, clock=clock)
    cache.get_or_fetch(KEY, fetcher(clock, calls))  # type: ignore[arg-type]
    clock.advance(3100)

    def broken() -> Token:
        raise RuntimeError("IMDS down")

    assert cache.get_or_fetch(KEY, broken).token == "tok1"
    clock.advance(600)
    with pytest.raises(RuntimeError):
        cache.get_or_fetch(KEY, broken)


class _CountingSource:
    """A token source that hands out tok1, tok2, ... (one per fetch), like an identity endpoint would."""

    name = "imds"
    identity = "system-assigned"
    cache_scope = KEY.scope

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.fetches = 0

    def fetch(self, resource: str) -> Token:
        self.fetches += 1
        now = self.clock.now()
        return Token(token=f"tok{self.fetches}", expires_on=now + 86400, received_at=now, resource=resource)

    def close(self) -> None:
        pass


def test_a_refused_token_is_evicted_from_the_shared_cache_too(tmp_path: Path) -> None:
    """A 401 must not leave the refused token in the file every other process (and the next command) reads."""
    from keyless.identity import ManagedIdentityCredential

    clock = FakeClock()
    source = _CountingSource(clock)
    shared = tmp_path / "shared"
    first = ManagedIdentityCredential(source=source, shared_cache=shared, clock=clock)
    scope = "https://storage.azure.com/.default"
    assert first.get_token(scope).token == "tok1"
    assert first.invalidate(token="tok1")  # the service answered 401 to tok1
    # This process, and a new one (the next CLI command), get a new token, not the refused one.
    assert first.get_token(scope).token == "tok2"
    later = ManagedIdentityCredential(source=source, shared_cache=shared, clock=clock)
    assert later.get_token(scope).token == "tok2"
    assert source.fetches == 2


def test_invalidating_an_older_token_keeps_the_newer_shared_one(tmp_path: Path) -> None:
    """N workers refused with the same old token cause one refresh: the file's newer token stays."""
    from keyless.identity import ManagedIdentityCredential

    clock = FakeClock()
    source = _CountingSource(clock)
    shared = tmp_path / "shared"
    a = ManagedIdentityCredential(source=source, shared_cache=shared, clock=clock)
    scope = "https://storage.azure.com/.default"
    a.get_token(scope)
    a.invalidate(token="tok1")
    assert a.get_token(scope).token == "tok2"
    b = ManagedIdentityCredential(source=source, shared_cache=shared, clock=clock)
    assert not b.invalidate(token="tok1")  # late report about the old token: nothing to drop
    assert b.get_token(scope).token == "tok2" and source.fetches == 2


@pytest.mark.parametrize("planted", ["symlink", "directory"])
def test_a_lock_that_cannot_be_opened_turns_the_cache_off_with_its_path(
    tmp_path: Path, planted: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A symlink planted as the lock (O_NOFOLLOW: ELOOP) or a directory in its place: the token is fetched
    without the cache and a warning names the lock file, instead of the command failing."""
    clock = FakeClock()
    calls: list[int] = []
    cache = SharedTokenCache(tmp_path / "c", clock=clock)
    cache.get_or_fetch(KEY, fetcher(clock, calls))  # type: ignore[arg-type]
    (lock,) = (tmp_path / "c").glob("*.lock")
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    lock.unlink()
    if planted == "symlink":
        lock.symlink_to(victim)
    else:
        lock.mkdir()
    clock.advance(3500)  # the stored token is due for refresh: the lock is needed
    fresh = SharedTokenCache(tmp_path / "c", clock=clock)
    with caplog.at_level("WARNING"):
        token = fresh.get_or_fetch(KEY, fetcher(clock, calls))  # type: ignore[arg-type]
    assert token.token == "tok2" and len(calls) == 2
    assert str(lock) in caplog.text and "shared token cache off" in caplog.text
    assert fresh.evict(KEY) is False
    assert victim.read_text() == "untouched"
