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
    from keyless.cli.smb_cmd import require_smb_extra

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


if __name__ == "__main__":  # ``python -m keyless.cli.agent_cmd``: the agent without the top-level CLI
    agent_command(prog_name="keyless agent")
