"""Hostile and careless use of the file commands, end to end: a real emulator process, the CLI as a real
process where a signal or a race matters (SIGKILL mid-transfer, two uploads at once), click's runner
elsewhere."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from keyless.cli.files_cmd import FILE_COMMANDS
from keyless.files import ShareClient
from keyless.files.urls import share_url
from keyless.identity import ManagedIdentityCredential
from keyless.testing import EmulatorProcess

MIB = 1024 * 1024
PART_SUFFIX = ".keyless-part"


def is_part_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(PART_SUFFIX)


def kl(
    emu: EmulatorProcess, name: str, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    result = CliRunner().invoke(FILE_COMMANDS[name], [*args, "--emulator", str(emu.data_dir)], env=env)
    return result.exit_code, result.stdout, result.stderr


def _client(emu: EmulatorProcess) -> ShareClient:
    cred = ManagedIdentityCredential(source="imds", imds_host=emu.imds_url)
    url = share_url("devaccount", "demo", emulator_url=emu.files_url)
    return ShareClient(url, cred, ca_cert=emu.ca_cert, emulator_url=emu.files_url, concurrency=4)


def _cli(emu: EmulatorProcess, *args: str) -> subprocess.Popen[str]:
    """The real ``keyless`` command in its own process (so it can be killed or raced)."""
    return subprocess.Popen(
        [sys.executable, "-m", "keyless.cli.main", *args, "--emulator", str(emu.data_dir), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _top() -> str:
    return f"azfiles://devaccount/demo/rob-{uuid.uuid4().hex[:8]}"


def _names(emu: EmulatorProcess, remote_dir: str) -> list[str]:
    code, out, err = kl(emu, "ls", "--json", remote_dir)
    assert code == 0, err
    return sorted(r["name"] for r in json.loads(out))


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# --- names compared as the service compares them ---------------------------------------------------------


def test_sync_delete_after_a_case_only_rename_keeps_the_file(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    top = _top()
    src = tmp_path / "src"
    src.mkdir()
    (src / "Report.txt").write_bytes(b"v1")
    assert kl(emulator, "sync", "--delete", str(src), top)[0] == 0
    (src / "Report.txt").rename(src / "report.txt")
    (src / "report.txt").write_bytes(b"version two")

    code, out, err = kl(emulator, "sync", "--delete", "--json", str(src), top)
    assert code == 0, err
    assert json.loads(out)["deleted"] == 0
    code, out, err = kl(emulator, "cat", f"{top}/report.txt")
    assert code == 0, err
    assert out == "version two"
    assert [n.lower() for n in _names(emulator, top)] == ["report.txt"]


def test_local_names_differing_only_in_case_are_refused_before_any_upload(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    top = _top()
    src = tmp_path / "src"
    src.mkdir()
    (src / "A.txt").write_bytes(b"AAAA")
    (src / "a.txt").write_bytes(b"bbbbbbbb")
    (src / "other.txt").write_bytes(b"x")
    for args in (("sync", "--delete", str(src), top), ("put", "-r", str(src) + "/", top)):
        code, _, err = kl(emulator, *args)
        assert code == 11, err
        assert "'A.txt' and 'a.txt'" in err and "letter case" in err
    code, _, _ = kl(emulator, "stat", top)
    assert code == 7, "nothing may be uploaded when names collide"


# --- an interrupted upload never looks complete -----------------------------------------------------------


def test_upload_killed_mid_transfer_is_redone_by_the_next_sync(
    emulator_factory: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    emu = emulator_factory()
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(12 * 4 * MIB)
    (src / "big.bin").write_bytes(data)
    top = "azfiles://devaccount/demo/killed"
    # Every write waits a little, so the kill surely lands between the first and the last range.
    emu.set_faults([{"target": "files", "action": "delay", "method": "PUT", "seconds": 0.25}])
    proc = _cli(emu, "sync", str(src), top, "--concurrency", "1")
    client = _client(emu)

    def some_ranges_written() -> bool:
        writes = [r for r in emu.audit("StorageFileLogs") if "comp=range" in str(r.get("Uri", ""))]
        return len(writes) >= 3

    _wait_for(some_ranges_written, "the upload to write some ranges")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    emu.set_faults([])

    # What the kill left must not pass for the file: no big.bin of the right size and time.
    listed = {e.name: e for e in client.listdir("killed")}
    assert "big.bin" not in listed, "a half-written file is visible under its real name"
    assert any(is_part_name(n) for n in listed), listed

    code, out, err = kl(emu, "sync", "--json", str(src), top)
    assert code == 0, err
    assert json.loads(out)["files"] == 1, "the rerun took the interrupted upload for an unchanged file"
    assert client.read_bytes("killed/big.bin") == data
    # Part files are never listed as data: a download of the directory gets only big.bin.
    out_dir = tmp_path / "down"
    assert kl(emu, "get", "-r", top + "/", str(out_dir))[0] == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["big.bin"]
    client.close()


def test_concurrent_puts_of_one_file_one_wins_the_other_fails_clearly(
    emulator_factory: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    emu = emulator_factory()
    a, b = tmp_path / "A.bin", tmp_path / "B.bin"
    a.write_bytes(b"A" * (2 * 4 * MIB))
    b.write_bytes(b"B" * (6 * 4 * MIB))
    # Every write waits, so both uploads have looked at the target before either publishes (A writes 4
    # times, B 8 times): the race is real, not two puts one after the other.
    emu.set_faults([{"target": "files", "action": "delay", "method": "PUT", "seconds": 0.5}])
    target = "azfiles://devaccount/demo/race.bin"
    procs = {"A": _cli(emu, "put", str(a), target, "--concurrency", "1")}
    procs["B"] = _cli(emu, "put", str(b), target, "--concurrency", "1")
    results = {k: (p.wait(timeout=120), p.stderr.read() if p.stderr else "") for k, p in procs.items()}
    emu.set_faults([])

    succeeded = [k for k, (rc, _) in results.items() if rc == 0]
    assert len(succeeded) == 1, results
    loser = "B" if succeeded == ["A"] else "A"
    rc, err = results[loser]
    assert rc == 11 and "replaced by another writer" in err, results
    client = _client(emu)
    content = client.read_bytes("race.bin")
    winner_bytes = (a if succeeded == ["A"] else b).read_bytes()
    assert content == winner_bytes, "the remote file mixes both uploads"
    assert not [e.name for e in client.listdir("") if is_part_name(e.name)], "the loser left its part file"
    client.close()


# --- missing parents, hostile names, keys, special files -------------------------------------------------


def test_put_and_cp_create_missing_parent_directories(emulator: EmulatorProcess, tmp_path: Path) -> None:
    top = _top()
    local = tmp_path / "a.txt"
    local.write_bytes(b"alpha")
    code, _, err = kl(emulator, "put", str(local), f"{top}/x/y/a.txt")
    assert code == 0, err
    code, _, err = kl(emulator, "cp", f"{top}/x/y/a.txt", f"{top}/p/q/r/b.txt")
    assert code == 0, err
    assert kl(emulator, "cat", f"{top}/p/q/r/b.txt")[1] == "alpha"


def test_malformed_account_key_is_a_usage_error_naming_the_variable(emulator: EmulatorProcess) -> None:
    secretish = "not base64!!"
    code, out, err = kl(emulator, "ls", "azfiles://devaccount/demo/", env={"AZURE_STORAGE_KEY": secretish})
    assert code == 2, (out, err)
    assert "AZURE_STORAGE_KEY" in err and "base64" in err
    assert "Traceback" not in err and secretish not in err + out


def test_special_files_are_refused_by_name(emulator: EmulatorProcess, tmp_path: Path) -> None:
    top = _top()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    proc = _cli(emulator, "put", str(fifo), f"{top}/pipe")
    try:
        _, err = proc.communicate(timeout=30)  # before the fix: blocked in open() forever
    finally:
        proc.kill()
    assert proc.returncode not in (0, None) and str(fifo) in err and "FIFO" in err, err
    for special, kind in (("/dev/urandom", "character device"), ("/proc/self/status", "size of 0")):
        code, _, err = kl(emulator, "put", special, f"{top}/special")
        assert code != 0 and special in err and kind in err, err
    assert kl(emulator, "stat", f"{top}/special")[0] == 7, "nothing may be uploaded"


def test_a_tree_holding_a_fifo_is_uploaded_without_it_and_says_so(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    top = _top()
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_bytes(b"a")
    os.mkfifo(tree / "pipe")
    proc = _cli(emulator, "put", "-r", str(tree) + "/", top)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"skipping '{tree / 'pipe'}': a FIFO, not uploaded" in err
    assert _names(emulator, top) == ["a.txt"]


# --- part files of killed downloads ------------------------------------------------------------------------


def test_killed_downloads_are_cleaned_up_and_parts_never_uploaded(
    emulator_factory: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    emu = emulator_factory()
    client = _client(emu)
    data = os.urandom(8 * 4 * MIB)
    client.upload_bytes("big.bin", data)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    emu.set_faults([{"target": "files", "action": "delay", "method": "GET", "seconds": 0.25}])
    remote = "azfiles://devaccount/demo/big.bin"
    proc = _cli(emu, "get", remote, str(out_dir / "big.bin"), "--concurrency", "1")
    _wait_for(lambda: any(p.name.endswith(PART_SUFFIX) for p in out_dir.iterdir()), "a part file")
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    emu.set_faults([])
    assert [p for p in out_dir.iterdir() if p.name.endswith(PART_SUFFIX)], "the kill left no part file?"
    # An unrelated file whose name merely looks similar is kept.
    (out_dir / ".big.bin.notapart").write_bytes(b"keep")

    code, _, err = kl(emu, "get", remote, str(out_dir / "big.bin"))
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == [".big.bin.notapart", "big.bin"]
    assert (out_dir / "big.bin").read_bytes() == data

    # A part file of some other run (or tool) is never uploaded by sync or put -r.
    (out_dir / f".other.bin.0123abcd{PART_SUFFIX}").write_bytes(b"partial")
    for args in (
        ("sync", str(out_dir), "azfiles://devaccount/demo/synced"),
        ("put", "-r", str(out_dir) + "/", "azfiles://devaccount/demo/put"),
    ):
        assert kl(emu, *args)[0] == 0
    for remote in ("synced", "put"):
        assert sorted(e.name for e in client.listdir(remote)) == [".big.bin.notapart", "big.bin"]
    client.close()


# --- names printed on a terminal ---------------------------------------------------------------------------

TRICKY = {
    "\u202etxt.exe": "\\u202etxt.exe",  # right-to-left override: would show as "exe.txt"
    "csi\u009b31m": "csi\\x9b31m",  # C1 control sequence introducer
    "nel\u0085x": "nel\\x85x",
    "ls\u2028x": "ls\\u2028x",
    "zw\u200bsp": "zw\\u200bsp",
}


def test_control_and_bidi_characters_are_escaped_in_text_and_exact_in_json(emulator: EmulatorProcess) -> None:
    top = _top()
    client = _client(emulator)
    folder = top.split("/", 4)[-1]
    client.mkdir(folder)
    for name in TRICKY:
        client.upload_bytes(f"{folder}/{name}", b"x")
    client.close()

    code, out, err = kl(emulator, "ls", top)
    assert code == 0, err
    assert sorted(out.splitlines()) == sorted(TRICKY.values())
    code, out, err = kl(emulator, "ls", "--json", top)
    assert sorted(r["name"] for r in json.loads(out)) == sorted(TRICKY)
    name = "\u202etxt.exe"
    code, out, err = kl(emulator, "stat", f"{top}/{name}")
    assert code == 0 and "\u202e" not in out and "\\u202etxt.exe" in out, out
    code, out, err = kl(emulator, "stat", f"{top}/missing\u202eexe")
    assert code == 7 and "\u202e" not in err, err  # errors show the name URL-encoded
    code, out, _ = kl(emulator, "stat", "--json", f"{top}/{name}")
    assert json.loads(out)["path"].endswith(name)


@pytest.mark.parametrize("bad", ["..", ".", "a/b", "nul\x00x"])
def test_listing_entries_that_are_not_single_names_are_refused(bad: str) -> None:
    from keyless.files.errors import UnsafeName
    from keyless.files.models import parse_listing

    encoded = bad.replace("\x00", "%00")
    xml = (
        '<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Entries>'
        f'<Directory><Name Encoded="true">{encoded}</Name><Properties /></Directory>'
        "</Entries><NextMarker /></EnumerationResults>"
    ).encode()
    with pytest.raises(UnsafeName, match="not a single name"):
        parse_listing(xml, "evil")


# --- a hostile server's listing, through the command line ---------------------------------------------------

_HOSTILE_LISTING = (
    b'<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Entries>'
    b'<Directory><Name Encoded="true">..%2F..%2Fescdir</Name><Properties /></Directory>'
    b"<File><Name>..</Name><Properties><Content-Length>3</Content-Length></Properties></File>"
    b"</Entries><NextMarker /></EnumerationResults>"
)


def _hostile_front(cert: Path, key: Path) -> ThreadingHTTPServer:
    """Answers like a share whose every directory lists a ``../../escdir`` directory and a ``..`` file."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", '"0x1"')
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self._reply(404)

        def do_GET(self) -> None:
            self._reply(200, _HOSTILE_LISTING if "comp=list" in self.path else b"")

        def do_DELETE(self) -> None:
            self._reply(202)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_hostile_listing_names_are_refused_by_every_tree_command(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    from test_e2e_gaps import _self_signed

    cert, key = _self_signed(tmp_path)
    server = _hostile_front(cert, key)
    try:
        # Tokens still come from the real emulator's IMDS; the Files endpoint is the hostile front.
        info = json.loads((emulator.data_dir / "emulator.json").read_text())
        info["files_url"] = f"https://127.0.0.1:{server.server_address[1]}"
        info["ca_cert"] = str(cert)
        front = tmp_path / "front"
        front.mkdir()
        (front / "emulator.json").write_text(json.dumps(info))
        work = tmp_path / "work"
        work.mkdir()
        runs = {
            "cp": ["-r", "azfiles://devaccount/demo/evil", str(work / "out")],
            "sync": ["--delete", "azfiles://devaccount/demo/evil", str(work / "synced")],
            "rm": ["-r", "azfiles://devaccount/demo/evil"],
            "ls": ["-R", "azfiles://devaccount/demo/evil"],
        }
        for command, args in runs.items():
            result = CliRunner().invoke(FILE_COMMANDS[command], [*args, "--emulator", str(front)])
            assert result.exit_code == 9, (command, result.exit_code, result.output, result.exception)
            assert "not a single name" in result.stderr and "Traceback" not in result.output, command
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["cert.pem", "key.pem", "front", "work"])
        assert not (tmp_path.parent / "escdir").exists()
    finally:
        server.shutdown()
        server.server_close()


def test_the_service_refuses_to_publish_over_a_file_created_during_the_upload(
    emulator: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename without replace is what closes the window after the ETag check, on the real protocol."""
    from keyless.files import errors as fe
    from keyless.files import transfer

    client = _client(emulator)
    local = tmp_path / "mine.bin"
    local.write_bytes(b"mine")
    remote = f"window-{uuid.uuid4().hex[:8]}.bin"
    real_etag = client.file_etag
    calls: list[str] = []

    def etag_then_race(path: str) -> str | None:
        calls.append(path)
        if len(calls) == 2:
            client.upload_bytes(path, b"theirs")
            return None
        return real_etag(path)

    monkeypatch.setattr(client, "file_etag", etag_then_race)
    with pytest.raises(fe.ChangedDuringUpload):
        transfer.upload_file(client, local, remote)
    assert client.read_bytes(remote) == b"theirs"
    assert not [e.name for e in client.listdir("") if e.name.startswith(f".{remote}.")]
    client.close()


# --- names as long as the service allows ------------------------------------------------------------------


def test_names_of_255_characters_go_up_and_come_back(emulator: EmulatorProcess, tmp_path: Path) -> None:
    """Azure Files and local file systems take 255-character names; the part files keyless writes next to
    them (uploads and downloads) must fit in that limit too."""
    top = _top()
    src = tmp_path / "src"
    src.mkdir()
    long_name = "n" * 250 + ".txt"
    (src / long_name).write_bytes(b"long")
    code, _, err = kl(emulator, "put", str(src / long_name), f"{top}/{long_name}")
    assert code == 0, err
    code, _, err = kl(emulator, "sync", str(src), f"{top}/tree")
    assert code == 0, err
    out = tmp_path / "out"
    code, _, err = kl(emulator, "get", "-r", f"{top}/tree", str(out))
    assert code == 0 and "Traceback" not in err, err
    assert [p.read_bytes() for p in out.rglob(long_name)] == [b"long"]
    assert not [p for p in out.rglob("*") if p.name.endswith(PART_SUFFIX)]


def test_part_names_fit_the_name_limit_and_are_recognised() -> None:
    from keyless.files.parts import MAX_NAME, is_part_name, local_part_path, remote_part_name, stale_part_of

    for name in ("a.txt", "n" * 230, "n" * 255, "ü" * 255):
        in_dir, remote = remote_part_name(f"/dir//{name}").split("/")
        assert in_dir == "dir"
        at_root = remote_part_name(name)
        local_dir, local = os.path.split(local_part_path(os.path.join("/tmp", name)))
        assert local_dir == "/tmp"
        for part in (remote, at_root, local):
            assert len(part) <= MAX_NAME and is_part_name(part)
            assert stale_part_of(part, name)
        assert not stale_part_of(remote, name + "x")
