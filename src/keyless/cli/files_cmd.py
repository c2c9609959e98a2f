"""File commands: ``ls``, ``get``, ``put``, ``cp``, ``mv``, ``rm``, ``mkdir``, ``cat``, ``stat``, ``sync``.

Remote paths are ``azfiles://<account>/<share>/<path>`` or ``https://<account>.file.core.windows.net/<share>/
<path>``; with ``--account`` and ``--share`` (env ``KEYLESS_ACCOUNT``, ``KEYLESS_SHARE``) a path starting with
``:`` is in that share (``:reports/2026``). Anything else is a local path.

Every command takes ``--emulator`` (env ``KEYLESS_EMULATOR``), the identity selectors ``--client-id`` /
``--object-id`` / ``--resource-id``, ``--cloud``, ``--concurrency``, ``--json`` and ``--wait-for-access 30m``
(retry 403s while a new role assignment propagates). The account key is read only from the environment
(``AZURE_STORAGE_KEY``), never from the command line where it would land in shell history. Progress bars
appear on a terminal; piped output stays quiet. Exit codes are those of ``keyless test``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from keyless.cli import _files_common as common
from keyless.files import errors as fe
from keyless.files import transfer
from keyless.files.client import ShareClient
from keyless.files.parallel import ranges
from keyless.files.urls import CLOUD_SUFFIXES, PUBLIC_SUFFIX, FileUrl, is_remote, join_path, parse, share_url
from keyless.identity.errors import IdentityError

F = TypeVar("F", bound=Callable[..., Any])
KEY_ENV = "AZURE_STORAGE_KEY"


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
    concurrency: int
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
            self._clients[key] = common.build_client(
                url,
                self._credential,
                self.emulator,
                concurrency=self.concurrency,
                wait_for_access=self.wait_for_access,
                account_key=account_key,
            )
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
    @click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True)
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
        concurrency: int,
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
                        "remedy": common.remedy_for(exc),
                    }
                ),
                err=True,
            )
            return
        head = f"HTTP {exc.status} {exc.code}: ".replace(" :", ":") if exc.status else ""
        click.secho(f"Error: {head}{exc.message}", fg="red", err=True)
        remedy = common.remedy_for(exc)
        if remedy:
            click.echo(f"What to do: {remedy}", err=True)
        return
    click.secho(f"Error: {exc}", fg="red", err=True)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def _local_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _remote_size(client: ShareClient, path: str) -> int:
    props = client.properties(path)
    if not props.is_dir:
        return props.size
    return sum(size for _, _, size, _ in transfer.remote_files(client, path))


# --- commands --------------------------------------------------------------------------------------


@click.command("ls")
@click.argument("remote")
@click.option("-l", "long", is_flag=True, help="Type, size, last modified.")
@click.option("-R", "recursive", is_flag=True, help="List subdirectories too.")
@common_options
def ls_command(s: Session, remote: str, long: bool, recursive: bool) -> None:
    """List a directory (or show one file)."""
    url = s.parse(remote)
    client = s.client(url)
    props = client.properties(url.path)
    if not props.is_dir:
        s.emit(
            [props.to_json()],
            lambda: click.echo(_ls_line(url.name, False, props.size, props.last_modified, long)),
        )
        return
    rows: list[dict[str, Any]] = []
    walker = client.walk(url.path) if recursive else [(url.path, *_split(client.listdir(url.path)))]
    for dirpath, dirs, files in walker:
        base = url.path
        for entry in sorted([*dirs, *files], key=lambda e: e.name):
            rel = entry.path[len(base) + 1 :] if base else entry.path
            rows.append(
                {
                    "name": rel,
                    "path": entry.path,
                    "type": "directory" if entry.is_dir else "file",
                    "size": entry.size,
                    "last_modified": entry.last_modified or entry.last_write_time,
                }
            )
        del dirpath

    def human() -> None:
        for r in rows:
            click.echo(_ls_line(r["name"], r["type"] == "directory", r["size"], r["last_modified"], long))

    s.emit(rows, human)


def _split(entries: Iterator[Any]) -> tuple[list[Any], list[Any]]:
    items = list(entries)
    return [e for e in items if e.is_dir], [e for e in items if not e.is_dir]


def _ls_line(name: str, is_dir: bool, size: int | None, modified: str, long: bool) -> str:
    shown = name + ("/" if is_dir else "")
    if not long:
        return shown
    return f"{'d' if is_dir else '-'} {_size(size):>10}  {modified:<29}  {shown}"


def _transfer(s: Session, src: str, dst: str, recursive: bool) -> transfer.TransferStats:
    """Copy ``src`` to ``dst`` in whichever direction they point."""
    src_remote, dst_remote = is_remote(src) or src.startswith(":"), is_remote(dst) or dst.startswith(":")
    stats = transfer.TransferStats()
    if not src_remote and not dst_remote:
        raise click.UsageError("one of source and destination must be remote (azfiles://... or https://...)")
    if not src_remote:
        local = Path(src)
        durl = s.parse(dst)
        client = s.client(durl)
        if local.is_dir():
            if not recursive:
                raise click.UsageError(f"{src} is a directory (use -r)")
            target = durl.path
            if client.exists(target) and client.properties(target).is_dir and not src.endswith("/"):
                target = join_path(target, local.resolve().name)
            with s.progress(_local_size(local), f"put {local.name}") as progress:
                return transfer.upload_tree(client, local, target, workers=s.concurrency, progress=progress)
        target = durl.path
        if not target or (client.exists(target) and client.properties(target).is_dir):
            target = join_path(target, local.name)
        with s.progress(local.stat().st_size, f"put {local.name}") as progress:
            stats.add(files=1, nbytes=transfer.upload_file(client, local, target, progress=progress))
        return stats
    surl = s.parse(src)
    sclient = s.client(surl)
    props = sclient.properties(surl.path)
    if props.is_dir and not recursive:
        raise click.UsageError(f"{src} is a directory (use -r)")
    if not dst_remote:
        local = Path(dst)
        if props.is_dir:
            if local.is_dir() and not src.endswith("/"):
                local = local / surl.name
            with s.progress(_remote_size(sclient, surl.path), f"get {surl.name}") as progress:
                return transfer.download_tree(
                    sclient, surl.path, local, workers=s.concurrency, progress=progress
                )
        if dst == "-":
            raise click.UsageError("use 'keyless cat' to write a file to standard output")
        if local.is_dir():
            local = transfer.safe_local_path(local, surl.name)
        with s.progress(props.size, f"get {surl.name}") as progress:
            stats.add(
                files=1,
                nbytes=transfer.download_file(sclient, surl.path, local, props=props, progress=progress),
            )
        return stats
    durl = s.parse(dst)
    dclient = s.client(durl)
    target = durl.path
    dst_is_dir = dclient.exists(target) and dclient.properties(target).is_dir
    if props.is_dir:
        if dst_is_dir and not src.endswith("/"):
            target = join_path(target, surl.name)
        with s.progress(_remote_size(sclient, surl.path), f"cp {surl.name}") as progress:
            return transfer.copy_tree(
                sclient, surl.path, dclient, target, workers=s.concurrency, progress=progress
            )
    if dst_is_dir:
        target = join_path(target, surl.name)
    with s.progress(props.size, f"cp {surl.name}") as progress:
        stats.add(files=1, nbytes=transfer.copy_file(sclient, surl.path, dclient, target, progress=progress))
    return stats


def _summary(s: Session, verb: str, stats: transfer.TransferStats) -> None:
    s.emit(
        stats.to_json(),
        lambda: (
            None
            if s.quiet
            else click.echo(
                f"{verb} {stats.files} file(s), {_size(stats.bytes)}"
                + (f", {stats.skipped} unchanged" if stats.skipped else "")
                + (f", {stats.deleted} deleted" if stats.deleted else ""),
                err=True,
            )
        ),
    )


@click.command("get")
@click.argument("remote")
@click.argument("local", default=".")
@click.option("-r", "--recursive", is_flag=True)
@common_options
def get_command(s: Session, remote: str, local: str, recursive: bool) -> None:
    """Download a file (or, with -r, a directory) to LOCAL."""
    if not (is_remote(remote) or remote.startswith(":")):
        raise click.UsageError(f"{remote}: not a remote path")
    _summary(s, "downloaded", _transfer(s, remote, local, recursive))


@click.command("put")
@click.argument("local")
@click.argument("remote")
@click.option("-r", "--recursive", is_flag=True)
@common_options
def put_command(s: Session, local: str, remote: str, recursive: bool) -> None:
    """Upload a local file (or, with -r, a directory) to REMOTE."""
    if is_remote(local):
        raise click.UsageError(f"{local}: not a local path")
    _summary(s, "uploaded", _transfer(s, local, remote, recursive))


@click.command("cp")
@click.argument("source")
@click.argument("dest")
@click.option("-r", "--recursive", is_flag=True)
@common_options
def cp_command(s: Session, source: str, dest: str, recursive: bool) -> None:
    """Copy local->remote, remote->local or remote->remote (across shares and accounts)."""
    _summary(s, "copied", _transfer(s, source, dest, recursive))


@click.command("mv")
@click.argument("source")
@click.argument("dest")
@common_options
def mv_command(s: Session, source: str, dest: str) -> None:
    """Move: a rename within one share, otherwise copy then delete the source."""
    src_remote, dst_remote = (
        is_remote(source) or source.startswith(":"),
        is_remote(dest) or dest.startswith(":"),
    )
    if src_remote and dst_remote:
        surl, durl = s.parse(source), s.parse(dest)
        if (surl.host, surl.account, surl.share) == (durl.host, durl.account, durl.share):
            client = s.client(surl)
            props = client.properties(surl.path)
            target = durl.path
            if client.exists(target) and client.properties(target).is_dir:
                target = join_path(target, surl.name)
            client.rename(surl.path, target, is_dir=props.is_dir)
            s.emit({"moved": surl.path, "to": target}, lambda: None)
            return
    stats = _transfer(s, source, dest, recursive=True)
    if src_remote:
        surl = s.parse(source)
        s.client(surl).delete(surl.path, recursive=True)
    else:
        path = Path(source)
        if path.is_dir():
            import shutil

            shutil.rmtree(path)
        else:
            path.unlink()
    _summary(s, "moved", stats)


@click.command("rm")
@click.argument("remotes", nargs=-1, required=True)
@click.option("-r", "--recursive", is_flag=True, help="Delete directories and everything in them.")
@common_options
def rm_command(s: Session, remotes: tuple[str, ...], recursive: bool) -> None:
    """Delete files (or, with -r, directory trees)."""
    total = 0
    for remote in remotes:
        url = s.parse(remote)
        if not url.path:
            raise click.UsageError("refusing to delete a share root")
        total += s.client(url).delete(url.path, recursive=recursive)
    s.emit({"deleted": total}, lambda: None)


@click.command("mkdir")
@click.argument("remotes", nargs=-1, required=True)
@click.option("-p", "--parents", is_flag=True, help="Create parents; no error if it exists.")
@common_options
def mkdir_command(s: Session, remotes: tuple[str, ...], parents: bool) -> None:
    """Create directories."""
    created = []
    for remote in remotes:
        url = s.parse(remote)
        if s.client(url).mkdir(url.path, parents=parents, exist_ok=parents):
            created.append(url.path)
    s.emit({"created": created}, lambda: None)


@click.command("cat")
@click.argument("remote")
@common_options
def cat_command(s: Session, remote: str) -> None:
    """Write a remote file to standard output."""
    url = s.parse(remote)
    client = s.client(url)
    props = client.properties(url.path)
    if props.is_dir:
        raise IsADirectoryError(f"{remote} is a directory")
    out = sys.stdout.buffer
    for offset, length in ranges(props.size):  # one range at a time: memory stays at 4 MiB
        data, _ = client.get_range(url.path, offset, length)
        out.write(data)
    out.flush()


@click.command("stat")
@click.argument("remote")
@common_options
def stat_command(s: Session, remote: str) -> None:
    """Show the properties of a file or directory."""
    url = s.parse(remote)
    props = s.client(url).properties(url.path)

    def human() -> None:
        click.echo(f"  Path: {url.shorthand()}")
        click.echo(f"  Type: {'directory' if props.is_dir else 'file'}")
        if not props.is_dir:
            click.echo(f"  Size: {props.size} ({_size(props.size)})")
            if props.content_type:
                click.echo(f"  Content-Type: {props.content_type}")
            if props.content_md5:
                click.echo(f"  Content-MD5: {props.content_md5}")
        for label, value in (
            ("ETag", props.etag),
            ("Last-Modified", props.last_modified),
            ("Last-Write-Time", props.last_write_time),
            ("Creation-Time", props.creation_time),
        ):
            if value:
                click.echo(f"  {label}: {value}")
        for k, v in sorted(props.metadata.items()):
            click.echo(f"  meta {k}: {v}")

    s.emit({**props.to_json(), "url": url.url}, human)


@click.command("sync")
@click.argument("source")
@click.argument("dest")
@click.option("--delete", is_flag=True, help="Delete files in DEST that are not in SOURCE.")
@common_options
def sync_command(s: Session, source: str, dest: str, delete: bool) -> None:
    """Make DEST match SOURCE (one local directory, one remote): copy new and changed files (by size and
    modification time), and with --delete remove extraneous ones."""
    src_remote, dst_remote = (
        is_remote(source) or source.startswith(":"),
        is_remote(dest) or dest.startswith(":"),
    )
    if src_remote == dst_remote:
        raise click.UsageError("sync needs one local directory and one remote directory")
    if dst_remote:
        durl = s.parse(dest)
        local = Path(source)
        if not local.is_dir():
            raise click.UsageError(f"{source} is not a directory")
        with s.progress(_local_size(local), "sync") as progress:
            stats = transfer.sync_up(
                s.client(durl), local, durl.path, delete=delete, workers=s.concurrency, progress=progress
            )
    else:
        surl = s.parse(source)
        client = s.client(surl)
        with s.progress(_remote_size(client, surl.path), "sync") as progress:
            stats = transfer.sync_down(
                client, surl.path, Path(dest), delete=delete, workers=s.concurrency, progress=progress
            )
    _summary(s, "synced", stats)


#: What the lead registers in the ``keyless`` group.
FILE_COMMANDS: dict[str, click.Command] = {
    "ls": ls_command,
    "get": get_command,
    "put": put_command,
    "cp": cp_command,
    "mv": mv_command,
    "rm": rm_command,
    "mkdir": mkdir_command,
    "cat": cat_command,
    "stat": stat_command,
    "sync": sync_command,
}
