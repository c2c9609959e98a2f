from __future__ import annotations

import base64

import pytest
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest
from azure.storage.fileshare._shared.authentication import SharedKeyCredentialPolicy

from keyless.files.auth import SharedKeyAuth
from keyless.files.destinations import Destinations
from keyless.files.errors import UnsafeDestination

KEY = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@pytest.mark.parametrize(
    "url",
    [
        "https://acct.file.core.windows.net/share",
        "https://acct.privatelink.file.core.windows.net/share",
        "https://acct.file.core.chinacloudapi.cn/share",
        "https://acct.file.core.usgovcloudapi.net/s",
        "https://127.0.0.1:8443/devaccount/demo",
    ],
)
def test_allowed_destinations(url: str) -> None:
    Destinations(emulator_url="https://127.0.0.1:8443").check(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://acct.file.core.windows.net/share",  # plain HTTP
        "https://acct.file.core.windows.net.evil.com/share",
        "https://evilfile.core.windows.net/share",  # no dot boundary
        "https://127.0.0.1:9999/devaccount/demo",  # not the configured emulator port
        "https://localhost:8443/devaccount/demo",
    ],
)
def test_refused_destinations(url: str) -> None:
    with pytest.raises(UnsafeDestination):
        Destinations(emulator_url="https://127.0.0.1:8443").check(url)


@pytest.mark.parametrize(
    "url,headers",
    [
        (
            "https://acct.file.core.windows.net/share/dir%20one/f%23.txt?comp=range",
            {
                "x-ms-range": "bytes=0-9",
                "x-ms-write": "update",
                "Content-Length": "10",
                "Content-MD5": "abc==",
            },
        ),
        (
            "https://127.0.0.1:8443/acct/share/d?restype=directory&comp=list&include=Timestamps%2CETag",
            {"x-ms-meta-Zeta": "1", "x-ms-meta-alpha-beta": "2", "x-ms-file-extended-info": "true"},
        ),
        (
            "https://acct.file.core.windows.net/share/f",
            {"x-ms-type": "file", "x-ms-content-length": "0", "Content-Length": "0"},
        ),
    ],
)
def test_shared_key_matches_the_official_sdk(url: str, headers: dict[str, str]) -> None:
    common = {
        "x-ms-version": "2025-05-05",
        "x-ms-date": "Mon, 01 Jan 2024 00:00:00 GMT",
        "x-ms-client-request-id": "id-1",
    }
    ours = {**common, **headers}
    SharedKeyAuth("acct", KEY).authorize("PUT", url, ours)
    request = HttpRequest("PUT", url, headers={**common, **headers})
    SharedKeyCredentialPolicy("acct", KEY).on_request(PipelineRequest(request, PipelineContext(None)))
    assert ours["Authorization"] == request.headers["Authorization"]
    assert "x-ms-file-request-intent" not in ours
    assert KEY not in repr(SharedKeyAuth("acct", KEY))
