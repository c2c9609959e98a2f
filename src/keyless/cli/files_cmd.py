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

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from keyless.cli._files_common import printable
from keyless.cli._files_session import Session, common_options
from keyless.files import copying, sync, transfer
from keyless.files.parallel import ranges
from keyless.files.urls import is_remote
from keyless.protocol import ENV_ACCOUNT_KEY


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
    return sum(
        p.stat().st_size
        for p in path.rglob("*")
        if p.is_file() and not p.is_symlink() and not transfer.is_part_name(p.name)  # parts are not synced
    )


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
    shown = printable(name) + ("/" if is_dir else "")
    if not long:
        return shown
    return f"{'d' if is_dir else '-'} {_size(size):>10}  {modified:<29}  {shown}"


def _is_remote(text: str) -> bool:
    return is_remote(text) or text.startswith(":")


def _transfer(s: Session, src: str, dst: str, recursive: bool, verb: str) -> transfer.TransferStats:
    """Copy ``src`` to ``dst`` in whichever direction they point (the rules are the library's)."""
    src_remote, dst_remote = _is_remote(src), _is_remote(dst)
    if not src_remote and not dst_remote:
        raise click.UsageError("one of source and destination must be remote (azfiles://... or https://...)")
    if src_remote and not dst_remote and dst == "-":
        raise click.UsageError("use 'keyless cat' to write a file to standard output")
    try:
        if not src_remote:
            durl = s.parse(dst)
            plan = copying.plan_upload(
                s.client(durl), src, durl.path, recursive=recursive, workers=s.concurrency
            )
        else:
            surl = s.parse(src)
            if not dst_remote:
                plan = copying.plan_download(
                    s.client(surl),
                    surl.path,
                    dst,
                    recursive=recursive,
                    contents_only=src.endswith("/"),
                    workers=s.concurrency,
                )
            else:
                durl = s.parse(dst)
                plan = copying.plan_copy(
                    s.client(surl),
                    surl.path,
                    s.client(durl),
                    durl.path,
                    recursive=recursive,
                    contents_only=src.endswith("/"),
                    workers=s.concurrency,
                )
    except IsADirectoryError:
        raise click.UsageError(f"{src} is a directory (use -r)") from None
    with s.progress(plan.total_bytes, f"{verb} {printable(plan.name)}") as progress:
        return plan.run(progress)


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
    _summary(s, "downloaded", _transfer(s, remote, local, recursive, "get"))


@click.command("put")
@click.argument("local")
@click.argument("remote")
@click.option("-r", "--recursive", is_flag=True)
@common_options
def put_command(s: Session, local: str, remote: str, recursive: bool) -> None:
    """Upload a local file (or, with -r, a directory) to REMOTE."""
    if is_remote(local):
        raise click.UsageError(f"{local}: not a local path")
    _summary(s, "uploaded", _transfer(s, local, remote, recursive, "put"))


@click.command("cp")
@click.argument("source")
@click.argument("dest")
@click.option("-r", "--recursive", is_flag=True)
@click.option("--dask", "dask_scheduler", default=None, metavar="SCHEDULER_ADDRESS",
              help="Copy a remote tree on a Dask cluster (keyless[dask]); rerun to finish a copy.")
@common_options
def cp_command(s: Session, source: str, dest: str, recursive: bool, dask_scheduler: str | None) -> None:
    """Copy local->remote, remote->local or remote->remote (across shares and accounts)."""
    if dask_scheduler:
        _dask_copy(s, source, dest, recursive, dask_scheduler)
        return
    _summary(s, "copied", _transfer(s, source, dest, recursive, "cp"))


def _dask_copy(s: Session, source: str, dest: str, recursive: bool, scheduler: str) -> None:
    """``cp -r --dask``: the library's cluster copy, with this command's identity options and progress."""
    if not (recursive and _is_remote(source) and _is_remote(dest)):
        raise click.UsageError("--dask copies a remote tree to a remote directory: cp -r SRC DST --dask ADDR")
    try:
        from keyless.files.dask_copy import copy_tree_on_dask
        from keyless.fsspec import AzureFilesFileSystem
    except ImportError:
        raise click.UsageError("--dask needs the Dask extra: pip install 'keyless[dask]'") from None
    import os

    surl, durl = s.parse(source), s.parse(dest)
    fs = AzureFilesFileSystem(
        client_id=s.client_id, object_id=s.object_id, resource_id=s.resource_id,
        emulator=str(s.emulator.path) if s.emulator else None,
        shared_key_from_env=bool(os.environ.get(ENV_ACCOUNT_KEY)), max_concurrency=s.concurrency or 8,
    )

    def progress(r: Any) -> None:
        if not s.quiet and not s.as_json:
            click.echo(f"cp --dask: {r.files + r.skipped}/{r.total_files} files "
                       f"({r.skipped} already there), {_size(r.bytes)}", err=True)

    report = copy_tree_on_dask(fs, f"{surl.account}/{surl.share}/{surl.path}",
                               f"{durl.account}/{durl.share}/{durl.path}", scheduler, progress=progress)
    s.emit(report.to_json(), lambda: None)


@click.command("mv")
@click.argument("source")
@click.argument("dest")
@common_options
def mv_command(s: Session, source: str, dest: str) -> None:
    """Move: a rename within one share, otherwise copy then delete the source."""
    src_remote, dst_remote = _is_remote(source), _is_remote(dest)
    if src_remote and dst_remote:
        surl, durl = s.parse(source), s.parse(dest)
        if (surl.host, surl.account, surl.share) == (durl.host, durl.account, durl.share):
            client = s.client(surl)
            props = client.properties(surl.path)
            target = copying.move_target(client, surl.path, durl.path)
            client.rename(surl.path, target, is_dir=props.is_dir)
            s.emit({"moved": surl.path, "to": target}, lambda: None)
            return
    stats = _transfer(s, source, dest, recursive=True, verb="mv")
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
        click.echo(f"  Path: {printable(url.shorthand())}")
        click.echo(f"  Type: {'directory' if props.is_dir else 'file'}")
        if not props.is_dir:
            click.echo(f"  Size: {props.size} ({_size(props.size)})")
            if props.content_type:
                click.echo(f"  Content-Type: {printable(props.content_type)}")
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
            click.echo(f"  meta {printable(k)}: {printable(v)}")

    s.emit({**props.to_json(), "url": url.url}, human)


@click.command("sync")
@click.argument("source")
@click.argument("dest")
@click.option("--delete", is_flag=True, help="Delete files in DEST that are not in SOURCE.")
@common_options
def sync_command(s: Session, source: str, dest: str, delete: bool) -> None:
    """Make DEST match SOURCE (one local directory, one remote): copy new and changed files (by size and
    modification time), and with --delete remove extraneous ones."""
    src_remote, dst_remote = _is_remote(source), _is_remote(dest)
    if src_remote == dst_remote:
        raise click.UsageError("sync needs one local directory and one remote directory")
    if dst_remote:
        durl = s.parse(dest)
        local = Path(source)
        if not local.is_dir():
            raise click.UsageError(f"{source} is not a directory")
        with s.progress(_local_size(local), "sync") as progress:
            stats = sync.sync_up(
                s.client(durl), local, durl.path, delete=delete, workers=s.concurrency, progress=progress
            )
    else:
        surl = s.parse(source)
        client = s.client(surl)
        tree = transfer.list_tree(client, surl.path)
        with s.progress(tree.total_size, "sync") as progress:
            stats = sync.sync_down(
                client,
                surl.path,
                Path(dest),
                delete=delete,
                workers=s.concurrency,
                progress=progress,
                tree=tree,
            )
    _summary(s, "synced", stats)


#: The file commands ``keyless.cli.main`` registers in the ``keyless`` group.
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
