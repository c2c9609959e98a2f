"""Request headers into typed values: metadata, SMB properties, content properties, ranges, lease ids.

Each malformed header is refused with the service's code and the header's name (``HeaderName``), before
anything is stored. The store below sees only the typed values.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import datetime

from keyless.emulator.errors import StorageError
from keyless.emulator.files.sddl import binary_to_sddl, invalid_permission, validate_sddl
from keyless.emulator.storage import ContentSettings, Metadata, SmbUpdate, permission_key_for, smb_time
from keyless.protocol import E_MISSING_HEADER

MAX_FILE_SIZE = 4 * 1024**4  # 4 TiB, the service's largest file
_MAX_METADATA_BYTES = 8 * 1024
_MAX_PERMISSION_BYTES = 8 * 1024
_METADATA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# ASCII digits only: Python's \d and int() also take other scripts' digits ("١٢" is 12), the service does not.
_RANGE = re.compile(r"^bytes=([0-9]+)-([0-9]*)$")
_DIGITS = re.compile(r"^[0-9]+$")
_SIGNED_DIGITS = re.compile(r"^-?[0-9]+$")
# Longer than any 64-bit offset; refusing it early also keeps int() away from its 4300-digit limit.
_MAX_DIGITS = 20

# Service versions the File service knows (Microsoft's "Versioning for Azure Storage" list, the versions
# azure-storage-file-share accepts, and the older ones Azurite lists). Any other x-ms-version is a 400
# InvalidHeaderValue naming the header, as the service answers an unknown version.
KNOWN_VERSIONS = frozenset({
    "2009-04-14", "2009-07-17", "2009-09-19", "2011-08-18", "2012-02-12", "2013-08-15", "2014-02-14",
    "2015-02-21", "2015-04-05", "2015-07-08", "2015-12-11", "2016-05-31", "2017-04-17", "2017-07-29",
    "2017-11-09", "2018-03-28", "2018-11-09", "2019-02-02", "2019-07-07", "2019-10-10", "2019-12-12",
    "2020-02-10", "2020-04-08", "2020-06-12", "2020-08-04", "2020-10-02", "2020-12-06", "2021-02-12",
    "2021-04-10", "2021-06-08", "2021-08-06", "2021-10-04", "2021-12-02", "2022-11-02", "2023-01-03",
    "2023-05-03", "2023-08-03", "2023-11-03", "2024-02-04", "2024-05-04", "2024-08-04", "2024-11-04",
    "2025-01-05", "2025-05-05", "2025-07-05", "2025-11-05", "2026-02-06", "2026-04-06", "2026-06-06",
    "2026-10-06",
})
_SMB_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?Z$", re.ASCII)
_ATTRIBUTES = ("ReadOnly", "Hidden", "System", "None", "Directory", "Archive", "Temporary", "Offline",
               "NotContentIndexed", "NoScrubData")
_ATTRIBUTE_BY_LOWER = {a.lower(): a for a in _ATTRIBUTES}


def flag(headers: Mapping[str, str], name: str) -> bool:
    return headers.get(name, "").strip().lower() == "true"


def parse_metadata(headers: Mapping[str, str]) -> Metadata | None:
    """``x-ms-meta-*`` headers (None when there are none). Names are C# identifiers, ≤ 8 KiB in all."""
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    size = 0
    for key, value in headers.items():
        if not key.lower().startswith("x-ms-meta-"):
            continue
        name = key[len("x-ms-meta-"):]
        if not name:
            raise StorageError(400, "EmptyMetadataKey",
                               "The key for one of the metadata key-value pairs is empty.")
        if not _METADATA_NAME.match(name) or name.lower() in seen:
            raise StorageError(400, "InvalidMetadata", extra={"MetadataName": name[:64]})
        if any(not (0x20 <= ord(ch) < 0x7F or ch == "\t") for ch in value):
            raise StorageError(400, "InvalidMetadata", extra={"MetadataName": name[:64]})
        seen.add(name.lower())
        size += len(name) + len(value)
        pairs.append((name, value))
    if size > _MAX_METADATA_BYTES:
        raise StorageError(400, "MetadataTooLarge")
    return tuple(pairs) if pairs else None


def header_error(name: str, code: str = "InvalidHeaderValue", message: str | None = None) -> StorageError:
    return StorageError(400, code, message, extra={"HeaderName": name})


def check_encoding(headers: Mapping[str, str]) -> None:
    """Refuse header values whose bytes are not UTF-8 (aiohttp keeps them as surrogate escapes), before
    anything reads them: nothing downstream (signatures, audit, replies) has to cope with them."""
    for name, value in headers.items():
        if value.isascii() and name.isascii():
            continue  # nearly every header: no encoding work
        try:
            value.encode("utf-8")
            name.encode("utf-8")
        except UnicodeEncodeError:
            shown = name.encode("ascii", "replace").decode("ascii")[:64]
            if shown.lower().startswith("x-ms-meta-"):
                raise StorageError(400, "InvalidMetadata",
                                   extra={"MetadataName": shown[len("x-ms-meta-"):]}) from None
            raise header_error(shown) from None


def check_version(headers: Mapping[str, str]) -> None:
    """An ``x-ms-version`` the service does not know is refused (absent means the default version)."""
    version = headers.get("x-ms-version")
    if version is not None and version not in KNOWN_VERSIONS:
        raise StorageError(400, "InvalidHeaderValue",
                           extra={"HeaderName": "x-ms-version", "HeaderValue": version[:64]})


def ascii_int(raw: str, name: str) -> int:
    """A non-negative decimal number in ASCII digits, as the service parses numeric headers."""
    raw = raw.strip()
    if not _DIGITS.match(raw) or len(raw.lstrip("0")) > _MAX_DIGITS:
        raise header_error(name)
    return int(raw)


def required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        raise header_error(name, E_MISSING_HEADER)
    return value


def int_header(headers: Mapping[str, str], name: str, lo: int, hi: int) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    stripped = raw.strip()
    if not _SIGNED_DIGITS.match(stripped):
        raise header_error(name)
    digits = stripped.lstrip("-").lstrip("0")
    # A number too long for any limit is out of range, like any other too large value.
    value = int(stripped) if len(digits) <= _MAX_DIGITS else (hi + 1 if stripped[0] != "-" else lo - 1)
    if not lo <= value <= hi:
        raise header_error(name, "OutOfRangeInput", "One of the request inputs is out of range.")
    return value


def md5_header(headers: Mapping[str, str], name: str) -> bytes | None:
    raw = headers.get(name)
    if raw is None or raw == "":
        return None
    try:
        digest = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise StorageError(400, "InvalidMd5", "The MD5 value specified in the request is invalid. "
                           "The MD5 value must be 128 bits and Base64-encoded.", extra={"HeaderName": name})
    return digest


def _smb_time_header(headers: Mapping[str, str], name: str, now: str) -> str | None:
    raw = headers.get(name)
    if raw is None or raw.lower() == "preserve":
        return None
    if raw.lower() == "now":
        return now
    m = _SMB_TIME.match(raw.strip())
    if m is None:
        raise header_error(name)
    try:
        year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
        datetime(year, month, day, hour, minute, second)  # only validates the fields
    except ValueError:
        raise header_error(name) from None
    return f"{raw.strip()[:19]}.{(m.group(7) or '').ljust(7, '0')}Z"


def _attributes(raw: str | None, *, is_dir: bool) -> str | None:
    if raw is None or raw.strip().lower() == "preserve":
        return None
    names: set[str] = set()
    for part in raw.split("|"):
        part = part.strip().lower()
        if not part:
            continue
        canonical = _ATTRIBUTE_BY_LOWER.get(part)
        if canonical is None:
            raise header_error("x-ms-file-attributes")
        names.add(canonical)
    names.discard("None")
    if is_dir:
        names.add("Directory")
    elif "Directory" in names:
        raise header_error("x-ms-file-attributes")
    if not names:
        return "Archive"
    return " | ".join(a for a in _ATTRIBUTES if a in names)


def parse_smb(headers: Mapping[str, str], now: float, *, is_dir: bool) -> SmbUpdate:
    stamp = smb_time(now)
    permission = headers.get("x-ms-file-permission")
    key = headers.get("x-ms-file-permission-key")
    permission_key: str | None = None
    sddl: str | None = None
    if permission is not None and permission.lower() not in ("inherit", "preserve"):
        if key is not None:
            raise header_error("x-ms-file-permission-key", message="Only one of x-ms-file-permission "
                               "or x-ms-file-permission-key may be specified.")
        if len(permission.encode("utf-8")) > _MAX_PERMISSION_BYTES:
            raise header_error("x-ms-file-permission", message="The permission is larger than 8 KiB; "
                               "create it on the share and pass x-ms-file-permission-key instead.")
        sddl = permission_text(permission, headers.get("x-ms-file-permission-format"),
                               "x-ms-file-permission-format")
        permission_key = permission_key_for(sddl)
    elif key is not None:
        permission_key = key.strip() or None
    return SmbUpdate(
        attributes=_attributes(headers.get("x-ms-file-attributes"), is_dir=is_dir),
        creation_time=_smb_time_header(headers, "x-ms-file-creation-time", stamp),
        last_write_time=_smb_time_header(headers, "x-ms-file-last-write-time", stamp),
        change_time=_smb_time_header(headers, "x-ms-file-change-time", stamp),
        permission_key=permission_key,
        permission=sddl,
    )


def permission_text(permission: str, file_format: str | None, format_header: str) -> str:
    """A permission as SDDL, from SDDL or (``format`` binary, version 2024-11-04+) base64 of the binary
    security descriptor; an invalid one is 400 FileInvalidPermission."""
    kind = (file_format or "sddl").strip().lower()
    if kind == "sddl":
        return validate_sddl(permission)
    if kind != "binary":
        raise header_error(format_header)
    try:
        raw = base64.b64decode(permission, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_permission() from None
    return binary_to_sddl(raw)


_CONTENT_HEADERS = ("x-ms-content-type", "x-ms-content-encoding", "x-ms-content-language",
                    "x-ms-content-disposition", "x-ms-cache-control", "x-ms-content-md5")


def parse_content(headers: Mapping[str, str]) -> ContentSettings | None:
    """The file's HTTP properties; None when the request names none of them."""
    if not any(h in headers for h in _CONTENT_HEADERS):
        return None
    return ContentSettings(
        content_type=headers.get("x-ms-content-type"),
        content_encoding=headers.get("x-ms-content-encoding"),
        content_language=headers.get("x-ms-content-language"),
        content_disposition=headers.get("x-ms-content-disposition"),
        cache_control=headers.get("x-ms-cache-control"),
        content_md5=md5_header(headers, "x-ms-content-md5"),
    )


def parse_range(headers: Mapping[str, str]) -> tuple[str, int, int | None] | None:
    """(header name, start, end or None) from ``x-ms-range`` (preferred) or ``Range``."""
    for name in ("x-ms-range", "Range"):
        raw = headers.get(name)
        if raw is None:
            continue
        m = _RANGE.match(raw.strip())
        if m is None:
            raise header_error(name)
        start = ascii_int(m.group(1), name)
        end = ascii_int(m.group(2), name) if m.group(2) else None
        if end is not None and end < start:
            raise header_error(name)
        return name, start, end
    return None


def lease_header(headers: Mapping[str, str]) -> str | None:
    value = headers.get("x-ms-lease-id")
    return value.strip() if value else None
