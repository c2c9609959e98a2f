"""The ``keyless`` command: one group, one module per command family, each thin over the library."""

from __future__ import annotations

import importlib

import click

from keyless import __version__
from keyless.cli import console

# Commands are registered by name and imported lazily, so ``keyless token`` never pays for aiohttp.
_COMMANDS: dict[str, tuple[str, str]] = {
    "emulator": ("keyless.cli.emulator_cmd", "emulator_command"),
    "token": ("keyless.cli.token_cmd", "token_command"),
    "test": ("keyless.cli.test_cmd", "test_command"),
    "doctor": ("keyless.cli.doctor_cmd", "doctor_command"),
    "smb": ("keyless.cli.smb_cmd", "smb_group"),
    "agent": ("keyless.cli.agent_cmd", "agent_command"),
    "migrate": ("keyless.cli.migrate_cmd", "migrate_group"),
    "sas": ("keyless.cli.sas_cmd", "sas_command"),
    **{name: ("keyless.cli.files_cmd", f"FILE_COMMANDS:{name}")
       for name in ("ls", "get", "put", "cp", "mv", "rm", "mkdir", "cat", "stat", "sync")},
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = _COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module = importlib.import_module(spec[0])
        attribute, _, key = spec[1].partition(":")
        command = getattr(module, attribute)
        if key:  # a command kept in a module-level dict, e.g. FILE_COMMANDS["ls"]
            command = command[key]
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="keyless")
def cli() -> None:
    """keyless: Azure file shares with managed identities, no account keys."""


def main() -> None:
    console.make_output_safe()
    cli(color=console.color_wanted())


if __name__ == "__main__":
    main()
