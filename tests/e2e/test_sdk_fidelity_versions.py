"""x-ms-version rules with the official SDK as the client: before 2024-11-04 the operations that manage
the FileService and FileShare resources refuse a bearer token with Azure's 409
FileOAuthManagementApiRestrictedToSrp, while file and directory operations take it; from 2024-11-04 on
RBAC decides (tests/e2e/test_sdk_fidelity_rbac.py). Unknown versions and non-ASCII numbers are covered at
the byte level in tests/emulator/test_files_versions.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.storage.fileshare import ShareClient, ShareServiceClient

from keyless.testing import EmulatorProcess

BEFORE = "2024-08-04"  # the last version before OAuth on management operations
FROM = "2024-11-04"


@pytest.fixture
def imds_env(emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", emulator.imds_url)
    yield


def _share(emulator: EmulatorProcess, version: str, **kw: Any) -> ShareClient:
    return ShareClient(emulator.account()["url"], "demo", credential=ManagedIdentityCredential(),
                       token_intent="backup", api_version=version, connection_verify=emulator.ca_cert, **kw)


def test_management_operations_refuse_oauth_before_2024_11_04(emulator: EmulatorProcess,
                                                              imds_env: None) -> None:
    old = _share(emulator, BEFORE)
    for call in (old.get_share_properties, lambda: old.set_share_metadata({"a": "b"}), old.create_snapshot,
                 old.get_share_access_policy, old.delete_share):
        with pytest.raises(HttpResponseError) as refused:
            call()
        assert (refused.value.status_code, refused.value.error_code) == (409,
                                                                         "FileOAuthManagementApiRestrictedToSrp")
        assert "Storage Resource Provider" in str(refused.value)
    service = ShareServiceClient(emulator.account()["url"], credential=ManagedIdentityCredential(),
                                 token_intent="backup", api_version=BEFORE,
                                 connection_verify=emulator.ca_cert)
    with pytest.raises(HttpResponseError) as listing:
        list(service.list_shares())
    assert listing.value.error_code == "FileOAuthManagementApiRestrictedToSrp"

    # The same token at the same version still works on files and directories.
    directory = old.get_directory_client("oauth-version-probe")
    directory.create_directory()
    directory.get_file_client("f.txt").upload_file(b"data")
    assert directory.get_file_client("f.txt").download_file().readall() == b"data"
    directory.get_file_client("f.txt").delete_file()
    directory.delete_directory()


def test_management_operations_reach_rbac_from_2024_11_04(emulator: EmulatorProcess, imds_env: None) -> None:
    """From 2024-11-04 the token passes the version rule and RBAC decides: the demo identity holds data
    roles on the share but no management role, so it is refused as Azure refuses it (the roles that are
    allowed are driven in test_sdk_fidelity_rbac.py)."""
    for version in (FROM, "2026-10-06"):
        with pytest.raises(HttpResponseError) as refused:
            _share(emulator, version).get_share_properties()
        assert (refused.value.status_code, refused.value.error_code) == (403,
                                                                         "AuthorizationPermissionMismatch")
