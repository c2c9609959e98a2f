"""What the share soft-delete tests share: an emulator of their own (they change the account's retention
policy and the emulator's clock, which the session emulator's other users must not see) and the File
service property the official Python SDK cannot set.

``ShareServiceClient.set_service_properties`` (azure-storage-file-share 12.x) sends hour and minute
metrics, CORS and protocol settings only: Azure's own tests turn share soft delete on through the
resource provider ("share soft delete should enabled by SRP call", azure-sdk-for-python
tests/test_share.py test_restore_to_existing_share). The REST operation Set File Service Properties takes
``<ShareDeleteRetentionPolicy>``, so the tests send that body through the SDK's own pipeline (Shared Key
signing, x-ms-version) with ``send_request``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.core.rest import HttpRequest
from azure.storage.fileshare import (
    AccountSasPermissions,
    ResourceTypes,
    ShareServiceClient,
    generate_account_sas,
)
from azure.storage.fileshare.aio import ShareServiceClient as AsyncShareServiceClient

from keyless.testing import EmulatorProcess, start_emulator


def own_emulator(path: Path) -> Iterator[EmulatorProcess]:
    with start_emulator(path) as emu:
        yield emu
        unexpected = [r for r in emu.audit("StorageFileLogs") if r["StatusCode"][:1] == "5"]
        assert not unexpected, f"the emulator answered 5xx: {unexpected[:3]}"
        assert "Traceback" not in emu.stderr(), emu.stderr()


def retention_body(days: int | None) -> bytes:
    policy = ("<Enabled>false</Enabled>" if days is None
              else f"<Enabled>true</Enabled><Days>{days}</Days>")
    return (f'<?xml version="1.0" encoding="utf-8"?><StorageServiceProperties><ShareDeleteRetentionPolicy>'
            f"{policy}</ShareDeleteRetentionPolicy></StorageServiceProperties>").encode()


def properties_request(svc: ShareServiceClient | AsyncShareServiceClient, days: int | None) -> HttpRequest:
    return HttpRequest("PUT", f"{svc.url}?restype=service&comp=properties", content=retention_body(days),
                       headers={"Content-Type": "application/xml"})


def set_retention(svc: ShareServiceClient, days: int | None) -> None:
    """Turn share soft delete on for ``days`` (off with None), as Set File Service Properties does."""
    response = svc._client.send_request(properties_request(svc, days))  # private: see the docstring
    assert response.status_code == 202, response.text()


def sas_service(emulator: EmulatorProcess) -> ShareServiceClient:
    """A client whose requests stay valid while the emulator's clock is days ahead: an account SAS valid
    for a month is checked against that clock, where a Shared Key x-ms-date would be 'too skewed'."""
    acct = emulator.account()
    now = datetime.now(UTC)
    sas = generate_account_sas(acct["name"], acct["key"], ResourceTypes(service=True, container=True,
                                                                         object=True),
                               AccountSasPermissions(read=True, write=True, delete=True, list=True,
                                                     create=True),
                               expiry=now + timedelta(days=30), start=now - timedelta(days=1))
    return ShareServiceClient(acct["url"], credential=sas, connection_verify=emulator.ca_cert)


def blob_files(emulator: EmulatorProcess) -> set[str]:
    """The byte files in the emulator's data directory (one per file version, live or kept)."""
    return {p.name for p in (emulator.data_dir / "blobs").rglob("*") if p.is_file()}
