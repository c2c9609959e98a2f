"""``keyless migrate``: the rollout away from account keys, measured.

``scan`` finds storage credentials left on a machine (exit 1 when it finds any, so it can gate CI and
images); ``report`` reads ``StorageFileLogs`` exports and says whether Shared Key can be switched off
(exit 0 ready, 1 not ready or unknown); ``finish`` checks that verdict, then disallows Shared Key on the
account through Azure Resource Manager with the managed identity and verifies it. Usage errors exit 2.
None ever prints a secret.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from keyless.cli._files_common import printable
from keyless.emulator_info import ENV_EMULATOR
from keyless.protocol import ENV_ACCOUNT_KEY

EXIT_FOUND = 1
EXIT_NOT_READY = 1
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str, option: str) -> datetime:
    """``2026-12-01T10:00:00Z``, ``2026-12-01``, or a duration back from now: ``30m``, ``24h``, ``7d``."""
    text = value.strip()
    relative = _RELATIVE.match(text)
    if relative:
        return datetime.now(UTC) - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a time: give ISO 8601 (2026-12-01T10:00:00Z) or a duration (30m, 24h, 7d)",
            param_hint=option) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@click.group("migrate")
def migrate_group() -> None:
    """Move from storage account keys to managed identities: find keys, see who still uses them."""


@migrate_group.command("scan")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON document: findings, counts, skipped files.")
@click.option("--max-size", default=4 << 20, show_default=True, type=click.IntRange(min=1),
              help="Files larger than this many bytes are counted as huge and skipped.")
def scan_command(paths: tuple[Path, ...], as_json: bool, max_size: int) -> None:
    """Find storage account keys, connection strings, SAS tokens and CIFS passwords under PATHS.

    Without PATHS: /etc, /root, /home, /opt, /srv, /usr/local/etc. Each finding shows file, line, kind,
    account and what replaces it, with a fingerprint (kind:account:hash prefix), never the secret.
    Exit status 1 when anything is found.
    """
    from keyless.migrate.scan import render_text, scan

    result = scan(list(paths) or None, max_bytes=max_size)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        # File names and log fields are anyone's text: escape what a terminal would act on.
        click.echo(printable(render_text(result), keep="\n"), nl=False)
    raise SystemExit(EXIT_FOUND if result.findings else 0)


@migrate_group.command("report")
@click.argument("logs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--since", help="Only requests at or after this time (ISO 8601, or 30m / 24h / 7d ago).")
@click.option("--until", help="Only requests before this time (ISO 8601, or a duration ago).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document: counts, callers, verdict.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes reading in parallel (default: one per CPU; small inputs use one).")
def report_command(logs: tuple[Path, ...], since: str | None, until: str | None, as_json: bool,
                   workers: int | None) -> None:
    """Who still uses a key, from StorageFileLogs exports (LOGS: files or directories).

    Reads Log Analytics CSV and JSON exports and diagnostic-settings JSON lines (PT1H.json, also .gz).
    Exit status 0 when ready to disallow Shared Key (no key-signed request in the window), 1 otherwise.
    """
    from keyless.migrate.parallel import build_report
    from keyless.migrate.report import render_text

    report, stats = build_report(list(logs), since=parse_when(since, "--since") if since else None,
                                 until=parse_when(until, "--until") if until else None, workers=workers)
    data = report.to_dict(stats)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(printable(render_text(data), keep="\n"), nl=False)
    raise SystemExit(0 if data["ready"] else EXIT_NOT_READY)


@migrate_group.command("finish")
@click.option("--account", required=True, help="Storage account name.")
@click.option("--subscription", default=None, help="Subscription id of the account.")
@click.option("--resource-group", default=None, help="Resource group of the account.")
@click.option("--resource-id", default=None, help="The account's full ARM id (instead of the two above).")
@click.option("--log", "logs", multiple=True, type=click.Path(path_type=Path),
              help="StorageFileLogs export(s) for the verdict (files or directories); repeatable.")
@click.option("--since", help="Only requests at or after this time (ISO 8601, or 30m / 24h / 7d ago).")
@click.option("--force", is_flag=True, help="Switch Shared Key off even when the verdict is not ready.")
@click.option("--client-id", default=None, help="User-assigned identity: client id.")
@click.option("--object-id", default=None, help="User-assigned identity: object (principal) id.")
@click.option("--emulator", "emulator_path", envvar=ENV_EMULATOR, default=None,
              help="emulator.json (or its directory) [env KEYLESS_EMULATOR].")
@click.option("--json", "as_json", is_flag=True, help="One JSON document: verdict, patch, verification.")
def finish_command(account: str, subscription: str | None, resource_group: str | None,
                   resource_id: str | None, logs: tuple[Path, ...], since: str | None, force: bool,
                   client_id: str | None, object_id: str | None, emulator_path: str | None,
                   as_json: bool) -> None:
    """Disallow Shared Key on ACCOUNT once no caller uses a key (the report's verdict over --log).

    Sets allowSharedKeyAccess=false through Azure Resource Manager with the managed identity (it needs
    Storage Account Contributor, Contributor or Owner on the account), then verifies: the account shows
    false and, when a key is at hand (AZURE_STORAGE_KEY, or the emulator's), a Shared Key request is
    refused. Exit status 0 when done, 1 when refused by the verdict, 2 on bad input, 3 when a step failed.
    """
    import os

    from keyless.cli import _files_common as common
    from keyless.migrate import finish as fin

    emu = common.load_emulator(emulator_path)
    try:
        rid = fin.account_resource_id(account, subscription, resource_group, resource_id)
    except fin.FinishError as exc:
        raise click.BadParameter(str(exc)) from None
    if emu is not None and not emu.arm_url:
        raise click.UsageError(f"{emu.path}: this emulator has no Resource Manager endpoint (arm_url); "
                               "restart it with a current keyless")
    credential = common.make_credential(client_id, object_id, None, emu)
    arm = fin.ArmClient(credential, emu.arm_url if emu else fin.ARM_ENDPOINT, emu.ca_cert if emu else None)
    key = os.environ.get(ENV_ACCOUNT_KEY) or None
    account_url = f"https://{account}.file.core.windows.net"
    if emu is not None:
        known = next((a for a in emu.accounts if a.name == account), None)
        if known is not None:
            account_url, key = known.url, key or known.key
    probe = (account_url, key, emu.ca_cert if emu else None) if key else None
    try:
        outcome = fin.finish(account, rid, arm, logs=list(logs), force=force, probe=probe,
                             since=parse_when(since, "--since") if since else None)
    except fin.FinishError as exc:
        if as_json:
            click.echo(json.dumps({"account": account, "failed_step": exc.step, "error": str(exc)}, indent=2))
        else:
            click.secho(f"Error ({exc.step}): {exc}", fg="red", err=True)
        raise SystemExit(EXIT_NOT_READY if exc.step == "verdict" else 3) from None
    if as_json:
        click.echo(json.dumps(outcome.to_dict(), indent=2))
    else:
        for step in outcome.steps:
            click.echo(step)
        if outcome.forced:
            click.echo("note: forced past a not-ready verdict; the callers above now get 403")
        click.echo(f"done: Shared Key is disallowed on {account}")
