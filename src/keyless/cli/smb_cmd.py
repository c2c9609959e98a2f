"""``keyless smb``: the SMB credential manager (what ``azfilesauthmanager`` does, with causes for errors).

``set <uri> [<token> | --system | --imds-client-id ID | --client-id ID | --workload-identity ...]``,
``list [--json]``, ``clear <uri>``, ``mount //<account>.file.core.windows.net/<share> <dir> [--dry-run]``,
``version``. Every command takes ``--emulator PATH`` (env ``KEYLESS_EMULATOR``): the exchange then goes to
the emulator's account URL, trusting its CA, and tokens come from its IMDS / authority. ``--ccache`` and
``--config`` make every path explicit so tests run unprivileged.

Exit codes: 0 success; otherwise the cause's code (``keyless.smb.errors``): 2 usage / endpoint,
3 role or SMB OAuth, 4 identity, 5 token refused, 6 clock skew, 7 unreachable, 8 bad reply, 9 cache.
``azfilesauthmanager_main`` is the drop-in: same arguments and output shapes, exit status 1 on failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from keyless import __version__
from keyless.smb.errors import SmbError

EMULATOR_ENV = "KEYLESS_EMULATOR"
_emulator_option = click.option(
    "--emulator", "emulator_path", envvar=EMULATOR_ENV, default=None, metavar="PATH",
    help="emulator.json (or its directory) of a keyless emulator [env KEYLESS_EMULATOR].")
_ccache_option = click.option("--ccache", default=None, metavar="NAME",
                              help="Credential cache, e.g. FILE:/tmp/krb5cc_1000, KEYRING:persistent:1000.")
_config_option = click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
                              help="azfilesauth-style config file [default: /etc/azfilesauth/config.yaml].")
_state_option = click.option("--state", "state_file", default=None, type=click.Path(dir_okay=False),
                             help="keyless agent's state file [env KEYLESS_AGENT_STATE; "
                                  "default /var/lib/keyless/agent.json].")
_no_register_option = click.option("--no-register", is_flag=True,
                                   help="Leave the agent's state file alone (no automatic refresh).")


def _fail(exc: SmbError) -> None:
    click.echo(f"error ({exc.cause}): {exc.message}", err=True)
    if exc.remedy:
        click.echo(f"  fix: {exc.remedy}", err=True)
    sys.exit(exc.exit_code)


def _emulator(path: str | None) -> dict[str, Any] | None:
    from keyless.smb.target import read_emulator

    if not path:
        return None
    try:
        return read_emulator(path)
    except SmbError as exc:
        raise click.UsageError(f"{exc.message} ({exc.remedy})" if exc.remedy else exc.message) from None


def _endpoint(uri: str, emu: dict[str, Any] | None) -> Any:
    from keyless.smb.target import endpoint_for

    return endpoint_for(uri, emu)


def _register(state_file: str | None, uri: str, endpoint: Any, spec: Any, cache_name: str,
              config_path: str | None, emulator_path: str | None) -> None:
    """Record how this ticket was made, so the agent can make the next one; a failure only warns."""
    import time

    from keyless.smb import state

    env = os.environ
    if spec.kind == "token":
        source = state.Source(state.MANUAL)  # the token itself is never recorded
    elif spec.kind == "workload":
        # Resolve what the identity library would take from the environment: the agent has none of it.
        token_file = spec.token_file or env.get("AZURE_FEDERATED_TOKEN_FILE")
        source = state.Source("workload", client_id=spec.client_id or env.get("AZURE_CLIENT_ID"),
                              tenant_id=spec.tenant_id or env.get("AZURE_TENANT_ID"),
                              token_file=str(Path(token_file).resolve()) if token_file else None,
                              authority_host=spec.authority_host or env.get("AZURE_AUTHORITY_HOST"))
    else:
        source = state.Source(spec.kind, client_id=spec.client_id)
    reg = state.Registration(
        uri=uri, account=endpoint.account, server=str(endpoint.server), ccache=cache_name, source=source,
        config=str(Path(config_path).resolve()) if config_path else None,
        emulator=str(Path(emulator_path).resolve()) if emulator_path else None,
        registered_at=time.time())
    path = state.state_path(state_file)
    try:
        state.register(path, reg)
    except SmbError as exc:
        click.echo(f"warning ({exc.cause}): not registered for refresh by keyless agent: {exc.message}"
                   " (pass --no-register to skip, or --state FILE)", err=True)
        return
    if source.kind == state.MANUAL:
        click.echo("note: a ticket made from a token given directly cannot be refreshed by keyless agent; "
                   "use an identity option (--system, --imds-client-id, ...) for automatic refresh.",
                   err=True)


def _config(config_path: str | None) -> Any:
    from keyless.smb.config import load_config

    return load_config(Path(config_path) if config_path else None)


@click.group("smb", context_settings={"help_option_names": ["-h", "--help"]})
def smb_group() -> None:
    """Kerberos tickets for SMB mounts with a managed identity (azfilesauthmanager, explained)."""
    require_smb_extra()


def require_smb_extra() -> None:
    """The SMB side is Linux-only and its Kerberos bindings are an extra: say so instead of a traceback."""
    import importlib

    missing = []
    for module in ("fcntl", "krb5"):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if not missing:
        return
    if "fcntl" in missing:
        why = ("the SMB commands run on Linux only (Windows has Microsoft's own SMB client and Kerberos; "
               "the REST commands work there)")
    else:
        why = "the SMB commands need the 'smb' extra (MIT Kerberos bindings): pip install 'keyless[smb]'"
    click.echo(f"error (missing_extra): {why}", err=True)
    sys.exit(2)


@smb_group.command("set")
@click.argument("uri")
@click.argument("token", required=False)
@click.option("--system", is_flag=True, help="Use the system-assigned managed identity.")
@click.option("--imds-client-id", default=None, metavar="ID", help="User-assigned identity, from IMDS.")
@click.option("--client-id", default=None, metavar="ID",
              help="User-assigned identity (any detected source); with --workload-identity: the app's id.")
@click.option("--workload-identity", is_flag=True, help="AKS workload identity (federated token file).")
@click.option("--tenant-id", default=None, help="Workload identity: tenant id.")
@click.option("--token-file", default=None, type=click.Path(dir_okay=False),
              help="Workload identity: the federated token file.")
@click.option("--authority-host", default=None, help="Workload identity: authority host.")
@click.option("--force", is_flag=True, help="Re-initialise a cache that belongs to another client principal.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_emulator_option
@_ccache_option
@_config_option
@_state_option
@_no_register_option
def set_command(uri: str, token: str | None, system: bool, imds_client_id: str | None, client_id: str | None,
                workload_identity: bool, tenant_id: str | None, token_file: str | None,
                authority_host: str | None, force: bool, as_json: bool, emulator_path: str | None,
                ccache: str | None, config_path: str | None, state_file: str | None,
                no_register: bool) -> None:
    """Get a Kerberos ticket for URI's account and store it in the credential cache."""
    from keyless.smb.manager import IdentitySpec, acquire_token, set_credential

    chosen = [name for name, on in (("<token>", token is not None), ("--system", system),
                                    ("--imds-client-id", imds_client_id is not None),
                                    ("--workload-identity", workload_identity),
                                    ("--client-id", client_id is not None and not workload_identity)) if on]
    if len(chosen) > 1:
        raise click.UsageError(f"choose one identity source, not {' and '.join(chosen)}")
    if token is not None:
        spec = IdentitySpec("token", token=token)
    elif imds_client_id:
        spec = IdentitySpec("imds", client_id=imds_client_id)
    elif workload_identity:
        spec = IdentitySpec("workload", client_id=client_id, tenant_id=tenant_id, token_file=token_file,
                            authority_host=authority_host)
    elif client_id:
        spec = IdentitySpec("client-id", client_id=client_id)
    else:
        spec = IdentitySpec("system")
    emu = _emulator(emulator_path)
    try:
        cfg = _config(config_path)
        endpoint = _endpoint(uri, emu)
        if emu is not None and spec.kind == "workload":
            spec = IdentitySpec("workload", client_id=spec.client_id,
                                tenant_id=spec.tenant_id or emu.get("tenant_id"), token_file=spec.token_file,
                                authority_host=spec.authority_host or emu.get("authority_host"))
        ca = str(emu["ca_cert"]) if emu else None
        tok = acquire_token(spec, imds_host=str(emu["imds_url"]) if emu else None, ca_certs=ca)
        cache_name = cfg.cache_name(ccache)
        result = set_credential(endpoint, tok, cache_name=cache_name, force=force,
                                owner_uid=cfg.user_uid, ca_certs=ca, connect_timeout=cfg.connect_timeout,
                                total_timeout=cfg.total_timeout)
    except SmbError as exc:
        _fail(exc)
        return
    cred = result.reply.credential
    if as_json:
        click.echo(json.dumps({"server": str(cred.server), "client": str(cred.client), "cache": cache_name,
                               "ticket_end_time": cred.endtime, "expires_in": result.expires_in}))
    else:
        click.echo(f"stored ticket for {cred.server} in {cache_name} (expires in {result.expires_in} s)")
    if not no_register:
        _register(state_file, uri, endpoint, spec, cache_name, config_path, emulator_path)


@smb_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON array, fields as azfilesauthmanager list --json.")
@_emulator_option
@_ccache_option
@_config_option
def list_command(as_json: bool, emulator_path: str | None, ccache: str | None,
                 config_path: str | None) -> None:
    """List the cifs/ tickets in the credential cache."""
    from keyless.smb.manager import list_credentials

    try:
        tickets = list_credentials(_config(config_path).cache_name(ccache))
    except SmbError as exc:
        _fail(exc)
        return
    _print_list(tickets, as_json)


def _print_list(tickets: list[Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([t.as_json() for t in tickets], indent=2))
        return
    for i, t in enumerate(tickets, 1):
        click.echo(f"Credential {i}:")
        click.echo(f"  Server: {t.server}")
        click.echo(f"  Client: {t.client}")
        click.echo(f"  Realm: {t.realm}")
        click.echo(f"  Ticket flags: {t.ticket_flags}")
        click.echo(f"  Ticket start time: {t.ticket_start_time}")
        click.echo(f"  Ticket end time: {t.ticket_end_time}")
        click.echo(f"  Ticket renew till: {t.ticket_renew_till}")


@smb_group.command("clear")
@click.argument("uri")
@_emulator_option
@_ccache_option
@_config_option
@_state_option
@_no_register_option
def clear_command(uri: str, emulator_path: str | None, ccache: str | None, config_path: str | None,
                  state_file: str | None, no_register: bool) -> None:
    """Remove URI's ticket from the credential cache (and from the agent's list)."""
    from keyless.smb import state
    from keyless.smb.manager import clear_credential

    try:
        endpoint = _endpoint(uri, _emulator(emulator_path))
        cache_name = _config(config_path).cache_name(ccache)
        removed = clear_credential(endpoint, cache_name=cache_name)
    except SmbError as exc:
        _fail(exc)
        return
    click.echo(f"removed the ticket for {endpoint.server} from {cache_name}" if removed
               else f"no ticket for {endpoint.server} in {cache_name}")
    if not no_register:
        try:
            state.unregister(state.state_path(state_file), str(endpoint.server), cache_name)
        except SmbError as exc:
            click.echo(f"warning ({exc.cause}): the agent may still refresh it: {exc.message}", err=True)


@smb_group.command("mount")
@click.argument("unc")
@click.argument("mountpoint")
@click.option("--dry-run", is_flag=True, help="Print the mount command and the checks; mount nothing.")
@click.option("--uid", type=int, default=None, help="cruid: the user whose cache holds the ticket.")
@click.option("-o", "options", multiple=True, help="Extra mount options (repeatable).")
@_emulator_option
@_config_option
def mount_command(unc: str, mountpoint: str, dry_run: bool, uid: int | None, options: tuple[str, ...],
                  emulator_path: str | None, config_path: str | None) -> None:
    """Mount //<account>.file.core.windows.net/<share> with the recommended options (sec=krb5)."""
    from keyless.smb.mount import plan_mount

    try:
        cfg = _config(config_path)
        plan = plan_mount(unc, mountpoint, uid=uid if uid is not None else cfg.cache_uid(),
                          extra_options=options)
    except SmbError as exc:
        _fail(exc)
        return
    for note in plan.notes:
        click.echo(f"note: {note}", err=True)
    if dry_run or emulator_path:
        click.echo(plan.command)
        if emulator_path and not dry_run:
            click.echo("note: the emulator has no SMB server; printed the command instead of mounting.",
                       err=True)
        return
    proc = subprocess.run(list(plan.argv), check=False)
    if proc.returncode != 0:
        hint = " (126: no Kerberos ticket for that host: run keyless smb set first, use the canonical name)" \
            if proc.returncode == 32 else ""
        click.echo(f"error: mount exited with {proc.returncode}{hint}", err=True)
        sys.exit(proc.returncode)


@smb_group.command("version")
def version_command() -> None:
    """Print the version."""
    click.echo(f"keyless-smb {__version__}")


# --- azfilesauthmanager drop-in ----------------------------------------------------------------------

_USAGE = """Usage:
    azfilesauthmanager list [--json]
    azfilesauthmanager set <file_endpoint_uri> <oauth_token>
    azfilesauthmanager set <file_endpoint_uri> --system
    azfilesauthmanager set <file_endpoint_uri> --imds-client-id <client_id>
    azfilesauthmanager set <file_endpoint_uri> --workload-identity --tenant-id <tenant_id> --client-id <client_id> --token-file <token_file>
    azfilesauthmanager clear <file_endpoint_uri>
    azfilesauthmanager --version"""  # noqa: E501 - printed verbatim


def azfilesauthmanager_main(argv: list[str] | None = None) -> None:
    """Same arguments, output shapes and exit statuses as azfilesauthmanager (0 ok, 1 failure)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        click.echo(_USAGE)
        sys.exit(1)
    if args[0] == "--version":
        click.echo(__version__)
        sys.exit(0)
    require_smb_extra()
    commands = {"list": list_command, "set": set_command, "clear": clear_command}
    command = commands.get(args[0])
    if command is None:
        click.echo(_USAGE)
        sys.exit(1)
    # KRB5_CC_NAME etc. come from /etc/azfilesauth/config.yaml as for the original; --emulator works too.
    try:
        command.main(args[1:], prog_name=f"azfilesauthmanager {args[0]}", standalone_mode=False)
    except click.UsageError as exc:
        click.echo(f"{exc.format_message()}\n{_USAGE}")
        sys.exit(1)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        sys.exit(0 if code == 0 else 1)
    sys.exit(0)


def main() -> None:  # pragma: no cover - convenience for python -m
    smb_group(prog_name="keyless smb", auto_envvar_prefix=None)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
