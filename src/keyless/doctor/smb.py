"""``keyless doctor --smb <uri>``: every precondition of a managed-identity SMB mount, each named.

In order: the endpoint (and the canonical name a ``privatelink`` URI stands for), DNS of the canonical and
``privatelink`` names, a token for ``https://storage.azure.com`` (without the trailing slash the exchange
needs), the ticket exchange itself (SMB OAuth enabled on the account, the identity's *Storage File Data SMB
MI Admin* role: each refusal has its own cause), the clock against the service's, the ticket in the cache
the mount reads (the ``cruid`` user's; a ticket sitting in another cache is named as such), cifs-utils,
and the ``cifs.spnego`` request-key rule. Nothing is stored: the exchange's ticket is only looked at.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keyless.doctor import network
from keyless.doctor.result import CheckResult, Status, fail, ok, skip, warn
from keyless.protocol import STORAGE_RESOURCE_SMB

ROLE = "Storage File Data SMB MI Admin"


@dataclass(frozen=True)
class SmbTarget:
    uri: str
    client_id: str | None = None
    config_path: str | None = None  # azfilesauth config: KRB5_CC_NAME, USER_UID (the cruid)
    emulator: dict[str, Any] | None = None  # emulator.json contents
    request_key_paths: tuple[Path, ...] | None = None  # default: keyless.smb.mount's
    token: str | None = None  # check this token instead of asking the identity (tests, pipelines)


def _named(result: CheckResult, name: str) -> CheckResult:
    return dataclasses.replace(result, name=name)


def run_smb_checks(target: SmbTarget,
                   on_result: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    from keyless.smb.config import load_config
    from keyless.smb.errors import SmbError
    from keyless.smb.target import endpoint_for

    results: list[CheckResult] = []

    def add(result: CheckResult) -> CheckResult:
        results.append(result)
        if on_result is not None:
            on_result(result)
        return result

    emu = target.emulator
    try:
        endpoint = endpoint_for(target.uri, emu)
        cfg = load_config(Path(target.config_path) if target.config_path else None)
    except SmbError as exc:
        add(fail("smb-endpoint", exc.message, exc.remedy or "Give https://<account>.file.core.windows.net."))
        return results
    host = endpoint.canonical_host
    note = (f"; {target.uri} is a private endpoint name: tickets are issued for {host}, and the mount must "
            f"use //{host}/<share>" if endpoint.private_link else "")
    add(ok("smb-endpoint", f"tickets for cifs/{host}, exchanged at {endpoint.exchange_url}{note}"))

    if emu is not None:
        add(skip("smb-dns", "the emulator is reached by address; no names to resolve"))
    else:
        for name in (host, _privatelink_name(host)):
            if name:
                add(_named(network.check_dns(name), "smb-dns"))

    token = add_token_check(target, add)
    reply = None
    if token is None:
        add(skip("smb-exchange", "skipped: no usable token"))
    else:
        reply = add_exchange_check(endpoint, token, emu, cfg, add)
    if reply is None:
        add(skip("smb-clock", "skipped: no reply from the ticket exchange"))
    else:
        add_clock_check(reply, add)

    add(check_cache(cfg, str(endpoint.server).split("@", 1)[0]))
    add(check_cifs_utils())
    add(check_request_key(target.request_key_paths))
    return results


def _privatelink_name(host: str) -> str | None:
    account, _, suffix = host.partition(".")
    return f"{account}.privatelink.{suffix}" if suffix.startswith("file.core.") else None


def add_token_check(target: SmbTarget, add: Callable[[CheckResult], CheckResult]) -> str | None:
    from keyless.smb.errors import SmbError
    from keyless.smb.exchange import check_token_audience, token_claims
    from keyless.smb.manager import IdentitySpec, acquire_token

    token = target.token
    if token is None:
        emu = target.emulator
        spec = IdentitySpec("imds" if emu else ("client-id" if target.client_id else "system"),
                            client_id=target.client_id)
        try:
            token = acquire_token(spec, imds_host=str(emu["imds_url"]) if emu else None,
                                  ca_certs=str(emu["ca_cert"]) if emu else None)
        except SmbError as exc:
            add(fail("smb-token", exc.message, exc.remedy or "Attach a managed identity to this machine."))
            return None
    aud = token_claims(token).get("aud")
    try:
        check_token_audience(token)
    except SmbError as exc:
        add(fail("smb-token", exc.message, exc.remedy))
        return None
    if aud is not None and aud != STORAGE_RESOURCE_SMB:
        add(warn("smb-token",
                 f"the token's audience is {aud!r}; the exchange expects {STORAGE_RESOURCE_SMB!r}",
                 f"Request the token for resource {STORAGE_RESOURCE_SMB} (no trailing slash)."))
    else:
        add(ok("smb-token", f"a token for {STORAGE_RESOURCE_SMB} (no trailing slash)"))
    return token


def add_exchange_check(endpoint: Any, token: str, emu: dict[str, Any] | None, cfg: Any,
                       add: Callable[[CheckResult], CheckResult]) -> Any:
    from keyless.smb.errors import ClockSkew, RoleMissing, SmbError, SmbOAuthDisabled
    from keyless.smb.exchange import request_ticket

    try:
        reply = request_ticket(endpoint, token, ca_certs=str(emu["ca_cert"]) if emu else None,
                               connect_timeout=cfg.connect_timeout, total_timeout=cfg.total_timeout)
    except SmbOAuthDisabled as exc:
        add(fail("smb-exchange", f"SMB OAuth is off: {exc.message}", exc.remedy))
        return None
    except RoleMissing as exc:
        add(fail("smb-exchange", f"role missing ({ROLE}): {exc.message}", exc.remedy))
        return None
    except ClockSkew as exc:
        add(fail("smb-exchange", exc.message, exc.remedy))
        return None
    except SmbError as exc:
        add(fail("smb-exchange", f"{exc.cause}: {exc.message}", exc.remedy or "See the detail."))
        return None
    life = reply.credential.endtime - time.time()
    add(ok("smb-exchange", f"SMB OAuth is enabled and the identity may get tickets ({ROLE}): a ticket for "
                           f"{reply.credential.server}, valid {life / 3600:.1f} h (not stored)"))
    return reply


def add_clock_check(reply: Any, add: Callable[[CheckResult], CheckResult]) -> None:
    from keyless.smb.exchange import MAX_CLOCK_SKEW

    skew = reply.clock_skew
    if abs(skew) > MAX_CLOCK_SKEW:
        add(fail("smb-clock", f"this machine's clock is {skew:+.0f} s off the service's; Kerberos tolerates "
                              f"{MAX_CLOCK_SKEW:.0f} s", "Synchronise the clock (timedatectl set-ntp true)."))
    else:
        add(ok("smb-clock", f"{skew:+.1f} s from the service's clock"))


def check_cache(cfg: Any, server: str) -> CheckResult:
    """The ticket in the cache the mount reads: ``KRB5_CC_NAME``, else the ``cruid`` user's FILE cache."""
    from keyless.smb.ccache import list_tickets
    from keyless.smb.errors import SmbError

    mount_cache = cfg.cache_name(None, env={})
    cruid = cfg.cache_uid()

    def find(cache: str) -> Any:
        try:
            return next((t for t in list_tickets(cache) if t.server.split("@", 1)[0] == server), None)
        except SmbError:
            return None

    ticket = find(mount_cache)
    now = time.time()
    if ticket is not None and ticket.ticket_end_time > now:
        return ok("smb-cache", f"{mount_cache} (cruid={cruid}) holds {server}, valid "
                               f"{(ticket.ticket_end_time - now) / 60:.0f} min more")
    if ticket is not None:
        return fail("smb-cache", f"the ticket for {server} in {mount_cache} has expired",
                    "Refresh it (azfilesauthmanager set ... / keyless smb set ...) and keep azfilesrefresh "
                    "or keyless agent running.")
    others = [c for c in (os.environ.get("KRB5CCNAME"), f"FILE:/tmp/krb5cc_{os.geteuid()}")
              if c and c != mount_cache]
    elsewhere = next((c for c in others if find(c) is not None), None)
    if elsewhere is not None:
        return fail("smb-cache", f"wrong cache: the ticket for {server} is in {elsewhere}, but a mount with "
                                 f"cruid={cruid} reads {mount_cache}",
                    f"Store it where the mount looks (azfilesauthmanager set, or keyless smb set --ccache "
                    f"{mount_cache}), or mount with the cruid of the cache that has it.")
    return fail("smb-cache", f"no ticket for {server} in {mount_cache} (cruid={cruid})",
                "Get one: azfilesauthmanager set <uri> --system (or keyless smb set ...).")


def check_cifs_utils() -> CheckResult:
    missing = [tool for tool in ("mount.cifs", "cifs.upcall")
               if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()
               and not Path(f"/sbin/{tool}").exists()]
    if missing:
        return fail("smb-cifs-utils", f"{' and '.join(missing)} not installed",
                    "Install cifs-utils (apt-get install cifs-utils / tdnf install cifs-utils).")
    return ok("smb-cifs-utils", "mount.cifs and cifs.upcall are installed")


def check_request_key(paths: tuple[Path, ...] | None) -> CheckResult:
    from keyless.smb.mount import REQUEST_KEY_PATHS, REQUEST_KEY_RULE, request_key_rule_present

    where = paths if paths is not None else REQUEST_KEY_PATHS
    if request_key_rule_present(where):
        return ok("smb-request-key", "a request-key rule sends cifs.spnego keys to cifs.upcall")
    return fail("smb-request-key",
                f"no request-key rule for cifs.spnego in {', '.join(str(p) for p in where)}: the kernel "
                "cannot fetch the ticket (mount error 126, Required key not available)",
                f"Add '{REQUEST_KEY_RULE}' to /etc/request-key.d/cifs.spnego.conf.")


def exit_code(results: list[CheckResult]) -> int:
    return 1 if any(r.status == Status.FAIL for r in results) else 0
