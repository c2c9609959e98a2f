"""``keyless doctor --smb``: each refusal the ticket endpoint and the machine can produce, named."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from keyless.doctor.result import Status
from keyless.doctor.smb import SmbTarget, run_smb_checks
from keyless.smb.azfilesauthmanager import main as manager

URI = "https://devaccount.file.core.windows.net"


@pytest.fixture
def rule(tmp_path: Path) -> tuple[Path, ...]:
    conf = tmp_path / "request-key.d"
    conf.mkdir()
    (conf / "cifs.spnego.conf").write_text("create cifs.spnego * * /usr/sbin/cifs.upcall %k\n")
    return (conf,)


def config(tmp_path: Path, cache: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"USER_UID: 0\nKRB5_CC_NAME: FILE:{cache}\n")
    return path


def checks(ticket_server: Any, uri: str, token: str, cfg: Path, paths: tuple[Path, ...]) -> dict[str, Any]:
    emu = {"files_url": ticket_server.url, "ca_cert": ticket_server.ca_cert, "imds_url": "http://127.0.0.1:9"}
    results = run_smb_checks(SmbTarget(uri, config_path=str(cfg), emulator=emu, request_key_paths=paths,
                                       token=token))
    return {r.name: r for r in results}


def set_ticket(ticket_server: Any, cfg: Path) -> None:
    env = {"KEYLESS_EMULATOR": str(ticket_server.emulator_json)}
    rc = manager(["set", URI, ticket_server.token("vm"), "--config", str(cfg), "--no-register"],
                 out=io.StringIO(), err=io.StringIO(), env=env)
    assert rc == 0


def test_healthy(ticket_server: Any, tmp_path: Path, rule: tuple[Path, ...]) -> None:
    cfg = config(tmp_path, tmp_path / "cc")
    set_ticket(ticket_server, cfg)
    found = checks(ticket_server, URI, ticket_server.token("vm"), cfg, rule)
    for name in ("smb-endpoint", "smb-token", "smb-exchange", "smb-clock", "smb-cache", "smb-request-key"):
        assert found[name].status == Status.OK, found[name]
    assert "SMB MI Admin" in found["smb-exchange"].detail and "cruid=0" in found["smb-cache"].detail


@pytest.mark.parametrize(("uri", "identity", "resource", "check", "text"), [
    (URI, "reader", "https://storage.azure.com", "smb-exchange",
     "role missing (Storage File Data SMB MI Admin)"),
    ("https://nosmbacct.file.core.windows.net", "vm", "https://storage.azure.com", "smb-exchange",
     "SMB OAuth is off"),
    (URI, "vm", "https://storage.azure.com/", "smb-token", "trailing slash"),
])
def test_exchange_refusals_named(ticket_server: Any, tmp_path: Path, rule: tuple[Path, ...], uri: str,
                                 identity: str, resource: str, check: str, text: str) -> None:
    cfg = config(tmp_path, tmp_path / "cc")
    found = checks(ticket_server, uri, ticket_server.token(identity, resource), cfg, rule)
    assert found[check].status == Status.FAIL and text in found[check].detail, found[check]
    assert found[check].fix


def test_missing_request_key_rule(ticket_server: Any, tmp_path: Path) -> None:
    empty = tmp_path / "empty.d"
    empty.mkdir()
    found = checks(ticket_server, URI, ticket_server.token("vm"), config(tmp_path, tmp_path / "cc"), (empty,))
    result = found["smb-request-key"]
    assert result.status == Status.FAIL and "error 126" in result.detail and "cifs.upcall %k" in result.fix


def test_wrong_cache(ticket_server: Any, tmp_path: Path, rule: tuple[Path, ...],
                     monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    set_ticket(ticket_server, config(tmp_path, elsewhere))  # the ticket lands in another cache
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{elsewhere}")
    mount_cfg = tmp_path / "mount.yaml"
    mount_cfg.write_text(f"USER_UID: 0\nKRB5_CC_NAME: FILE:{tmp_path / 'cruid-cache'}\n")
    result = checks(ticket_server, URI, ticket_server.token("vm"), mount_cfg, rule)["smb-cache"]
    assert result.status == Status.FAIL and result.detail.startswith("wrong cache")
    assert str(elsewhere) in result.detail and "cruid-cache" in result.detail
