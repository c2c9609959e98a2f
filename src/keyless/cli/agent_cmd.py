"""``keyless agent [run] | status | install-unit``: the SMB ticket refresher and its view.

The state file (``--state``, env ``KEYLESS_AGENT_STATE``, default ``/var/lib/keyless/agent.json``) is what
``keyless smb set`` registers endpoints into. Logs go where the azfilesauth config says
(``LOG_DESTINATION: syslog | file`` with ``LOG_FILE_PATH``), or to ``--log-file``; never a token.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import shutil
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import click

from keyless.emulator_info import ENV_EMULATOR
from keyless.smb.errors import SmbError

UNIT_NAME = "keyless-agent.service"

_state_option = click.option("--state", "state_file", default=None, type=click.Path(dir_okay=False),
                             help="State file [env KEYLESS_AGENT_STATE; "
                                  "default /var/lib/keyless/agent.json].")
_config_option = click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
                              help="azfilesauth-style config (LOG_DESTINATION, LOG_FILE_PATH) "
                                   "[default: /etc/azfilesauth/config.yaml].")


def _fail(exc: SmbError) -> None:
    click.echo(f"error ({exc.cause}): {exc.message}", err=True)
    if exc.remedy:
        click.echo(f"  fix: {exc.remedy}", err=True)
    sys.exit(exc.exit_code)


def _log_handler(log_file: str | None, config_path: str | None) -> logging.Handler:
    from keyless.smb.config import load_config

    cfg = load_config(Path(config_path) if config_path else None)
    target = log_file or (cfg.log_file_path if cfg.log_destination == "file" else None)
    if target == "-":
        return logging.StreamHandler(sys.stderr)
    if target:
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # created private
        os.close(fd)
        handler: logging.Handler = logging.handlers.WatchedFileHandler(path)  # logrotate-friendly
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        return handler
    if os.environ.get("JOURNAL_STREAM") or not Path("/dev/log").exists():
        # Under systemd, stderr already is the journal; without a syslog socket it is all there is.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        return handler
    handler = logging.handlers.SysLogHandler(address="/dev/log",
                                             facility=logging.handlers.SysLogHandler.LOG_DAEMON)
    handler.setFormatter(logging.Formatter("keyless-agent[%(process)d]: %(message)s"))
    return handler


@click.group("agent", invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def agent_command(ctx: click.Context) -> None:
    """Keep the SMB tickets registered by `keyless smb set` fresh (a systemd service)."""
    from keyless.cli.extras import require_smb_extra

    require_smb_extra()
    if ctx.invoked_subcommand is None:
        ctx.invoke(run_command)


@agent_command.command("run")
@_state_option
@_config_option
@click.option("--log-file", default=None, metavar="PATH", help="Log to PATH ('-': stderr) instead of "
              "the config's LOG_DESTINATION.")
@click.option("--min-window", type=float, default=360.0, show_default=True,
              help="Refresh when fewer than max(this, 1/4 of the lifetime) seconds remain "
                   "(at most half the lifetime).")
@click.option("--poll", type=float, default=60.0, show_default=True,
              help="Longest sleep between checks (also the status heartbeat), seconds.")
@click.option("--backoff-base", type=float, default=5.0, show_default=True,
              help="First retry delay after a failure, seconds (doubles per failure, with jitter).")
@click.option("--backoff-max", type=float, default=300.0, show_default=True, help="Longest retry delay.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def run_command(state_file: str | None = None, config_path: str | None = None, log_file: str | None = None,
                min_window: float = 360.0, poll: float = 60.0, backoff_base: float = 5.0,
                backoff_max: float = 300.0, verbose: bool = False) -> None:
    """Run the refresher in the foreground until SIGTERM (SIGHUP reloads the state file)."""
    from keyless.smb.agent import Agent, Policy
    from keyless.smb.state import state_path

    try:
        handler = _log_handler(log_file, config_path)
    except SmbError as exc:
        _fail(exc)
        return
    root = logging.getLogger("keyless")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    policy = Policy(min_window=min_window, poll=poll, backoff_base=backoff_base, backoff_max=backoff_max)
    agent = Agent(state_path(state_file), policy=policy)
    sys.exit(agent.run())


def _when(ts: float | None, now: float) -> str:
    if ts is None:
        return "-"
    delta = ts - now
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    return f"{stamp} ({'in ' if delta >= 0 else ''}{abs(delta):.0f} s{' ago' if delta < 0 else ''})"


def _status_rows(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from keyless.smb.manager import list_credentials
    from keyless.smb.state import load_registrations, load_status

    regs = load_registrations(path)
    status = load_status(path)
    rows: list[dict[str, Any]] = []
    tickets: dict[str, dict[str, int]] = {}
    for key, reg in sorted(regs.items()):
        if reg.ccache not in tickets:
            try:
                tickets[reg.ccache] = {t.server: t.ticket_end_time for t in list_credentials(reg.ccache)}
            except SmbError as exc:
                tickets[reg.ccache] = {}
                click.echo(f"warning: cannot read {reg.ccache} ({exc.cause})", err=True)
        ep = status.endpoints.get(key)
        rows.append({
            "uri": reg.uri, "server": reg.server, "ccache": reg.ccache,
            "identity": reg.source.describe(), "source": reg.source.kind,
            "refreshable": reg.source.kind != "manual",
            "ticket_end_time": tickets[reg.ccache].get(reg.server),
            "last_success": ep.last_success if ep else None,
            "next_attempt": ep.next_attempt if ep else None,
            "failures": ep.failures if ep else 0,
            "last_error": ep.last_error if ep else None,
            "note": ep.note if ep else None,
        })
    agent = {"pid": status.pid, "started": status.started, "heartbeat": status.heartbeat,
             "running": _alive(status.pid)}
    return rows, agent


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@agent_command.command("status")
@_state_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_command(state_file: str | None, as_json: bool) -> None:
    """Each registered endpoint: identity, ticket expiry (from the cache), last error."""
    from keyless.smb.state import state_path

    path = state_path(state_file)
    try:
        rows, agent = _status_rows(path)
    except SmbError as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(json.dumps({"state": str(path), "agent": agent, "endpoints": rows}, indent=2))
        return
    now = time.time()
    running = f"running (pid {agent['pid']})" if agent["running"] else "not running"
    click.echo(f"agent: {running}; state {path}; last heartbeat {_when(agent['heartbeat'], now)}")
    if not rows:
        click.echo("no endpoints registered (keyless smb set registers them)")
    for row in rows:
        click.echo(f"{row['server']}  [{row['ccache']}]")
        click.echo(f"  identity: {row['identity']}")
        click.echo(f"  ticket expires: {_when(row['ticket_end_time'], now)}")
        if row["refreshable"]:
            click.echo(f"  last refresh: {_when(row['last_success'], now)}; "
                       f"next: {_when(row['next_attempt'], now)}")
        else:
            click.echo("  not refreshed: the ticket came from a token given directly; run "
                       "keyless smb set with --system, --imds-client-id, --client-id or --workload-identity")
        if row["last_error"]:
            err = row["last_error"]
            click.echo(f"  last error ({err.get('cause')}, {row['failures']} in a row): {err.get('message')}")
            if err.get("remedy"):
                click.echo(f"    fix: {err['remedy']}")


def unit_text(executable: str | None = None) -> str:
    text = resources.files("keyless.smb").joinpath(UNIT_NAME).read_text(encoding="utf-8")
    if executable:
        text = text.replace("ExecStart=/usr/local/bin/keyless ", f"ExecStart={executable} ")
    return text


@agent_command.command("install-unit")
@click.option("--print", "print_only", is_flag=True, help="Print the unit instead of installing it.")
@click.option("--path", "unit_path", default=f"/etc/systemd/system/{UNIT_NAME}", show_default=True,
              type=click.Path(dir_okay=False))
def install_unit_command(print_only: bool, unit_path: str) -> None:
    """The systemd unit (Type=notify, watchdog, restart on failure), with ExecStart set to this keyless."""
    from keyless.fsutil import atomic_write

    # The keyless on PATH, else this interpreter running it as a module (works in any virtualenv).
    exe = shutil.which("keyless") or f"{sys.executable} -m keyless.cli.main"
    text = unit_text(exe)
    if print_only:
        click.echo(text, nl=False)
        return
    try:
        atomic_write(Path(unit_path), text.encode(), mode=0o644)
    except OSError as exc:
        raise click.ClickException(f"cannot write {unit_path}: {exc.strerror} (run as root, or --print)") \
            from None
    click.echo(f"wrote {unit_path}; now: systemctl daemon-reload && systemctl enable --now {UNIT_NAME}")




# --- azfilesrefresh ---------------------------------------------------------------------------------

REFRESH_UNIT_NAME = "azfilesrefresh.service"
REFRESH_LOG = "/var/log/azfilesrefresh.log"  # AzFilesAuthenticator src/azfilesrefresh.py.in:26-31


def _env_seconds(name: str, default: float, minimum: float = 0.0) -> float:
    """Microsoft's test overrides (AZFILES_REFRESH_SLEEP_SECONDS, AZFILES_REFRESH_BEFORE_EXPIRY_SECONDS)."""
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value >= minimum else default


def _refresh_log_handler(log_file: str) -> logging.Handler:
    """azfilesrefresh's log: the file and line format of Microsoft's daemon; stderr if it is unwritable."""
    fmt = logging.Formatter("%(asctime)s [%(levelname)s] %(message)s")
    handler: logging.Handler
    if log_file != "-":
        try:
            fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.close(fd)
            handler = logging.handlers.WatchedFileHandler(log_file)
            handler.setFormatter(fmt)
            return handler
        except OSError as exc:
            click.echo(f"warning: cannot write {log_file} ({exc.strerror}); logging to stderr", err=True)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(fmt)
    return handler


@click.command("azfilesrefresh", context_settings={"help_option_names": ["-h", "--help"]})
@_state_option
@_config_option
@click.option("--mounts", "mounts_path", default=None, metavar="PATH",
              help="Mounts table to scan [env KEYLESS_MOUNTS_TABLE; default /proc/self/mounts].")
@click.option("--emulator", "emulator_path", envvar=ENV_EMULATOR, default=None, metavar="PATH",
              help="emulator.json of a keyless emulator [env KEYLESS_EMULATOR].")
@click.option("--log-file", default=REFRESH_LOG, show_default=True, metavar="PATH", help="'-': stderr.")
@click.option("--poll", type=float, default=None,
              help="Seconds between checks [env AZFILES_REFRESH_SLEEP_SECONDS; default 60].")
@click.option("--min-window", type=float, default=None,
              help="Refresh when fewer than max(this, 1/4 of the lifetime) seconds remain "
                   "[default AZFILES_REFRESH_BEFORE_EXPIRY_SECONDS (300) + the poll interval].")
@click.option("--fstab", "fstab_path", default="/etc/fstab", show_default=True, metavar="PATH",
              help="fstab whose cifs sec=krb5 entries with x-systemd.requires=azfilesrefresh.service and "
                   "username= are kept fresh too (and created by --provision).")
@click.option("--provision", is_flag=True,
              help="Create the tickets of those fstab entries once, then exit (the unit's ExecStartPre).")
@click.option("--install-unit", "install_unit", is_flag=True,
              help=f"Write /etc/systemd/system/{REFRESH_UNIT_NAME} (ExecStart: this azfilesrefresh).")
@click.option("--print-unit", is_flag=True, help="Print that unit instead.")
def azfilesrefresh_command(state_file: str | None, config_path: str | None, mounts_path: str | None,
                           emulator_path: str | None, log_file: str, poll: float | None,
                           min_window: float | None, fstab_path: str, provision: bool, install_unit: bool,
                           print_unit: bool) -> None:
    """Microsoft's azfilesrefresh, on keyless agent: refresh the ticket of every mounted sec=krb5 share.

    The identity comes from the mount's username= (root: system-assigned, else a client id), as in
    AzFilesAuthenticator; endpoints registered by `keyless smb set` are refreshed with the identity
    recorded there. Failures are retried with back-off; the daemon never exits on one.
    """
    if install_unit or print_unit:
        _write_refresh_unit(print_unit)
        return
    from keyless.smb.account import SystemAccounts, ensure_user_uid
    from keyless.smb.agent import Agent, Policy
    from keyless.smb.config import DEFAULT_CONFIG_PATH, load_config, report_warnings
    from keyless.smb.mounts import mount_registrations, read_fstab, read_mounts
    from keyless.smb.state import state_path

    handler = _refresh_log_handler(log_file)
    root = logging.getLogger("keyless")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    path = Path(config_path) if config_path else None
    try:
        cfg = load_config(path)
        # init_new_user() at start-up, as the real daemon does (src/azfilesrefresh.py.in:164-178).
        if (cfg.user_uid is None or not SystemAccounts().uid_exists(cfg.user_uid)) \
                and ensure_user_uid(path or DEFAULT_CONFIG_PATH, SystemAccounts()) is not None:
            cfg = load_config(path or DEFAULT_CONFIG_PATH)
    except SmbError as exc:
        _fail(exc)
        return
    report_warnings(cfg, sys.stderr)
    cache = cfg.cache_name(None, env={})  # the azfilesauth cache: the mounts' cruid
    config_str = str(Path(config_path).resolve()) if config_path else None
    emulator_str = str(Path(emulator_path).resolve()) if emulator_path else None

    def discover() -> dict[str, Any]:
        # Mounted shares first (their username= is what is in use), then the opted-in fstab entries.
        return mount_registrations([*read_mounts(mounts_path), *read_fstab(fstab_path)], ccache=cache,
                                   config=config_str, emulator=emulator_str)

    if provision:
        sys.exit(_provision(mount_registrations(read_fstab(fstab_path), ccache=cache, config=config_str,
                                                emulator=emulator_str)))

    sleep = poll if poll is not None else _env_seconds("AZFILES_REFRESH_SLEEP_SECONDS", 60.0, minimum=1.0)
    before = _env_seconds("AZFILES_REFRESH_BEFORE_EXPIRY_SECONDS", 300.0)
    policy = Policy(min_window=min_window if min_window is not None else before + sleep, poll=sleep)
    logging.getLogger("keyless.agent").info("AZ Files Refresh Daemon started (keyless; cache %s)", cache)
    sys.exit(Agent(state_path(state_file), policy=policy, discover=discover).run())


def _provision(registrations: dict[str, Any]) -> int:
    """One ticket per opted-in fstab entry, before the mounts run at boot; failures are logged, not fatal
    (the daemon retries them), as Microsoft's provisioning step does."""
    from keyless.smb.agent import Policy, TicketRefresher

    log = logging.getLogger("keyless.agent")
    if not registrations:
        log.info("No opted-in fstab entries found for provisioning.")
    refresher = TicketRefresher(Policy(), time.time)
    for reg in registrations.values():
        try:
            outcome = refresher(reg)
        except SmbError as exc:
            log.error("provisioning %s failed (%s): %s", reg.server, exc.cause, exc.message)
            continue
        log.info("provisioned %s in %s (%s)", reg.server, reg.ccache,
                 "new ticket" if outcome.refreshed else "a fresh ticket was already there")
    return 0


def _write_refresh_unit(print_only: bool) -> None:
    from keyless.fsutil import atomic_write

    text = resources.files("keyless.smb").joinpath(REFRESH_UNIT_NAME).read_text(encoding="utf-8")
    # This azfilesrefresh (the one running), else the one on PATH, else this interpreter running the module.
    argv0 = Path(sys.argv[0]) if sys.argv else None
    running = argv0.absolute() if argv0 and argv0.name == "azfilesrefresh" else None
    exe = str(running) if running else (shutil.which("azfilesrefresh")
                                        or f"{sys.executable} -m keyless.cli.agent_cmd azfilesrefresh")
    text = text.replace("=/usr/bin/azfilesrefresh", f"={exe}")
    if print_only:
        click.echo(text, nl=False)
        return
    unit_path = f"/etc/systemd/system/{REFRESH_UNIT_NAME}"
    try:
        atomic_write(Path(unit_path), text.encode(), mode=0o644)
    except OSError as exc:
        raise click.ClickException(
            f"cannot write {unit_path}: {exc.strerror} (run as root, or --print-unit)") from None
    click.echo(f"wrote {unit_path}; now: systemctl daemon-reload && systemctl enable --now azfilesrefresh")


def azfilesrefresh_main() -> None:
    """Console-script entry point of ``azfilesrefresh``."""
    azfilesrefresh_command(prog_name="azfilesrefresh")


if __name__ == "__main__":  # ``python -m keyless.cli.agent_cmd``: the agent without the top-level CLI
    if sys.argv[1:2] == ["azfilesrefresh"]:
        azfilesrefresh_command(sys.argv[2:], prog_name="azfilesrefresh")
    else:
        agent_command(prog_name="keyless agent")
