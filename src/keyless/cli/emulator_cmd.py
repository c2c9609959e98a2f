"""``keyless emulator``: run the local Azure in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import click

from keyless.emulator.config import ConfigError, load_config


@click.command("emulator")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Data directory: metadata, file bytes, CA, keys, audit log and emulator.json.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML file declaring tenant, accounts, shares, identities, roles, faults.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535),
              help="HTTPS (Files REST) port; 0 picks a free one.")
@click.option("--imds-port", default=0, show_default=True, type=click.IntRange(0, 65535),
              help="Plain-HTTP identity port (IMDS, App Service, Arc, authority); 0 picks a free one.")
def emulator_command(data_dir: Path, config_file: Path | None, host: str, port: int, imds_port: int) -> None:
    """Run a local Azure (identity endpoints + Files REST + RBAC) until SIGINT or SIGTERM.

    When ready, DATA/emulator.json holds every URL, the CA to trust and the account keys.

    \b
    Example:
      keyless emulator --data ./emu &
      keyless token --emulator ./emu
    """
    from keyless.emulator.server import DataDirError, print_ready, run  # heavy imports only here

    try:
        config = load_config(config_file)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not _is_loopback(host):
        click.echo(
            f"warning: --host {host} is not a loopback address: the token endpoints (IMDS, App Service, "
            "Arc, the authority) and the control endpoint become reachable from the network, and anyone "
            "who reaches IMDS gets tokens for the emulator's identities; use it only on a trusted network",
            err=True,
        )
    try:
        run(data_dir.resolve(), config, host, port, imds_port, ready=print_ready)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port or imds_port} ({exc.strerror or exc}); "
            "pick another --port/--imds-port or stop whatever holds it"
        ) from None
    except (ValueError, DataDirError) as exc:
        raise click.ClickException(str(exc)) from None


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to any interface
