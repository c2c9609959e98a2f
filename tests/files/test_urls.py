from __future__ import annotations

import pytest

from keyless.files.urls import FileUrl, InvalidFileUrl, encode_segment, parse, share_url

NAMES = [
    "my file.txt",
    "100%.txt",
    "a#b",
    "what?.txt",
    "ünïcødé ✓.bin",
    "trailing.",
    "dots...",
    "a+b&c=d",
    "%41",
    "semi;colon",
    "tab\tname",
]


@pytest.mark.parametrize("name", NAMES)
def test_names_round_trip_through_the_url(name: str) -> None:
    url = share_url("acct", "share", path=f"dir one/{name}")
    assert "/" not in encode_segment(name)
    back = parse(url.url)
    assert back.path == f"dir one/{name}"
    assert back.name == name
    assert parse(url.shorthand()).path == f"dir one/{name}"


def test_public_and_sovereign_hosts() -> None:
    for suffix in ("file.core.windows.net", "file.core.chinacloudapi.cn", "file.core.usgovcloudapi.net"):
        u = parse(f"https://acct.{suffix}/share/a/b%20c")
        assert (u.account, u.share, u.path, u.ip_style) == ("acct", "share", "a/b c", False)
        assert u.url == f"https://acct.{suffix}/share/a/b%20c"
        assert u.endpoint == f"https://acct.{suffix}"


def test_privatelink_host_keeps_account() -> None:
    u = parse("https://acct.privatelink.file.core.windows.net/share/x")
    assert u.account == "acct"


def test_ip_style_emulator_url() -> None:
    u = parse("https://127.0.0.1:8443/devaccount/demo/dir/f.txt")
    assert (u.account, u.share, u.path, u.ip_style) == ("devaccount", "demo", "dir/f.txt", True)
    assert u.endpoint == "https://127.0.0.1:8443/devaccount"
    assert u.url == "https://127.0.0.1:8443/devaccount/demo/dir/f.txt"


def test_shorthand_is_literal_and_follows_emulator() -> None:
    u = parse("azfiles://acct/share/100%25 #1?.txt")
    assert u.path == "100%25 #1?.txt"  # literal: what you type is the name
    assert u.host == "acct.file.core.windows.net"
    e = parse("azfiles://devaccount/demo/x", emulator_url="https://127.0.0.1:9999")
    assert e.url == "https://127.0.0.1:9999/devaccount/demo/x"


def test_navigation() -> None:
    u = parse("azfiles://acct/share/a/b")
    assert u.parent.path == "a"
    assert u.parent.parent.path == ""
    assert u.child("c/d").path == "a/b/c/d"
    assert u.name == "b"
    assert isinstance(u, FileUrl)


@pytest.mark.parametrize(
    "bad",
    [
        "ftp://x/y",
        "https://acct.file.core.windows.net/",
        "azfiles://acct",
        "https://acct.file.core.windows.net/share/../etc",
        "azfiles://a/s/./x",
        "https://user:pw@acct.file.core.windows.net/share",
    ],
)
def test_rejects(bad: str) -> None:
    with pytest.raises(InvalidFileUrl):
        parse(bad)
