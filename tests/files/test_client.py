from __future__ import annotations

import os
from pathlib import Path

import pytest
from files_fake import BASE, FakeTransport, StaticCredential

from keyless.clock import FakeClock
from keyless.files import errors as fe
from keyless.files import sync, transfer
from keyless.files.client import ShareClient
from keyless.files.localtargets import LocalTargets
from keyless.files.retry import RetryPolicy

FAST = RetryPolicy(total=6, backoff_factor=0.001, backoff_max=0.002)


def make(
    fake: FakeTransport | None = None, cred: StaticCredential | None = None, **kw: object
) -> tuple[ShareClient, FakeTransport, StaticCredential]:
    fake = fake or FakeTransport()
    cred = cred or StaticCredential("good")
    return ShareClient(BASE, cred, transport=fake, retry=FAST, **kw), fake, cred  # type: ignore[arg-type]


def test_every_bearer_request_carries_the_headers() -> None:
    client, fake, _ = make()
    client.mkdir("d")
    _, url, headers = fake.requests[-1]
    assert url.endswith("/share/d?restype=directory")
    assert headers["Authorization"] == "Bearer good"
    assert headers["x-ms-file-request-intent"] == "backup"
    assert headers["x-ms-version"] >= "2022-11-02"
    assert headers["x-ms-date"].endswith("GMT")
    assert len(headers["x-ms-client-request-id"]) == 36


def test_mkdir_parents_exist_ok_and_listing_pages() -> None:
    client, _fake, _ = make()
    assert client.mkdir("a/b/c", parents=True)
    assert not client.mkdir("a/b/c", exist_ok=True)
    with pytest.raises(fe.AlreadyExists):
        client.mkdir("a/b/c")
    with pytest.raises(fe.ParentNotFound):
        client.mkdir("x/y")
    for i in range(5):
        client.upload_bytes(f"a/f{i} #?.txt", b"x" * i)
    names = [e.name for e in client.listdir("a")]
    assert names == ["b"] + [f"f{i} #?.txt" for i in range(5)]  # 3 pages of 2
    walked = [(d, [x.name for x in ds], [x.name for x in fs]) for d, ds, fs in client.walk("")]
    assert walked[0] == ("", ["a"], [])
    assert walked[-1] == ("a/b/c", [], [])


def test_upload_download_ranges_and_props(tmp_path: Path) -> None:
    client, fake, _ = make(concurrency=4)
    data = os.urandom(4 * 1024 * 1024 * 2 + 12345)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    client.mkdir("d")
    transfer.upload_file(client, src, "d/big.bin")
    ranges = [h["x-ms-range"] for m, u, h in fake.requests if "comp=range" in u]
    sent = [h for m, u, h in fake.requests if "comp=range" in u]
    # Every range travels as a structured message with its CRC64 (no MD5 to compute).
    assert len(ranges) == 3
    assert all(h["x-ms-structured-body"] == "XSM/1.0; properties=crc64" for h in sent)
    assert not any("Content-MD5" in h for h in sent)
    props = client.properties("d/big.bin")
    assert props.size == len(data) and not props.is_dir
    assert client.properties("d").is_dir
    out = tmp_path / "out.bin"
    transfer.download_file(client, "d/big.bin", out)
    assert out.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".keyless-part")] == []
    # zero ranges are skipped on upload: the service creates files zero-filled
    zeros = tmp_path / "zeros"
    zeros.write_bytes(bytes(5 * 1024 * 1024))
    before = len(fake.requests)
    transfer.upload_file(client, zeros, "d/zeros")
    assert not [u for _, u, _ in fake.requests[before:] if "comp=range" in u]
    assert client.read_bytes("d/zeros") == bytes(5 * 1024 * 1024)


def test_metadata_resize_rename_delete() -> None:
    client, _fake, _ = make()
    client.mkdir("d")
    client.upload_bytes("d/f", b"hello", content_type="text/plain")
    client.set_metadata("d/f", {"k": "v"})
    assert client.properties("d/f").metadata == {"k": "v"}
    client.resize("d/f", 8)
    assert client.read_bytes("d/f") == b"hello\0\0\0"
    client.rename("d/f", "d/g")
    assert not client.exists("d/f") and client.exists("d/g")
    client.upload_bytes("d/h", b"1")
    with pytest.raises(fe.AlreadyExists):
        client.rename("d/g", "d/h")
    client.rename("d/g", "d/h", replace=True)
    with pytest.raises(fe.DirectoryNotEmpty):
        client.delete("d")
    client.mkdir("d/sub/deeper", parents=True)
    client.upload_bytes("d/sub/deeper/x", b"x")
    assert client.delete("d", recursive=True) == 5
    assert [e.name for e in client.listdir("")] == []
    with pytest.raises(fe.NotFound):
        client.properties("d")


def test_401_refreshes_once_then_fails_naming_identity() -> None:
    fake = FakeTransport(tokens={"tok-FRESH-42"})
    cred = StaticCredential("stale", "tok-FRESH-42", "tok-FRESH-43")
    client, _, _ = make(fake, cred)
    client.mkdir("d")  # 401 with stale -> invalidate -> new token -> OK
    assert cred.invalidations == 1
    assert [h["Authorization"] for _, _, h in fake.requests] == ["Bearer stale", "Bearer tok-FRESH-42"]
    fake.tokens.clear()
    with pytest.raises(fe.AuthenticationFailed) as info:
        client.mkdir("e")
    assert "tok-FRESH-4" not in str(info.value)  # never the token
    assert "even after fetching a fresh one" in str(info.value)  # true: a fresh token was refused too


def test_401_without_invalidate_asks_again_and_stops_on_same_token() -> None:
    fake = FakeTransport(tokens=set())
    cred = StaticCredential("same", invalidate=False)
    client, _, _ = make(fake, cred)
    with pytest.raises(fe.AuthenticationFailed) as info:
        client.mkdir("d")
    assert len(fake.requests) == 1  # same token came back: no pointless resend
    # The message must not claim a fresh token was tried.
    assert "even after" not in str(info.value) and "no fresh one could be tried" in str(info.value)


def test_missing_intent_is_explained() -> None:
    class Stripping(FakeTransport):
        def request(self, method, url, headers, body=None):  # type: ignore[no-untyped-def]
            headers.pop("x-ms-file-request-intent", None)
            return super().request(method, url, headers, body)

    client, _, _ = make(Stripping())
    with pytest.raises(fe.MissingIntentHeader) as info:
        client.mkdir("d")
    assert "x-ms-file-request-intent: backup" in str(info.value)


def test_403_never_retried_and_names_identity() -> None:
    import base64
    import json

    claims = (
        base64.urlsafe_b64encode(json.dumps({"oid": "O-9", "appid": "A-9"}).encode()).decode().rstrip("=")
    )
    token = f"h.{claims}.s"
    fake = FakeTransport(tokens={token})
    fake.denied.add("PUT")
    client, _, _ = make(fake, StaticCredential(token))
    with pytest.raises(fe.PermissionDenied) as info:
        client.mkdir("d")
    assert len(fake.requests) == 1
    text = str(info.value)
    assert "O-9" in text and "A-9" in text and token not in text


def test_wait_for_access_retries_403_until_granted() -> None:
    fake = FakeTransport()
    fake.denied.add("PUT")

    class Granting(FakeClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            if len(self.sleeps) == 2:
                fake.denied.clear()  # the role assignment propagated

    clock = Granting()
    client, _, _ = make(fake, wait_for_access=60, clock=clock)
    assert client.mkdir("d")
    assert clock.sleeps == [2.0, 4.0]


def test_wait_for_access_gives_up_at_the_deadline() -> None:
    fake = FakeTransport()
    fake.denied.add("PUT")
    clock = FakeClock()
    client, _, _ = make(fake, wait_for_access=60, clock=clock)
    with pytest.raises(fe.PermissionDenied):
        client.mkdir("d")
    assert sum(clock.sleeps) == pytest.approx(60.0) and clock.sleeps[-1] == pytest.approx(60 - 30)


def test_transient_faults_are_retried() -> None:
    client, fake, _ = make()
    fake.faults = [503, 500, "drop", 429, "drop-unsent"]
    client.mkdir("d")
    assert client.exists("d")
    # rename is not idempotent: a dropped connection after sending is not retried...
    client.upload_bytes("d/a", b"a")
    fake.faults = ["drop"]
    with pytest.raises(fe.ConnectionFailed):
        client.rename("d/a", "d/b", is_dir=False)
    # ...but a 503 (refused before execution) is
    fake.faults = [503]
    client.rename("d/a", "d/b", is_dir=False)
    assert client.exists("d/b")


def test_retries_give_up() -> None:
    client, fake, _ = make()
    fake.faults = [503] * 10
    with pytest.raises(fe.ServiceError) as info:
        client.mkdir("d")
    assert info.value.status == 503 and info.value.code == "ServerBusy"


def test_interrupted_download_leaves_no_partial_file(tmp_path: Path) -> None:
    client, fake, _ = make(concurrency=2)
    client.upload_bytes("f", os.urandom(9 * 1024 * 1024))
    fake.faults = [500] * 20
    target = tmp_path / "f"
    with pytest.raises(fe.ServiceError):
        transfer.download_file(client, "f", target)
    assert list(tmp_path.iterdir()) == []


def test_token_refused_destination() -> None:
    fake = FakeTransport()
    client = ShareClient("https://evil.example.com/share", StaticCredential("good"), transport=fake)
    with pytest.raises(fe.UnsafeDestination):
        client.mkdir("d")
    assert fake.requests == []


def test_shared_key_never_sends_intent() -> None:
    import base64

    client = ShareClient(BASE, account_key=base64.b64encode(b"k" * 32).decode(), transport=FakeTransport())
    client.mkdir("d")
    assert client.transport.shared_key_seen  # type: ignore[attr-defined]


def test_trees_and_sync(tmp_path: Path) -> None:
    client, _fake, _ = make()
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    files = {"top.txt": b"top", "a/one": os.urandom(1000), "a/b/two words.bin": os.urandom(5 * 1024 * 1024)}
    for rel, data in files.items():
        (src / rel).write_bytes(data)
    (src / "empty").mkdir()
    stats = transfer.upload_tree(client, src, "dst")
    assert stats.files == 3
    assert client.properties("dst/empty").is_dir
    out = tmp_path / "out"
    transfer.download_tree(client, "dst", out)
    for rel, data in files.items():
        assert (out / rel).read_bytes() == data
    assert (out / "empty").is_dir()
    # remote -> remote
    transfer.copy_tree(client, "dst", client, "copy")
    assert client.read_bytes("copy/a/one") == files["a/one"]
    # sync: nothing changed -> all skipped; then a change, a new file and a deletion
    stats = sync.sync_up(client, src, "dst")
    assert stats.files == 0 and stats.skipped == 3
    (src / "top.txt").write_bytes(b"changed!")
    (src / "new").write_bytes(b"n")
    (src / "a" / "one").unlink()
    stats = sync.sync_up(client, src, "dst", delete=True)
    assert stats.files == 2 and stats.deleted == 1
    assert not client.exists("dst/a/one") and client.read_bytes("dst/top.txt") == b"changed!"
    stats = sync.sync_down(client, "dst", out, delete=True)
    assert (out / "top.txt").read_bytes() == b"changed!" and not (out / "a" / "one").exists()


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../x", "a\\..\\x", "C:x", "a//b", "."])
def test_unsafe_remote_names_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(fe.UnsafeName):
        transfer.safe_local_path(tmp_path, name)


def test_symlink_escape_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(fe.UnsafeName):
        transfer.safe_local_path(root, "link/x")
    assert transfer.safe_local_path(root, "ok/x") == root / "ok" / "x"


def test_a_tree_resolves_each_directory_once_and_still_refuses_every_name_under_an_escape(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    (root / "ok").mkdir(parents=True)
    (root / "link").symlink_to(outside)
    targets = LocalTargets(root, None)
    a, a_parent = targets.place("ok/a")
    b, b_parent = targets.place("ok/b")
    assert (a, b) == (root / "ok" / "a", root / "ok" / "b")
    assert a_parent is b_parent  # resolved once for both
    assert targets.place("top")[0] == root / "top"
    for name in ("link/x", "link/y", "link/sub/z"):  # the second is answered from the cache: still refused
        with pytest.raises(fe.UnsafeName, match="resolves outside"):
            targets.place(name)


def test_a_new_file_is_published_only_if_nobody_created_it_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ETag check before the rename leaves a window; for a target that did not exist at the start the
    rename itself closes it (no replace): a file created in the window is never overwritten."""
    client, _fake, _ = make()
    local = tmp_path / "mine.bin"
    local.write_bytes(b"mine")
    real_etag = client.file_etag
    calls: list[str] = []

    def etag_then_race(path: str) -> str | None:
        calls.append(path)
        if len(calls) == 2:  # just after the check, another writer creates the target
            client.upload_bytes(path, b"theirs")
            return None
        return real_etag(path)

    monkeypatch.setattr(client, "file_etag", etag_then_race)
    with pytest.raises(fe.ChangedDuringUpload):
        transfer.upload_file(client, local, "new.bin")
    assert client.read_bytes("new.bin") == b"theirs"
    assert [e.name for e in client.listdir("")] == ["new.bin"], "the part file was left behind"


def test_sync_down_delete_keeps_a_local_name_that_is_the_synced_file(tmp_path: Path) -> None:
    """A case-insensitive local filesystem shows ``Report.txt`` and ``report.txt`` as one file; a hard
    link models that here (two names, one file). The remote ``report.txt`` is synced, so neither name of
    that file may be deleted as extraneous; a genuinely different file still is."""
    client, _fake, _ = make()
    client.mkdir("d")
    client.upload_bytes("d/report.txt", b"synced")
    out = tmp_path / "out"
    sync.sync_down(client, "d", out)
    os.link(out / "report.txt", out / "Report.txt")
    (out / "REPORT.TXT").write_bytes(b"a different file")
    stats = sync.sync_down(client, "d", out, delete=True)
    assert (out / "Report.txt").read_bytes() == b"synced"
    assert not (out / "REPORT.TXT").exists() and stats.deleted == 1
