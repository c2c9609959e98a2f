"""Decode the KRB-CRED the ticket exchange returns (RFC 4120 5.8) with an ASN.1 library.

The service sends the credential part unencrypted (etype 0, "null"): it arrives inside the HTTPS reply
that the bearer token authorised, so there is nothing to decrypt with. Encrypted parts are refused with
a clear error instead of being misread.

Schemas are declared here rather than imported from the emulator on purpose: the client never imports
emulator code, so the two check each other. Only what the client reads is declared; the Ticket itself
is carried through as opaque DER (the client cannot and need not decrypt it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from asn1crypto import core

from keyless.smb.errors import BadReply

ENCTYPE_NULL = 0
_PVNO = 5
_MSG_KRB_CRED = 22


class _Strings(core.SequenceOf):
    _child_spec = core.GeneralString


class _PrincipalName(core.Sequence):
    _fields = [
        ("name-type", core.Integer, {"explicit": 0}),
        ("name-string", _Strings, {"explicit": 1}),
    ]


class _EncryptedData(core.Sequence):
    _fields = [
        ("etype", core.Integer, {"explicit": 0}),
        ("kvno", core.Integer, {"explicit": 1, "optional": True}),
        ("cipher", core.OctetString, {"explicit": 2}),
    ]


class _EncryptionKey(core.Sequence):
    _fields = [
        ("keytype", core.Integer, {"explicit": 0}),
        ("keyvalue", core.OctetString, {"explicit": 1}),
    ]


class _Ticket(core.Sequence):
    explicit = (1, 1)
    _fields = [
        ("tkt-vno", core.Integer, {"explicit": 0}),
        ("realm", core.GeneralString, {"explicit": 1}),
        ("sname", _PrincipalName, {"explicit": 2}),
        ("enc-part", _EncryptedData, {"explicit": 3}),
    ]


class _Tickets(core.SequenceOf):
    _child_spec = _Ticket


class _KrbCredInfo(core.Sequence):
    _fields = [
        ("key", _EncryptionKey, {"explicit": 0}),
        ("prealm", core.GeneralString, {"explicit": 1, "optional": True}),
        ("pname", _PrincipalName, {"explicit": 2, "optional": True}),
        ("flags", core.BitString, {"explicit": 3, "optional": True}),
        ("authtime", core.GeneralizedTime, {"explicit": 4, "optional": True}),
        ("starttime", core.GeneralizedTime, {"explicit": 5, "optional": True}),
        ("endtime", core.GeneralizedTime, {"explicit": 6, "optional": True}),
        ("renew-till", core.GeneralizedTime, {"explicit": 7, "optional": True}),
        ("srealm", core.GeneralString, {"explicit": 8, "optional": True}),
        ("sname", _PrincipalName, {"explicit": 9, "optional": True}),
        ("caddr", core.Any, {"explicit": 10, "optional": True}),
    ]


class _KrbCredInfos(core.SequenceOf):
    _child_spec = _KrbCredInfo


class _EncKrbCredPart(core.Sequence):
    explicit = (1, 29)
    _fields = [
        ("ticket-info", _KrbCredInfos, {"explicit": 0}),
        ("nonce", core.Integer, {"explicit": 1, "optional": True}),
        ("timestamp", core.GeneralizedTime, {"explicit": 2, "optional": True}),
        ("usec", core.Integer, {"explicit": 3, "optional": True}),
        ("s-address", core.Any, {"explicit": 4, "optional": True}),
        ("r-address", core.Any, {"explicit": 5, "optional": True}),
    ]


class _KrbCred(core.Sequence):
    explicit = (1, 22)
    _fields = [
        ("pvno", core.Integer, {"explicit": 0}),
        ("msg-type", core.Integer, {"explicit": 1}),
        ("tickets", _Tickets, {"explicit": 2}),
        ("enc-part", _EncryptedData, {"explicit": 3}),
    ]


@dataclass(frozen=True)
class Principal:
    name_type: int
    components: tuple[str, ...]
    realm: str

    def __str__(self) -> str:
        return "/".join(self.components) + "@" + self.realm


@dataclass(frozen=True)
class Credential:
    """One ticket and what the client needs to use it. ``session_key`` is a secret: never log it."""

    client: Principal
    server: Principal
    enctype: int
    session_key: bytes
    flags: int  # as MIT stores it: the 32 KerberosFlags bits as a big-endian integer
    authtime: int
    starttime: int
    endtime: int
    renew_till: int
    ticket: bytes  # DER Ticket, opaque to the client

    def __repr__(self) -> str:
        return (f"Credential(client={self.client}, server={self.server}, enctype={self.enctype}, "
                f"flags={self.flags:#010x}, starttime={self.starttime}, endtime={self.endtime})")


def _principal(value: Any, realm: str, what: str) -> Principal:
    if not isinstance(value, _PrincipalName):
        raise BadReply(f"the KRB-CRED has no {what} name")
    return Principal(int(value["name-type"].native), tuple(value["name-string"].native), realm)


def _time(value: Any) -> int:
    native = value.native
    if native is None:
        return 0
    assert isinstance(native, dt.datetime)
    return int(native.timestamp())


def _flags(value: Any) -> int:
    bits = value.native if value.native is not None else ()
    out = 0
    for i, bit in enumerate(tuple(bits)[:32]):
        if bit:
            out |= 1 << (31 - i)
    return out


def decode_krb_cred(der: bytes) -> list[Credential]:
    """Every credential in a KRB-CRED whose encrypted part uses the null etype."""
    try:
        cred = _KrbCred.load(der, strict=True)
        pvno, msg_type = cred["pvno"].native, cred["msg-type"].native
        enc = cred["enc-part"]
        tickets = list(cred["tickets"])
    except (ValueError, TypeError) as exc:
        raise BadReply(f"the kerberosServiceTicket is not a DER KRB-CRED ({exc})") from None
    if pvno != _PVNO or msg_type != _MSG_KRB_CRED:
        raise BadReply(f"the KRB-CRED has pvno {pvno} / msg-type {msg_type}; expected 5 / 22")
    if enc["etype"].native != ENCTYPE_NULL:
        raise BadReply(
            f"the KRB-CRED's credential part is encrypted (etype {enc['etype'].native}); the ticket exchange "
            "sends it unencrypted (etype 0), so this reply did not come from the SMB ticket endpoint"
        )
    try:
        part = _EncKrbCredPart.load(enc["cipher"].native, strict=True)
        infos = list(part["ticket-info"])
    except (ValueError, TypeError) as exc:
        raise BadReply(f"the KRB-CRED's credential part is not a DER EncKrbCredPart ({exc})") from None
    if len(infos) != len(tickets) or not tickets:
        raise BadReply(f"the KRB-CRED holds {len(tickets)} ticket(s) but {len(infos)} ticket-info(s)")
    out: list[Credential] = []
    try:
        for ticket, info in zip(tickets, infos, strict=True):
            srealm = info["srealm"].native or ticket["realm"].native
            prealm = info["prealm"].native or srealm
            sname = info["sname"] if info["sname"].native is not None else ticket["sname"]
            out.append(
                Credential(
                    client=_principal(info["pname"], prealm, "client"),
                    server=_principal(sname, srealm, "server"),
                    enctype=int(info["key"]["keytype"].native),
                    session_key=bytes(info["key"]["keyvalue"].native),
                    flags=_flags(info["flags"]),
                    authtime=_time(info["authtime"]),
                    starttime=_time(info["starttime"]),
                    endtime=_time(info["endtime"]),
                    renew_till=_time(info["renew-till"]),
                    ticket=ticket.dump(),
                )
            )
    except (ValueError, TypeError, KeyError) as exc:
        raise BadReply(f"the KRB-CRED's ticket-info is malformed ({exc})") from None
    return out
