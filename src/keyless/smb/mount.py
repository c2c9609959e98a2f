"""The recommended ``mount.cifs`` line for a managed-identity mount, and the checks that make it work.

Checks: cifs-utils present (``mount.cifs`` and ``cifs.upcall``), a request-key rule routing
``cifs.spnego`` keys to ``cifs.upcall`` (without it the kernel cannot get the ticket: mount error 126 /
"Required key not available"), and the host name: tickets are issued only for the canonical
``<account>.file.core.windows.net``, so mounting a ``privatelink`` name fails even though it resolves
to the same private endpoint.
"""

from __future__ import annotations

import ipaddress
import shlex
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from keyless.protocol import FILE_ENDPOINT_SUFFIX
from keyless.smb.errors import InvalidEndpoint
from keyless.smb.exchange import ENDPOINT_SUFFIXES

RECOMMENDED_OPTIONS = (
    "dir_mode=0755", "file_mode=0755", "serverino", "nosharesock", "mfsymlinks", "actimeo=30",
)
REQUEST_KEY_RULE = "create cifs.spnego * * /usr/sbin/cifs.upcall %k"
REQUEST_KEY_PATHS = (Path("/etc/request-key.conf"), Path("/etc/request-key.d"))


@dataclass(frozen=True)
class MountPlan:
    account: str
    share: str
    host: str
    mountpoint: str
    uid: int
    argv: tuple[str, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


def parse_unc(unc: str) -> tuple[str, str, str, bool]:
    """``//acct.file.core.windows.net/share`` (or https://...) -> account, share, host, privatelink."""
    raw = unc.strip().replace("\\", "/")
    if raw.startswith("//"):
        raw = "https:" + raw
    elif "://" not in raw:
        raw = "https://" + raw
    parts = urlsplit(raw)
    host = (parts.hostname or "").lower()
    share = parts.path.strip("/").split("/", 1)[0]
    for suffix in ENDPOINT_SUFFIXES:
        if host.endswith("." + suffix):
            label = host[: -len(suffix) - 1]
            private = label.endswith(".privatelink")
            account = label.removesuffix(".privatelink")
            if share:
                return account, share, f"{account}.{suffix}", private
    raise InvalidEndpoint(
        f"{unc!r} is not //<account>.{FILE_ENDPOINT_SUFFIX}/<share>",
        remedy=f"Give the share as //<account>.{FILE_ENDPOINT_SUFFIX}/<share>.")


def request_key_rule_present(paths: tuple[Path, ...] = REQUEST_KEY_PATHS) -> bool:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.conf")))
        elif path.is_file():
            files.append(path)
    for file in files:
        try:
            text = file.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if words[:2] == ["create", "cifs.spnego"] and len(words) >= 4 and "cifs.upcall" in line:
                return True
    return False


def resolve_private(name: str) -> list[str]:
    """The private (RFC 1918 / ULA) addresses ``name`` resolves to; none when it does not resolve."""
    try:
        infos = socket.getaddrinfo(name, 445, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    addresses = []
    for info in infos:
        address = str(info[4][0])
        if ipaddress.ip_address(address).is_private and address not in addresses:
            addresses.append(address)
    return addresses


def plan_mount(unc: str, mountpoint: str, *, uid: int, extra_options: tuple[str, ...] = (),
               request_key_paths: tuple[Path, ...] = REQUEST_KEY_PATHS, username: str | None = None,
               resolver: Callable[[str], list[str]] = resolve_private) -> MountPlan:
    account, share, host, private = parse_unc(unc)
    notes: list[str] = []
    address_option: tuple[str, ...] = ()
    if private:
        # The UNC keeps the canonical name: cifs.upcall asks for cifs/<UNC host>, the only name tickets
        # exist for. The connection goes to the private endpoint's address (mount.cifs ip=), so the mount
        # works even where the canonical name does not resolve to it (no privatelink DNS zone link).
        private_name = f"{account}.privatelink.{host.split('.', 1)[1]}"
        addresses = resolver(private_name)
        if addresses:
            address_option = (f"ip={addresses[0]}",)
            where = f"connecting to {addresses[0]}, the address {private_name} resolves to"
        else:
            where = (f"{private_name} does not resolve to a private address here, so the connection goes "
                     f"wherever {host} resolves")
        notes.append(
            f"'{private_name}' is a private endpoint name; Kerberos tickets exist only for the canonical "
            f"name, so the line below mounts //{host}/{share} ({where}). Mounting the privatelink name "
            "itself fails with mount error 126 (Required key not available).")
    if shutil.which("mount.cifs") is None:
        notes.append("mount.cifs is not installed: install cifs-utils (apt-get install cifs-utils / "
                     "tdnf install cifs-utils).")
    if shutil.which("cifs.upcall") is None and not Path("/usr/sbin/cifs.upcall").exists():
        notes.append("cifs.upcall is not installed (it comes with cifs-utils); the kernel needs it to read "
                     "the Kerberos ticket.")
    if not request_key_rule_present(request_key_paths):
        notes.append(f"no request-key rule for cifs.spnego: add '{REQUEST_KEY_RULE}' to "
                     "/etc/request-key.d/cifs.spnego.conf, or the mount fails with error 126.")
    # username= is what azfilesrefresh reads to pick the identity (root: system-assigned, else a client id).
    user = (f"username={username}",) if username else ()
    options = ",".join(("sec=krb5", f"cruid={uid}", *user, *address_option, *RECOMMENDED_OPTIONS,
                        *extra_options))
    argv = ("mount", "-t", "cifs", f"//{host}/{share}", mountpoint, "-o", options)
    return MountPlan(account, share, host, mountpoint, uid, argv, tuple(notes))
