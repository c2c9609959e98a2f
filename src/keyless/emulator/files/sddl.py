"""Security descriptors in the two forms Create / Get Permission speak: SDDL text and the binary,
self-relative SECURITY_DESCRIPTOR (base64 in the JSON body; "binary" format, version 2024-11-04+).

The layouts are Windows' ([MS-DTYP] 2.4.6 SECURITY_DESCRIPTOR, 2.4.5 ACL, 2.4.4.2 ACCESS_ALLOWED_ACE,
2.4.2.2 SID; SDDL grammar [MS-DTYP] 2.5.1). Covered: owner, group, DACL and SACL with their P / AI / AR
flags, allow / deny / audit ACEs with inheritance flags, rights as hex or the file and generic
mnemonics, SIDs literal or by the well-known aliases that need no domain. Domain-relative aliases (DA,
DU, ...) and object ACEs are refused as invalid permissions, which is what the service says of an SDDL
it cannot parse.
"""

from __future__ import annotations

import re
import struct

from keyless.emulator.errors import StorageError

_ALIASES = {
    "WD": "S-1-1-0", "CO": "S-1-3-0", "CG": "S-1-3-1", "OW": "S-1-3-4", "NU": "S-1-5-2", "IU": "S-1-5-4",
    "SU": "S-1-5-6", "AN": "S-1-5-7", "ED": "S-1-5-9", "PS": "S-1-5-10", "AU": "S-1-5-11", "RC": "S-1-5-12",
    "SY": "S-1-5-18", "LS": "S-1-5-19", "NS": "S-1-5-20", "BA": "S-1-5-32-544", "BU": "S-1-5-32-545",
    "BG": "S-1-5-32-546", "PU": "S-1-5-32-547", "AO": "S-1-5-32-548", "SO": "S-1-5-32-549",
    "PO": "S-1-5-32-550", "BO": "S-1-5-32-551", "RE": "S-1-5-32-552", "RU": "S-1-5-32-554",
    "RD": "S-1-5-32-555", "NO": "S-1-5-32-556", "IS": "S-1-5-32-568", "AC": "S-1-15-2-1",
}
_SID_ALIAS = {sid: alias for alias, sid in _ALIASES.items()}
_ACE_TYPES = {"A": 0, "D": 1, "AU": 2}
_ACE_TYPE_NAMES = {v: k for k, v in _ACE_TYPES.items()}
_ACE_FLAGS = {"OI": 0x01, "CI": 0x02, "NP": 0x04, "IO": 0x08, "ID": 0x10, "SA": 0x40, "FA": 0x80}
_RIGHTS = {
    "GA": 0x10000000, "GX": 0x20000000, "GW": 0x40000000, "GR": 0x80000000, "SD": 0x10000, "RC": 0x20000,
    "WD": 0x40000, "WO": 0x80000, "FA": 0x1F01FF, "FR": 0x120089, "FW": 0x120116, "FX": 0x1200A0,
    "CC": 0x1, "DC": 0x2, "LC": 0x4, "SW": 0x8, "RP": 0x10, "WP": 0x20, "DT": 0x40, "LO": 0x80, "CR": 0x100,
}
_WHOLE_RIGHTS = {_RIGHTS[k]: k for k in ("FA", "FR", "FW", "FX")}
# SECURITY_DESCRIPTOR control bits: (protected, auto-inherited, auto-inherit-required) per ACL kind.
_DACL_BITS, _SACL_BITS = (0x1000, 0x0400, 0x0100), (0x2000, 0x0800, 0x0200)
_SELF_RELATIVE, _DACL_PRESENT, _SACL_PRESENT = 0x8000, 0x0004, 0x0010

_SECTION = re.compile(r"(O|G|D|S):")
_SID = re.compile(r"^S-1-(\d+)((?:-\d+)*)$", re.ASCII)

Ace = tuple[int, int, int, str]  # type, flags, mask, SID (S-1-... form)


class _Invalid(ValueError):
    pass


def invalid_permission() -> StorageError:
    return StorageError(400, "FileInvalidPermission", "The specified file permission is not valid.",
                        extra={"HeaderName": "x-ms-file-permission"})


# -- SDDL -> parts -> binary --

def _sid(text: str) -> str:
    sid = _ALIASES.get(text, text)
    if not _SID.match(sid):
        raise _Invalid(text)
    return sid


def _acl(text: str) -> tuple[tuple[bool, bool, bool], list[Ace]]:
    head, _, rest = text.partition("(")
    tokens = re.findall(r"AI|AR|P", head)
    if "".join(tokens) != head:
        raise _Invalid(head)
    flags = ("P" in tokens, "AI" in tokens, "AR" in tokens)
    body = "(" + rest if rest else ""
    if not re.fullmatch(r"(\([^()]*\))*", body):
        raise _Invalid(text)
    aces: list[Ace] = []
    for raw in re.findall(r"\(([^)]*)\)", body):
        parts = raw.split(";")
        if len(parts) != 6 or parts[0] not in _ACE_TYPES or parts[3] or parts[4]:
            raise _Invalid(raw)
        ace_flags = 0
        for i in range(0, len(parts[1]), 2):
            ace_flags |= _ACE_FLAGS[parts[1][i:i + 2]] if parts[1][i:i + 2] in _ACE_FLAGS else _fail(raw)
        aces.append((_ACE_TYPES[parts[0]], ace_flags, _mask(parts[2]), _sid(parts[5])))
    return flags, aces


def _fail(what: str) -> int:
    raise _Invalid(what)


def _mask(text: str) -> int:
    if text.lower().startswith("0x"):
        try:
            return int(text, 16)
        except ValueError:
            raise _Invalid(text) from None
    if text.isascii() and text.isdigit():
        return int(text)
    mask = 0
    for i in range(0, len(text), 2):
        mask |= _RIGHTS[text[i:i + 2]] if text[i:i + 2] in _RIGHTS else _fail(text)
    return mask


def _sid_bytes(sid: str) -> bytes:
    parts = [int(p) for p in sid.split("-")[2:]]
    authority, subs = parts[0], parts[1:]
    if len(subs) > 15 or authority >= 1 << 48 or any(s >= 1 << 32 for s in subs):
        raise _Invalid(sid)
    return bytes([1, len(subs)]) + authority.to_bytes(6, "big") + b"".join(struct.pack("<I", s) for s in subs)


def _acl_bytes(aces: list[Ace]) -> bytes:
    body = b""
    for kind, flags, mask, sid in aces:
        sid_b = _sid_bytes(sid)
        body += struct.pack("<BBHI", kind, flags, 8 + len(sid_b), mask) + sid_b
    return struct.pack("<BBHHH", 2, 0, 8 + len(body), len(aces), 0) + body


def sddl_to_binary(sddl: str) -> bytes:
    """The self-relative security descriptor of ``sddl``; 400 FileInvalidPermission if it is not one."""
    try:
        sections = _split(sddl)
        control = _SELF_RELATIVE
        blobs: dict[str, bytes] = {}
        for key in ("O", "G"):
            if key in sections:
                blobs[key] = _sid_bytes(_sid(sections[key]))
        for key, bits, present in (("S", _SACL_BITS, _SACL_PRESENT), ("D", _DACL_BITS, _DACL_PRESENT)):
            if key in sections:
                flags, aces = _acl(sections[key])
                control |= present | sum(bit for bit, on in zip(bits, flags, strict=True) if on)
                blobs[key] = _acl_bytes(aces)
    except (_Invalid, KeyError):
        raise invalid_permission() from None
    offsets = {}
    data = b""
    for key in ("O", "G", "S", "D"):
        if key in blobs:
            offsets[key] = 20 + len(data)
            data += blobs[key]
    header = struct.pack("<BBHIIII", 1, 0, control, offsets.get("O", 0), offsets.get("G", 0),
                         offsets.get("S", 0), offsets.get("D", 0))
    return header + data


def _split(sddl: str) -> dict[str, str]:
    text = sddl.strip()
    marks = list(_SECTION.finditer(text))
    if not marks or marks[0].start() != 0:
        raise _Invalid(sddl)
    sections: dict[str, str] = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        if m.group(1) in sections:
            raise _Invalid(sddl)
        sections[m.group(1)] = text[m.end():end]
    return sections


def validate_sddl(sddl: str) -> str:
    sddl_to_binary(sddl)
    return sddl.strip()


# -- binary -> SDDL --

def binary_to_sddl(data: bytes) -> str:
    """The SDDL of a self-relative security descriptor; 400 FileInvalidPermission if it is not one."""
    try:
        revision, _, control, owner, group, sacl, dacl = struct.unpack_from("<BBHIIII", data)
        if revision != 1 or not control & _SELF_RELATIVE:
            raise _Invalid("not a self-relative descriptor")
        out = ""
        if owner:
            out += "O:" + _sid_text(data, owner)
        if group:
            out += "G:" + _sid_text(data, group)
        if control & _DACL_PRESENT:
            out += "D:" + _acl_text(data, dacl, control, _DACL_BITS)
        if control & _SACL_PRESENT:
            out += "S:" + _acl_text(data, sacl, control, _SACL_BITS)
        return out
    except (_Invalid, struct.error, KeyError):
        raise invalid_permission() from None


def _read_sid(data: bytes, at: int) -> tuple[str, int]:
    revision, count = data[at], data[at + 1]
    if revision != 1:
        raise _Invalid("SID revision")
    authority = int.from_bytes(data[at + 2:at + 8], "big")
    subs = struct.unpack_from(f"<{count}I", data, at + 8)
    return "-".join(["S-1", str(authority), *map(str, subs)]), 8 + 4 * count


def _sid_text(data: bytes, at: int) -> str:
    sid, _ = _read_sid(data, at)
    return _SID_ALIAS.get(sid, sid)


def _acl_text(data: bytes, at: int, control: int, bits: tuple[int, int, int]) -> str:
    flags = "".join(name for name, bit in zip(("P", "AI", "AR"), bits, strict=True) if control & bit)
    if not at:
        return flags
    _, _, _, count, _ = struct.unpack_from("<BBHHH", data, at)
    pos, aces = at + 8, []
    for _ in range(count):
        kind, ace_flags, size, mask = struct.unpack_from("<BBHI", data, pos)
        sid, _ = _read_sid(data, pos + 8)
        names = "".join(n for n, bit in _ACE_FLAGS.items() if ace_flags & bit)
        rights = _WHOLE_RIGHTS.get(mask, f"0x{mask:x}")
        aces.append(f"({_ACE_TYPE_NAMES[kind]};{names};{rights};;;{_SID_ALIAS.get(sid, sid)})")
        pos += size
    return flags + "".join(aces)
