"""``keyless doctor``: everything between this machine and its file share, checked in order, each problem
with its fix.

Checks: ``imds`` (the token endpoint answers), ``identity`` (a token can be had), ``token`` (audience and
expiry), ``dns`` (private endpoint or not), ``tls`` (the certificate verifies), ``clock`` (skew against the
service's ``Date``), ``intent-header`` (one request without ``x-ms-file-request-intent`` gets the 400 that
proves the rule), ``read`` / ``write`` / ``delete`` (probes in a temporary directory that is removed), and
``rbac`` (which role to assign when a probe got 403).

Exit codes: 0 when no check failed (warnings allowed), 1 when at least one check failed, 2 on a usage
error (bad option, unreadable ``--emulator`` file).
"""

from __future__ import annotations

import json
import sys

import click

from keyless.cli import _files_common as common
from keyless.cli.doctor_render import NAME_WIDTH, STATUS_WIDTH, render_row
from keyless.cli.extras import require_smb_extra
from keyless.doctor import DoctorTarget, Status, run_checks
from keyless.doctor.runner import exit_code
from keyless.files.urls import CLOUD_SUFFIXES, PUBLIC_SUFFIX


@click.command("doctor")
@click.option("--account", envvar="KEYLESS_ACCOUNT", default=None, help="Storage account name [env].")
@click.option("--share", envvar="KEYLESS_SHARE", default=None, help="File share name [env].")
@click.option("--client-id", default=None, help="User-assigned identity: client id.")
@click.option("--object-id", default=None, help="User-assigned identity: object (principal) id.")
@click.option("--resource-id", default=None, help="User-assigned identity: ARM resource id.")
@click.option("--cloud", type=click.Choice(sorted(CLOUD_SUFFIXES)), default="public", show_default=True)
@click.option(
    "--emulator",
    "emulator_path",
    envvar=common.EMULATOR_ENV,
    default=None,
    help="emulator.json (or its directory) [env KEYLESS_EMULATOR]; account and share default to its first.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--smb", "smb_uri", default=None, metavar="URI",
              help="Check an SMB mount's preconditions for https://<account>.file.core.windows.net instead.")
@click.option("--smb-config", default=None, type=click.Path(dir_okay=False),
              help="With --smb: the azfilesauth config (KRB5_CC_NAME, USER_UID) "
                   "[/etc/azfilesauth/config.yaml].")
def doctor_command(
    account: str | None,
    share: str | None,
    client_id: str | None,
    object_id: str | None,
    resource_id: str | None,
    cloud: str,
    emulator_path: str | None,
    as_json: bool,
    smb_uri: str | None = None,
    smb_config: str | None = None,
) -> None:
    """Check identity, IMDS, token, DNS, TLS, clock, intent header and RBAC; print each problem's fix."""
    if smb_uri:
        require_smb_extra()  # the SMB checks import the Linux-only SMB side
        from keyless.cli.doctor_smb import doctor_smb

        doctor_smb(smb_uri, smb_config, client_id, emulator_path, as_json)
        return
    emu = common.load_emulator(emulator_path)
    if emu is not None and not account and emu.accounts:
        account = emu.accounts[0].name
        shares = emu.accounts[0].shares
        share = share or (shares[0] if shares else None)
    if bool(account) != bool(share):
        raise click.UsageError("--account and --share go together")
    target = DoctorTarget(
        account=account,
        share=share,
        client_id=client_id,
        object_id=object_id,
        resource_id=resource_id,
        suffix=CLOUD_SUFFIXES.get(cloud, PUBLIC_SUFFIX),
        emulator_files_url=emu.files_url if emu else None,
        emulator_imds_url=emu.imds_url if emu else None,
        ca_cert=emu.ca_cert if emu else None,
    )
    if as_json:
        results = run_checks(target)
    else:
        where = f"{account}/{share}" if account else "identity only (no --account/--share)"
        click.echo(f"keyless doctor: {where}" + (f" on emulator {emu.files_url}" if emu else "") + "\n")
        click.echo(f"{'CHECK':<{NAME_WIDTH}} {'STATUS':<{STATUS_WIDTH}} DETAIL")
        results = run_checks(target, on_result=lambda r: click.echo(render_row(r)))
    code = exit_code(results)
    counts = {str(s): sum(1 for r in results if r.status == s) for s in Status}
    if as_json:
        payload = {"checks": [r.to_json() for r in results], "summary": counts, "exit_code": code}
        click.echo(json.dumps(payload, indent=2))
    else:
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        verdict = click.style("FAILED", fg="red") if code else click.style("healthy", fg="green")
        click.echo(f"\n{summary}: {verdict}")
    sys.exit(code)
