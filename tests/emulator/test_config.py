"""Config loading: defaults serve the demo; every bad value is named with its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyless.emulator.config import ConfigError, config_from_dict, default_config, load_config, parse_duration
from keyless.protocol import ROLE_DATA_ACTIONS


def test_defaults_serve_the_demo() -> None:
    cfg = default_config()
    acct = cfg.account("devaccount")
    assert acct is not None and acct.smb_oauth and [s.name for s in acct.shares] == ["demo"]
    (vm,) = cfg.identities
    assert vm.kind == "system" and vm.attached
    roles = {(r.role, r.principal_object_id, r.account, r.share) for r in cfg.role_assignments}
    assert roles == {
        ("Storage File Data Privileged Contributor", vm.object_id, "devaccount", "demo"),
        ("Storage File Data SMB MI Admin", vm.object_id, "devaccount", "demo"),
    }


def test_no_file_means_defaults() -> None:
    assert load_config(None) == default_config()


def test_full_config(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        """
tenant_id = "11111111-2222-3333-4444-555555555555"
token_lifetime = "15m"
[[accounts]]
name = "acct1"
allow_shared_key = false
smb_oauth = true
shares = ["alpha", { name = "beta", quota_gib = 10 }]
[[identities]]
name = "vm"
type = "system"
[[identities]]
name = "worker"
type = "user"
client_id = "aaaaaaaa-0000-0000-0000-000000000001"
[[role_assignments]]
role = "Storage File Data Privileged Reader"
principal = "worker"
scope = "acct1/beta"
[[role_assignments]]
role = "Storage File Data SMB MI Admin"
principal = "vm"
scope = "/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/acct1"
[[faults]]
target = "imds"
action = "status"
status = 429
count = 2
retry_after = 1
"""
    )
    cfg = load_config(path)
    assert cfg.token_lifetime == 900
    acct = cfg.account("acct1")
    assert acct is not None and not acct.allow_shared_key
    assert [(s.name, s.quota_gib) for s in acct.shares] == [("alpha", 5120), ("beta", 10)]
    worker = cfg.identity_by(client_id="AAAAAAAA-0000-0000-0000-000000000001")
    assert worker is not None and worker.name == "worker"
    assert "userAssignedIdentities/worker" in worker.resource_id
    reader, admin = cfg.role_assignments
    assert (reader.account, reader.share) == ("acct1", "beta")
    assert (admin.account, admin.share) == ("acct1", None)
    assert reader.scope.endswith("/storageAccounts/acct1/fileServices/default/fileshares/beta")
    (fault,) = cfg.faults
    assert (fault.target, fault.status, fault.count, fault.retry_after) == ("imds", 429, 2, 1.0)


def test_custom_world_starts_without_grants() -> None:
    cfg = config_from_dict({"accounts": [{"name": "solo", "shares": ["s1x"]}]})
    assert cfg.role_assignments == ()


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"accounts": [{"name": "Bad_Name"}]}, "accounts[0].name"),
        ({"accounts": [{"name": "okname", "shares": ["-no"]}]}, "accounts[0].shares[0].name"),
        ({"accounts": [{"name": "okname", "colour": "red"}]}, "unknown key(s) colour"),
        ({"identities": [{"name": "x", "type": "robot"}]}, "identities[0].type"),
        ({"identities": [{"name": "a", "type": "system"}, {"name": "b", "type": "system"}]}, "at most one"),
        ({"identities": [{"name": "x", "client_id": "nope"}]}, "identities[0].client_id"),
        ({"role_assignments": [{"role": "Janitor", "principal": "demo-vm", "scope": "devaccount"}]},
         "role_assignments[0].role"),
        ({"role_assignments": [{"role": "Storage File Data SMB MI Admin", "principal": "ghost",
                                "scope": "devaccount"}]}, "role_assignments[0].principal"),
        ({"role_assignments": [{"role": "Storage File Data SMB MI Admin", "principal": "demo-vm",
                                "scope": "devaccount/nosuchshare"}]}, "has no share"),
        ({"token_lifetime": "soon"}, "token_lifetime"),
        ({"tenant_id": "not-a-guid"}, "tenant_id"),
        ({"faults": [{"target": "dns"}]}, "faults[0].target"),
        ({"faults": [{"rate": 2}]}, "faults[0].rate"),
        ({"surprise": 1}, "unknown key(s) surprise"),
    ],
)
def test_bad_values_are_named(raw: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    assert needle in str(info.value)


def test_bad_toml_is_reported_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("accounts = [")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.toml")


@pytest.mark.parametrize(("value", "seconds"), [(90, 90.0), ("90s", 90.0), ("10m", 600.0), ("24h", 86400.0),
                                                ("1d", 86400.0), ("250ms", 0.25), (1.5, 1.5)])
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value, "k") == seconds


def test_every_builtin_role_is_known() -> None:
    assert "Storage File Data Privileged Contributor" in ROLE_DATA_ACTIONS
    assert len(ROLE_DATA_ACTIONS) == 6
