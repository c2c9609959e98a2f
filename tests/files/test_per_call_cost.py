"""What each request and each small file costs the client stays bounded, without losing behaviour: a tree
download looks for killed runs' part files once per directory (not once per file, which made a download of
n files in one directory cost n directory scans), and still removes them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keyless.files import ShareClient, transfer
from keyless.files import errors as fe
from keyless.files.urls import share_url
from keyless.identity import ManagedIdentityCredential
from keyless.testing import EmulatorProcess

PART_SUFFIX = ".keyless-part"


@pytest.fixture
def client(emulator: EmulatorProcess) -> Iterator[ShareClient]:
    cred = ManagedIdentityCredential(source="imds", imds_host=emulator.imds_url)
    url = share_url("devaccount", "demo", emulator_url=emulator.files_url)
    with ShareClient(url, cred, ca_cert=emulator.ca_cert, emulator_url=emulator.files_url) as c:
        yield c


def _upload_small_tree(client: ShareClient, tmp_path: Path, count: int) -> tuple[str, dict[str, bytes]]:
    src = tmp_path / "src"
    src.mkdir()
    sub = src / "sub"
    sub.mkdir()
    files = {f"f{i:02d}.bin": os.urandom(100 + i) for i in range(count)}
    for name, data in files.items():
        (src / name).write_bytes(data)
        (sub / name).write_bytes(data)
    remote = f"percall-{uuid.uuid4().hex[:8]}"
    transfer.upload_tree(client, src, remote)
    return remote, files


def test_a_tree_download_scans_each_directory_once_for_stale_parts(
    client: ShareClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote, files = _upload_small_tree(client, tmp_path, 20)
    out = tmp_path / "out"
    scanned: list[str] = []
    real_scandir = os.scandir

    def counting_scandir(path: Any = ".") -> Any:
        scanned.append(os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", counting_scandir)
    stats = transfer.download_tree(client, remote, out)
    monkeypatch.undo()
    assert stats.files == 2 * len(files)
    for name, data in files.items():
        assert (out / name).read_bytes() == data
        assert (out / "sub" / name).read_bytes() == data
    # One scan per local directory at most, however many files land in it.
    assert sorted(scanned) == sorted({str(out), str(out / "sub")}), scanned


def test_a_tree_download_still_removes_killed_runs_parts_and_nothing_else(
    client: ShareClient, tmp_path: Path
) -> None:
    remote, files = _upload_small_tree(client, tmp_path, 3)
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    stale = [out / f".f00.bin.0123abcd{PART_SUFFIX}", out / "sub" / f".f02.bin.89abcdef{PART_SUFFIX}"]
    for path in stale:
        path.write_bytes(b"partial")
    kept = [
        out / ".f00.bin.notapart",
        out / f".f00.bin.x.0123abcd{PART_SUFFIX}",  # a part of "f00.bin.x", which is not downloaded
        out / f".other.bin.0123abcd{PART_SUFFIX}",
    ]
    for path in kept:
        path.write_bytes(b"keep")

    transfer.download_tree(client, remote, out)

    assert not [p for p in stale if p.exists()]
    assert all(p.read_bytes() == b"keep" for p in kept)
    assert (out / "f00.bin").read_bytes() == files["f00.bin"]
    assert (out / "sub" / "f02.bin").read_bytes() == files["f02.bin"]


# --- request ids --------------------------------------------------------------------------------------------


def test_request_ids_are_unique_across_threads_and_read_as_uuids() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from keyless.files.request_ids import new_request_id

    def many(_: int) -> list[str]:
        return [new_request_id() for _ in range(5000)]

    with ThreadPoolExecutor(8) as pool:
        ids = [i for batch in pool.map(many, range(8)) for i in batch]
    assert len(set(ids)) == len(ids) == 40000
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids[::997])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_child_does_not_repeat_its_parents_request_ids() -> None:
    from keyless.files.request_ids import new_request_id

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        os.close(read_end)
        os.write(write_end, " ".join(new_request_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write_end)
    parent = {new_request_id() for _ in range(3)}
    with os.fdopen(read_end, "rb") as f:
        child = set(f.read().decode().split())
    os.waitpid(pid, 0)
    assert len(child) == 3
    assert not parent & child
    assert {i[:24] for i in parent}.isdisjoint({i[:24] for i in child})  # a new random prefix


def test_every_request_of_a_concurrent_upload_has_its_own_id_and_retries_keep_theirs() -> None:
    from files_fake import BASE, FakeTransport, StaticCredential

    from keyless.files.retry import RetryPolicy

    fake = FakeTransport()
    client = ShareClient(
        BASE, StaticCredential("good"), transport=fake, retry=RetryPolicy(backoff_factor=0.001), concurrency=8
    )
    client.upload_bytes("big.bin", os.urandom(6 * 4 * 1024 * 1024 + 5))
    ids = [h["x-ms-client-request-id"] for _, _, h in fake.requests]
    assert len(ids) == 1 + 7  # create and seven ranges
    assert len(set(ids)) == len(ids)
    fake.faults = [503]
    client.mkdir("d")
    retried = [h["x-ms-client-request-id"] for _, _, h in fake.requests[-2:]]
    assert retried[0] == retried[1] and retried[0] not in ids  # one operation, one id


# --- the token on every request -----------------------------------------------------------------------------


class _RotatingCredential:
    """Hands out whatever token is current, as a credential's cache does after it refreshed on its own."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls = 0
        self.invalidations = 0

    def get_token(self, *scopes: str, **kw: Any) -> Any:
        from collections import namedtuple

        self.calls += 1
        return namedtuple("AccessToken", "token expires_on")(self.token, 2**31)

    def invalidate(self) -> None:
        self.invalidations += 1
        self.token = f"after-401-{self.invalidations}"


def test_a_token_the_credential_refreshed_is_used_on_the_very_next_request() -> None:
    from files_fake import BASE, FakeTransport

    fake = FakeTransport(tokens={"first", "second"})
    cred = _RotatingCredential("first")
    client = ShareClient(BASE, cred, transport=fake)
    client.mkdir("a")
    cred.token = "second"  # the credential's cache moved on (early refresh, or the first one expired)
    client.mkdir("b")
    client.mkdir("c")
    sent = [h["Authorization"] for _, _, h in fake.requests]
    assert sent == ["Bearer first", "Bearer second", "Bearer second"]
    assert cred.calls == 3  # asked on every request: its cache, not a copy here, decides when to refresh


def test_a_401_still_refreshes_once_and_later_requests_carry_the_new_token() -> None:
    from files_fake import BASE, FakeTransport

    fake = FakeTransport(tokens={"after-401-1"})
    cred = _RotatingCredential("revoked")
    client = ShareClient(BASE, cred, transport=fake)
    client.mkdir("a")  # 401 -> invalidate -> resent with the fresh token
    client.mkdir("b")
    assert [h["Authorization"] for _, _, h in fake.requests] == [
        "Bearer revoked",
        "Bearer after-401-1",
        "Bearer after-401-1",
    ]
    assert cred.invalidations == 1
    fake.tokens.clear()  # the fresh token is revoked too: one more refresh per operation, then the error
    with pytest.raises(fe.AuthenticationFailed):
        client.mkdir("c")
    assert cred.invalidations == 2
    sent = [h["Authorization"] for _, _, h in fake.requests[3:]]
    assert sent == ["Bearer after-401-1", "Bearer after-401-2"]


def test_query_values_are_encoded_as_quote_does() -> None:
    from urllib.parse import quote

    from keyless.files.client import query_quote

    for text in ["range", "Timestamps,ETag,Attributes", "a b", "5000", "x/y", "ü", "~._-", "", "a&b=c", "%"]:
        assert query_quote(text) == quote(text, safe=""), text


# --- small reads and resizes in one request -----------------------------------------------------------------


class _Counting:
    """Wraps a client's transport to count the requests it sends."""

    def __init__(self, client: ShareClient) -> None:
        self.methods: list[str] = []
        inner = client._pipeline.transport
        real = inner.request

        def request(method: str, url: str, headers: dict[str, str], *args: Any, **kw: Any) -> Any:
            self.methods.append(method)
            return real(method, url, headers, *args, **kw)

        inner.request = request  # type: ignore[method-assign]


def test_read_small_gives_the_bytes_and_the_properties_in_one_request(client: ShareClient) -> None:
    name = f"small-{uuid.uuid4().hex[:8]}.txt"
    data = os.urandom(5000)
    client.create_file(name, len(data), content_type="text/csv", metadata={"owner": "ops"},
                       last_write_time=1_700_000_000.0)
    client.put_range(name, 0, data)
    expected = client.properties(name)
    counting = _Counting(client)

    got, props = client.read_small(name, len(data))

    assert counting.methods == ["GET"]
    assert got == data
    assert props.size == len(data) and not props.is_dir and props.path == name
    assert props.content_type == "text/csv" and props.metadata == {"owner": "ops"}
    assert props.etag == expected.etag and props.last_write_time == expected.last_write_time
    assert props.last_modified == expected.last_modified and props.creation_time == expected.creation_time

    # The first bytes of a larger file: Properties.size is the whole file's, so a caller sees the change.
    client.resize(name, 9000, props=props)
    head, props = client.read_small(name, 100)
    assert head == data[:100] and props.size == 9000
    with pytest.raises(ValueError, match="1 to"):
        client.read_small(name, 0)


def test_resize_with_known_properties_is_one_request_and_keeps_the_content_type(client: ShareClient) -> None:
    name = f"grow-{uuid.uuid4().hex[:8]}.bin"
    client.create_file(name, 10, content_type="application/x-parquet")
    _, props = client.read_small(name, 10)
    counting = _Counting(client)

    client.resize(name, 4096, props=props)
    assert counting.methods == ["PUT"]
    after = client.properties(name)
    assert after.size == 4096 and after.content_type == "application/x-parquet"

    del counting.methods[:]
    client.resize(name, 3)  # without them: Get File Properties first, as before
    assert counting.methods == ["HEAD", "PUT"]
    after = client.properties(name)
    assert after.size == 3 and after.content_type == "application/x-parquet"


# --- request URLs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "a", "dir/file.txt", ".f0001.bin.0123abcd.keyless-part", "d/.hidden", "a-b_c~d.e", "...", "a/.../b",
    "", "/", "/a", "a/", "a//b", "a b", "ü/x", "a%2Fb", "x?y", "a#b", "semi;colon", "plus+", "a\\b",
])
def test_request_urls_are_encoded_as_every_segment_alone_would_be(path: str) -> None:
    from files_fake import BASE, FakeTransport, StaticCredential

    from keyless.files.urls import encode_segment, split_path

    client = ShareClient(BASE, StaticCredential("good"), transport=FakeTransport())
    names = split_path(path)
    expected = BASE + "".join("/" + encode_segment(n) for n in names)
    assert client._path_url(path) == expected


@pytest.mark.parametrize("path", [".", "..", "a/./b", "a/../b", "../x", "x/.."])
def test_dot_segments_are_still_refused(path: str) -> None:
    from files_fake import BASE, FakeTransport, StaticCredential

    from keyless.files.urls import InvalidFileUrl

    client = ShareClient(BASE, StaticCredential("good"), transport=FakeTransport())
    with pytest.raises(InvalidFileUrl):
        client._path_url(path)
