"""The file commands end to end: a real emulator process, click's runner, real bytes on disk."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from click.testing import CliRunner

from keyless.cli.files_cmd import FILE_COMMANDS
from keyless.testing import EmulatorProcess


def kl(emu: EmulatorProcess, name: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(FILE_COMMANDS[name], [*args, "--emulator", str(emu.data_dir)])
    return result.exit_code, result.stdout, result.stderr


def test_file_commands_round_trip(emulator: EmulatorProcess, tmp_path: Path) -> None:
    top = f"azfiles://devaccount/demo/cmd-{uuid.uuid4().hex[:8]}"
    src = tmp_path / "tree"
    (src / "sub dir").mkdir(parents=True)
    files = {"a.txt": b"alpha", "sub dir/b #1.bin": os.urandom(5 * 1024 * 1024 + 3), "sub dir/c": b""}
    for rel, data in files.items():
        (src / rel).write_bytes(data)

    assert kl(emulator, "mkdir", "-p", f"{top}/x/y")[0] == 0
    code, _, err = kl(emulator, "put", "-r", str(src), f"{top}/up")
    assert code == 0, err
    code, out, _ = kl(emulator, "ls", "-R", f"{top}/up")
    assert out.splitlines() == ["a.txt", "sub dir/", "sub dir/b #1.bin", "sub dir/c"]
    code, out, _ = kl(emulator, "ls", "--json", f"{top}/up/sub dir")
    assert {r["name"]: r["size"] for r in json.loads(out)} == {"b #1.bin": 5 * 1024 * 1024 + 3, "c": 0}
    code, out, _ = kl(emulator, "cat", f"{top}/up/a.txt")
    assert out == "alpha"
    code, out, _ = kl(emulator, "stat", "--json", f"{top}/up/a.txt")
    assert json.loads(out)["size"] == 5 and json.loads(out)["type"] == "file"

    out_dir = tmp_path / "down"
    assert kl(emulator, "get", "-r", f"{top}/up", str(out_dir))[0] == 0
    for rel, data in files.items():
        assert (out_dir / rel).read_bytes() == data

    assert kl(emulator, "cp", "-r", f"{top}/up", f"{top}/copy")[0] == 0
    assert kl(emulator, "mv", f"{top}/copy/a.txt", f"{top}/copy/renamed.txt")[0] == 0
    code, out, _ = kl(emulator, "ls", f"{top}/copy")
    assert out.splitlines() == ["renamed.txt", "sub dir/"]
    single = tmp_path / "single.bin"
    assert kl(emulator, "get", f"{top}/copy/sub dir/b #1.bin", str(single))[0] == 0
    assert single.read_bytes() == files["sub dir/b #1.bin"]

    # sync: second run changes nothing; --delete removes what is gone locally
    code, out, _ = kl(emulator, "sync", "--json", str(src), f"{top}/synced")
    assert json.loads(out)["files"] == 3
    code, out, _ = kl(emulator, "sync", "--json", str(src), f"{top}/synced")
    assert json.loads(out) == {"files": 0, "bytes": 0, "skipped": 3, "deleted": 0}
    (src / "a.txt").unlink()
    code, out, _ = kl(emulator, "sync", "--json", "--delete", str(src), f"{top}/synced")
    assert json.loads(out)["deleted"] == 1

    code, _, err = kl(emulator, "rm", f"{top}/up")
    assert code == 11 and "DirectoryNotEmpty" in err
    assert "keyless rm -r" in err  # the command line adds its own way out to the library's remedy
    assert kl(emulator, "rm", "-r", top)[0] == 0
    code, _, err = kl(emulator, "stat", top)
    assert code == 7


def test_permission_error_exit_code_and_json(emulator: EmulatorProcess) -> None:
    code, _, err = kl(emulator, "mkdir", "--json", "azfiles://devaccount/other-share/x")
    assert code == 6
    payload = json.loads(err)
    assert payload["status"] == 403 and "Privileged Contributor" in payload["remedy"]
    assert "--wait-for-access" in payload["remedy"]
