"""``keyless.files.sas``'s ``sip`` rule, for library callers: one IPv4 address or an ordered inclusive IPv4
range in dotted decimal ("Create a user delegation SAS": "Only IPv4 addresses are supported"). A range that
holds no address, an octet past 255 or an IPv6 address used to pass a character-class check and went into
a signed SAS that Azure would never honour; now it is a :class:`SasError` naming the input and the fix,
before anything is signed. ``keyless sas --ip`` uses the same rule (tests/sas/test_sas_ip_ranges.py)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest

from keyless.files import sas
from keyless.files.urls import FileUrl, share_url

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
KEY = sas.UserDelegationKey(
    signed_oid="00000000-0000-0000-0000-0000000000aa",
    signed_tid="00000000-0000-0000-0000-0000000000bb",
    signed_start="2030-01-01T00:00:00Z",
    signed_expiry="2030-01-08T00:00:00Z",
    signed_service="f",
    signed_version=sas.SAS_VERSION,
    value=base64.b64encode(b"k" * 32).decode(),
)


def _target() -> FileUrl:
    return share_url("acct", "share").with_path("dir/a.txt")


def _sign(ip: str | None) -> str:
    return sas.user_delegation_sas(KEY, _target(), permissions="r", expiry=NOW + timedelta(hours=1), ip=ip,
                                   is_file=True)


@pytest.mark.parametrize("ip", [
    "10.0.0.9-10.0.0.1",  # starts after it ends: no address is in it
    "300.1.1.1",
    "10.0.0.1-10.0.0.300",
    "1.2.3",
    "10.0.0.1-",
    "-10.0.0.1",
    "10.0.0.1-10.0.0.2-10.0.0.3",
    "::1",  # IPv6
    "fe80::1-fe80::2",
    "01.2.3.4",  # a leading zero reads as octal to some parsers
    "a.b.c.d",
])
def test_impossible_addresses_and_ranges_are_refused_before_signing(ip: str) -> None:
    with pytest.raises(sas.SasError) as info:
        _sign(ip)
    message = str(info.value)
    assert message.startswith("IP range") and repr(ip) in message
    assert "168.1.5.60-168.1.5.70" in message or "give " in message  # says what to give instead


def test_a_reversed_range_is_refused_with_the_range_that_was_meant() -> None:
    with pytest.raises(sas.SasError, match=r"give 10\.0\.0\.1-10\.0\.0\.9"):
        sas.parse_ip("10.0.0.9-10.0.0.1")


@pytest.mark.parametrize(("ip", "signed"), [
    ("168.1.5.65", "168.1.5.65"),
    ("168.1.5.60-168.1.5.70", "168.1.5.60-168.1.5.70"),
    ("10.0.0.1-10.0.0.1", "10.0.0.1-10.0.0.1"),
    (" 10.0.0.1 ", "10.0.0.1"),
])
def test_addresses_and_ordered_ranges_are_signed(ip: str, signed: str) -> None:
    assert parse_qs(_sign(ip))["sip"] == [signed]


@pytest.mark.parametrize("ip", [None, ""])
def test_no_address_means_no_restriction(ip: str | None) -> None:
    assert "sip" not in parse_qs(_sign(ip))
