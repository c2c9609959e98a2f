"""``keyless sas``: a user delegation SAS for a share, directory or file, minted from the managed identity.

For consumers that only take a SAS (tools, partners, pre-signed links): Get User Delegation Key with the
identity's token, then sign (:mod:`keyless.files.sas`). No account key is read, even when
``AZURE_STORAGE_KEY`` is set. The SAS is printed on stdout because the user asked for it; it is never
logged, and errors never contain it. It works only while the identity keeps a role that allows the
operation, and never after ``--expiry`` (at most seven days: the delegation key's limit).

Azure Files signs a SAS for a share or for a file; a directory SAS is a share SAS (every file in the share)
with the directory's URL, and the command says so on stderr.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta

import click

from keyless.cli import _files_common as common
from keyless.cli._files_session import Session, common_options
from keyless.files import sas
from keyless.files.urls import FileUrl

_DURATION = re.compile(r"^\s*[0-9]+(\.[0-9]+)?\s*[smhd]?\s*$", re.I)
MAX_LIFETIME = timedelta(seconds=sas.MAX_KEY_LIFETIME_SECONDS)


def parse_ip(value: str) -> str:
    """``--ip``: the rule is the library's (:func:`keyless.files.sas.parse_ip`); a refusal is a usage
    error naming the option."""
    try:
        return sas.parse_ip(value)
    except sas.SasError as exc:
        raise click.BadParameter(str(exc), param_hint="--ip") from None


def parse_time(value: str, option: str, now: datetime) -> datetime:
    """ISO 8601 (``2030-01-01T12:00Z``; no zone means UTC) or a duration from now (``30m``, ``2d``)."""
    text = value.strip()
    if _DURATION.match(text):
        try:
            if text[-1].lower() == "d":
                return now + timedelta(days=float(text[:-1]))
            return now + timedelta(seconds=common.parse_duration(text))
        except OverflowError:  # a duration past year 9999: no SAS can live that long anyway
            raise click.BadParameter(f"{value!r} is further away than any SAS may reach (at most 7 days)",
                                     param_hint=option) from None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give an ISO 8601 time (2030-01-01T12:00Z) or a duration from "
                                 f"now (30m, 8h, 2d)", param_hint=option) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


@click.command("sas")
@click.argument("remote")
@click.option("--permissions", "-p", required=True,
              help="Letters from rcwdl: r read, c create, w write, d delete, l list (share/directory only).")
@click.option("--expiry", required=True, help="ISO 8601 time or duration from now (e.g. 8h); at most 7 days.")
@click.option("--start", default=None, help="ISO 8601 time or duration from now; default: valid at once.")
@click.option("--ip", default=None, help="Allowed caller address or range (168.1.5.60-168.1.5.70).")
@click.option("--https-only", is_flag=True, help="Refuse the SAS over plain HTTP (spr=https).")
@click.option("--directory", "is_directory", is_flag=True,
              help="REMOTE is a directory: a share-wide SAS with the directory's URL.")
@common_options
def sas_command(session: Session, remote: str, permissions: str, expiry: str, start: str | None,
                ip: str | None, https_only: bool, is_directory: bool) -> None:
    """Print a user delegation SAS URL for REMOTE (share, directory or file), signed without any key."""
    now = datetime.now(UTC).replace(microsecond=0)
    expires = parse_time(expiry, "--expiry", now)
    starts = parse_time(start, "--start", now) if start else None
    if expires <= now:
        raise click.BadParameter(f"{sas.format_time(expires)} is not in the future", param_hint="--expiry")
    if expires - (starts or now) > MAX_LIFETIME or expires - now > MAX_LIFETIME:
        raise click.BadParameter("a user delegation SAS lasts at most 7 days (the delegation key's limit)",
                                 param_hint="--expiry")
    if ip is not None:
        ip = parse_ip(ip)  # before asking Azure for a key: a bad range is the caller's to fix
    target: FileUrl = session.parse(remote)
    is_file = bool(target.path) and not is_directory
    if target.path and is_directory:
        click.echo("note: Azure Files has no directory SAS; this SAS covers every file in share "
                   f"{target.share!r}.", err=True)
    try:
        sas.normalize_permissions(permissions, share=not is_file)
    except sas.SasError as exc:
        raise click.BadParameter(str(exc).removeprefix(f"permissions {permissions!r}: "),
                                 param_hint="--permissions") from None
    credential = common.make_credential(session.client_id, session.object_id, session.resource_id,
                                        session.emulator)
    client = common.build_client(target, credential, session.emulator)  # never the account key
    try:
        # The key covers the SAS's whole life; Azure wants its start no later than now.
        key = sas.get_user_delegation_key(client, min(starts or now, now) - timedelta(minutes=1), expires)
        try:
            token = sas.user_delegation_sas(key, target, permissions=permissions, expiry=expires,
                                            start=starts, ip=ip, https_only=https_only, is_file=is_file)
        except sas.SasError as exc:
            hint = "--ip" if str(exc).startswith("IP range") else "--expiry"
            raise click.BadParameter(str(exc), param_hint=hint) from None
    finally:
        client.close()
    url = f"{target.url if target.path else target.share_url}?{token}"
    if session.as_json:
        click.echo(json.dumps({"url": url, "resource": "file" if is_file else "share",
                               "permissions": sas.normalize_permissions(permissions, share=not is_file),
                               "start": sas.format_time(starts) if starts else None,
                               "expiry": sas.format_time(expires), "delegator_object_id": key.signed_oid}))
    else:
        click.echo(url)
    if not session.quiet and sys.stderr.isatty():
        click.echo(f"valid until {sas.format_time(expires)} while identity {key.signed_oid} keeps its role",
                   err=True)
