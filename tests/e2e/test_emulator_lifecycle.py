"""The emulator as a process: clean stops on signals, persistence across restarts, kill -9 safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import threading
from pathlib import Path

import pytest
from azure.core.exceptions import AzureError
from azure.storage.fileshare import ShareClient

from keyless.testing import EmulatorProcess, start_emulator


def key_share(emu: EmulatorProcess) -> ShareClient:
    acct = emu.account()
    return ShareClient(account_url=acct["url"], share_name="demo",
                       credential={"account_name": acct["name"], "account_key": acct["key"]},
                       connection_verify=emu.ca_cert, retry_total=0)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(tmp_path: Path, sig: int) -> None:
    emu = start_emulator(tmp_path)
    info_path = emu.data_dir / "emulator.json"
    assert stat.S_IMODE(os.stat(info_path).st_mode) == 0o600  # holds account keys
    assert emu.stop(sig) == 0
    assert not info_path.exists()
    assert "Traceback" not in emu.stderr()


def test_state_survives_restart(tmp_path: Path) -> None:
    with start_emulator(tmp_path) as emu:
        share = key_share(emu)
        share.get_directory_client("kept").create_directory()
        share.get_file_client("kept/data.bin").upload_file(b"persisted bytes")
        share.get_file_client("kept/data.bin").set_file_metadata({"a": "1"})
        key_before = emu.account()["key"]
        ca_before = Path(emu.ca_cert).read_bytes()
    with start_emulator(tmp_path) as emu:
        assert emu.account()["key"] == key_before
        assert Path(emu.ca_cert).read_bytes() == ca_before
        fc = key_share(emu).get_file_client("kept/data.bin")
        assert fc.download_file().readall() == b"persisted bytes"
        assert fc.get_file_properties().metadata == {"a": "1"}


def test_kill_9_mid_write_leaves_no_half_applied_operation(tmp_path: Path) -> None:
    emu = start_emulator(tmp_path)
    share = key_share(emu)
    share.get_directory_client("churn").create_directory()
    payload = os.urandom(3 * 1024 * 1024)
    stop = threading.Event()
    completed: list[str] = []

    def churn() -> None:
        i = 0
        while not stop.is_set():
            name = f"churn/f{i}.bin"
            try:
                share.get_file_client(name).upload_file(payload)
                share.get_file_client(name).rename_file(f"churn/done{i}.bin")
                completed.append(f"churn/done{i}.bin")
            except AzureError:
                return
            i += 1

    worker = threading.Thread(target=churn)
    worker.start()
    while len(completed) < 2 and worker.is_alive():
        threading.Event().wait(0.05)
    threading.Event().wait(0.15)  # land the kill in the middle of the next upload
    assert emu.proc is not None
    emu.proc.send_signal(signal.SIGKILL)
    emu.proc.wait(timeout=10)
    stop.set()
    worker.join(timeout=30)
    assert completed, "the churn made progress before the kill"

    db = emu.data_dir / "meta.sqlite3"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    with start_emulator(tmp_path) as again:
        share = key_share(again)
        for name in completed:  # every acknowledged operation is there, whole
            assert share.get_file_client(name).download_file().readall() == payload
        for item in share.get_directory_client("churn").list_directories_and_files():
            fc = share.get_file_client(f"churn/{item['name']}")
            size = fc.get_file_properties().size
            assert len(fc.download_file().readall()) == size  # metadata and bytes agree
