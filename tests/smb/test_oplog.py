"""set / list / clear are logged where azfilesauth logs them (LOG_FILE_PATH or syslog), never with a token."""

from __future__ import annotations

import io
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keyless.smb import oplog
from keyless.smb.azfilesauthmanager import main
from keyless.smb.config import parse_config

URI = "https://devaccount.file.core.windows.net"
SERVER = "cifs/devaccount.file.core.windows.net@FILES.AZURE.STORAGE.MICROSOFT.COM"


@pytest.fixture(autouse=True)
def _quiet_afterwards() -> Iterator[None]:
    yield
    oplog.configure(parse_config("LOG_DESTINATION: syslog\n"), io.StringIO(), syslog_socket="/nonexistent")


def run(args: list[str], config: Path, ticket_server: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main([*args, "--config", str(config), "--no-register"], out=out, err=err,
              env={"KEYLESS_EMULATOR": str(ticket_server.emulator_json)})
    return rc, out.getvalue(), err.getvalue()


def test_log_file_gets_every_operation(ticket_server: Any, tmp_path: Path) -> None:
    log = tmp_path / "azfilesauth.log"
    config = tmp_path / "config.yaml"
    config.write_text(f"LOG_DESTINATION: file\nLOG_FILE_PATH: {log}\nUSER_UID: 0\n"
                      f"KRB5_CC_NAME: FILE:{tmp_path / 'cc'}\n")
    token = ticket_server.token("vm")
    assert run(["set", URI, token], config, ticket_server)[0] == 0
    assert run(["list"], config, ticket_server)[0] == 0
    assert run(["clear", URI], config, ticket_server)[0] == 0
    refused = ticket_server.token("reader")
    assert run(["set", URI, refused], config, ticket_server)[0] == 1
    text = log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert f"Stored the ticket for {SERVER}" in text
    assert "Listing credentials in credential cache" in text
    assert f"Clear credential for {SERVER}" in text
    assert "failed (role_missing)" in text and "[ERROR]" in text
    assert all(line.split(" ", 3)[2].startswith("azfilesauth[") for line in text.splitlines())
    assert token not in text and refused not in text
    assert token.split(".")[2] not in text  # not even the signature


def test_missing_log_directory_falls_back_to_syslog(tmp_path: Path) -> None:
    sock_path = tmp_path / "log.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(sock_path))
    receiver.settimeout(5)
    err = io.StringIO()
    try:
        cfg = parse_config(f"LOG_DESTINATION: file\nLOG_FILE_PATH: {tmp_path / 'no' / 'such.log'}\n")
        oplog.configure(cfg, err, syslog_socket=str(sock_path))
        oplog.log().info("Listing credentials in credential cache %s", "FILE:/tmp/x")
        datagram = receiver.recv(4096).decode()
    finally:
        receiver.close()
    assert "does not exist; logging to syslog" in err.getvalue()
    # <14> = facility LOG_USER (1) * 8 + severity info (6), as openlog("azfilesauth", ..., LOG_USER) sends
    assert datagram.startswith("<14>azfilesauth[") and "Listing credentials" in datagram
