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
from keyless.cli.extras import require_smb_extra
from keyless.emulator_info import ENV_EMULATOR
from keyless.smb.errors import SmbError

EMULATOR_ENV = ENV_EMULATOR
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
    from keyless.smb.registration import register

    register(state_file, uri, endpoint, spec, cache_name, config_path, emulator_path, sys.stderr)


def _config(config_path: str | None) -> Any:
    from keyless.smb import oplog
    from keyless.smb.config import load_config, report_warnings

    cfg = load_config(Path(config_path) if config_path else None)
    report_warnings(cfg, sys.stderr)
    oplog.configure(cfg, sys.stderr)
    return cfg


@click.group("smb", context_settings={"help_option_names": ["-h", "--help"]})
def smb_group() -> None:
    """Kerberos tickets for SMB mounts with a managed identity (azfilesauthmanager, explained)."""
    require_smb_extra()


@smb_group.command("set")
@click.argument("uri")
@click.argument("token", required=False)  # "-": read it from stdin
@click.option("--system", is_flag=True, help="Use the system-assigned managed identity.")
@click.option("--imds-client-id", default=None, metavar="ID", help="User-assigned identity, from IMDS.")
@click.option("--client-id", default=None, metavar="ID",
              help="User-assigned identity (any detected source); with --workload-identity: the app's id.")
@click.option("--workload-identity", is_flag=True, help="AKS workload identity (federated token file).")
@click.option("--tenant-id", default=None, help="Workload identity: tenant id.")
@click.option("--token-file", default=None, type=click.Path(dir_okay=False),
              help="Workload identity: the federated token file.")
@click.option("--authority-host", default=None, help="Workload identity: authority host.")
@click.option("--resource", default=None,
              help="Workload identity: the storage resource (sovereign clouds), without /.default.")
@click.option("--force", is_flag=True, help="Re-initialise a cache that belongs to another client principal.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_emulator_option
@_ccache_option
@_config_option
@_state_option
@_no_register_option
def set_command(uri: str, token: str | None, system: bool, imds_client_id: str | None, client_id: str | None,
                workload_identity: bool, tenant_id: str | None, token_file: str | None,
                authority_host: str | None, resource: str | None, force: bool, as_json: bool,
                emulator_path: str | None,
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
    if token == "-":  # noqa: S105 - "-" is the stdin marker, not a password
        # The token from stdin: an argument is readable by every local user in /proc/<pid>/cmdline.
        token = sys.stdin.read().strip()
    if token is not None:
        spec = IdentitySpec("token", token=token)
    elif imds_client_id:
        spec = IdentitySpec("imds", client_id=imds_client_id)
    elif workload_identity:
        spec = IdentitySpec("workload", client_id=client_id, tenant_id=tenant_id, token_file=token_file,
                            authority_host=authority_host, resource=resource)
    elif client_id:
        spec = IdentitySpec("client-id", client_id=client_id)
    else:
        spec = IdentitySpec("system")
    emu = _emulator(emulator_path)
    try:
        cfg = _config(config_path)
        endpoint = _endpoint(uri, emu)
        if emu is not None and spec.kind == "workload":
            spec = spec.with_emulator(emu)
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
    from keyless.smb.manager import read_credentials

    try:
        tickets = read_credentials(_config(config_path).cache_name(ccache))
    except SmbError as exc:
        _fail(exc)
        return
    _print_list(tickets, as_json)


def _print_list(tickets: list[Any] | None, as_json: bool) -> None:
    """Byte for byte what azfilesauthmanager 1.0.11 prints (keyless.smb.compat)."""
    from keyless.smb import compat

    text = compat.format_list_json(tickets) if as_json else compat.format_list_text(tickets or [])
    click.echo(text, nl=False)


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
@click.option("--username", default=None, metavar="root|CLIENT_ID",
              help="username= for azfilesrefresh: root (system-assigned identity) or a client id "
                   "[--persist: root].")
@click.option("--persist", is_flag=True,
              help="Write systemd .mount + .automount units (after azfilesrefresh) instead of mounting.")
@click.option("--remove", is_flag=True, help="With --persist: remove the units for MOUNTPOINT.")
@click.option("--unit-dir", default="/etc/systemd/system", show_default=True,
              type=click.Path(file_okay=False), help="With --persist: where the units go.")
@_emulator_option
@_config_option
def mount_command(unc: str, mountpoint: str, dry_run: bool, uid: int | None, options: tuple[str, ...],
                  username: str | None, persist: bool, remove: bool, unit_dir: str,
                  emulator_path: str | None, config_path: str | None) -> None:
    """Mount //<account>.file.core.windows.net/<share> with the recommended options (sec=krb5)."""
    from keyless.smb.mount import plan_mount

    if remove and not persist:
        raise click.UsageError("--remove goes with --persist")
    if persist and remove:
        _remove_units(mountpoint, unit_dir)
        return
    try:
        cfg = _config(config_path)
        plan = plan_mount(unc, mountpoint, uid=uid if uid is not None else cfg.cache_uid(),
                          extra_options=options, username=username or ("root" if persist else None))
    except SmbError as exc:
        _fail(exc)
        return
    for note in plan.notes:
        click.echo(f"note: {note}", err=True)
    if persist:
        _write_units(plan, unit_dir)
        return
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


def _write_units(plan: Any, unit_dir: str) -> None:
    from keyless.smb.units import render_units, write_units

    try:
        units = render_units(f"//{plan.host}/{plan.share}", plan.mountpoint, plan.argv[-1])
        paths = write_units(units, Path(unit_dir))
    except SmbError as exc:
        _fail(exc)
        return
    for path in paths:
        click.echo(f"wrote {path}")
    click.echo("now: systemctl daemon-reload && "
               f"systemctl enable --now azfilesrefresh {units.name}.automount")


def _remove_units(mountpoint: str, unit_dir: str) -> None:
    from keyless.smb.units import remove_units

    try:
        removed = remove_units(mountpoint, Path(unit_dir))
    except SmbError as exc:
        _fail(exc)
        return
    if not removed:
        click.echo(f"no keyless units for {mountpoint} in {unit_dir}")
    for path in removed:
        click.echo(f"removed {path}")
    if removed:
        click.echo("now: systemctl daemon-reload (and umount the share if it is mounted)")


@smb_group.command("install-lib")
@click.option("--from", "build_dir", default=None, type=click.Path(file_okay=False),
              help="Where native/build.sh put the library [default: native/build of this keyless].")
@click.option("--libdir", default="/usr/local/lib", show_default=True, type=click.Path(file_okay=False),
              help="One of the directories Microsoft's azfilesauthmanager searches: /usr/lib, /usr/lib64, "
                   "/usr/local/lib.")
@click.option("--includedir", default="/usr/local/include", show_default=True,
              type=click.Path(file_okay=False))
def install_lib_command(build_dir: str | None, libdir: str, includedir: str) -> None:
    """Install the drop-in libazfilesauth.so (+ SONAME link, header) where azfilesauth's users look."""
    from keyless.smb.native_install import MANAGER_SEARCH_PATHS, install_library, native_dir

    try:
        written = install_library(Path(build_dir) if build_dir else native_dir() / "build", Path(libdir),
                                  Path(includedir))
    except SmbError as exc:
        _fail(exc)
        return
    for path in written:
        click.echo(f"installed {path}")
    if libdir.rstrip("/") not in MANAGER_SEARCH_PATHS:
        click.echo(f"note: Microsoft's azfilesauthmanager only looks in {', '.join(MANAGER_SEARCH_PATHS)}",
                   err=True)


@smb_group.command("version")
def version_command() -> None:
    """Print the version (and the azfilesauth release whose interface it reproduces)."""
    from keyless.smb.compat import AZFILESAUTH_VERSION

    click.echo(f"keyless-smb {__version__} (azfilesauth {AZFILESAUTH_VERSION} compatible)")


# --- azfilesauthmanager drop-in ----------------------------------------------------------------------


def azfilesauthmanager_main(argv: list[str] | None = None) -> None:
    """Microsoft's ``azfilesauthmanager`` command line (keyless.smb.azfilesauthmanager)."""
    from keyless.smb.azfilesauthmanager import main as compat_main

    sys.exit(compat_main(argv))


def main() -> None:  # pragma: no cover - convenience for python -m
    smb_group(prog_name="keyless smb", auto_envvar_prefix=None)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
