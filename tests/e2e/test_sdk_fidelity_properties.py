"""File service properties (CORS, metrics, SMB protocol settings) and share ACLs (stored access
policies), set and read back with the official SDK (sync and async), with the service's limits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.fileshare import (
    AccessPolicy,
    CorsRule,
    Metrics,
    RetentionPolicy,
    ShareClient,
    ShareProtocolSettings,
    ShareSasPermissions,
    ShareServiceClient,
    ShareSmbSettings,
    SmbMultichannel,
)
from azure.storage.fileshare.aio import ShareServiceClient as AsyncShareServiceClient

from keyless.testing import EmulatorProcess


def service(emulator: EmulatorProcess, name: str = "devaccount") -> ShareServiceClient:
    acct = emulator.account(name)
    key = {"account_name": acct["name"], "account_key": acct["key"]}
    return ShareServiceClient(acct["url"], credential=key, connection_verify=emulator.ca_cert)


@pytest.fixture
def share(emulator: EmulatorProcess) -> Iterator[ShareClient]:
    client = service(emulator).get_share_client(f"acl-{uuid.uuid4().hex[:12]}")
    client.create_share()
    yield client
    client.delete_share()


def test_service_properties_round_trip_and_merge(emulator: EmulatorProcess) -> None:
    svc = service(emulator)
    before = svc.get_service_properties()
    assert before["cors"] == [] and before["hour_metrics"].enabled is False
    rule = CorsRule(["https://example.com"], ["GET", "PUT"], allowed_headers=["x-ms-meta-*"],
                    exposed_headers=["x-ms-request-id"], max_age_in_seconds=300)
    metrics = Metrics(enabled=True, include_apis=True, retention_policy=RetentionPolicy(enabled=True, days=7))
    smb = ShareProtocolSettings(smb=ShareSmbSettings(multichannel=SmbMultichannel(enabled=True)))
    try:
        svc.set_service_properties(hour_metrics=metrics, cors=[rule], protocol=smb)
        got = svc.get_service_properties()
        assert [(r.allowed_origins, r.allowed_methods, r.max_age_in_seconds) for r in got["cors"]] == \
            [("https://example.com", "GET,PUT", 300)]
        assert got["hour_metrics"].enabled and got["hour_metrics"].retention_policy.days == 7
        assert got["protocol"].smb.multichannel.enabled is True
        # Setting one element leaves the others as they were.
        svc.set_service_properties(minute_metrics=Metrics(enabled=False))
        assert svc.get_service_properties()["cors"][0].max_age_in_seconds == 300

        with pytest.raises(HttpResponseError) as too_many:
            svc.set_service_properties(cors=[rule] * 6)
        assert (too_many.value.status_code, too_many.value.error_code) == (400, "InvalidXmlNodeValue")
        bad_method = CorsRule(["*"], ["FETCH"])
        with pytest.raises(HttpResponseError) as method:
            svc.set_service_properties(cors=[bad_method])
        assert method.value.error_code == "InvalidXmlNodeValue"
        bad_days = Metrics(enabled=True, include_apis=False, retention_policy=RetentionPolicy(enabled=True,
                                                                                              days=400))
        with pytest.raises(HttpResponseError) as days:
            svc.set_service_properties(hour_metrics=bad_days)
        assert days.value.error_code == "InvalidXmlNodeValue"
    finally:
        svc.set_service_properties(hour_metrics=Metrics(enabled=False), cors=[])


def test_share_acl_round_trip_and_limits(share: ShareClient) -> None:
    assert share.get_share_access_policy()["signed_identifiers"] == []
    start = datetime(2030, 1, 1, tzinfo=UTC)
    policy = AccessPolicy(permission=ShareSasPermissions(read=True, list=True), start=start,
                          expiry=start + timedelta(days=1))
    etag = share.get_share_properties().etag
    answer = share.set_share_access_policy({"readers": policy, "other": AccessPolicy(permission="rw")})
    assert answer["etag"] != etag
    got = {s.id: s.access_policy for s in share.get_share_access_policy()["signed_identifiers"]}
    assert set(got) == {"readers", "other"}
    assert got["readers"].permission == "rl" and got["readers"].start.startswith("2030-01-01")
    assert got["other"].permission == "rw"
    with pytest.raises(ValueError, match="5"):  # the SDK itself stops at 5 ...
        share.set_share_access_policy({f"id{i}": policy for i in range(6)})
    with pytest.raises(HttpResponseError) as long_id:  # ... and the service checks the ids
        share.set_share_access_policy({"x" * 65: policy})
    assert (long_id.value.status_code, long_id.value.error_code) == (400, "InvalidXmlDocument")
    share.set_share_access_policy({})
    assert share.get_share_access_policy()["signed_identifiers"] == []


def test_async_client_properties_and_acl(emulator: EmulatorProcess) -> None:
    acct = emulator.account()

    async def scenario() -> None:
        async with AsyncShareServiceClient(
            acct["url"], credential={"account_name": acct["name"], "account_key": acct["key"]},
            connection_verify=emulator.ca_cert,
        ) as svc:
            props = await svc.get_service_properties()
            assert "cors" in props
            client = svc.get_share_client(f"aclaio-{uuid.uuid4().hex[:10]}")
            await client.create_share()
            await client.set_share_access_policy({"p": AccessPolicy(permission="r")})
            got = await client.get_share_access_policy()
            assert [s.id for s in got["signed_identifiers"]] == ["p"]
            await client.delete_share()

    asyncio.run(scenario())
