"""``keyless migrate``: the rollout away from account keys, measured.

``scan`` finds storage credentials left on a machine (exit 1 when it finds any, so it can gate CI and
images); ``report`` reads ``StorageFileLogs`` exports and says whether Shared Key can be switched off
(exit 0 ready, 1 not ready or unknown). Usage errors exit 2. Neither ever prints a secret.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

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
        click.echo(render_text(result), nl=False)
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
        click.echo(render_text(data), nl=False)
    raise SystemExit(0 if data["ready"] else EXIT_NOT_READY)
