"""The shortcuts that keep per-request CPU low never loosen a check: a header name seen before still needs
its colon, the names remembered stay bounded, and the whole-head injection check names the bad header."""

from __future__ import annotations

import pytest

from keyless.files import http11


def test_a_known_name_without_its_colon_is_still_refused() -> None:
    status, headers, _ = http11._parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert (status, headers) == (200, {"content-length": "0"})
    with pytest.raises(ValueError, match="header line"):
        http11._parse_head(b"HTTP/1.1 200 OK\r\nContent-Length\r\n\r\n")


def test_a_block_not_ending_with_an_empty_line_is_refused() -> None:
    with pytest.raises(ValueError):
        http11._parse_head(b"HTTP/1.1 200 OK\r\nAB: cdef\r\n")


def test_names_a_server_invents_do_not_grow_memory() -> None:
    for i in range(3 * http11._MAX_CHECKED_NAMES // 100):
        block = "".join(f"x-invented-{i}-{j}: v\r\n" for j in range(100))
        _, headers, _ = http11._parse_head(f"HTTP/1.1 200 OK\r\n{block}\r\n".encode())
        assert len(headers) == 100
    assert len(http11._CHECKED_NAMES) <= http11._MAX_CHECKED_NAMES


def test_repeated_names_are_joined_in_order_whatever_their_case() -> None:
    _, headers, _ = http11._parse_head(b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a:2 \r\nX-A:\t3\r\n\r\n")
    assert headers == {"x-a": "1, 2, 3"}


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({"x-ms-meta-a": "v\r\nInjected: 1"}, "x-ms-meta-a"),
        ({"x-ms-meta-a": "v\nInjected: 1"}, "x-ms-meta-a"),
        ({"x-ms-meta-a": "v\r"}, "x-ms-meta-a"),
        ({"ok": "1", "bad:name": "v"}, "bad:name"),
        ({"bad\nname": "v"}, "bad\\nname"),
    ],
)
def test_an_injected_line_names_its_header_and_never_its_value(headers: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match="invalid character") as caught:
        http11._format("GET", "/s/f", "host", headers, None)
    assert named in str(caught.value)
    assert "Injected" not in str(caught.value)


def test_a_line_break_in_the_host_is_refused() -> None:
    with pytest.raises(ValueError, match="Host"):
        http11._format("GET", "/s/f", "host\r\nInjected: 1", {"a": "b"}, b"x")


def test_the_head_holds_each_header_once_with_the_body_length() -> None:
    head, rest = http11._format("PUT", "/s/f?comp=range", "host:443", {"x-ms-range": "bytes=0-2"}, b"abc")
    assert rest == []
    assert head == (
        b"PUT /s/f?comp=range HTTP/1.1\r\nHost: host:443\r\nUser-Agent: " + http11.USER_AGENT.encode()
        + b"\r\nAccept-Encoding: identity\r\nx-ms-range: bytes=0-2\r\nContent-Length: 3\r\n\r\nabc"
    )
