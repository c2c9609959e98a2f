"""Store, list and clear SMB tickets in a Kerberos credential cache through MIT libkrb5.

Going through libkrb5 (the ``krb5`` package) rather than writing cache files means every cache type the
machine's Kerberos knows works the same way: ``FILE``, ``DIR``, ``KEYRING``, ``KCM``, ``MEMORY``.
The decoded credential is handed to libkrb5 in the credential serialization it defines for FILE caches
and KCM (``krb5_unmarshal_credentials``, MIT 1.20+), so libkrb5 builds its own ``krb5_creds``.

Behaviour kept from ``azfilesauth``: initialise an absent cache with the ticket's client, refuse a cache
whose default principal is another client (unless ``force``, which re-initialises it), remove an older
ticket for the same server before storing, list only ``cifs/`` tickets. Added: a lock around the
remove-then-store pair for file-backed caches (so ``smb set`` and the agent never interleave), file caches
kept 0600 and owned by the cache's user, and errors that say which of those went wrong.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import krb5

from keyless.smb.errors import (
    CacheError,
    CacheOtherClient,
    CachePermissionDenied,
    CacheTypeUnsupported,
)
from keyless.smb.krbcred import Credential, Principal

# Cache types whose residual is a path on disk, and so get a lock file and permission checks.
_FILE_TYPES = {"FILE", "DIR"}


@dataclass(frozen=True)
class TicketInfo:
    """One cached ``cifs/`` ticket: the fields of ``azfilesauthmanager list --json``, times as epochs
    (``keyless.smb.compat`` renders them as the real tool prints them)."""

    server: str
    client: str
    realm: str
    ticket_flags: int
    ticket_start_time: int
    ticket_end_time: int
    ticket_renew_till: int


# --- serialization (MIT ccache v4 credential format, big-endian) ---------------------------------------


def _data(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def _principal(p: Principal) -> bytes:
    return (struct.pack(">II", p.name_type, len(p.components)) + _data(p.realm.encode())
            + b"".join(_data(c.encode()) for c in p.components))


def marshal(cred: Credential) -> bytes:
    """``cred`` in the credential format of MIT's FILE cache version 4 (also KCM's wire format)."""
    return b"".join([
        _principal(cred.client),
        _principal(cred.server),
        struct.pack(">H", cred.enctype), _data(cred.session_key),
        struct.pack(">IIIIBI", cred.authtime, cred.starttime or cred.authtime, cred.endtime,
                    cred.renew_till, 0, cred.flags),
        struct.pack(">I", 0),  # addresses
        struct.pack(">I", 0),  # authdata
        _data(cred.ticket),
        _data(b""),  # second ticket
    ])


def _match_creds(ctx: krb5.Context, client: Principal, server: Principal) -> krb5.Creds:
    """A creds value that only names client and server, for libkrb5's match-and-remove."""
    empty = Credential(client=client, server=server, enctype=0, session_key=b"", flags=0, authtime=0,
                       starttime=0, endtime=0, renew_till=0, ticket=b"")
    return krb5.unmarshal_credentials(ctx, marshal(empty))


# --- cache access --------------------------------------------------------------------------------------


def cache_type(name: str) -> str:
    kind, sep, _ = name.partition(":")
    # A name without a type prefix is a file (as libkrb5 reads it); "/path" has no colon.
    return kind.upper() if sep and "/" not in kind else "FILE"


def cache_path(name: str) -> Path | None:
    """The file (or directory, for DIR) behind a file-backed cache name, else None."""
    kind = cache_type(name)
    if kind not in _FILE_TYPES:
        return None
    residual = name.split(":", 1)[1] if ":" in name and name.split(":", 1)[0].upper() == kind else name
    if kind == "DIR" and residual.startswith(":"):
        residual = residual[1:]  # DIR::/path/tkt names one cache file inside the collection
    return Path(residual)


def _krb_error(exc: krb5.Krb5Error, name: str, action: str) -> Exception:
    text = str(exc)
    low = text.lower()
    if "unknown credential cache type" in low or "unknown ccache type" in low:
        return CacheTypeUnsupported(
            f"the credential cache type of {name!r} is not supported by this machine's Kerberos ({text}).",
            remedy="Use FILE:, DIR:, KEYRING: or KCM: (KCM needs a running kcm daemon, e.g. sssd-kcm).",
        )
    if "permission denied" in low or getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM):
        return CachePermissionDenied(
            f"not permitted to {action} the credential cache {name!r} ({text}).",
            remedy="Run as root or as the cache's owner, or name a cache you own with --ccache.",
        )
    if "keyring" in low or "kcm" in low or "connection refused" in low:
        return CacheTypeUnsupported(
            f"the credential cache {name!r} cannot be used here ({text}).",
            remedy="Check that the kernel keyring or the KCM daemon is available, or use a FILE: cache.",
        )
    return CacheError(f"could not {action} the credential cache {name!r}: {text}")


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """An exclusive lock for file-backed caches, so a remove-then-store pair is never interleaved."""
    path = cache_path(name)
    if path is None:
        yield
        return
    is_dir = cache_type(name) == "DIR"
    lock_path = (path / ".keyless.lock") if is_dir and path.is_dir() \
        else path.with_name(path.name + ".keyless.lock")
    if not is_dir and not lock_path.parent.is_dir():
        # Never create directories for a FILE cache: a typo in KRB5_CC_NAME must not grow a tree as root.
        raise CacheError(
            f"the directory of the credential cache {name!r} ({lock_path.parent}) does not exist.",
            remedy="Name a cache in an existing directory, e.g. FILE:/tmp/krb5cc_<uid>.")
    try:
        if is_dir:
            lock_path.parent.mkdir(parents=True, exist_ok=True)  # a DIR collection is a directory itself
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except PermissionError:
        raise CachePermissionDenied(
            f"not permitted to lock the credential cache {name!r} (no write access to {lock_path.parent}).",
            remedy="Run as root or as the cache's owner, or name a cache you own with --ccache.",
        ) from None
    except OSError as exc:
        raise CacheError(
            f"cannot use {name!r} as a credential cache: {exc.strerror} ({lock_path}).",
            remedy="Name a cache on a normal file system, e.g. FILE:/tmp/krb5cc_<uid>.") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _tighten(name: str, owner_uid: int | None) -> None:
    """File caches hold a session key: 0600, and owned by the user the kernel will read them as."""
    path = cache_path(name)
    if path is None:
        return
    targets = [path] if path.is_file() else sorted(p for p in path.glob("tkt*") if p.is_file())
    for target in targets:
        os.chmod(target, 0o600)
        if owner_uid is not None and os.geteuid() == 0 and target.stat().st_uid != owner_uid:
            os.chown(target, owner_uid, -1)


def _open(ctx: krb5.Context, name: str) -> krb5.CCache:
    try:
        return krb5.cc_resolve(ctx, name.encode())
    except krb5.Krb5Error as exc:
        raise _krb_error(exc, name, "open") from None


def _default_principal(ctx: krb5.Context, cc: krb5.CCache) -> krb5.Principal | None:
    try:
        return krb5.cc_get_principal(ctx, cc)
    except krb5.Krb5Error:
        return None  # absent or empty cache: libkrb5 reports both as "no credentials cache found"


# Cache types that live inside one process: the kernel's cifs.upcall can never read a ticket put there.
_PROCESS_LOCAL_TYPES = {"MEMORY", "MSLSA", "API"}


def store(name: str, cred: Credential, *, force: bool = False, owner_uid: int | None = None) -> None:
    """Put ``cred`` into the cache ``name``, replacing an older ticket for the same server."""
    if cache_type(name) in _PROCESS_LOCAL_TYPES:
        raise CacheTypeUnsupported(
            f"{name!r} is a credential cache inside this process only: the ticket would vanish when the "
            "command ends, and the kernel's cifs.upcall could never read it.",
            remedy="Use FILE:, DIR:, KEYRING: or KCM:.")
    ctx = krb5.init_context()
    cc = _open(ctx, name)
    try:
        creds = krb5.unmarshal_credentials(ctx, marshal(cred))
    except krb5.Krb5Error as exc:
        raise CacheError(f"libkrb5 refused the decoded credential: {exc}") from None
    with _locked(name):
        try:
            existing = _default_principal(ctx, cc)
            if existing is None:
                krb5.cc_initialize(ctx, cc, creds.client)
            elif existing.name != creds.client.name:
                if not force:
                    raise CacheOtherClient(
                        f"the credential cache {name!r} belongs to "
                        f"{(existing.name or b'').decode(errors='replace')}, not {cred.client}; "
                        "storing the SMB ticket there would hide that user's tickets.",
                        remedy="Use another cache (--ccache, or KRB5_CC_NAME in the config), "
                               "or pass --force to re-initialise this one.",
                    )
                krb5.cc_initialize(ctx, cc, creds.client)
            else:
                _remove_server(ctx, cc, cred.client, cred.server)
            krb5.cc_store_cred(ctx, cc, creds)
        except krb5.Krb5Error as exc:
            raise _krb_error(exc, name, "write") from None
        _tighten(name, owner_uid)


def _remove_server(ctx: krb5.Context, cc: krb5.CCache, client: Principal, server: Principal) -> bool:
    match = _match_creds(ctx, client, server)
    present = any(c.server.name == match.server.name for c in cc)
    if not present:
        return False
    krb5.cc_remove_cred(ctx, cc, krb5.CredentialsRetrieveFlags.match_srv_nameonly, match)
    return True


def clear(name: str, client: Principal, server: Principal) -> bool:
    """Remove the ticket for ``server``; False when there was none (or no cache at all)."""
    ctx = krb5.init_context()
    cc = _open(ctx, name)
    with _locked(name):
        existing = _default_principal(ctx, cc)
        if existing is None:
            return False
        # The server is named in the realm of the cache's principal, as azfilesauth's clear does
        # (src/azfilesauth.cpp smb_clear_credential), so a sovereign cloud's realm is matched too.
        realm = existing.realm.decode(errors="replace")
        server = Principal(server.name_type, server.components, realm)
        client = Principal(client.name_type, client.components, realm)
        try:
            return _remove_server(ctx, cc, client, server)
        except krb5.Krb5Error as exc:
            raise _krb_error(exc, name, "change") from None


def list_tickets(name: str) -> list[TicketInfo]:
    """The ``cifs/`` tickets in cache ``name`` (none when the cache does not exist)."""
    return read_tickets(name) or []


def read_tickets(name: str) -> list[TicketInfo] | None:
    """The ``cifs/`` tickets in cache ``name``; None when the cache does not exist (or has no principal)."""
    ctx = krb5.init_context()
    cc = _open(ctx, name)
    if _default_principal(ctx, cc) is None:
        return None
    out: list[TicketInfo] = []
    try:
        for creds in cc:
            server = creds.server
            comps = server.components
            if not comps or comps[0] != b"cifs":
                continue
            times = creds.times
            out.append(TicketInfo(
                server=(server.name or b"").decode(errors="replace"),
                # azfilesauth prints the client's first component only ("AzureFileClient").
                client=(creds.client.components[0] if creds.client.components else b"").decode(
                    errors="replace"),
                realm=server.realm.decode(errors="replace"),
                ticket_flags=int(creds.ticket_flags_raw),
                ticket_start_time=int(times.starttime or times.authtime),
                ticket_end_time=int(times.endtime),
                ticket_renew_till=int(times.renew_till),
            ))
    except krb5.Krb5Error as exc:
        raise _krb_error(exc, name, "read") from None
    return out


def default_client_matches(name: str, client: Principal) -> bool | None:
    """None when the cache has no default principal; else whether it is ``client``."""
    ctx = krb5.init_context()
    existing = _default_principal(ctx, _open(ctx, name))
    if existing is None:
        return None
    return (existing.name or b"").decode(errors="replace") == str(client)
