"""The emulator's audit log in both of Azure's shapes: StorageFileLogs rows and diagnostic-settings blobs."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from aiohttp.test_utils import make_mocked_request

from keyless.emulator.audit import AuditLog, category_of, diagnostic_path, redact_uri
from keyless.migrate.logs import read_logs
from keyless.migrate.records import ReadStats


def fake_token(claims: dict[str, str]) -> str:
    def part(obj: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk"


def test_both_layouts_carry_the_same_request_and_no_token(tmp_path: Path) -> None:
    token = fake_token({"oid": "oid-1", "tid": "tenant-1", "appid": "app-1", "upn": "ops@contoso.com",
                        "aud": "https://storage.azure.com", "iss": "https://sts.windows.net/tenant-1/"})
    request = make_mocked_request(
        "GET", "/devaccount/demo/dir/a%20b.txt?sv=2022-11-02&sp=r&sig=c2VjcmV0c2lnbmF0dXJl",
        headers={"Host": "127.0.0.1:4443", "User-Agent": "backup-agent/2.1",
                 "Authorization": f"Bearer {token}"})
    log = AuditLog(tmp_path / "audit.log", diagnostic_settings=True)
    log.write("StorageFileLogs", request=request, operation="GetFile", method="GET", uri=request.raw_path,
              status=200, error_code=None, auth_type="OAuth", object_id="oid-1", app_id="app-1",
              request_id="rid-1", client_request_id="cid-1", version="2025-05-05", duration_ms=1.5)
    log.write("StorageFileLogs", request=request, operation="DeleteFile", status=403,
              error_code="AuthorizationPermissionMismatch", auth_type="AccountKey")
    log.write("TokenIssuance", source="imds", status=200, object_id="oid-1")
    log.close()

    row, denied, issued = [json.loads(x) for x in (tmp_path / "audit.log").read_text().splitlines()]
    assert row["Type"] == "StorageFileLogs" and row["Category"] == "StorageRead"
    assert row["AccountName"] == "devaccount" and row["ObjectKey"] == "/devaccount/demo/dir/a b.txt"
    assert row["UserAgentHeader"] == "backup-agent/2.1" and row["StatusCode"] == "200"
    assert row["RequesterTenantId"] == "tenant-1" and row["RequesterUpn"] == "ops@contoso.com"
    assert row["AuthenticationHash"] == hashlib.sha256(token.encode()).hexdigest().upper()
    assert row["Uri"].endswith("&sig=XXXXX") and row["CorrelationId"] == "rid-1"
    assert denied["StatusText"] == "AuthorizationPermissionMismatch" and denied["Category"] == "StorageDelete"
    assert issued == {"TimeGenerated": issued["TimeGenerated"], "Type": "TokenIssuance", "source": "imds",
                      "status": 200, "object_id": "oid-1"}

    blobs = sorted((tmp_path / "diagnostic-logs").rglob("PT1H.json"))
    assert [b.relative_to(tmp_path / "diagnostic-logs").parts[0] for b in blobs] == [
        "insights-logs-storagedelete", "insights-logs-storageread"]
    diag = json.loads(blobs[1].read_text())
    assert diag["category"] == "StorageRead" and diag["statusCode"] == 200
    assert diag["identity"]["type"] == "OAuth" and diag["identity"]["requester"]["objectId"] == "oid-1"
    assert diag["properties"]["userAgentHeader"] == "backup-agent/2.1"
    assert diag["resourceId"].endswith("/storageAccounts/devaccount/fileServices/default")
    for path in [tmp_path / "audit.log", *blobs]:
        text = path.read_text()
        assert token not in text and token.split(".")[2] not in text and "c2VjcmV0c2lnbmF0dXJl" not in text
        assert oct(path.stat().st_mode & 0o777) == "0o600"

    # migrate report reads both the same way
    stats_a, stats_b = ReadStats(), ReadStats()
    from_table = list(read_logs([tmp_path / "audit.log"], stats_a))
    from_blobs = list(read_logs([tmp_path / "diagnostic-logs"], stats_b))
    assert stats_a.skipped == 1 and stats_a.malformed == 0 and stats_b.malformed == 0
    assert sorted(k for _, k in from_table) == sorted(k for _, k in from_blobs)


def test_vocabularies() -> None:
    assert [category_of(op) for op in ("GetFile", "ListShares", "PutRange", "CreateFile", "DeleteFile")] == [
        "StorageRead", "StorageRead", "StorageWrite", "StorageWrite", "StorageDelete"]
    assert redact_uri("https://a/s/f?se=1&sig=abc%2F&sp=r") == "https://a/s/f?se=1&sig=XXXXX&sp=r"
    # the service decodes a parameter's name before reading it: any spelling of "sig" is the signature
    assert redact_uri("https://a/s/f?se=1&%73ig=abc&s%49g=d&sp=r") == (
        "https://a/s/f?se=1&%73ig=XXXXX&s%49g=XXXXX&sp=r")
    assert redact_uri("https://a/s/f?sig") == "https://a/s/f?sig"
    assert redact_uri("https://a/s/%73ig=f?design=1") == "https://a/s/%73ig=f?design=1"
    when = datetime(2026, 12, 1, 21, 7, tzinfo=UTC)
    assert diagnostic_path(Path("/d"), "StorageWrite", "acct", when).as_posix() == (
        "/d/insights-logs-storagewrite/resourceId=/subscriptions/00000000-0000-0000-0000-000000000000/"
        "resourceGroups/keyless-emulator/providers/Microsoft.Storage/storageAccounts/acct/fileServices/"
        "default/y=2026/m=12/d=01/h=21/m=00/PT1H.json")
