"""keyless.files against the emulator as a real process: bytes identical, the SDK as the oracle, faults."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.fileshare import ShareClient as SdkShareClient

from keyless.files import errors as fe
from keyless.files import transfer
from keyless.files.client import ShareClient
from keyless.files.retry import RetryPolicy
from keyless.files.urls import share_url
from keyless.identity import ManagedIdentityCredential
from keyless.testing import EmulatorProcess

# Azure Files refuses ? \ : | < > * " in names (400 InvalidResourceName); URLs round-trip them anyway.
SIZES = [0, 1, 4 * 1024 * 1024 + 1, 9 * 1024 * 1024 + 123]
NAMES = ["my file.txt", "100%.txt", "a#b", "50%25 off", "ünïcødé ✓.bin", "a+b&c=d;e"]
FAST = RetryPolicy(total=6, backoff_factor=0.01, backoff_max=0.05)


def credential(emu: EmulatorProcess) -> ManagedIdentityCredential:
    return ManagedIdentityCredential(source="imds", imds_host=emu.imds_url)


def client_for(emu: EmulatorProcess, cred: Any = None, share: str = "demo", **kw: Any) -> ShareClient:
    return ShareClient(
        share_url("devaccount", share, emulator_url=emu.files_url),
        cred or credential(emu),
        ca_cert=emu.ca_cert,
        emulator_url=emu.files_url,
        retry=FAST,
        **kw,
    )


def sdk_share(emu: EmulatorProcess) -> SdkShareClient:
    acct = emu.account("devaccount")
    return SdkShareClient(
        account_url=acct["url"],
        share_name="demo",
        credential={"account_name": "devaccount", "account_key": acct["key"]},
        connection_verify=emu.ca_cert,
    )


@pytest.fixture
def top(emulator: EmulatorProcess) -> Iterator[tuple[ShareClient, str]]:
    client = client_for(emulator)
    name = f"kl-{uuid.uuid4().hex[:8]}"
    client.mkdir(name)
    yield client, name
    emulator.set_faults([])
    client.delete(name, recursive=True)
    client.close()


@pytest.mark.parametrize("size", SIZES)
def test_upload_download_identical_and_sdk_agrees(
    top: tuple[ShareClient, str], emulator: EmulatorProcess, tmp_path: Path, size: int
) -> None:
    client, d = top
    data = os.urandom(size)
    src = tmp_path / "src"
    src.write_bytes(data)
    transfer.upload_file(client, src, f"{d}/up.bin")
    sdk = sdk_share(emulator)
    assert sdk.get_file_client(f"{d}/up.bin").download_file().readall() == data
    # and the reverse: the SDK writes, keyless reads
    sdk.get_file_client(f"{d}/sdk.bin").upload_file(data[::-1])
    out = tmp_path / "out"
    transfer.download_file(client, f"{d}/sdk.bin", out)
    assert out.read_bytes() == data[::-1]


def test_names_round_trip_and_listing(top: tuple[ShareClient, str], emulator: EmulatorProcess) -> None:
    client, d = top
    client.mkdir(f"{d}/sub dir")
    for name in NAMES:
        client.upload_bytes(f"{d}/sub dir/{name}", name.encode())
    listed = sorted(e.name for e in client.listdir(f"{d}/sub dir"))
    assert listed == sorted(NAMES)
    sdk_names = sorted(
        e["name"]
        for e in sdk_share(emulator).get_directory_client(f"{d}/sub dir").list_directories_and_files()
    )
    assert sdk_names == sorted(NAMES)
    for name in NAMES:
        assert client.read_bytes(f"{d}/sub dir/{name}") == name.encode()


def test_operations(top: tuple[ShareClient, str]) -> None:
    client, d = top
    assert client.mkdir(f"{d}/a/b/c", parents=True)
    assert not client.mkdir(f"{d}/a/b/c", exist_ok=True)
    with pytest.raises(fe.AlreadyExists):
        client.mkdir(f"{d}/a/b/c")
    with pytest.raises(fe.NotFound):
        client.mkdir(f"{d}/x/y")
    client.upload_bytes(f"{d}/a/f.txt", b"hello", content_type="text/plain")
    props = client.properties(f"{d}/a/f.txt")
    assert props.size == 5 and not props.is_dir and props.etag
    assert client.properties(f"{d}/a").is_dir
    client.set_metadata(f"{d}/a/f.txt", {"owner": "keyless"})
    assert client.properties(f"{d}/a/f.txt").metadata == {"owner": "keyless"}
    client.resize(f"{d}/a/f.txt", 8)
    assert client.read_bytes(f"{d}/a/f.txt") == b"hello\0\0\0"
    client.rename(f"{d}/a/f.txt", f"{d}/a/g.txt")
    assert not client.exists(f"{d}/a/f.txt") and client.exists(f"{d}/a/g.txt")
    client.rename(f"{d}/a/b", f"{d}/a/renamed")
    assert client.properties(f"{d}/a/renamed/c").is_dir
    with pytest.raises(fe.DirectoryNotEmpty):
        client.delete(f"{d}/a")
    transfer.copy_file(client, f"{d}/a/g.txt", client, f"{d}/copy.txt")
    assert client.read_bytes(f"{d}/copy.txt") == b"hello\0\0\0"
    assert client.delete(f"{d}/a", recursive=True) == 4
    assert [e.name for e in client.listdir(d)] == ["copy.txt"]


def test_faults_retried_bytes_identical_no_partials(
    top: tuple[ShareClient, str], emulator: EmulatorProcess, tmp_path: Path
) -> None:
    client, d = top
    data = os.urandom(13 * 1024 * 1024 + 7)
    src = tmp_path / "src"
    src.write_bytes(data)
    emulator.set_faults(
        [
            {"target": "files", "action": "status", "status": 503, "code": "ServerBusy", "count": 2},
            {"target": "files", "action": "drop", "count": 1, "method": "PUT"},
            {"target": "files", "action": "status", "status": 500, "count": 1},
        ]
    )
    transfer.upload_file(client, src, f"{d}/f.bin")
    emulator.set_faults(
        [
            {"target": "files", "action": "drop", "count": 2, "method": "GET"},
            {"target": "files", "action": "status", "status": 503, "count": 2, "retry_after": 0},
        ]
    )
    out = tmp_path / "dl" / "f.bin"
    out.parent.mkdir()
    transfer.download_file(client, f"{d}/f.bin", out)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()
    # A download that cannot finish leaves nothing behind, not even under a temporary name.
    emulator.set_faults([{"target": "files", "action": "status", "status": 500, "method": "GET"}])
    failed = tmp_path / "failed"
    failed.mkdir()
    with pytest.raises(fe.ServiceError):
        transfer.download_file(client, f"{d}/f.bin", failed / "f.bin")
    assert list(failed.iterdir()) == []


def test_token_refused_midway_is_refreshed(top: tuple[ShareClient, str], emulator: EmulatorProcess) -> None:
    """A token the service refuses (as if it expired) is dropped, a fresh one fetched, the request resent."""
    client, d = top
    real = credential(emulator)

    class ExpiringCredential:
        def __init__(self) -> None:
            self.calls = 0

        def get_token(self, *scopes: str, **kw: Any) -> Any:
            self.calls += 1
            tok = real.get_token(*scopes)
            if self.calls == 1:  # a well-formed but bad token, as an expired one looks to the client
                return type(tok)(tok.token[:-4] + "AAAA", tok.expires_on)
            return tok

    cred = ExpiringCredential()
    c2 = client_for(emulator, cred)
    c2.upload_bytes(f"{d}/after-401.txt", b"ok")
    assert cred.calls > 2  # the refused token once, then fresh ones
    assert client.read_bytes(f"{d}/after-401.txt") == b"ok"


def test_403_names_identity_and_role(emulator: EmulatorProcess) -> None:
    client = client_for(emulator, share="no-such-share")
    with pytest.raises(fe.PermissionDenied) as info:
        client.mkdir("x")
    text = str(info.value)
    demo_vm = emulator.identity("demo-vm")
    assert demo_vm["object_id"] in text and "Storage File Data Privileged Contributor" in text
    assert "5-30 minutes" in text


def test_shared_key_client(top: tuple[ShareClient, str], emulator: EmulatorProcess) -> None:
    _, d = top
    acct = emulator.account("devaccount")
    sk = client_for(emulator, account_key=acct["key"])
    sk.upload_bytes(f"{d}/sk name #1.txt", b"shared key")
    assert (
        sdk_share(emulator).get_file_client(f"{d}/sk name #1.txt").download_file().readall() == b"shared key"
    )
    assert [e.name for e in sk.listdir(d)] == ["sk name #1.txt"]


def test_unsafe_destination_never_gets_the_token(emulator: EmulatorProcess) -> None:
    client = ShareClient(
        share_url("devaccount", "demo", emulator_url=emulator.files_url),
        credential(emulator),
        ca_cert=emulator.ca_cert,
    )  # emulator not configured: its host is not trusted
    with pytest.raises(fe.UnsafeDestination):
        client.mkdir("x")
