"""``keyless migrate scan``: every credential shape the rollout must remove, found without printing it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from keyless.cli.migrate_cmd import migrate_group
from keyless.migrate.detect import fingerprint, is_account_key
from keyless.migrate.scan import scan

KEY = base64.b64encode(bytes(range(64))).decode()  # the shape of an account key: 64 bytes, 88 characters
OTHER_KEY = base64.b64encode(bytes(range(64, 128))).decode()
SIG = "Zm9yIHRoZSB0ZXN0IG9ubHkgbm90IGEgcmVhbCBzaWduYXR1cmU%3D"
PASSWORD = "Smb-Pa55word-for-the-test"


def plant(root: Path) -> dict[str, Path]:
    """A machine's worth of leftovers, one of each kind the issue lists."""
    files = {
        "fstab": root / "etc/fstab",
        "cred": root / "etc/smbcredentials/acct2.cred",
        "unit": root / "etc/systemd/system/backup.service",
        "envfile": root / "etc/backup.env",
        "dotenv": root / "srv/app/.env",
        "json": root / "srv/app/appsettings.json",
        "yaml": root / "srv/app/config.yaml",
        "ini": root / "srv/app/settings.ini",
        "toml": root / "srv/app/pyproject.toml",
        "sas": root / "srv/app/links.txt",
        "clean": root / "srv/app/clean.yaml",
        "mount": root / "etc/systemd/system/mnt-data.mount",
    }
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    files["fstab"].write_text(
        "# //old.file.core.windows.net/x /mnt/x cifs password=commented-out 0 0\n"
        "//acct1.file.core.windows.net/share1 /mnt/s1 cifs "
        f"vers=3.1.1,username=acct1,password={PASSWORD} 0 0\n"
        "//acct2.file.core.windows.net/share2 /mnt/s2 cifs "
        "nofail,credentials=/etc/smbcredentials/acct2.cred 0 0\n"
        "UUID=1234 / ext4 defaults 0 1\n")
    files["cred"].write_text(f"username=acct2\npassword={KEY}\n")
    files["unit"].write_text(
        "[Unit]\nDescription=backup\n[Service]\nEnvironment=AZURE_STORAGE_ACCOUNT=acct3\n"
        f'Environment="AZURE_STORAGE_KEY={KEY}"\nEnvironmentFile=-{files["envfile"]}\nExecStart=/bin/true\n')
    files["envfile"].write_text(f"AZURE_STORAGE_ACCOUNT=acct6\nAZURE_STORAGE_ACCESS_KEY={OTHER_KEY}\n")
    files["dotenv"].write_text(
        "AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=https;AccountName=acct4;"
        f"AccountKey={KEY};EndpointSuffix=core.windows.net\n")
    files["json"].write_text(json.dumps({"Storage": {"AccountName": "acct5", "AccountKey": KEY}}, indent=2))
    files["yaml"].write_text(f"storage:\n  account: acct7\n  url: https://acct7.file.core.windows.net\n"
                             f"  account_key: {KEY}\n")
    files["ini"].write_text(f"[azure]\nstorage_account_key = {KEY}\naccount = acct8\n")
    files["toml"].write_text(f'[tool.app]\nshared_key = "{KEY}"\nurl = "https://acct9.blob.core.windows.net"\n')
    files["sas"].write_text(
        f"https://acct10.file.core.windows.net/share/report.pdf?sv=2022-11-02&sr=f&sp=r&se=2030-01-01&sig={SIG}\n")
    files["mount"].write_text("[Unit]\nDescription=data share\n[Mount]\n"
                              "What=//acct11.file.core.windows.net/data\nWhere=/mnt/data\nType=cifs\n"
                              f"Options=vers=3.1.1,username=acct11,password={PASSWORD},serverino\n")
    files["clean"].write_text("storage:\n  account_key: ${STORAGE_KEY}\n  sas_token: <your SAS here>\n"
                              "  password: ''\n")
    return files


def findings(result: dict[str, Any]) -> set[tuple[str, int, str, str]]:
    return {(Path(f["path"]).name, f["line"], f["kind"], f["account"]) for f in result["findings"]}


def test_finds_every_kind_with_file_line_account_and_replacement(tmp_path: Path) -> None:
    plant(tmp_path)
    out = CliRunner().invoke(migrate_group, ["scan", str(tmp_path), "--json"])
    assert out.exit_code == 1, out.output
    data = json.loads(out.stdout)
    assert findings(data) == {
        ("fstab", 2, "cifs-password", "acct1"),
        ("fstab", 3, "cifs-credentials-file", "acct2"),
        ("acct2.cred", 2, "smb-credentials", "acct2"),
        ("backup.service", 5, "systemd-environment", "acct3"),
        ("backup.service", 6, "systemd-environment-file", "acct6"),
        ("backup.env", 2, "account-key", "acct6"),
        (".env", 1, "connection-string", "acct4"),
        ("appsettings.json", 4, "account-key", "acct5"),
        ("config.yaml", 4, "account-key", "acct7"),
        ("settings.ini", 2, "account-key", "acct8"),
        ("pyproject.toml", 2, "account-key", "acct9"),
        ("links.txt", 1, "sas-token", "acct10"),
        ("mnt-data.mount", 7, "cifs-password", "acct11"),
    }
    by_kind = {f["kind"]: f for f in data["findings"]}
    fstab = next(f for f in data["findings"] if f["kind"] == "cifs-password" and f["account"] == "acct1")
    assert "keyless smb mount //acct1.file.core.windows.net/share1" in fstab["replacement"]
    assert "AZURE_STORAGE_KEY" in by_kind["systemd-environment"]["replacement"]
    assert "user delegation SAS" in by_kind["sas-token"]["replacement"]
    # the fingerprint names kind and account and hashes the secret: the same key matches across files
    assert by_kind["connection-string"]["fingerprint"] == fingerprint("connection-string", "acct4", KEY)
    assert by_kind["connection-string"]["fingerprint"].split(":")[2] == \
        by_kind["smb-credentials"]["fingerprint"].split(":")[2]
    assert data["files_scanned"] == 12


def test_no_secret_in_any_output_of_a_real_process(tmp_path: Path) -> None:
    plant(tmp_path)
    for extra in ([], ["--json"]):
        argv = [sys.executable, "-m", "keyless.cli.main", "migrate", "scan", str(tmp_path), *extra]
        done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
        assert done.returncode == 1
        for secret in (KEY, OTHER_KEY, SIG, PASSWORD, KEY[:24], OTHER_KEY[-24:], SIG[:20]):
            assert secret.encode() not in done.stdout and secret.encode() not in done.stderr
        assert b"acct4" in done.stdout


def test_clean_tree_exits_zero(tmp_path: Path) -> None:
    files = plant(tmp_path)
    out = CliRunner().invoke(migrate_group, ["scan", str(files["clean"].parent / "clean.yaml")])
    assert out.exit_code == 0 and "0 finding(s) in 1 file(s) scanned" in out.stdout


def test_odd_files_are_counted_and_skipped_and_roots_are_never_left(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.env").write_text(f"AZURE_STORAGE_KEY={KEY}\n")
    plant(root)
    app = root / "srv/app"
    (app / "loop").symlink_to("..")  # a directory link back up: entered once, then a loop
    (app / "self").symlink_to("self")  # a link to itself
    (app / "escape").symlink_to(outside)  # out of the root: never followed
    (app / "escape.env").symlink_to(outside / "secret.env")
    (app / "dangling").symlink_to(root / "nowhere")
    (app / "inside.env").symlink_to(root / "srv/app/.env")  # inside: the same file is reported once
    os.mkfifo(app / "fifo")
    (app / "blob.bin").write_bytes(b"\0\1\2AccountKey=" + KEY.encode() + b"\0" * 100)
    (app / "huge.log").write_text(f"AccountKey={KEY}\n" + "x" * 300_000)
    result = scan([root], max_bytes=200_000)
    assert result.skipped["symlink-loop"] >= 2
    assert result.skipped["outside-roots"] == 2
    assert result.skipped["broken-symlink"] == 1
    assert result.skipped["special"] == 1 and result.skipped["binary"] == 1 and result.skipped["huge"] == 1
    assert not any("outside" in f.path or "escape" in f.path for f in result.findings)
    assert sum(1 for f in result.findings if f.kind == "connection-string") == 1


def test_unreadable_file_is_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plant(tmp_path)
    target = str(tmp_path / "srv/app/.env")
    real_open = os.open

    def refusing_open(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if str(path) == target:
            raise PermissionError(13, "Permission denied", target)
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", refusing_open)  # root reads through chmod 000, so refuse directly
    result = scan([tmp_path])
    assert result.skipped["unreadable"] == 1 and result.skipped_examples["unreadable"] == [target]
    assert not any(f.path == target for f in result.findings)


def test_missing_root_is_counted_not_fatal(tmp_path: Path) -> None:
    out = CliRunner().invoke(migrate_group, ["scan", str(tmp_path / "nope"), "--json"])
    assert out.exit_code == 0 and json.loads(out.stdout)["skipped"] == {"missing": 1}


def test_account_key_shape() -> None:
    assert is_account_key(KEY)
    assert not is_account_key(KEY[:-4]) and not is_account_key("not base64 at all!" * 5)


def test_file_names_are_escaped_in_text_and_exact_in_json(tmp_path: Path) -> None:
    """A file name is anyone's text: a bidi override or an escape sequence must not reach the terminal."""
    sneaky = tmp_path / "cfg\u202etxt.env"
    sneaky.write_text(f"AZURE_STORAGE_KEY={KEY}\n")
    out = CliRunner().invoke(migrate_group, ["scan", str(tmp_path)])
    assert out.exit_code == 1 and "\u202e" not in out.stdout and "cfg\\u202etxt.env" in out.stdout
    data = json.loads(CliRunner().invoke(migrate_group, ["scan", "--json", str(tmp_path)]).stdout)
    assert any(f["path"] == str(sneaky) for f in data["findings"])
