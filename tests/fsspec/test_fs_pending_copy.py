"""``cp_file``'s server-side Copy File when the service answers ``pending``: it waits for the copy to end
(Get File Properties with back-off) and reports an aborted or failed copy as an error, never as a copied
file. The emulator holds copies pending when a copy rate is set (``EmulatorProcess.set_copy_rate``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from azure.storage.fileshare import ShareFileClient

from keyless.files.parts import PART_SUFFIX
from keyless.fsspec import AzureFilesFileSystem
from keyless.testing import EmulatorProcess

from .conftest import ACCOUNT, SHARE


@pytest.fixture
def copy_rate(emulator: EmulatorProcess) -> Iterator[EmulatorProcess]:
    yield emulator
    emulator.set_copy_rate(None)


def test_cp_file_waits_for_a_pending_copy(azfs: AzureFilesFileSystem, root: str,
                                          copy_rate: EmulatorProcess) -> None:
    data = b"p" * (48 * 1024)
    azfs.pipe_file(f"{root}/src.bin", data)
    copy_rate.set_copy_rate(64 * 1024)  # the copy answers pending and takes most of a second
    azfs.cp_file(f"{root}/src.bin", f"{root}/dst.bin")
    assert azfs.cat_file(f"{root}/dst.bin") == data
    ops = [r["OperationName"] for r in copy_rate.audit("StorageFileLogs") if root in r.get("Uri", "")]
    assert "CopyFile" in ops and ops.count("GetFileProperties") >= 2  # it asked again while pending


def test_cp_file_reports_an_aborted_copy_as_an_error(azfs: AzureFilesFileSystem, root: str,
                                                     copy_rate: EmulatorProcess) -> None:
    azfs.pipe_file(f"{root}/src.bin", b"a" * 4096)
    copy_rate.set_copy_rate(0)  # held pending until aborted
    outcome: list[BaseException | None] = []

    def copy() -> None:
        try:
            azfs.cp_file(f"{root}/src.bin", f"{root}/dst.bin")
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=copy)
    worker.start()
    acct = copy_rate.account(ACCOUNT)
    deadline = time.monotonic() + 20
    part = None
    while part is None and time.monotonic() < deadline:
        part = next((p for p in azfs.ls(root, detail=False, refresh=True) if p.endswith(PART_SUFFIX)), None)
        time.sleep(0.05)
    assert part is not None
    target = ShareFileClient(acct["url"], SHARE, part.split("/", 1)[1], connection_verify=copy_rate.ca_cert,
                             credential={"account_name": acct["name"], "account_key": acct["key"]})
    props = target.get_file_properties()
    while props.copy.status != "pending":  # the part may exist a moment before its copy is recorded
        props = target.get_file_properties()
    target.abort_copy(props)
    worker.join(30)
    assert not worker.is_alive() and len(outcome) == 1
    error = outcome[0]
    assert isinstance(error, OSError) and "aborted" in str(error), error
    # Nothing that looks copied is left behind: no destination, no part file.
    assert not azfs.exists(f"{root}/dst.bin")
    assert not [p for p in azfs.ls(root, detail=False, refresh=True) if p.endswith(PART_SUFFIX)]
