"""``azfiles://``: an fsspec filesystem for Azure file shares, built on :mod:`keyless.files`.

pandas, pyarrow, Dask and xarray open ``azfiles://`` URLs through the ``fsspec.specs`` entry point, with
nothing imported first::

    pd.read_csv("azfiles://myaccount/myshare/dir/x.csv")
    pd.read_csv("azfiles://myshare/dir/x.csv", storage_options={"account_name": "myaccount"})

Paths. Without ``account_name`` a path is ``account/share/path`` (one filesystem reaches every account the
identity may use); with ``account_name`` it is ``share/path``. The emulator is used when ``KEYLESS_EMULATOR``
(or the ``emulator`` option) names its ``emulator.json``.

Credentials (``storage_options`` names follow adlfs where they mean the same thing): a managed identity by
default, created in each process that uses the filesystem and sharing keyless's token cache (``client_id``,
``object_id``, ``resource_id`` select a user-assigned one); ``credential=`` any azure-core TokenCredential;
Shared Key only when asked: ``account_key=`` or ``shared_key_from_env=True`` (``AZURE_STORAGE_KEY``).

Pickling (Dask ships filesystems to its workers) carries the options only: never a token, never a key. A
worker builds its own credential; a filesystem given an account key is pickled as ``shared_key_from_env``
(the worker reads ``AZURE_STORAGE_KEY`` itself), and one given a credential *object* refuses to be pickled,
because the object may hold tokens.

Writes are atomic: ``open(..., "wb")``, ``pipe_file`` and ``put_file`` write a temporary file
``.<name>.<random>.keyless-part`` next to the target, and only a complete one is renamed over the target
(Rename File with replace-if-exists). A failed or abandoned write deletes the temporary file, so the target
name holds either the old content or the new, never part of it. Missing parent directories are created, as
object stores behave (Dask and pandas expect it).

Errors are Python's: ``FileNotFoundError``, ``FileExistsError``, ``PermissionError`` (with the identity, the
missing data action and the role to assign), ``IsADirectoryError``, ``NotADirectoryError``, and ``OSError``
for the rest, each with keyless's explanation.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from fsspec.callbacks import DEFAULT_CALLBACK
from fsspec.spec import AbstractFileSystem
from fsspec.utils import tokenize

from keyless.emulator_info import ENV_EMULATOR
from keyless.files import errors as fe
from keyless.files import transfer
from keyless.files.client import ShareClient
from keyless.files.copying import wait_for_server_copy
from keyless.files.models import Entry, Properties
from keyless.files.parallel import RANGE_SIZE, ranges, run_bounded
from keyless.files.parts import remote_part_name
from keyless.files.times import parse_time
from keyless.files.urls import join_path, share_url
from keyless.fsspec_file import AzureFilesFile, _ParallelWriter, translate_errors
from keyless.fsspec_parts import one_listing_per_directory, part_names_for
from keyless.fsspec_readahead import BytesBuilder
from keyless.protocol import ENV_ACCOUNT_KEY

__all__ = ["AzureFilesFile", "AzureFilesFileSystem"]



class AzureFilesFileSystem(AbstractFileSystem):  # type: ignore[misc]  # fsspec is untyped
    """Azure file shares as an fsspec filesystem (see the module docstring for paths and credentials)."""

    protocol = ("azfiles",)
    root_marker = ""

    def __init__(
        self,
        account_name: str | None = None,
        *,
        credential: Any = None,
        account_key: str | None = None,
        shared_key_from_env: bool = False,
        client_id: str | None = None,
        object_id: str | None = None,
        resource_id: str | None = None,
        emulator: str | None = None,
        max_concurrency: int = 8,
        blocksize: int = RANGE_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if kwargs.get("client_secret") or kwargs.get("connection_string") or kwargs.get("sas_token"):
            raise ValueError(
                "azfiles: client_secret, connection_string and sas_token are not supported; pass "
                "credential=<any azure-core TokenCredential> (e.g. ClientSecretCredential), or nothing "
                "to use the machine's managed identity"
            )
        if shared_key_from_env and account_key is None:
            account_key = os.environ.get(ENV_ACCOUNT_KEY)
            if not account_key:
                raise PermissionError(
                    f"azfiles: shared_key_from_env is set but {ENV_ACCOUNT_KEY} is empty in this process "
                    f"(pid {os.getpid()}); set it on every worker, or use a managed identity"
                )
        self.account_name = account_name
        self._credential_obj = credential
        self._account_key = account_key
        self._selector = {"client_id": client_id, "object_id": object_id, "resource_id": resource_id}
        self._emulator_path = emulator or os.environ.get(ENV_EMULATOR) or None
        self.max_concurrency = max(1, int(max_concurrency))
        self.blocksize = blocksize
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], ShareClient] = {}
        self._emu: Any = None
        self._made_credential: Any = None

    # --- pickling: options only, never a token or a key ----------------------------------------------
    def _shippable_options(self) -> dict[str, Any]:
        """The options without secrets: what a pickle or ``to_dict`` carries."""
        if self._credential_obj is not None:
            raise TypeError(
                "azfiles: a filesystem built with a credential object cannot be pickled or serialised (the "
                "object may hold tokens); let each process use its managed identity (the default), or "
                f"Shared Key with shared_key_from_env=True and {ENV_ACCOUNT_KEY} set on every worker"
            )
        options = {k: v for k, v in self.storage_options.items() if k not in ("account_key", "credential")}
        if self._account_key is not None:
            options["shared_key_from_env"] = True
        return options

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self.storage_args, self._shippable_options())

    def to_dict(self, *, include_password: bool = True) -> dict[str, Any]:
        """fsspec's JSON form, without secrets whatever ``include_password`` says."""
        return {"cls": f"{type(self).__module__}:{type(self).__name__}", "protocol": "azfiles",
                "args": list(self.storage_args), **self._shippable_options()}

    # --- clients --------------------------------------------------------------------------------------
    def _emulator(self) -> Any:
        if self._emulator_path and self._emu is None:
            from keyless.emulator_info import load_emulator_info

            self._emu = load_emulator_info(self._emulator_path)
        return self._emu

    def credential(self) -> Any:
        """The credential requests use in this process (built here on first use: never shipped)."""
        if self._credential_obj is not None:
            return self._credential_obj
        with self._lock:
            if self._made_credential is None:
                from keyless.identity import ManagedIdentityCredential

                kwargs: dict[str, Any] = {k: v for k, v in self._selector.items() if v}
                emu = self._emulator()
                if emu is not None:
                    kwargs.update(source="imds", imds_host=emu.imds_url)
                self._made_credential = ManagedIdentityCredential(shared_cache=True, **kwargs)
            return self._made_credential

    def _client(self, account: str, share: str) -> ShareClient:
        key = (account, share)
        client = self._clients.get(key)
        if client is not None:
            return client
        emu = self._emulator()
        target = share_url(account, share, emulator_url=emu.files_url if emu else None)
        client = ShareClient(
            target,
            None if self._account_key else self.credential(),
            account_key=self._account_key,
            ca_cert=emu.ca_cert if emu else None,
            emulator_url=emu.files_url if emu else None,
            concurrency=self.max_concurrency,
        )
        with self._lock:
            return self._clients.setdefault(key, client)

    def split_path(self, path: str) -> tuple[str, str, str]:
        """``(account, share, share-relative path)`` of a filesystem path or URL."""
        path = self._strip_protocol(path)
        parts = [p for p in path.split("/") if p]
        if self.account_name:
            account = self.account_name
        else:
            if not parts:
                raise ValueError(
                    "azfiles: a path must name an account and a share (azfiles://account/share/path), "
                    "or give account_name= and use azfiles://share/path"
                )
            account = parts.pop(0)
        if not parts:
            form = "share/path" if self.account_name else "account/share/path"
            raise ValueError(f"azfiles: {path!r} names no share (expected {form})")
        return account, parts[0], join_path(*parts[1:])

    def _resolve(self, path: str) -> tuple[ShareClient, str]:
        account, share, rel = self.split_path(path)
        return self._client(account, share), rel

    def _name(self, client: ShareClient, rel: str) -> str:
        head = client.share if self.account_name else f"{client.account}/{client.share}"
        return f"{head}/{rel}" if rel else head

    # --- listing and properties -----------------------------------------------------------------------
    def _entry_info(self, client: ShareClient, entry: Entry) -> dict[str, Any]:
        return {
            "name": self._name(client, entry.path),
            "size": 0 if entry.is_dir else (entry.size or 0),
            "type": "directory" if entry.is_dir else "file",
            "etag": entry.etag,
            "last_modified": entry.last_modified,
            "last_write_time": entry.last_write_time,
            "file_id": entry.file_id,
        }

    def _props_info(self, client: ShareClient, props: Properties) -> dict[str, Any]:
        return {
            "name": self._name(client, props.path),
            "size": 0 if props.is_dir else props.size,
            "type": "directory" if props.is_dir else "file",
            "etag": props.etag,
            "last_modified": props.last_modified,
            "last_write_time": props.last_write_time,
            "creation_time": props.creation_time,
            "content_type": props.content_type,
            "content_md5": props.content_md5,
            "metadata": props.metadata,
        }

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        client, rel = self._resolve(path)
        with translate_errors(path):
            try:
                infos = [self._entry_info(client, e) for e in client.listdir(rel)]
            except fe.NotFound:
                if not rel:
                    raise
                props = client.properties(rel)  # a file lists as itself, as fsspec expects
                infos = [self._props_info(client, props)]
        infos.sort(key=lambda i: i["name"])
        return infos if detail else [i["name"] for i in infos]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        client, rel = self._resolve(path)
        with translate_errors(path):
            return self._props_info(client, client.properties(rel))

    def isdir(self, path: str) -> bool:
        try:
            client, rel = self._resolve(path)
        except ValueError:
            return False
        with translate_errors(path):
            return client.is_dir(rel)

    def modified(self, path: str) -> datetime:
        info = self.info(path)
        stamp = parse_time(info["last_write_time"]) or parse_time(info["last_modified"])
        if stamp is None:
            raise OSError(errno.EIO, f"azfiles: the service sent no modification time for {path}")
        return datetime.fromtimestamp(stamp).astimezone()

    def created(self, path: str) -> datetime:
        stamp = parse_time(self.info(path).get("creation_time", ""))
        if stamp is None:
            raise OSError(errno.EIO, f"azfiles: the service sent no creation time for {path}")
        return datetime.fromtimestamp(stamp).astimezone()

    def ukey(self, path: str) -> str:
        """Changes whenever the content does: the ETag (with the size, for readability)."""
        info = self.info(path)
        return f"{info['etag']}-{info['size']}"

    def checksum(self, path: str) -> int:
        """An integer that changes with :meth:`ukey` (Dask's read_parquet keys its metadata cache by it)."""
        return int(tokenize(self.ukey(path)), 16)

    # --- directories ----------------------------------------------------------------------------------
    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        client, rel = self._resolve(path)
        with translate_errors(path):
            client.mkdir(rel, parents=create_parents, exist_ok=False)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        client, rel = self._resolve(path)
        with translate_errors(path):
            client.mkdir(rel, parents=True, exist_ok=exist_ok)

    def rmdir(self, path: str) -> None:
        client, rel = self._resolve(path)
        with translate_errors(path):
            client.delete_directory(rel)

    def _ensure_parent(self, client: ShareClient, rel: str) -> None:
        parent = rel.rpartition("/")[0]
        if parent:
            client.mkdir(parent, parents=True, exist_ok=True)

    # --- delete, move, copy ---------------------------------------------------------------------------
    def rm_file(self, path: str) -> None:
        client, rel = self._resolve(path)
        with translate_errors(path):
            client.delete_file(rel)

    def _rm(self, path: str) -> None:
        client, rel = self._resolve(path)
        with translate_errors(path):
            if client.is_dir(rel):
                client.delete_directory(rel)
            else:
                client.delete_file(rel)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        if maxdepth is not None:
            super().rm(path, recursive=recursive, maxdepth=maxdepth)
            return
        # The named items (globs expanded); a recursive delete of a directory is one listing of its tree.
        tops = self.expand_path(path, recursive=False)
        for top in sorted(tops, key=len, reverse=True):
            client, rel = self._resolve(top)
            with translate_errors(top):
                try:
                    client.delete(rel, recursive=recursive)
                except fe.NotFound:
                    if any(top.startswith(other + "/") for other in tops):
                        continue  # already gone with a directory deleted before it
                    raise
        self.invalidate_cache()

    def mv(self, path1: Any, path2: Any, recursive: bool = False, maxdepth: int | None = None,
           **kwargs: Any) -> None:
        """A single file or directory within one share moves by a server-side rename; anything else
        (globs, lists, across shares) copies and deletes, as fsspec does."""
        single = isinstance(path1, str) and isinstance(path2, str) and not self._is_glob(path1)
        if single:
            src, srel = self._resolve(path1)
            dst, drel = self._resolve(path2)
            if (src.account, src.share) == (dst.account, dst.share) and srel and drel:
                with translate_errors(path1):
                    is_dir = src.is_dir(srel)  # a directory moves whole, in one request
                    if dst.is_dir(drel):
                        drel = join_path(drel, srel.rpartition("/")[2])
                    self._ensure_parent(dst, drel)
                    src.rename(srel, drel, replace=True, is_dir=is_dir)
                self.invalidate_cache()
                return
        super().mv(path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)

    @staticmethod
    def _is_glob(path: str) -> bool:
        return any(c in path for c in "*?[")

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Server-side Copy File within an account (no bytes through this machine); across accounts,
        streamed range by range. Either way the copy lands under a temporary name and is renamed into
        place only when complete."""
        src, srel = self._resolve(path1)
        dst, drel = self._resolve(path2)
        with translate_errors(path1):
            props = src.properties(srel)
            if props.is_dir:
                dst.mkdir(drel, parents=True, exist_ok=True)
                return
            self._ensure_parent(dst, drel)
            part = remote_part_name(drel)
            try:
                if src.account == dst.account:
                    self._server_copy(src, srel, dst, part)
                else:
                    transfer.copy_file(src, srel, dst, part, props=props)
                dst.rename(part, drel, replace=True, is_dir=False)
            except BaseException:
                with contextlib.suppress(fe.FilesError):
                    dst.delete_file(part)
                raise

    @staticmethod
    def _server_copy(src: ShareClient, srel: str, dst: ShareClient, drel: str) -> None:
        resp = dst.send(
            "PUT",
            drel,
            headers={"x-ms-copy-source": src.url(srel).url},
            operation="copy file",
            action="Microsoft.Storage/storageAccounts/fileServices/fileshares/files/write",
            idempotent=True,
        )
        # Copy File may finish after it answers: wait for it; failed or aborted is an error.
        wait_for_server_copy(dst, drel, resp.header("x-ms-copy-status"), source=srel)

    # --- whole-file reads and writes --------------------------------------------------------------------
    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        client, rel = self._resolve(path)
        with translate_errors(path):
            props = client.properties(rel)
            if props.is_dir:
                raise IsADirectoryError(errno.EISDIR, "azfiles: is a directory", path)
            size = props.size
            lo = 0 if start is None else (max(size + start, 0) if start < 0 else min(start, size))
            hi = size if end is None else (max(size + end, 0) if end < 0 else min(end, size))
            if hi <= lo:
                return b""
            return self._read(client, rel, lo, hi)

    def _read(self, client: ShareClient, rel: str, lo: int, hi: int, *, etag: str = "") -> bytes:
        """Bytes ``[lo, hi)`` in ranges of at most 4 MiB (each checked), ``max_concurrency`` in flight, each
        read straight into its place in the one ``bytes`` returned (:class:`BytesBuilder`: the size is
        allocated once, with no buffer per range and no final copy). ``etag``: every range must come from
        that version of the file (a file replaced meanwhile fails the read rather than mixing two
        versions)."""
        out = BytesBuilder(hi - lo)

        def fetch(rng: tuple[int, int]) -> None:
            offset, length = rng
            resp = client.read_range_into(rel, lo + offset, out.view[offset : offset + length])
            got = resp.header("etag")
            if etag and got and got.strip('"') != etag.strip('"'):
                raise fe.IntegrityError(f"{rel} changed on the service while it was being read")

        run_bounded(fetch, ranges(hi - lo), self.max_concurrency)
        return out.finish()

    def cat_ranges(self, paths: list[str], starts: Any, ends: Any, max_gap: Any = None,
                   on_error: str = "return", **kwargs: Any) -> list[Any]:
        """Many ranges (parquet footers and row groups) fetched in parallel."""
        if not isinstance(starts, list):
            starts = [starts] * len(paths)
        if not isinstance(ends, list):
            ends = [ends] * len(paths)
        if len(starts) != len(paths) or len(ends) != len(paths):
            raise ValueError("azfiles: paths, starts and ends must have the same length")
        out: list[Any] = [None] * len(paths)

        def one(i: int) -> None:
            try:
                out[i] = self.cat_file(paths[i], starts[i], ends[i])
            except Exception as exc:
                if on_error != "return":
                    raise
                out[i] = exc

        run_bounded(one, range(len(paths)), self.max_concurrency)
        return out

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        """Ranges sent in parallel to a part file created at the exact size (parents as needed), then
        renamed over the target: a small file costs three requests."""
        client, rel = self._resolve(path)
        part = remote_part_name(rel)
        writer = _ParallelWriter(client, part, self.max_concurrency)
        with translate_errors(path):
            try:
                writer.write(0, value, final=True)
                writer.finish(len(value))
                client.rename(part, rel, replace=mode != "create", is_dir=False)
            except BaseException:
                writer.abort()
                with contextlib.suppress(fe.FilesError):
                    client.delete_file(part)
                raise

    def put_file(self, lpath: str, rpath: str, callback: Any = None, mode: str = "overwrite",
                 **kwargs: Any) -> None:
        """``keyless put``'s parallel upload (:func:`keyless.files.transfer.upload_file`): ranges read
        with ``pread`` by the thread that sends them, published by a rename. ``mode="create"`` refuses an
        existing target, and a target created meanwhile is never replaced."""
        client, rel = self._resolve(rpath)
        with translate_errors(rpath):
            if os.path.isdir(lpath):
                client.mkdir(rel, parents=True, exist_ok=True)
                return
            create = mode == "create"
            if create and client.file_etag(rel) is not None:
                raise FileExistsError(errno.EEXIST, "azfiles: the file exists", rpath)
            progress = _callback_progress(callback, os.path.getsize(lpath))
            try:
                transfer.upload_file(client, Path(lpath), rel, progress=progress, guard=create)
            except fe.ChangedDuringUpload:
                raise FileExistsError(errno.EEXIST, "azfiles: the file was created meanwhile",
                                      rpath) from None

    def get_file(self, rpath: str, lpath: str, callback: Any = None, outfile: Any = None,
                 **kwargs: Any) -> None:
        client, rel = self._resolve(rpath)
        with translate_errors(rpath):
            props = client.properties(rel)
            if props.is_dir:
                os.makedirs(lpath, exist_ok=True)
                return
            if outfile is not None:  # streamed through the read-ahead window: memory stays bounded
                with self.open(rpath, "rb", size=props.size) as f:
                    shutil.copyfileobj(f, outfile, RANGE_SIZE)
                return
            parent = os.path.dirname(lpath)
            if parent:
                os.makedirs(parent, exist_ok=True)  # as fsspec's local filesystem with auto_mkdir
            progress = _callback_progress(callback, props.size)
            transfer.download_file(client, rel, Path(lpath), progress=progress, props=props,
                                   part_names=part_names_for(parent))

    def get(self, rpath: Any, lpath: Any, recursive: bool = False, callback: Any = DEFAULT_CALLBACK,
            maxdepth: int | None = None, **kwargs: Any) -> None:
        """fsspec's ``get`` (paths, globs, callbacks: :meth:`get_file` per file), each local directory
        listed for killed downloads' part files once for the whole call (:mod:`keyless.fsspec_parts`)."""
        with one_listing_per_directory():
            super().get(rpath, lpath, recursive=recursive, callback=callback, maxdepth=maxdepth, **kwargs)

    # --- open -------------------------------------------------------------------------------------------
    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, autocommit: bool = True,
              cache_options: dict[str, Any] | None = None, **kwargs: Any) -> AzureFilesFile:
        return AzureFilesFile(self, path, mode, block_size=block_size or self.blocksize,
                              autocommit=autocommit, cache_options=cache_options, **kwargs)

    def whoami(self) -> str:
        """Who requests are made as, in this process (for diagnostics; never a secret)."""
        if self._account_key is not None:
            return "SharedKey"
        cred = self.credential()
        describe = getattr(cred, "describe", None)
        return str(describe()) if callable(describe) else type(cred).__name__


def _rebuild(cls: type[AzureFilesFileSystem], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> AzureFilesFileSystem:
    return cls(*args, **kwargs)


def _callback_progress(callback: Any, total: int) -> transfer.Progress:
    if callback is None:
        return lambda _n: None
    callback.set_size(total)
    lock = threading.Lock()

    def progress(n: int) -> None:
        with lock:  # ranges finish on many threads
            callback.relative_update(n)

    return progress
