"""``keyless token``: who am I, for which audience, until when. The token itself only with ``--raw``.

The claims are decoded without verifying the signature (for display; the storage service verifies).
Exit codes: 0 a token was obtained; 2 usage error; 3 no token (the message says why and what to do).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import click

from keyless.cli.hints import identity_hint
from keyless.emulator_info import ENV_EMULATOR, EmulatorInfo, EmulatorInfoError, load_emulator_info

EXIT_TOKEN = 3
SOURCE_CHOICES = ("imds", "appservice", "arc", "workload")
# Variables that make detection pick a source; cleared when --emulator points us at the emulator, so that
# a stray IDENTITY_ENDPOINT in the shell cannot send the request elsewhere.
_DETECTION_VARS = ("KEYLESS_ACCESS_TOKEN", "KEYLESS_ACCESS_TOKEN_FILE", "IDENTITY_ENDPOINT",
                   "IDENTITY_HEADER", "IMDS_ENDPOINT", "MSI_ENDPOINT", "AZURE_FEDERATED_TOKEN_FILE",
                   "AZURE_POD_IDENTITY_AUTHORITY_HOST")


def _left(seconds: float) -> str:
    if seconds <= 0:
        return "expired"
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


def token_report(*, resource: str | None, client_id: str | None, object_id: str | None,
                 resource_id: str | None, source: str | None, emulator: EmulatorInfo | None,
                 env: dict[str, str] | None = None, shared_cache: bool = True) -> tuple[dict[str, Any], str]:
    """Get a token and describe it: (report without the token, the token)."""
    from keyless.identity import ManagedIdentityCredential, display_claims, resolve_audience

    env = dict(os.environ if env is None else env)
    ca_certs = None
    if emulator is not None:
        for var in _DETECTION_VARS:
            env.pop(var, None)
        chosen = source or "imds"
        env.update(emulator.identity_env(chosen, client_id))
        source = chosen
        ca_certs = emulator.ca_cert
    cred = ManagedIdentityCredential(client_id=client_id, object_id=object_id, resource_id=resource_id,
                                     source=source, env=env, shared_cache=shared_cache, ca_certs=ca_certs)
    with cred:
        token = cred.token(resolve_audience(resource))
    now = time.time()
    claims = display_claims(token.token)
    report: dict[str, Any] = {
        "source": cred.source_name,
        "source_reason": cred.detection.reason,
        "identity": cred.identity,
        "audience": token.resource,
        "aud": claims.get("aud"),
        "oid": claims.get("oid"),
        "appid": claims.get("appid"),
        "xms_mirid": claims.get("xms_mirid"),
        "tid": claims.get("tid"),
        "expires_on": int(token.expires_on),
        "expires": datetime.fromtimestamp(token.expires_on, UTC).isoformat(timespec="seconds"),
        "expires_in": int(token.expires_on - now),
    }
    if emulator is not None:
        report["emulator"] = str(emulator.path)
    return report, token.token


@click.command("token")
@click.option("--resource", default=None, metavar="R",
              help="Audience: a resource, a '.default' scope, 'rest' (https://storage.azure.com/, the "
                   "default) or 'smb' (https://storage.azure.com, for the SMB ticket exchange).")
@click.option("--client-id", default=None, help="User-assigned identity by client (application) id.")
@click.option("--object-id", default=None, help="User-assigned identity by object (principal) id.")
@click.option("--resource-id", default=None, help="User-assigned identity by ARM resource id.")
@click.option("--source", type=click.Choice(SOURCE_CHOICES), default=None,
              help="Token source; detected from the environment when omitted.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--raw", is_flag=True,
              help="Print the token itself (alone, or as access_token with --json). Treat it as a password.")
@click.option("--emulator", "emulator_path", envvar=ENV_EMULATOR, default=None, metavar="PATH",
              help=f"emulator.json (or its directory) of a keyless emulator [env {ENV_EMULATOR}].")
def token_command(resource: str | None, client_id: str | None, object_id: str | None,
                  resource_id: str | None, source: str | None, as_json: bool, raw: bool,
                  emulator_path: str | None) -> None:
    """Show which identity keyless gets a token for, for which audience, and until when.

    \b
    Examples:
      keyless token                               # system-assigned identity, REST audience
      keyless token --client-id ID --resource smb
      keyless token --emulator ./emu --json
    """
    from keyless.identity import IdentityError

    if sum(bool(x) for x in (client_id, object_id, resource_id)) > 1:
        raise click.UsageError("give at most one of --client-id, --object-id, --resource-id")
    try:
        emulator = load_emulator_info(emulator_path) if emulator_path else None
    except EmulatorInfoError as exc:
        raise click.UsageError(f"{exc}\n{identity_hint(exc)}") from None
    try:
        report, token = token_report(resource=resource, client_id=client_id, object_id=object_id,
                                     resource_id=resource_id, source=source, emulator=emulator)
    except (IdentityError, EmulatorInfoError) as exc:
        click.echo(f"keyless token: {exc}", err=True)
        hint = identity_hint(exc)
        if hint:
            click.echo(f"keyless token: {hint}", err=True)
        sys.exit(EXIT_TOKEN)
    if as_json:
        if raw:
            report["access_token"] = token
        click.echo(json.dumps(report, indent=2))
        return
    if raw:
        click.echo(token)
        return
    rows = [
        ("source", f"{report['source']} ({report['source_reason']})"),
        ("identity", report["identity"]),
        ("audience", report["audience"]),
        ("oid", report["oid"]),
        ("appid", report["appid"]),
        ("xms_mirid", report["xms_mirid"]),
        ("tid", report["tid"]),
        ("expires", f"{report['expires']} ({_left(report['expires_in'])} left)"),
    ]
    if "emulator" in report:
        rows.append(("emulator", report["emulator"]))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key.ljust(width)}  {value if value is not None else '-'}")
