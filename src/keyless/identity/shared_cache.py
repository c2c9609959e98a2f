"""An optional token cache shared by the processes of one user on one machine.

Thirty-two worker processes each with their own cache make 32 IMDS calls per refresh, and IMDS answers 429
beyond 5 concurrent requests. With this cache they make one: the process that needs a token takes an
exclusive lock on the key's lock file (``flock``; ``msvcrt.locking`` on Windows), reads the key's token
file, and only when that holds no fresh token fetches one and writes it (atomically, mode 0600) before
releasing the lock; the others wait on the lock and then read the fresh file.

Where: ``$KEYLESS_TOKEN_CACHE_DIR``, else ``$XDG_RUNTIME_DIR/keyless`` (a per-user tmpfs on systemd
machines, gone at logout), else ``/run/user/<uid>/keyless`` when that runtime dir exists, else
``/run/keyless`` for root, else the directory given explicitly; with none of them the shared cache is off.
On Windows: ``$KEYLESS_TOKEN_CACHE_DIR``, else ``%LOCALAPPDATA%\\keyless\\tokens`` (under the user's profile,
whose ACL admits only the user, SYSTEM and Administrators; on disk, not encrypted).
Nothing from the files is trusted blindly: the directory must be ours and 0700, each file a regular file
(no symlinks) owned by us with no group/other bits (on Windows, which has neither uids nor mode bits in
``stat``: a real directory under the user's profile, and regular files, no links), and its content must
name the exact cache key and parse; anything else is ignored and overwritten. Off by default for
libraries, on for the CLI and agent. The operating-system differences live in ``keyless.localos``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from keyless import localos
from keyless.clock import SYSTEM_CLOCK, Clock
from keyless.fsutil import atomic_write
from keyless.identity.cache import CacheKey
from keyless.identity.token import Token

log = logging.getLogger("keyless.identity")

ENV_DIR = "KEYLESS_TOKEN_CACHE_DIR"
_FORMAT = 1
_MAX_FILE = 64 * 1024


class SharedCacheUnavailable(Exception):
    """The directory is unusable (wrong owner, wrong mode, not a directory); the shared cache is skipped."""


def default_directory(env: Mapping[str, str] | None = None, *, uid: int | None = None,
                      run_dir: Path = Path("/run"), windows: bool | None = None) -> Path | None:
    env = os.environ if env is None else env
    explicit = env.get(ENV_DIR)
    if explicit:
        return Path(explicit)
    if windows is None:
        windows = not localos.HAS_UIDS
    if windows:
        # No per-user tmpfs on Windows: the profile's local (non-roaming) application data is the
        # per-user, per-machine place.
        root = localos.user_cache_root(env, windows=True)
        return root / "keyless" / "tokens" if root else None
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "keyless"
    # No XDG_RUNTIME_DIR (cron, sudo, containers): systemd's per-user runtime dir still exists for users
    # with a session, and root has /run. Both are tmpfs, so tokens never reach a disk.
    uid = localos.current_uid() if uid is None else uid
    if uid is None:
        return None
    user_runtime = run_dir / "user" / str(uid)
    if user_runtime.is_dir() and user_runtime.stat().st_uid == uid:
        return user_runtime / "keyless"
    if uid == 0 and run_dir.is_dir():
        return run_dir / "keyless"
    return None


class SharedTokenCache:
    def __init__(self, directory: Path, *, clock: Clock = SYSTEM_CLOCK, lock_timeout: float = 120.0,
                 expiry_margin: float = 30.0, locker: localos.Locker | None = None,
                 uid: int | localos.Unset | None = localos.UNSET,
                 env: Mapping[str, str] | None = None) -> None:
        self.directory = Path(directory)
        # Injectable so that tests run the Windows forms (msvcrt locking, no uids) on Linux.
        self._locker = locker or localos.default_locker()
        self._uid = localos.current_uid() if isinstance(uid, localos.Unset) else uid
        self._env = os.environ if env is None else env  # Windows: where the user's profile is
        self._clock = clock
        # Waiting longer than the whole IMDS retry schedule would only happen if a holder hung; then this
        # process fetches on its own rather than wait forever.
        self._lock_timeout = lock_timeout
        self._margin = expiry_margin
        self._checked = False
        self.reads = 0  # tokens served from the file (tests read these)
        self.fetches = 0

    def _ensure_directory(self) -> None:
        if self._checked:
            return
        if self._uid is None:  # Windows: the place is what keeps others out, so check it before making it
            problem = localos.profile_problem(self.directory, self._env)
            if problem:
                raise SharedCacheUnavailable(problem)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(self.directory)
        if not stat.S_ISDIR(st.st_mode) or localos.is_junction(self.directory):
            raise SharedCacheUnavailable(f"{self.directory} is not a directory (a symlink or junction?)")
        if self._uid is not None and st.st_uid != self._uid:
            raise SharedCacheUnavailable(f"{self.directory} belongs to uid {st.st_uid}, not to this user")
        if localos.privacy_problem(st, uid=self._uid):
            os.chmod(self.directory, 0o700)  # ours, but too open: tighten rather than give up
        self._checked = True

    def _paths(self, key: CacheKey) -> tuple[Path, Path]:
        digest = hashlib.sha256(f"{key.scope}\n{key.resource}".encode()).hexdigest()[:40]
        return self.directory / f"{digest}.lock", self.directory / f"{digest}.json"

    @contextlib.contextmanager
    def _locked(self, lock_path: Path) -> Iterator[bool]:
        if not localos.NOFOLLOW and lock_path.is_symlink():
            raise OSError(f"{lock_path} is a symbolic link")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | localos.NOFOLLOW | localos.BINARY_FLAGS, 0o600)
        try:
            deadline = time.monotonic() + self._lock_timeout
            pause = 0.005
            while True:
                if self._locker.try_lock(fd):
                    break
                if time.monotonic() >= deadline:
                    log.warning("shared token cache: %s stayed locked for %.0f s; fetching without it",
                                lock_path, self._lock_timeout)
                    yield False
                    return
                # Real time on purpose: this coordinates processes, not token windows.
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
            try:
                yield True
            finally:
                self._locker.unlock(fd)
        finally:
            os.close(fd)

    def read(self, key: CacheKey) -> Token | None:
        """The token stored for ``key`` if the file passes every check, else None."""
        _, data_path = self._paths(key)
        try:
            if not localos.NOFOLLOW and data_path.is_symlink():
                return None
            fd = os.open(data_path, os.O_RDONLY | localos.NOFOLLOW | localos.BINARY_FLAGS)
        except OSError:
            return None  # absent, or a symlink (ELOOP): either way nothing to use
        try:
            st = os.fstat(fd)
            if (not stat.S_ISREG(st.st_mode) or localos.privacy_problem(st, uid=self._uid)
                    or st.st_size > _MAX_FILE):
                log.warning("shared token cache: ignoring %s (not a private regular file of this user)",
                            data_path)
                return None
            raw = os.read(fd, _MAX_FILE + 1)
        finally:
            os.close(fd)
        try:
            doc = json.loads(raw)
            if (doc["format"] != _FORMAT or doc["scope"] != key.scope or doc["resource"] != key.resource
                    or not isinstance(doc["token"], str) or not doc["token"]):
                return None
            return Token(token=doc["token"], expires_on=float(doc["expires_on"]),
                         received_at=float(doc["received_at"]), resource=key.resource,
                         source=str(doc.get("source", "")), identity=str(doc.get("identity", "")),
                         token_type=str(doc.get("token_type", "Bearer")))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None

    def write(self, key: CacheKey, token: Token) -> None:
        _, data_path = self._paths(key)
        doc = {"format": _FORMAT, "scope": key.scope, "resource": key.resource, "token": token.token,
               "expires_on": token.expires_on, "received_at": token.received_at, "source": token.source,
               "identity": token.identity, "token_type": token.token_type}
        atomic_write(data_path, json.dumps(doc).encode("utf-8"), mode=0o600)

    def get_or_fetch(self, key: CacheKey, fetch: Callable[[], Token]) -> Token:
        """A fresh token from the file, else ``fetch()`` under the lock (and store it for the others)."""
        try:
            self._ensure_directory()
        except (OSError, SharedCacheUnavailable) as exc:
            log.warning("shared token cache off: %s", exc)
            self.fetches += 1
            return fetch()
        lock_path, _ = self._paths(key)
        with self._locked(lock_path):
            stored = self.read(key)
            now = self._clock.now()
            if stored is not None and now < stored.refresh_on:
                self.reads += 1
                return stored
            self.fetches += 1
            try:
                token = fetch()
            except Exception:
                if stored is not None and now < stored.expires_on - self._margin:
                    # Another process's token is past its advisory point but still valid: better than
                    # nothing while the source is failing.
                    self.reads += 1
                    return stored
                raise
            try:
                self.write(key, token)
            except OSError as exc:
                log.warning("shared token cache: cannot write %s: %s", self.directory, exc)
            return token

    def evict(self, key: CacheKey, *, token: str | None = None) -> bool:
        """Drop the stored token for ``key`` (only if it is still ``token``, when given): the 401 path.

        A token the service refused must go from the file too, or every process (and every later command)
        would read it back as fresh until it expires. Conditional on ``token`` so that a late report about
        an older token never drops the newer one another process has stored meanwhile.
        """
        try:
            self._ensure_directory()
        except (OSError, SharedCacheUnavailable):
            return False
        lock_path, data_path = self._paths(key)
        with self._locked(lock_path):
            stored = self.read(key)
            if stored is None or (token is not None and stored.token != token):
                return False
            try:
                data_path.unlink()
            except FileNotFoundError:
                return False
            return True

    def clear(self) -> None:
        """Remove every token file of this cache (``keyless token --clear-cache``, tests)."""
        if not self.directory.is_dir():
            return
        for path in self.directory.glob("*.json"):
            with contextlib.suppress(OSError):
                path.unlink()

    def __repr__(self) -> str:
        return f"SharedTokenCache({str(self.directory)!r})"
