"""The official Azure SDKs as independent checkers of the emulator, over real HTTPS to a real process.

What `azure-storage-file-share` and `azure-identity` accept here, Azure would accept: if the emulator's
replies were shaped wrong, these clients would fail to parse them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.storage.fileshare import ContentSettings, LinearRetry, ShareClient, ShareServiceClient

from keyless.testing import EmulatorProcess

SIZES = [0, 1, 4 * 1024 * 1024 + 1, 9 * 1024 * 1024 + 123]


@pytest.fixture
def imds_env(emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", emulator.imds_url)


def share_client(emulator: EmulatorProcess, credential: Any, share: str = "demo", **kw: Any) -> ShareClient:
    return ShareClient(
        account_url=emulator.account()["url"],
        share_name=share,
        credential=credential,
        connection_verify=emulator.ca_cert,
        **kw,
    )


@pytest.fixture
def oauth_share(
    emulator: EmulatorProcess, imds_env: None, request: pytest.FixtureRequest
) -> Iterator[ShareClient]:
    # Names ending in a dot are kept only when the client asks (x-ms-allow-trailing-dot), as in Azure.
    share = share_client(emulator, ManagedIdentityCredential(), token_intent="backup",
                         allow_trailing_dot=True, allow_source_trailing_dot=True)
    top = share.get_directory_client(f"t-{request.node.name[:40]}")
    top.create_directory()
    yield share
    _remove_tree(share, top.directory_path)


def _remove_tree(share: ShareClient, path: str) -> None:
    directory = share.get_directory_client(path)
    for item in directory.list_directories_and_files():
        child = f"{path}/{item['name']}"
        if item["is_directory"]:
            _remove_tree(share, child)
        else:
            share.get_file_client(child).delete_file()
    directory.delete_directory()


def _top(share: ShareClient, request: pytest.FixtureRequest) -> str:
    return f"t-{request.node.name[:40]}"


def test_upload_download_sizes_identical(oauth_share: ShareClient, request: pytest.FixtureRequest) -> None:
    top = _top(oauth_share, request)
    for size in SIZES:
        data = os.urandom(size)
        fc = oauth_share.get_file_client(f"{top}/f-{size}.bin")
        fc.upload_file(data, max_concurrency=4)
        props = fc.get_file_properties()
        assert props.size == size
        got = fc.download_file(max_concurrency=4).readall()
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    # ranged read
    fc = oauth_share.get_file_client(f"{top}/f-{SIZES[2]}.bin")
    whole = fc.download_file().readall()
    assert fc.download_file(offset=1000, length=5000).readall() == whole[1000:6000]


def test_list_paging_properties_metadata_rename_delete(oauth_share: ShareClient,
                                                       request: pytest.FixtureRequest) -> None:
    top = _top(oauth_share, request)
    directory = oauth_share.get_directory_client(top)
    names = {f"file {i} #%é." if i % 3 == 0 else f"f{i}.txt" for i in range(7)}
    for name in names:
        directory.get_file_client(name).upload_file(name.encode())
    directory.get_subdirectory_client("sub").create_directory()

    pages = list(directory.list_directories_and_files(results_per_page=2).by_page())
    assert len(pages) >= 4  # 8 entries, two per page
    listed = [item["name"] for page in pages for item in page]
    assert sorted(listed) == sorted([*names, "sub"])

    name = "file 3 #%é."
    fc = directory.get_file_client(name)
    assert fc.download_file().readall() == name.encode()  # special characters round-trip
    fc.set_file_metadata({"owner": "keyless", "purpose": "test"})
    assert fc.get_file_properties().metadata == {"owner": "keyless", "purpose": "test"}
    fc.set_http_headers(content_settings=ContentSettings(content_type="text/plain", content_language="fr"),
                        file_attributes="none")
    settings = fc.get_file_properties().content_settings
    assert (settings.content_type, settings.content_language) == ("text/plain", "fr")
    fc.resize_file(10)
    assert fc.get_file_properties().size == 10

    renamed = fc.rename_file(f"{top}/renamed.bin")
    assert renamed.get_file_properties().size == 10
    with pytest.raises(ResourceNotFoundError):
        fc.get_file_properties()

    other = directory.get_file_client("f1.txt")
    with pytest.raises(ResourceExistsError):
        directory.get_file_client("f2.txt").rename_file(f"{top}/f1.txt")
    directory.get_file_client("f2.txt").rename_file(f"{top}/f1.txt", overwrite=True)
    assert other.download_file().readall() == b"f2.txt"

    sub = directory.get_subdirectory_client("sub")
    sub.rename_directory(f"{top}/sub2")
    assert directory.get_subdirectory_client("sub2").get_directory_properties() is not None

    renamed.delete_file()
    with pytest.raises(ResourceNotFoundError):
        renamed.get_file_properties()


def test_copy_within_account(oauth_share: ShareClient, request: pytest.FixtureRequest) -> None:
    top = _top(oauth_share, request)
    src = oauth_share.get_file_client(f"{top}/src.bin")
    data = os.urandom(70_000)
    src.upload_file(data)
    dst = oauth_share.get_file_client(f"{top}/dst.bin")
    result = dst.start_copy_from_url(src.url)
    assert result["copy_status"] == "success"
    assert dst.download_file().readall() == data


def test_app_service_credential(emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", raising=False)
    app = emulator.info["app_service"]
    monkeypatch.setenv("IDENTITY_ENDPOINT", app["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", app["IDENTITY_HEADER"])
    credential = ManagedIdentityCredential()
    token = credential.get_token("https://storage.azure.com/.default")
    assert token.expires_on > 0
    share = share_client(emulator, credential, token_intent="backup")
    fc = share.get_file_client("appservice-check.txt")
    fc.upload_file(b"hello from app service")
    assert fc.download_file().readall() == b"hello from app service"
    fc.delete_file()


def test_shared_key_through_sdk(emulator: EmulatorProcess) -> None:
    acct = emulator.account()
    service = ShareServiceClient(
        account_url=acct["url"],
        credential={"account_name": acct["name"], "account_key": acct["key"]},
        connection_verify=emulator.ca_cert,
    )
    assert "demo" in [s["name"] for s in service.list_shares()]
    share = service.get_share_client("demo")
    fc = share.get_file_client("sharedkey.txt")
    fc.upload_file(b"signed with the account key")
    assert fc.download_file().readall() == b"signed with the account key"
    fc.delete_file()

    wrong = ShareServiceClient(
        account_url=acct["url"],
        credential={"account_name": acct["name"], "account_key": "d3Jvbmcga2V5IGZvciB0aGUgdGVzdA=="},
        connection_verify=emulator.ca_cert,
    )
    with pytest.raises(HttpResponseError) as info:
        list(wrong.list_shares())
    assert info.value.status_code == 403
    assert info.value.error_code == "AuthenticationFailed"


def test_share_lifecycle_with_shared_key(emulator: EmulatorProcess) -> None:
    acct = emulator.account()
    service = ShareServiceClient(
        account_url=acct["url"],
        credential={"account_name": acct["name"], "account_key": acct["key"]},
        connection_verify=emulator.ca_cert,
    )
    share = service.create_share("lifecycle", metadata={"k": "v"}, quota=7)
    props = share.get_share_properties()
    assert props.quota == 7 and props.metadata == {"k": "v"}
    with pytest.raises(ResourceExistsError):
        service.create_share("lifecycle")
    service.delete_share("lifecycle")
    with pytest.raises(ResourceNotFoundError):
        share.get_share_properties()


def test_sdk_rides_out_injected_server_busy(emulator: EmulatorProcess, imds_env: None) -> None:
    # The storage SDK's default back-off starts at 15 s; a short linear one keeps the test quick.
    share = share_client(emulator, ManagedIdentityCredential(), token_intent="backup",
                         retry_policy=LinearRetry(backoff=0.2, random_jitter_range=0.1))
    fc = share.get_file_client("busy.bin")
    data = os.urandom(300_000)
    emulator.set_faults([{"target": "files", "action": "status", "status": 503, "count": 2, "method": "PUT"},
                         {"target": "files", "action": "drop", "count": 1, "method": "GET"}])
    try:
        fc.upload_file(data)
        assert fc.download_file().readall() == data
        fired = {(r["action"], r["fired"]) for r in emulator.set_faults([])["rules"]}
    finally:
        emulator.set_faults([])
    fc.delete_file()
    busy = [r for r in emulator.audit("StorageFileLogs")
            if r.get("EmulatorFault") == "status" and r["StatusCode"] == "503"]
    assert len(busy) >= 2 and all(r["StatusText"] == "ServerBusy" for r in busy)
    assert fired == set()  # the rules were replaced; the audit log is the record of what fired


def test_azure_identity_retries_scripted_imds_throttling(emulator: EmulatorProcess, imds_env: None) -> None:
    before = len([r for r in emulator.audit("TokenIssuance") if r.get("source") == "imds"])
    emulator.set_faults([{"target": "imds", "action": "status", "status": 429, "count": 2, "retry_after": 0}])
    try:
        token = ManagedIdentityCredential().get_token("https://storage.azure.com/.default")
    finally:
        emulator.set_faults([])
    assert token.token
    imds = [r for r in emulator.audit("TokenIssuance") if r.get("source") == "imds"][before:]
    assert [r["status"] for r in imds] == [429, 429, 200]
