"""x-ms-version and numbers at the byte level: an unknown version is 400 InvalidHeaderValue naming the
header; numeric headers and query values take ASCII digits only (no other script's digits, no '+', no
'_' separators, no inner spaces)."""

from __future__ import annotations

import pytest
from tests.emulator import test_files_rest as rest

A, Api = rest.A, rest.Api
api = rest.api  # the Files REST handlers over real HTTP, with a stand-in authentication


def _utf8(text: str) -> str:
    """``text`` as UTF-8 on the wire (http.client sends header values as Latin-1 bytes)."""
    return text.encode("utf-8").decode("latin-1")


@pytest.mark.parametrize("version", ["2099-01-01", "2025-05-06", "latest", "2025-5-5"])
def test_unknown_versions_are_refused_by_name(api: Api, version: str) -> None:
    r = api.req("GET", f"{A}/demo?restype=share", {"x-ms-version": version})
    assert (r.status, r.code) == (400, "InvalidHeaderValue")
    assert b"<HeaderName>x-ms-version</HeaderName>" in r.body


@pytest.mark.parametrize("version", ["2019-02-02", "2022-11-02", "2025-05-05", "2026-10-06"])
def test_known_versions_are_served(api: Api, version: str) -> None:
    assert api.req("GET", f"{A}/demo?restype=share", {"x-ms-version": version}).status == 200


@pytest.mark.parametrize("value", ["\u0661\u0662", "+12", "1_2", "1 2", "0x1", "1.0"])
def test_numeric_headers_take_ascii_digits_only(api: Api, value: str) -> None:
    r = api.req("PUT", f"{A}/demo/num.bin", {"x-ms-type": "file", "x-ms-content-length": _utf8(value)})
    assert (r.status, r.code) == (400, "InvalidHeaderValue"), value
    assert b"x-ms-content-length" in r.body


def test_ranges_and_query_numbers_take_ascii_digits_only(api: Api) -> None:
    api.mkfile(f"{A}/demo/r.bin", b"abcdef")
    r = api.req("GET", f"{A}/demo/r.bin", {"x-ms-range": _utf8("bytes=\u0661-2")})
    assert (r.status, r.code) == (400, "InvalidHeaderValue")
    assert api.req("GET", f"{A}/demo/r.bin", {"x-ms-range": "bytes=1-2"}).body == b"bc"
    r = api.req("GET", f"{A}/demo?restype=directory&comp=list&maxresults=%D9%A1")
    assert (r.status, r.code) == (400, "InvalidQueryParameterValue")
