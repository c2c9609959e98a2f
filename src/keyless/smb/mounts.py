"""Mounted ``sec=krb5`` CIFS shares and the refresh each needs, as Microsoft's ``azfilesrefresh`` sees them.

Microsoft's daemon (AzFilesAuthenticator src/azfilesrefresh.py.in:106-159) looks at every mounted CIFS
share whose options say ``sec=krb5`` and picks the identity from its ``username=`` option: ``root`` means
the system-assigned managed identity, anything else is a user-assigned identity's client id, both from
IMDS. A mount without ``username=`` is skipped. The ticket lives in the azfilesauth cache
(``KRB5_CC_NAME``, else ``FILE:/tmp/krb5cc_<USER_UID>``), the one the mount's ``cruid`` names.

The table is read from a file in ``/proc/self/mounts`` format (``--mounts``, env ``KEYLESS_MOUNTS_TABLE``),
so tests point it at a file of their own; ``mount -t cifs``, which the real daemon runs, prints the same
rows from the same kernel table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from keyless.smb import state as st
from keyless.smb.errors import SmbError
from keyless.smb.exchange import parse_endpoint

DEFAULT_MOUNTS_TABLE = Path("/proc/self/mounts")
MOUNTS_ENV = "KEYLESS_MOUNTS_TABLE"
CIFS_TYPES = frozenset({"cifs", "smb3"})


@dataclass(frozen=True)
class KerberosMount:
    host: str  # the server name of the UNC path: the ticket's cifs/<host>
    share: str
    mountpoint: str
    username: str  # "root": system-assigned identity; else a user-assigned identity's client id


def _unescape(field: str) -> str:
    """/proc/mounts escapes space, tab, newline and backslash as octal (\\040 ...)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mounts(text: str) -> list[KerberosMount]:
    """The mounted CIFS shares using Kerberos and naming a ``username=``, in table order."""
    found: list[KerberosMount] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[2] not in CIFS_TYPES or not fields[0].startswith("//"):
            continue
        options = fields[3].split(",")
        # sec=krb5 and sec=krb5i both use the ticket (azfilesrefresh tests for the substring "sec=krb5").
        if not any(o.startswith("sec=krb5") for o in options):
            continue
        username = next((o.split("=", 1)[1] for o in options if o.startswith("username=")), "")
        if not username:
            continue
        host, _, share = _unescape(fields[0])[2:].partition("/")
        found.append(KerberosMount(host.lower(), share, _unescape(fields[1]), username))
    return found


REFRESH_OPT_IN = "x-systemd.requires=azfilesrefresh.service"
DEFAULT_FSTAB = Path("/etc/fstab")


def parse_fstab(text: str) -> list[KerberosMount]:
    """fstab CIFS entries opted in to azfilesrefresh: ``sec=krb5``, ``username=`` and
    ``x-systemd.requires=azfilesrefresh.service`` (AzFilesAuthenticator README, "Installation & Usage", and
    ``get_fstab_options`` in later releases of src/azfilesrefresh.py.in)."""
    found: list[KerberosMount] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[0].startswith("#") or fields[2] not in CIFS_TYPES \
                or not fields[0].startswith("//"):
            continue
        options = fields[3].split(",")
        if REFRESH_OPT_IN not in options or not any(o.startswith("sec=krb5") for o in options):
            continue
        username = next((o.split("=", 1)[1] for o in options if o.startswith("username=")), "")
        if username:
            host, _, share = _unescape(fields[0])[2:].partition("/")
            found.append(KerberosMount(host.lower(), share, _unescape(fields[1]), username))
    return found


def read_fstab(path: str | Path | None = None) -> list[KerberosMount]:
    """The opted-in entries of ``path`` (default /etc/fstab); none when it cannot be read."""
    try:
        return parse_fstab(Path(path or DEFAULT_FSTAB).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return []


def mounts_table(path: str | Path | None = None) -> Path:
    return Path(path or os.environ.get(MOUNTS_ENV) or DEFAULT_MOUNTS_TABLE)


def read_mounts(path: str | Path | None = None) -> list[KerberosMount]:
    """The Kerberos CIFS mounts of the table at ``path``; an unreadable table is an ``SmbError``."""
    table = mounts_table(path)
    try:
        return parse_mounts(table.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        raise SmbError(f"cannot read the mounts table {table} ({exc.strerror})", cause="mounts_unreadable",
                       remedy=f"Check that {table} exists (or pass --mounts).") from None


def mount_registrations(mounts: list[KerberosMount], *, ccache: str, config: str | None,
                        emulator: str | None) -> dict[str, st.Registration]:
    """One refresh registration per mounted endpoint, its identity chosen as azfilesrefresh chooses it."""
    out: dict[str, st.Registration] = {}
    for mount in mounts:
        try:
            endpoint = parse_endpoint(f"https://{mount.host}/")
        except SmbError:
            continue  # an IP-address mount: no ticket can name it, nothing to refresh
        # username=root selects the system-assigned identity; any other value is a client id
        # (src/azfilesrefresh.py.in:147-152). Both come from IMDS, as there.
        source = st.Source("imds", client_id=None if mount.username == "root" else mount.username)
        reg = st.Registration(uri=f"https://{mount.host}/", account=endpoint.account,
                              server=str(endpoint.server), ccache=ccache, source=source, config=config,
                              emulator=emulator)
        out.setdefault(reg.key, reg)
    return out
