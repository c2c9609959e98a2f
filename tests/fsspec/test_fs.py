"""The ``azfiles`` filesystem against the emulator: discovery, URL forms, errors, files, pickling, pandas."""

from __future__ import annotations

import errno
import json
import pickle

import fsspec
import pytest

from keyless.files.parts import PART_SUFFIX
from keyless.fsspec import AzureFilesFileSystem
from keyless.testing import EmulatorProcess

from .conftest import ACCOUNT


def _parts(azfs: AzureFilesFileSystem, root: str) -> list[str]:
    return [p for p in azfs.find(root) if p.endswith(PART_SUFFIX)]


def test_entry_point_finds_the_filesystem_with_nothing_imported(emulator_env: str) -> None:
    cls = fsspec.get_filesystem_class("azfiles")
    assert cls.__module__ == "keyless.fsspec" and cls.__name__ == "AzureFilesFileSystem"


def test_both_url_forms_reach_the_same_file(azfs: AzureFilesFileSystem, root: str) -> None:
    azfs.pipe_file(f"{root}/a.txt", b"hello")
    with fsspec.open(f"azfiles://{ACCOUNT}/{root}/a.txt", "rb") as f:
        assert f.read() == b"hello"
    with fsspec.open(f"azfiles://{root}/a.txt", "rb", account_name=ACCOUNT) as f:
        assert f.read() == b"hello"
    fs, path = fsspec.core.url_to_fs(f"azfiles://{ACCOUNT}/{root}/a.txt")
    assert path == f"{ACCOUNT}/{root}/a.txt"
    assert fs.info(path)["name"] == path


def test_a_path_without_a_share_is_refused_with_the_expected_form(azfs: AzureFilesFileSystem) -> None:
    with pytest.raises(ValueError, match="names no share"):
        azfs.info("")
    bare = AzureFilesFileSystem(skip_instance_cache=True)
    with pytest.raises(ValueError, match="account_name"):
        bare.info("")


def test_ls_info_find_du_and_times(azfs: AzureFilesFileSystem, root: str) -> None:
    azfs.pipe({f"{root}/d/x.bin": b"12345", f"{root}/d/e/y.bin": b"ab", f"{root}/z.txt": b""})
    listing = azfs.ls(root)
    assert [(i["name"], i["type"], i["size"]) for i in listing] == [
        (f"{root}/d", "directory", 0),
        (f"{root}/z.txt", "file", 0),
    ]
    assert azfs.ls(f"{root}/d/x.bin", detail=False) == [f"{root}/d/x.bin"]
    assert sorted(azfs.find(root)) == [f"{root}/d/e/y.bin", f"{root}/d/x.bin", f"{root}/z.txt"]
    assert azfs.du(root) == 7
    assert azfs.glob(f"{root}/**/*.bin") == [f"{root}/d/e/y.bin", f"{root}/d/x.bin"]
    assert azfs.isdir(f"{root}/d") and not azfs.isfile(f"{root}/d")
    assert azfs.isfile(f"{root}/z.txt") and not azfs.isdir(f"{root}/z.txt")
    assert azfs.modified(f"{root}/d/x.bin").tzinfo is not None
    before = azfs.ukey(f"{root}/d/x.bin")
    azfs.pipe_file(f"{root}/d/x.bin", b"54321")
    assert azfs.ukey(f"{root}/d/x.bin") != before


def test_checksum_follows_the_content(azfs: AzureFilesFileSystem, root: str) -> None:
    # dask.dataframe.read_parquet calls checksum() on every file inside a cached property; an
    # AttributeError raised there made Dask retry the property forever instead of failing.
    path = f"{root}/c.bin"
    azfs.pipe_file(path, b"one")
    first = azfs.checksum(path)
    assert isinstance(first, int) and azfs.checksum(path) == first
    azfs.pipe_file(path, b"two")
    assert azfs.checksum(path) != first


def test_errors_are_pythons_with_keyless_explanations(azfs: AzureFilesFileSystem, root: str) -> None:
    with pytest.raises(FileNotFoundError):
        azfs.info(f"{root}/missing")
    with pytest.raises(FileNotFoundError):
        azfs.cat_file(f"{root}/missing")
    azfs.pipe_file(f"{root}/f", b"1")
    with pytest.raises(FileExistsError):
        azfs.pipe_file(f"{root}/f", b"2", mode="create")
    assert azfs.cat_file(f"{root}/f") == b"1"
    with pytest.raises(FileExistsError):
        azfs.mkdir(root)
    with pytest.raises(IsADirectoryError):
        azfs.cat_file(root)
    azfs.pipe_file(f"{root}/full/x", b"1")
    with pytest.raises(OSError) as info:
        azfs.rm(f"{root}/full")
    assert info.value.errno == errno.ENOTEMPTY and "What to do" in str(info.value)


def test_open_reads_with_seek_and_ranges(azfs: AzureFilesFileSystem, root: str) -> None:
    data = bytes(range(256)) * 40_000  # 10 MB: several blocks and ranges
    azfs.pipe_file(f"{root}/big", data)
    with azfs.open(f"{root}/big", "rb", block_size=1 << 20) as f:
        assert f.read(10) == data[:10]
        f.seek(5_000_000)
        assert f.read(100) == data[5_000_000:5_000_100]
        f.seek(-7, 2)
        assert f.read() == data[-7:]
    assert azfs.cat_file(f"{root}/big", start=-8) == data[-8:]
    assert azfs.cat_file(f"{root}/big", 4_194_300, 4_194_310) == data[4_194_300:4_194_310]
    got = azfs.cat_ranges([f"{root}/big", f"{root}/big"], [0, 9_000_000], [4, 9_000_004])
    assert got == [data[:4], data[9_000_000:9_000_004]]
    with azfs.open(f"{root}/big", "r", encoding="latin-1") as text:
        assert text.read(3) == data[:3].decode("latin-1")


def test_writes_are_committed_on_close_and_never_half_visible(azfs: AzureFilesFileSystem, root: str) -> None:
    target = f"{root}/out.bin"
    chunk = b"x" * (3 << 20)
    with azfs.open(target, "wb", block_size=1 << 20) as f:
        f.write(chunk)  # flushed in blocks to the temporary file
        assert not azfs.exists(target)
        assert len(_parts(azfs, root)) == 1
        f.write(b"tail")
    assert azfs.cat_file(target) == chunk + b"tail"
    assert _parts(azfs, root) == []

    class Boom(Exception):
        pass

    with pytest.raises(Boom), azfs.open(target, "wb", block_size=1 << 20) as f:
        f.write(b"y" * (2 << 20))
        raise Boom
    assert azfs.cat_file(target) == chunk + b"tail"  # the old content, whole
    assert _parts(azfs, root) == []
    with pytest.raises(FileExistsError):
        azfs.open(target, "xb")
    with azfs.open(f"{root}/new/t.txt", "w") as text:  # parents created as needed
        text.write("héllo\n")
    assert azfs.cat_file(f"{root}/new/t.txt") == "héllo\n".encode()


def test_failed_write_leaves_nothing_under_the_name(
    azfs: AzureFilesFileSystem, root: str, emulator: EmulatorProcess
) -> None:
    # Every write range refused: the write fails and the target never appears.
    rule = {"target": "files", "action": "status", "status": 500, "method": "PUT", "count": 50}
    emulator.set_faults([rule])
    try:
        with pytest.raises(OSError), azfs.open(f"{root}/never.bin", "wb") as f:
            f.write(b"z" * 1000)
    finally:
        emulator.set_faults([])
    assert not azfs.exists(f"{root}/never.bin")


def test_mv_is_a_rename_and_cp_a_server_copy(
    azfs: AzureFilesFileSystem, root: str, emulator: EmulatorProcess
) -> None:
    azfs.pipe_file(f"{root}/a/one", b"1" * 1000)
    azfs.mv(f"{root}/a", f"{root}/b")
    assert not azfs.exists(f"{root}/a") and azfs.cat_file(f"{root}/b/one") == b"1" * 1000
    azfs.cp_file(f"{root}/b/one", f"{root}/c/two")
    assert azfs.cat_file(f"{root}/c/two") == b"1" * 1000
    ops = [r["OperationName"] for r in emulator.audit("StorageFileLogs") if "/c/" in r.get("Uri", "")]
    assert "CopyFile" in ops and "PutRange" not in ops, ops  # no bytes through this machine
    azfs.rm(f"{root}/b", recursive=True)
    assert not azfs.exists(f"{root}/b")


def test_get_and_put_use_the_parallel_transfers(azfs: AzureFilesFileSystem, root: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "up.bin"
    src.write_bytes(b"q" * (9 << 20))
    azfs.put(str(src), f"{root}/up.bin")
    assert azfs.size(f"{root}/up.bin") == 9 << 20
    azfs.get(f"{root}/up.bin", str(tmp_path / "down.bin"))
    assert (tmp_path / "down.bin").read_bytes() == src.read_bytes()


def test_pickle_carries_no_token_and_no_key(azfs: AzureFilesFileSystem, root: str, emulator: EmulatorProcess,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    azfs.pipe_file(f"{root}/p", b"1")  # the filesystem has used a token
    token = azfs.credential().get_token("https://storage.azure.com/.default").token
    blob = pickle.dumps(azfs)
    assert token.encode() not in blob and token.split(".")[2].encode() not in blob
    clone = pickle.loads(blob)  # noqa: S301 - our own bytes
    assert clone.cat_file(f"{root}/p") == b"1"  # it authenticates by itself

    key = emulator.account()["key"]
    keyed = AzureFilesFileSystem(account_name=ACCOUNT, account_key=key, skip_instance_cache=True)
    assert keyed.cat_file(f"{root}/p") == b"1"
    blob = pickle.dumps(keyed)
    assert key.encode() not in blob
    monkeypatch.delenv("AZURE_STORAGE_KEY", raising=False)
    with pytest.raises(PermissionError, match="AZURE_STORAGE_KEY"):
        pickle.loads(blob)  # noqa: S301 - our own bytes
    monkeypatch.setenv("AZURE_STORAGE_KEY", key)
    assert pickle.loads(blob)  # noqa: S301 - our own bytes.cat_file(f"{root}/p") == b"1"

    with_object = AzureFilesFileSystem(account_name=ACCOUNT, credential=azfs.credential(),
                                       skip_instance_cache=True)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(with_object)
    assert key not in json.dumps(keyed.to_dict())


def test_pandas_round_trips_csv_and_parquet(azfs: AzureFilesFileSystem, root: str) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"n": range(1000), "s": [f"row {i}" for i in range(1000)]})
    url = f"azfiles://{ACCOUNT}/{root}"
    frame.to_csv(f"{url}/t.csv", index=False)
    pd.testing.assert_frame_equal(pd.read_csv(f"{url}/t.csv"), frame)
    frame.to_parquet(f"{url}/t.parquet", engine="pyarrow")
    pd.testing.assert_frame_equal(pd.read_parquet(f"{url}/t.parquet", engine="pyarrow"), frame)
    opts = {"account_name": ACCOUNT}
    pd.testing.assert_frame_equal(
        pd.read_parquet(f"azfiles://{root}/t.parquet", storage_options=opts), frame
    )
