"""The shortcuts of the per-request path give what the long way gives: cached query strings are the
encoded ones and stay bounded, and the one-value Content-Length shortcut refuses what the full check
refuses."""

from __future__ import annotations

import pytest

from keyless.files import client as client_mod
from keyless.files import http11


def test_query_strings_are_encoded_the_same_from_the_cache_and_stay_bounded() -> None:
    query = {"comp": "list", "prefix": "a b&c=d/é", "marker": "x"}
    first = client_mod._query_string(query)
    assert first == "comp=list&prefix=a%20b%26c%3Dd%2F%C3%A9&marker=x"
    assert client_mod._query_string(dict(query)) == first
    for i in range(3 * client_mod._MAX_QUERIES):
        assert client_mod._query_string({"marker": f"m{i}"}) == f"marker=m{i}"
    assert len(client_mod._QUERIES) <= client_mod._MAX_QUERIES


@pytest.mark.parametrize("text", ["+5", "5_0", "0x5", "\uff15", "\u00b2", "1" * 19, "5, 6", ""])
def test_a_content_length_that_is_not_plain_digits_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        http11._content_length(text)


@pytest.mark.parametrize(
    ("text", "length"), [("0", 0), ("8231", 8231), ("5, 5", 5), (" 5", 5), ("1" * 18, int("1" * 18))]
)
def test_plain_and_repeated_identical_lengths_are_read(text: str, length: int) -> None:
    assert http11._content_length(text) == length
