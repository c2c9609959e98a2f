"""Reading emulator.json on the client side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyless.emulator_info import (
    EmulatorInfo,
    EmulatorInfoError,
    emulator_from_env,
    load_emulator_info,
    parse_emulator_info,
)

DOC = {
    "version": 1, "pid": 42, "files_url": "https://127.0.0.1:1/", "imds_url": "http://127.0.0.1:2",
    "app_service": {"IDENTITY_ENDPOINT": "http://127.0.0.1:2/msi/token", "IDENTITY_HEADER": "hdr-secret"},
    "arc": {"IDENTITY_ENDPOINT": "http://127.0.0.1:2/arc/x", "IMDS_ENDPOINT": "http://127.0.0.1:2/arc",
            "key_dir": "/d/arc-tokens"},
    "authority_host": "https://127.0.0.1:1", "authority_host_http": "http://127.0.0.1:2",
    "tenant_id": "t", "ca_cert": "/d/tls/ca.pem", "audit_log": "/d/audit.log", "data_dir": "/d",
    "accounts": [{"name": "devaccount", "key": "account-key-secret", "url": "https://127.0.0.1:1/devaccount",
                  "shares": ["demo"], "smb_oauth": True}],
    "identities": [{"name": "vm", "type": "system", "client_id": "c", "object_id": "o", "resource_id": "r"}],
    "workload": {"c2": "/d/workload/c2.token"},
    "control": {"url": "http://127.0.0.1:2/keyless/control", "secret": "control-secret"},
}


def test_load_from_dir_or_file(tmp_path: Path) -> None:
    (tmp_path / "emulator.json").write_text(json.dumps(DOC))
    info = load_emulator_info(tmp_path)
    assert load_emulator_info(tmp_path / "emulator.json").pid == info.pid == 42
    assert info.files_url == "https://127.0.0.1:1" and info.account().shares == ("demo",)
    assert info.identity_env("imds") == {"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:2"}
    assert info.identity_env("arc")["KEYLESS_ARC_KEY_DIR"] == "/d/arc-tokens"
    assert info.identity_env("workload")["AZURE_AUTHORITY_HOST"] == "http://127.0.0.1:2"
    for secret in ("hdr-secret", "account-key-secret", "control-secret"):
        assert secret not in repr(info)
    assert emulator_from_env({"KEYLESS_EMULATOR": str(tmp_path)}) is not None
    assert emulator_from_env({}) is None


def test_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(EmulatorInfoError, match="start an emulator"):
        load_emulator_info(tmp_path)
    (tmp_path / "emulator.json").write_text("{}")
    with pytest.raises(EmulatorInfoError, match="imds_url"):
        load_emulator_info(tmp_path)


def test_the_format_round_trips() -> None:
    """One definition: what the reader parses, the writer's to_json gives back unchanged."""
    info = load_emulator_info_doc(DOC)
    again = load_emulator_info_doc(info.to_json())
    assert again == info


def load_emulator_info_doc(doc: dict[str, object]) -> EmulatorInfo:
    return parse_emulator_info(doc, Path("/d/emulator.json"))
