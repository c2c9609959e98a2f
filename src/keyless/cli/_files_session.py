"""One file command invocation: the options every file command takes, the clients it opens, its output
(progress on a terminal, ``--json`` for scripts) and how a failure is reported and exits."""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from keyless.cli import _files_common as common
from keyless.cli import hints
from keyless.files import errors as fe
from keyless.files import tuning
from keyless.files.auth import InvalidAccountKey
from keyless.files.client import ShareClient
from keyless.files.urls import CLOUD_SUFFIXES, PUBLIC_SUFFIX, FileUrl, parse, share_url
from keyless.identity.errors import IdentityError
from keyless.protocol import ENV_ACCOUNT_KEY

F = TypeVar("F", bound=Callable[..., Any])
KEY_ENV = ENV_ACCOUNT_KEY


@dataclass
class Session:
    """Options shared by one command invocation, and the clients it opened (one per share)."""

    emulator: common.EmulatorTarget | None
    client_id: str | None
    object_id: str | None
    resource_id: str | None
    cloud: str
    account: str | None
    share: str | None
    concurrency: int | None  # None: chosen from the measured latency (keyless.files.tuning)
    wait_for_access: float
    as_json: bool
    quiet: bool
    _credential: Any = None
    _clients: dict[tuple[str, str, str], ShareClient] = field(default_factory=dict)

    def parse(self, text: str) -> FileUrl:
        suffix = CLOUD_SUFFIXES.get(self.cloud, PUBLIC_SUFFIX)
        emu_url = self.emulator.files_url if self.emulator else None
        if text.startswith(":"):
            if not (self.account and self.share):
                raise click.UsageError(f"{text!r}: a ':path' needs --account and --share")
            return share_url(self.account, self.share, emulator_url=emu_url, suffix=suffix, path=text[1:])
        try:
            return parse(text, emulator_url=emu_url, suffix=suffix)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None

    def client(self, url: FileUrl) -> ShareClient:
        key = (url.host, url.account, url.share)
        if key not in self._clients:
            account_key = os.environ.get(KEY_ENV) or None
            if account_key is None and self._credential is None:
                self._credential = common.make_credential(
                    self.client_id, self.object_id, self.resource_id, self.emulator
                )
            try:
                self._clients[key] = common.build_client(
                    url,
                    self._credential,
                    self.emulator,
                    concurrency=self.concurrency,
                    wait_for_access=self.wait_for_access,
                    account_key=account_key,
                )
            except InvalidAccountKey as exc:
                raise click.UsageError(f"{KEY_ENV}: {exc}; or unset it to use the managed identity") from None
        return self._clients[key]

    def progress_enabled(self) -> bool:
        return not self.quiet and not self.as_json and sys.stderr.isatty()

    @contextmanager
    def progress(self, total: int, label: str) -> Iterator[Callable[[int], None]]:
        if not self.progress_enabled() or total <= 0:
            yield lambda _n: None
            return
        lock = threading.Lock()
        with click.progressbar(
            length=total, label=label, file=sys.stderr, show_pos=False, show_percent=True, show_eta=True
        ) as bar:

            def update(n: int) -> None:
                with lock:  # workers report from many threads; click's bar is not thread-safe
                    bar.update(n)

            yield update

    def emit(self, payload: Any, human: Callable[[], None]) -> None:
        if self.as_json:
            click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        else:
            human()

    def close(self) -> None:
        for c in self._clients.values():
            c.close()


class Concurrency(click.ParamType):  # type: ignore[type-arg]
    """``auto`` (None: the rule of :mod:`keyless.files.tuning`) or a whole number from 1 to the cap."""

    name = "auto|N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | None:
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            number = value
        elif str(value).strip().lower() == "auto":
            return None
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a number: give 1-{tuning.MAX_CONCURRENCY} or auto", param, ctx)
        try:
            return tuning.check_concurrency(number)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def common_options(fn: F) -> F:
    """The options every file command takes, turned into a :class:`Session` argument."""

    @click.option(
        "--emulator",
        "emulator_path",
        envvar=common.EMULATOR_ENV,
        default=None,
        help="emulator.json (or its directory) [env KEYLESS_EMULATOR].",
    )
    @click.option("--client-id", default=None, help="User-assigned identity: client id.")
    @click.option("--object-id", default=None, help="User-assigned identity: object (principal) id.")
    @click.option("--resource-id", default=None, help="User-assigned identity: ARM resource id.")
    @click.option("--cloud", type=click.Choice(sorted(CLOUD_SUFFIXES)), default="public", show_default=True)
    @click.option("--account", envvar="KEYLESS_ACCOUNT", default=None, help="Account for ':path' [env].")
    @click.option("--share", envvar="KEYLESS_SHARE", default=None, help="Share for ':path' [env].")
    @click.option(
        "--concurrency",
        type=Concurrency(),
        default="auto",
        show_default=True,
        help=f"Requests in flight: 1-{tuning.MAX_CONCURRENCY}, or auto (from the measured latency and the "
        "file sizes).",
    )
    @click.option(
        "--wait-for-access",
        default="0",
        metavar="DURATION",
        help="Retry 403s for this long (e.g. 30m) while a role assignment propagates.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.option("-q", "--quiet", is_flag=True, help="No progress output.")
    @functools.wraps(fn)
    def wrapper(
        *args: Any,
        emulator_path: str | None,
        client_id: str | None,
        object_id: str | None,
        resource_id: str | None,
        cloud: str,
        account: str | None,
        share: str | None,
        concurrency: int | None,
        wait_for_access: str,
        as_json: bool,
        quiet: bool,
        **kwargs: Any,
    ) -> Any:
        session = Session(
            common.load_emulator(emulator_path),
            client_id,
            object_id,
            resource_id,
            cloud,
            account,
            share,
            concurrency,
            common.parse_duration(wait_for_access),
            as_json,
            quiet,
        )
        try:
            return fn(session, *args, **kwargs)
        except fe.FilesError as exc:
            _report(exc, as_json)
            sys.exit(common.exit_code_for(exc))
        except (IsADirectoryError, FileNotFoundError, NotADirectoryError, FileExistsError) as exc:
            _report(exc, as_json)
            sys.exit(common.EXIT_OTHER)
        except IdentityError as exc:
            _report(fe.TokenError(f"{type(exc).__name__}: {exc}"), as_json)
            sys.exit(common.EXIT_TOKEN)
        finally:
            session.close()

    return wrapper  # type: ignore[return-value]


def _report(exc: BaseException, as_json: bool) -> None:
    if isinstance(exc, fe.FilesError):
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "error": type(exc).__name__,
                        "status": exc.status,
                        "code": exc.code,
                        "message": exc.message,
                        "remedy": hints.remedy_for(exc),
                    }
                ),
                err=True,
            )
            return
        head = f"HTTP {exc.status} {exc.code}: ".replace(" :", ":") if exc.status else ""
        click.secho(f"Error: {head}{common.printable(exc.message, keep=chr(10))}", fg="red", err=True)
        remedy = hints.remedy_for(exc)
        if remedy:
            click.echo(f"What to do: {common.printable(remedy, keep=chr(10))}", err=True)
        return
    click.secho(f"Error: {common.printable(str(exc), keep=chr(10))}", fg="red", err=True)
