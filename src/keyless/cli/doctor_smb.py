"""``keyless doctor --smb``: the SMB preconditions, rendered like the REST checks.

Its own module because it imports the SMB side, which is Linux-only: ``doctor_cmd`` imports it only
after ``require_smb_extra`` has said the SMB side can load.
"""

from __future__ import annotations

import json
import sys

import click

from keyless.cli.doctor_render import NAME_WIDTH, STATUS_WIDTH, render_row
from keyless.doctor.runner import exit_code
from keyless.doctor.smb import SmbTarget, run_smb_checks
from keyless.smb.errors import SmbError
from keyless.smb.target import read_emulator


def doctor_smb(uri: str, config: str | None, client_id: str | None, emulator_path: str | None,
                as_json: bool) -> None:
    """``--smb``: the checks of keyless.doctor.smb, rendered like the others."""

    try:
        emu = read_emulator(emulator_path) if emulator_path else None
    except SmbError as exc:
        raise click.UsageError(exc.message) from None
    target = SmbTarget(uri, client_id=client_id, config_path=config, emulator=emu)
    if as_json:
        results = run_smb_checks(target)
    else:
        click.echo(f"keyless doctor --smb {uri}\n")
        click.echo(f"{'CHECK':<{NAME_WIDTH}} {'STATUS':<{STATUS_WIDTH}} DETAIL")
        results = run_smb_checks(target, on_result=lambda r: click.echo(render_row(r)))
    code = exit_code(results)
    if as_json:
        click.echo(json.dumps({"checks": [r.to_json() for r in results], "exit_code": code}, indent=2))
    sys.exit(code)
