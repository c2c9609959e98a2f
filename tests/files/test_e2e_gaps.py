"""Paths that need a live process: a token expiring mid-transfer, bounded memory,
redirects from a live server, ``--wait-for-access`` while a role propagates, and ``--json`` for scripts."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from keyless.cli.files_cmd import FILE_COMMANDS
from keyless.files import FilesError, ShareClient, transfer
from keyless.files.transfer import PART_SUFFIX
from keyless.files.urls import share_url
from keyless.identity import ManagedIdentityCredential
from keyless.testing import EmulatorProcess

MIB = 1024 * 1024


def _client(emu: EmulatorProcess, concurrency: int = 4) -> ShareClient:
    cred = ManagedIdentityCredential(source="imds", imds_host=emu.imds_url)
    url = share_url("devaccount", "demo", emulator_url=emu.files_url)
    return ShareClient(url, cred, ca_cert=emu.ca_cert, emulator_url=emu.files_url, concurrency=concurrency)


# --- a token that expires in the middle of a transfer ----------------------------------------------------


def test_token_expiring_mid_transfer_is_refreshed_and_bytes_match(
    emulator_factory: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    emu = emulator_factory()
    data = os.urandom(6 * 4 * MIB + 12345)  # seven ranges
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    client = _client(emu, concurrency=2)
    jumps = iter([2 * 86400, 4 * 86400])  # days ahead: every token issued so far is expired for the service

    def expire_once_factory() -> Callable[[int], None]:
        fired = threading.Event()
        offset = next(jumps)

        def progress(_n: int) -> None:
            if not fired.is_set():
                fired.set()
                emu.set_clock_offset(offset)

        return progress

    transfer.upload_file(client, src, "expiry.bin", progress=expire_once_factory())
    out = tmp_path / "down" / "expiry.bin"
    out.parent.mkdir()
    transfer.download_file(client, "expiry.bin", out, progress=expire_once_factory())
    client.close()

    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert not [p for p in out.parent.iterdir() if p.name.endswith(PART_SUFFIX)]
    records = emu.audit()
    refused = [r for r in records if r.get("Type") == "StorageFileLogs" and r.get("StatusCode") == "401"]
    issued = [r for r in records if r.get("Type") == "TokenIssuance" and r.get("status") == 200]
    assert refused, "the service never refused an expired token: the refresh path did not run"
    assert len(issued) >= 3  # the first token, then one fresh token per expiry
    # the remote file holds exactly the bytes (the SDK-free check: keyless reads it back whole)
    with _client(emu) as again:
        assert again.properties("expiry.bin").size == len(data)


# --- bounded memory ------------------------------------------------------------------------------------

_MEMORY_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    from keyless.files import ShareClient, transfer
    from keyless.files.urls import share_url
    from keyless.identity import ManagedIdentityCredential

    info = json.loads(Path(sys.argv[1]).read_text())
    src, dst = Path(sys.argv[2]), Path(sys.argv[3])
    cred = ManagedIdentityCredential(source="imds", imds_host=info["imds_url"])
    url = share_url("devaccount", "demo", emulator_url=info["files_url"])
    client = ShareClient(url, cred, ca_cert=info["ca_cert"], emulator_url=info["files_url"], concurrency=8)
    client.properties("")  # token, TLS and imports all paid for before the baseline
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    transfer.upload_file(client, src, "memory.bin")
    transfer.download_file(client, "memory.bin", dst)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"base_kib": base, "peak_kib": peak}))
    """
)


def test_memory_stays_bounded_on_a_64_mib_transfer(emulator: EmulatorProcess, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    with src.open("wb") as f:
        for _ in range(16):
            f.write(os.urandom(4 * MIB))
    dst = tmp_path / "big.out"
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, str(emulator.data_dir / "emulator.json"), str(src), str(dst)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    usage = json.loads(proc.stdout)
    growth_mib = (usage["peak_kib"] - usage["base_kib"]) / 1024
    # 8 ranges of 4 MiB in flight, each possibly held twice (socket buffer + bytes): well under 64 MiB.
    assert growth_mib < 48, f"RSS grew by {growth_mib:.1f} MiB for a 64 MiB file"
    assert dst.stat().st_size == src.stat().st_size
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()


# --- redirects from a live server -------------------------------------------------------------------------


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@dataclass
class Seen:
    path: str
    authorization: str | None


def _serve(cert: Path, key: Path, location: str | None) -> tuple[ThreadingHTTPServer, list[Seen]]:
    seen: list[Seen] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append(Seen(self.path, self.headers.get("Authorization")))
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if location is None:
                self.send_response(200)
                self.send_header("Content-Length", "0")
            else:
                self.send_response(307)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = do_PUT = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


@dataclass
class _Access:
    token: str
    expires_on: int


class _StaticCredential:
    def get_token(self, *scopes: str, **kwargs: object) -> _Access:
        return _Access("header.payload.signature", int(time.time()) + 3600)


@pytest.fixture
def redirecting(tmp_path: Path) -> Iterator[tuple[str, Path, list[Seen], list[Seen]]]:
    cert, key = _self_signed(tmp_path)
    elsewhere, seen_elsewhere = _serve(cert, key, None)
    target = f"https://127.0.0.1:{elsewhere.server_address[1]}/stolen"
    origin, seen_origin = _serve(cert, key, target)
    yield f"https://127.0.0.1:{origin.server_address[1]}", cert, seen_origin, seen_elsewhere
    for server in (origin, elsewhere):
        server.shutdown()
        server.server_close()


def test_a_307_is_refused_not_followed(redirecting: tuple[str, Path, list[Seen], list[Seen]]) -> None:
    base, cert, seen_origin, seen_elsewhere = redirecting
    client = ShareClient(f"{base}/acct/share", _StaticCredential(), ca_cert=str(cert), emulator_url=base)
    with pytest.raises(FilesError) as info:
        client.properties("file.txt")
    client.close()
    assert info.value.status == 307 and "redirect" in info.value.message
    assert len(seen_origin) == 1 and seen_origin[0].authorization == "Bearer header.payload.signature"
    assert seen_elsewhere == []  # the credential never crossed the redirect, nor did any request
    assert "header.payload.signature" not in str(info.value)


# --- --wait-for-access while a role assignment propagates -----------------------------------------------

NO_ROLE_WORLD = """
[[accounts]]
name = "acct1"
shares = ["data"]

[[identities]]
name = "vm"
type = "system"
"""


def test_wait_for_access_succeeds_once_the_role_arrives(
    emulator_factory: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    emu = emulator_factory(NO_ROLE_WORLD)
    local = tmp_path / "hello.txt"
    local.write_bytes(b"hello after the role arrived")
    grant = [{"role": "Storage File Data Privileged Contributor", "principal": "vm", "scope": "acct1/data"}]
    timer = threading.Timer(1.0, emu.set_roles, args=(grant,))
    timer.start()
    started = time.monotonic()
    try:
        result = CliRunner().invoke(
            FILE_COMMANDS["put"],
            [
                str(local),
                "azfiles://acct1/data/hello.txt",
                "--wait-for-access",
                "30s",
                "--emulator",
                str(emu.data_dir),
            ],
        )
    finally:
        timer.cancel()
    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - started < 20
    out = CliRunner().invoke(
        FILE_COMMANDS["cat"], ["azfiles://acct1/data/hello.txt", "--emulator", str(emu.data_dir)]
    )
    assert out.stdout == "hello after the role arrived"
    denied = [r for r in emu.audit("StorageFileLogs") if r.get("StatusCode") == "403"]
    assert denied  # it really was refused first


def test_without_wait_for_access_a_403_fails_at_once(
    emulator_factory: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    emu = emulator_factory(NO_ROLE_WORLD)
    local = tmp_path / "x.txt"
    local.write_bytes(b"x")
    result = CliRunner().invoke(
        FILE_COMMANDS["put"], [str(local), "azfiles://acct1/data/x.txt", "--emulator", str(emu.data_dir)]
    )
    assert result.exit_code == 6 and "Privileged Contributor" in result.stderr


# --- --json output for scripts ----------------------------------------------------------------------------


def test_ls_and_stat_json_are_parseable(emulator: EmulatorProcess, tmp_path: Path) -> None:
    top = f"json-{os.urandom(4).hex()}"
    with _client(emulator) as client:
        client.mkdir(f"{top}/sub", parents=True)
        client.upload_bytes(f"{top}/a.txt", b"alpha")
        client.upload_bytes(f"{top}/sub/b #1.bin", b"\x00\x01\x02")

    def run(name: str, *args: str) -> object:
        result = CliRunner().invoke(
            FILE_COMMANDS[name], [*args, "--json", "--emulator", str(emulator.data_dir)]
        )
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    flat = run("ls", "-l", f"azfiles://devaccount/demo/{top}")
    assert isinstance(flat, list)
    assert [(r["name"], r["type"], r["size"]) for r in flat] == [
        ("a.txt", "file", 5),
        ("sub", "directory", None),
    ]
    assert all(r["path"].startswith(top) for r in flat)
    deep = run("ls", "-R", f"azfiles://devaccount/demo/{top}")
    assert isinstance(deep, list)
    assert {r["name"] for r in deep} == {"a.txt", "sub", "sub/b #1.bin"}
    one = run("ls", f"azfiles://devaccount/demo/{top}/a.txt")
    assert isinstance(one, list) and one[0]["size"] == 5
    file_stat = run("stat", f"azfiles://devaccount/demo/{top}/sub/b #1.bin")
    assert isinstance(file_stat, dict)
    assert (
        file_stat["type"] == "file" and file_stat["size"] == 3 and file_stat["path"] == f"{top}/sub/b #1.bin"
    )
    assert file_stat["url"].endswith("/sub/b%20%231.bin")
    dir_stat = run("stat", f"azfiles://devaccount/demo/{top}/sub")
    assert isinstance(dir_stat, dict) and dir_stat["type"] == "directory"
    missing = CliRunner().invoke(
        FILE_COMMANDS["stat"],
        [f"azfiles://devaccount/demo/{top}/nope", "--json", "--emulator", str(emulator.data_dir)],
    )
    assert missing.exit_code == 7
    assert json.loads(missing.stderr)["status"] == 404
