"""Boot-safe SMB mounts: systemd ``.mount`` + ``.automount`` units ordered after the ticket refresher.

A managed-identity SMB mount cannot be a plain fstab line at boot: the ticket does not exist until the
refresher has fetched it, and the mount fails with error 126. ``keyless smb mount --persist`` writes a
``.mount`` unit (``_netdev``, after ``network-online.target`` and ``azfilesrefresh.service``, which it also
pulls in) and an ``.automount`` unit for the same path, so the share mounts on first access, after the
ticket is there. The mount options carry ``username=`` as Microsoft's refresher expects it
(AzFilesAuthenticator README, fstab example: ``root`` for the system-assigned identity, else a client id),
so ``azfilesrefresh`` keeps the ticket fresh. Unit names are systemd's path escaping of the mount point.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from keyless.smb.errors import SmbError

DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
REFRESHER_UNIT = "azfilesrefresh.service"


def escape_path(path: str) -> str:
    """``systemd-escape --path``: '/' separators become '-', everything unsafe becomes \\xNN."""
    trimmed = os.path.normpath(path).strip("/")
    if not trimmed:
        return "-"
    out: list[str] = []
    for i, ch in enumerate(trimmed):
        if ch == "/":
            out.append("-")
        elif (ch.isascii() and (ch.isalnum() or ch in ":_.")) and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return "".join(out)


@dataclass(frozen=True)
class MountUnits:
    name: str  # without suffix
    mount: str
    automount: str


def render_units(what: str, where: str, options: str) -> MountUnits:
    if not where.startswith("/"):
        raise SmbError(f"the mount point {where!r} must be an absolute path", cause="invalid_mountpoint",
                       remedy="Give the mount point as /mnt/<name>.")
    where = os.path.normpath(where)
    name = escape_path(where)
    mount = f"""# Written by keyless smb mount --persist; remove with keyless smb mount ... --remove.
[Unit]
Description=Azure Files share {what} at {where} (keyless, managed identity)
Wants=network-online.target {REFRESHER_UNIT}
After=network-online.target {REFRESHER_UNIT}

[Mount]
What={what}
Where={where}
Type=cifs
Options=_netdev,{options}
TimeoutSec=60

[Install]
WantedBy=remote-fs.target
"""
    automount = f"""# Written by keyless smb mount --persist; remove with keyless smb mount ... --remove.
[Unit]
Description=Automount of the Azure Files share {what} at {where} (keyless)
Wants=network-online.target
After=network-online.target

[Automount]
Where={where}
TimeoutIdleSec=0

[Install]
WantedBy=remote-fs.target
"""
    return MountUnits(name, mount, automount)


def write_units(units: MountUnits, unit_dir: Path = DEFAULT_UNIT_DIR) -> list[Path]:
    from keyless.fsutil import atomic_write

    paths = [unit_dir / f"{units.name}.mount", unit_dir / f"{units.name}.automount"]
    try:
        unit_dir.mkdir(parents=True, exist_ok=True)
        for path, text in zip(paths, (units.mount, units.automount), strict=True):
            atomic_write(path, text.encode(), mode=0o644)
    except OSError as exc:
        raise SmbError(f"cannot write units into {unit_dir}: {exc.strerror}", cause="unit_write_failed",
                       remedy="Run as root, or pass --unit-dir.") from None
    return paths


def remove_units(where: str, unit_dir: Path = DEFAULT_UNIT_DIR) -> list[Path]:
    name = escape_path(os.path.normpath(where))
    removed = []
    for suffix in ("mount", "automount"):
        path = unit_dir / f"{name}.{suffix}"
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise SmbError(f"cannot remove {path}: {exc.strerror}", cause="unit_write_failed",
                           remedy="Run as root, or pass --unit-dir.") from None
        removed.append(path)
    return removed
