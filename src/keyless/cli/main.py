"""The ``keyless`` command: one group, one module per command family, each thin over the library."""

from __future__ import annotations

import importlib
import importlib.util

import click

from keyless import __version__

# Commands are registered by name and imported lazily, so ``keyless token`` never pays for aiohttp.
_COMMANDS: dict[str, tuple[str, str]] = {
    "emulator": ("keyless.cli.emulator_cmd", "emulator_command"),
    "token": ("keyless.cli.token_cmd", "token_command"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in _COMMANDS if self._available(name))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = _COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module = importlib.import_module(spec[0])
        command = getattr(module, spec[1])
        assert isinstance(command, click.Command)
        return command

    @staticmethod
    def _available(name: str) -> bool:
        return importlib.util.find_spec(_COMMANDS[name][0]) is not None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="keyless")
def cli() -> None:
    """keyless: Azure file shares with managed identities, no account keys."""


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
