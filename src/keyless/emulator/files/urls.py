"""The request's URL: IP-style ``/<account>/<share>/<dir>/<file>?<query>`` into a :class:`Target` and a
query dict, with the service's name rules.

The raw path is split on ``/`` before percent-decoding, so names holding ``%``, ``#``, ``?`` (encoded) or
unicode round-trip; the SDK's directory client encodes inner slashes as ``%2F``, so each decoded segment
is split again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote_to_bytes

from keyless.emulator.errors import StorageError
from keyless.emulator.files.model import Target
from keyless.protocol import MAX_LIST_RESULTS

_MAX_NAME_CHARS = 255
_MAX_PATH_CHARS = 2048
_MAX_DEPTH = 250

_SHARE_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
# A character no file or directory name may hold: '"\\/:|<>*?', the controls below 0x20, and a lone
# surrogate (a name that was not UTF-8). One regex search instead of a loop over the characters.
_INVALID_NAME = re.compile('["\\\\/:|<>*?\x00-\x1f\ud800-\udfff]')
_RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CLOCK$", ".", ".."}
    | {f"COM{i}" for i in range(1, 10)}
    | {f"LPT{i}" for i in range(1, 10)}
)


def decode_segment(raw: str) -> str:
    if "%" not in raw and raw.isascii():
        return raw  # nothing escaped: decoding would give the same text back
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise StorageError(400, "InvalidUri", "The request URI is not valid UTF-8 after decoding.") from None


def parse_target(account: str, segments: list[str], allow_trailing_dot: bool) -> Target:
    """Share and path components from the raw segments after the account."""
    if not segments or segments == [""]:
        return Target(account, None, ())
    share = decode_segment(segments[0])
    if not _SHARE_NAME.match(share):
        raise StorageError(400, "InvalidResourceName")
    rest = segments[1:]
    if rest and rest[-1] == "":
        rest = rest[:-1]  # "Directory names can't end with /; if provided it is removed"
    parts: list[str] = []
    for raw in rest:
        parts.extend(decode_segment(raw).split("/"))
    return Target(account, share, parse_path(parts, allow_trailing_dot))


def parse_path(parts: list[str], allow_trailing_dot: bool) -> tuple[str, ...]:
    """Validate decoded components; without ``x-ms-allow-trailing-dot`` trailing dots are trimmed."""
    if len(parts) > _MAX_DEPTH or sum(len(p) + 1 for p in parts) > _MAX_PATH_CHARS:
        raise StorageError(400, "InvalidFileOrDirectoryPathName")
    out: list[str] = []
    for part in parts:
        if part == "":
            raise StorageError(400, "InvalidUri", "The requested URI contains an empty path segment.")
        if part.upper() in _RESERVED_NAMES:
            raise StorageError(400, "InvalidResourceName")
        name = part if allow_trailing_dot else part.rstrip(".")
        if not name or len(name) > _MAX_NAME_CHARS or _INVALID_NAME.search(name):
            raise StorageError(400, "InvalidResourceName")
        out.append(name)
    return tuple(out)


def parse_query(raw_query: str) -> dict[str, str]:
    if "%" not in raw_query and "+" not in raw_query and raw_query.isascii():
        # Nothing escaped (comp=range, restype=directory, ...): the split parse_qsl would make, without
        # its decoding passes. A field without "=" has the empty value (keep_blank_values).
        return {name.lower(): value for name, _, value in
                (field.partition("=") for field in raw_query.split("&") if field)}
    try:
        pairs = parse_qsl(raw_query, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise StorageError(400, "InvalidQueryParameterValue") from None
    return {k.lower(): v for k, v in pairs}


def bad_query(name: str, reason: str | None = None) -> StorageError:
    extra = {"QueryParameterName": name}
    if reason:
        extra["Reason"] = reason
    return StorageError(400, "InvalidQueryParameterValue", extra=extra)


def max_results(query: Mapping[str, str]) -> int:
    raw = query.get("maxresults")
    if raw is None:
        return MAX_LIST_RESULTS
    if not (raw.isascii() and raw.lstrip("-").isdigit()):  # ASCII digits only, as the service reads them
        raise bad_query("maxresults")
    value = int(raw)
    if value <= 0:
        raise StorageError(400, "OutOfRangeQueryParameterValue",
                           "One of the query parameters specified in the request URI is outside the "
                           "permissible range.", extra={"QueryParameterName": "maxresults"})
    return min(value, MAX_LIST_RESULTS)
