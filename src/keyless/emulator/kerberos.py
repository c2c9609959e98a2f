"""The emulator's KDC half: service keys, a keytab MIT accepts, and real Kerberos tickets.

Azure Files answers the SMB ticket exchange with a KRB-CRED holding a service ticket for
``cifs/<account>.file.core.windows.net@FILES.AZURE.STORAGE.MICROSOFT.COM``. The emulator does the same,
and encrypts the ticket with a per-account AES-256 service key that it writes to ``DIR/cifs.keytab``, so
a real GSSAPI acceptor (what the SMB server is to ``cifs.upcall``) can verify tickets it minted.

Crypto is RFC 3961 (n-fold, DK/DR key derivation, simplified profile) with RFC 3962's
aes256-cts-hmac-sha1-96 (enctype 18): AES in CBC mode with ciphertext stealing (CS3, last two blocks
swapped), a random confounder, and HMAC-SHA1-96 over the plaintext. Primitives come from
``cryptography``; only the Kerberos composition is written here, and it is checked against MIT itself
(string-to-key through libkrb5 and a GSSAPI acceptor in the tests).

ASN.1 is asn1crypto: pure Python (no build step for the emulator), strict DER, declarative schemas
with explicit context and application tags, which is all RFC 4120 needs. The client side
(``keyless.smb.krbcred``) declares its own schemas on purpose: the emulator never imports client code,
so each checks the other.

The keytab is written by hand (MIT file format 0x0502, a dozen lines) rather than through libkrb5 so
that the emulator needs no C library; ``klist -k`` and the GSSAPI acceptor in the tests read it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import reduce
from math import gcd
from pathlib import Path

from asn1crypto import core
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from keyless.fsutil import atomic_write
from keyless.protocol import SMB_CLIENT_PRINCIPAL, SMB_REALM, smb_server_principal

ENCTYPE_AES256 = 18  # aes256-cts-hmac-sha1-96
ENCTYPE_NULL = 0
KEY_USAGE_TICKET = 2  # RFC 4120 7.5.1: AS-REP/TGS-REP ticket, encrypted with the service key
NT_PRINCIPAL = 1
NT_SRV_INST = 2
PVNO = 5
MSG_KRB_CRED = 22
TR_DOMAIN_X500_COMPRESS = 1
KEYTAB_NAME = "cifs.keytab"
KVNO = 1
MAX_TICKET_LIFETIME = 24 * 3600.0  # what Azure's tickets live (protocol.md §3, "about 24 h")

_BLOCK = 16
_HMAC_LEN = 12  # HMAC-SHA1-96

# Ticket flags, RFC 4120 5.3 bit numbers (bit 0 is the most significant bit of the 32).
FLAG_FORWARDABLE = 1
FLAG_RENEWABLE = 8
FLAG_PRE_AUTHENT = 10
# The service's tickets carry only "renewable" (ticket_flags 8388608 = 0x00800000) with renew-till equal to
# the end time, as AzFilesAuthenticator's README shows from a real ticket ("List Credentials" example:
# "Ticket flags: 8388608", "Ticket renew till" = "Ticket end time") and its test/list_cred_op fixture.
DEFAULT_FLAGS = (FLAG_RENEWABLE,)


# --- RFC 3961 / 3962 crypto ----------------------------------------------------------------------------


def nfold(data: bytes, nbytes: int) -> bytes:
    """RFC 3961 n-fold: replicate ``data`` with 13-bit rotations, add the n-byte slices one's-complement."""

    def rotate_right(block: bytes, nbits: int) -> bytes:
        size = len(block)
        shift, rem = (nbits // 8) % size, nbits % 8
        return bytes(
            ((block[(i - shift) % size] >> rem) | (block[(i - shift - 1) % size] << (8 - rem))) & 0xFF
            for i in range(size)
        )

    def add_ones_complement(a: bytes, b: bytes) -> bytes:
        size = len(a)
        total = [x + y for x, y in zip(a, b, strict=True)]
        # Propagate carries around the end (one's-complement addition) until none is left.
        while any(v > 0xFF for v in total):
            total = [(total[(i + 1) % size] >> 8) + (total[i] & 0xFF) for i in range(size)]
        return bytes(total)

    size = len(data)
    lcm = nbytes * size // gcd(nbytes, size)
    big = b"".join(rotate_right(data, 13 * i) for i in range(lcm // size))
    return reduce(add_ones_complement, (big[p : p + nbytes] for p in range(0, lcm, nbytes)))


def _aes_ecb(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - one block = CTS of one block
    return enc.update(block) + enc.finalize()


def aes_cts_encrypt(key: bytes, plaintext: bytes, iv: bytes = bytes(_BLOCK)) -> bytes:
    """AES-CBC with ciphertext stealing as RFC 3962 defines it (CS3: the last two blocks always swap)."""
    if len(plaintext) < _BLOCK:
        raise ValueError("AES-CTS needs at least one full block")
    if len(plaintext) == _BLOCK:
        return _aes_ecb(key, bytes(a ^ b for a, b in zip(plaintext, iv, strict=True)))
    nblocks = -(-len(plaintext) // _BLOCK)
    last_len = len(plaintext) - _BLOCK * (nblocks - 1)
    padded = plaintext + bytes(_BLOCK * nblocks - len(plaintext))
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    cbc = enc.update(padded) + enc.finalize()
    head = cbc[: _BLOCK * (nblocks - 2)]
    penult = cbc[_BLOCK * (nblocks - 2) : _BLOCK * (nblocks - 1)]
    last = cbc[_BLOCK * (nblocks - 1) :]
    return head + last + penult[:last_len]


def aes_cts_decrypt(key: bytes, ciphertext: bytes, iv: bytes = bytes(_BLOCK)) -> bytes:
    if len(ciphertext) < _BLOCK:
        raise ValueError("AES-CTS ciphertext is shorter than one block")
    dec_ecb = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305 - CTS tail by hand
    if len(ciphertext) == _BLOCK:
        plain = dec_ecb.update(ciphertext) + dec_ecb.finalize()
        return bytes(a ^ b for a, b in zip(plain, iv, strict=True))
    nblocks = -(-len(ciphertext) // _BLOCK)
    last_len = len(ciphertext) - _BLOCK * (nblocks - 1)
    head = ciphertext[: _BLOCK * (nblocks - 2)]
    swapped_last = ciphertext[_BLOCK * (nblocks - 2) : _BLOCK * (nblocks - 1)]  # C(n) of plain CBC
    partial = ciphertext[_BLOCK * (nblocks - 1) :]  # first bytes of C(n-1)
    d = dec_ecb.update(swapped_last) + dec_ecb.finalize()  # = C(n-1) xor P(n)||zeros
    penult = partial + d[last_len:]
    p_last = bytes(a ^ b for a, b in zip(d[:last_len], partial, strict=True))
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    front = dec.update(head + penult) + dec.finalize()
    return front + p_last


def derive_random(key: bytes, constant: bytes) -> bytes:
    """RFC 3961 DR: iterate the block cipher over n-fold(constant) until a key's worth of bytes."""
    block = nfold(constant, _BLOCK)
    out = b""
    while len(out) < len(key):
        block = _aes_ecb(key, block)
        out += block
    return out[: len(key)]


def derive_key(key: bytes, constant: bytes) -> bytes:
    """RFC 3961 DK; for AES random-to-key is the identity."""
    return derive_random(key, constant)


def string_to_key(password: bytes, salt: bytes, iterations: int = 4096, key_len: int = 32) -> bytes:
    """RFC 3962 string-to-key (used by the tests to check n-fold and DK against MIT's libkrb5)."""
    tkey = PBKDF2HMAC(SHA1(), key_len, salt, iterations).derive(password)  # noqa: S303 - the RFC's PRF
    return derive_key(tkey, b"kerberos")


def _usage_keys(key: bytes, usage: int) -> tuple[bytes, bytes]:
    prefix = struct.pack(">I", usage)
    return derive_key(key, prefix + b"\xaa"), derive_key(key, prefix + b"\x55")


def encrypt(key: bytes, usage: int, plaintext: bytes, confounder: bytes | None = None) -> bytes:
    """RFC 3961 simplified profile: CTS(Ke, confounder | plaintext) | HMAC-SHA1-96(Ki, same)."""
    ke, ki = _usage_keys(key, usage)
    data = (confounder if confounder is not None else secrets.token_bytes(_BLOCK)) + plaintext
    mac = hmac.new(ki, data, hashlib.sha1).digest()[:_HMAC_LEN]
    return aes_cts_encrypt(ke, data) + mac


class IntegrityError(ValueError):
    """A ciphertext's HMAC does not match: wrong key, wrong key usage or tampering."""


def decrypt(key: bytes, usage: int, ciphertext: bytes) -> bytes:
    ke, ki = _usage_keys(key, usage)
    body, mac = ciphertext[:-_HMAC_LEN], ciphertext[-_HMAC_LEN:]
    data = aes_cts_decrypt(ke, body)
    if not hmac.compare_digest(hmac.new(ki, data, hashlib.sha1).digest()[:_HMAC_LEN], mac):
        raise IntegrityError("Kerberos ciphertext integrity check failed")
    return data[_BLOCK:]


# --- RFC 4120 ASN.1 (explicit tags throughout, as the Kerberos module's DEFINITIONS say) ---------------


class KerberosStrings(core.SequenceOf):
    _child_spec = core.GeneralString


class PrincipalName(core.Sequence):
    _fields = [
        ("name-type", core.Integer, {"explicit": 0}),
        ("name-string", KerberosStrings, {"explicit": 1}),
    ]


class EncryptedData(core.Sequence):
    _fields = [
        ("etype", core.Integer, {"explicit": 0}),
        ("kvno", core.Integer, {"explicit": 1, "optional": True}),
        ("cipher", core.OctetString, {"explicit": 2}),
    ]


class EncryptionKey(core.Sequence):
    _fields = [
        ("keytype", core.Integer, {"explicit": 0}),
        ("keyvalue", core.OctetString, {"explicit": 1}),
    ]


class TransitedEncoding(core.Sequence):
    _fields = [
        ("tr-type", core.Integer, {"explicit": 0}),
        ("contents", core.OctetString, {"explicit": 1}),
    ]


class Ticket(core.Sequence):
    explicit = (1, 1)  # [APPLICATION 1]
    _fields = [
        ("tkt-vno", core.Integer, {"explicit": 0}),
        ("realm", core.GeneralString, {"explicit": 1}),
        ("sname", PrincipalName, {"explicit": 2}),
        ("enc-part", EncryptedData, {"explicit": 3}),
    ]


class Tickets(core.SequenceOf):
    _child_spec = Ticket


class EncTicketPart(core.Sequence):
    explicit = (1, 3)  # [APPLICATION 3]
    _fields = [
        ("flags", core.BitString, {"explicit": 0}),
        ("key", EncryptionKey, {"explicit": 1}),
        ("crealm", core.GeneralString, {"explicit": 2}),
        ("cname", PrincipalName, {"explicit": 3}),
        ("transited", TransitedEncoding, {"explicit": 4}),
        ("authtime", core.GeneralizedTime, {"explicit": 5}),
        ("starttime", core.GeneralizedTime, {"explicit": 6, "optional": True}),
        ("endtime", core.GeneralizedTime, {"explicit": 7}),
        ("renew-till", core.GeneralizedTime, {"explicit": 8, "optional": True}),
    ]


class KrbCredInfo(core.Sequence):
    _fields = [
        ("key", EncryptionKey, {"explicit": 0}),
        ("prealm", core.GeneralString, {"explicit": 1, "optional": True}),
        ("pname", PrincipalName, {"explicit": 2, "optional": True}),
        ("flags", core.BitString, {"explicit": 3, "optional": True}),
        ("authtime", core.GeneralizedTime, {"explicit": 4, "optional": True}),
        ("starttime", core.GeneralizedTime, {"explicit": 5, "optional": True}),
        ("endtime", core.GeneralizedTime, {"explicit": 6, "optional": True}),
        ("renew-till", core.GeneralizedTime, {"explicit": 7, "optional": True}),
        ("srealm", core.GeneralString, {"explicit": 8, "optional": True}),
        ("sname", PrincipalName, {"explicit": 9, "optional": True}),
    ]


class KrbCredInfos(core.SequenceOf):
    _child_spec = KrbCredInfo


class EncKrbCredPart(core.Sequence):
    explicit = (1, 29)  # [APPLICATION 29]
    _fields = [
        ("ticket-info", KrbCredInfos, {"explicit": 0}),
        ("nonce", core.Integer, {"explicit": 1, "optional": True}),
        ("timestamp", core.GeneralizedTime, {"explicit": 2, "optional": True}),
        ("usec", core.Integer, {"explicit": 3, "optional": True}),
    ]


class KrbCred(core.Sequence):
    explicit = (1, 22)  # [APPLICATION 22]
    _fields = [
        ("pvno", core.Integer, {"explicit": 0}),
        ("msg-type", core.Integer, {"explicit": 1}),
        ("tickets", Tickets, {"explicit": 2}),
        ("enc-part", EncryptedData, {"explicit": 3}),
    ]


def flag_bits(flags: Iterable[int]) -> tuple[int, ...]:
    """A 32-bit KerberosFlags value; DER for Kerberos keeps all 32 bits (RFC 4120 5.2.8)."""
    chosen = set(flags)
    return tuple(1 if i in chosen else 0 for i in range(32))


def _kerberos_time(when: float) -> dt.datetime:
    # KerberosTime has no fractional seconds (RFC 4120 5.2.3).
    return dt.datetime.fromtimestamp(int(when), dt.UTC)


# --- keytab (MIT file format version 0x0502) -----------------------------------------------------------


@dataclass(frozen=True)
class KeytabEntry:
    realm: str
    components: tuple[str, ...]
    name_type: int
    timestamp: int
    kvno: int
    enctype: int
    key: bytes


def _counted(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def encode_keytab(entries: Iterable[KeytabEntry]) -> bytes:
    out = bytearray(b"\x05\x02")
    for e in entries:
        body = struct.pack(">H", len(e.components)) + _counted(e.realm.encode())
        body += b"".join(_counted(c.encode()) for c in e.components)
        body += struct.pack(">IIB", e.name_type, e.timestamp, e.kvno & 0xFF)
        body += struct.pack(">H", e.enctype) + _counted(e.key)
        body += struct.pack(">I", e.kvno)  # the 32-bit kvno MIT reads when the entry has room for it
        out += struct.pack(">i", len(body)) + body
    return bytes(out)


def decode_keytab(data: bytes) -> list[KeytabEntry]:
    if data[:2] != b"\x05\x02":
        raise ValueError("not a version 0x0502 keytab")
    entries: list[KeytabEntry] = []
    pos = 2
    while pos + 4 <= len(data):
        (size,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if size <= 0:  # a hole left by a removed entry
            pos += -size
            continue
        body, pos = data[pos : pos + size], pos + size

        def take(off: int, body: bytes = body) -> tuple[bytes, int]:
            (n,) = struct.unpack_from(">H", body, off)
            return body[off + 2 : off + 2 + n], off + 2 + n

        (ncomp,) = struct.unpack_from(">H", body, 0)
        realm, off = take(2)
        comps = []
        for _ in range(ncomp):
            comp, off = take(off)
            comps.append(comp.decode())
        name_type, timestamp, vno8 = struct.unpack_from(">IIB", body, off)
        off += 9
        (enctype,) = struct.unpack_from(">H", body, off)
        key, off = take(off + 2)
        kvno = struct.unpack_from(">I", body, off)[0] if off + 4 <= len(body) else vno8
        entries.append(KeytabEntry(realm.decode(), tuple(comps), name_type, timestamp, kvno, enctype, key))
    return entries


# --- minting -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MintedCredential:
    krb_cred: bytes  # DER KRB-CRED, enc-part with etype 0
    session_key: bytes  # raw aes256 key; a secret: never log it
    start: int
    end: int

    def __repr__(self) -> str:
        return f"MintedCredential(start={self.start}, end={self.end}, krb_cred=<{len(self.krb_cred)} bytes>)"


def keytab_path(data_dir: Path) -> Path:
    return data_dir / KEYTAB_NAME


class KerberosMinter:
    """Per-account service keys (kept in the keytab, so they survive restarts) and ticket minting."""

    def __init__(self, data_dir: Path, accounts: Iterable[str]) -> None:
        self.path = keytab_path(data_dir)
        self._lock = threading.Lock()
        self._keys: dict[str, KeytabEntry] = {}
        self.ensure_accounts(accounts)

    def ensure_accounts(self, accounts: Iterable[str]) -> None:
        """Load the keytab and add a key for every account that has none; the file is 0600."""
        with self._lock:
            entries = decode_keytab(self.path.read_bytes()) if self.path.exists() else []
            changed = False
            by_spn = {"/".join(e.components): e for e in entries
                      if e.realm == SMB_REALM and e.enctype == ENCTYPE_AES256}
            for account in accounts:
                spn = smb_server_principal(account)
                if spn not in by_spn:
                    entry = KeytabEntry(SMB_REALM, tuple(spn.split("/")), NT_SRV_INST, int(_now()), KVNO,
                                        ENCTYPE_AES256, secrets.token_bytes(32))
                    entries.append(entry)
                    by_spn[spn] = entry
                    changed = True
            if changed or not self.path.exists():
                atomic_write(self.path, encode_keytab(entries))
            self._keys = {spn.split("/", 1)[1]: e for spn, e in by_spn.items()}

    def service_key(self, account: str) -> KeytabEntry:
        host = smb_server_principal(account).split("/", 1)[1]
        entry = self._keys.get(host)
        if entry is None:
            self.ensure_accounts([account])
            entry = self._keys[host]
        return entry

    def mint(self, account: str, *, now: float, end: float, flags: Iterable[int] = DEFAULT_FLAGS,
             server_host: str | None = None, realm: str = SMB_REALM) -> MintedCredential:
        """A service ticket for ``AzureFileClient`` to ``cifs/<account>...`` valid from ``now`` to ``end``.

        ``server_host`` / ``realm`` name another server (a sovereign cloud's host) in the same key's ticket.
        """
        service = self.service_key(account)
        session_key = secrets.token_bytes(32)
        bits = flag_bits(flags)
        start_t, end_t = _kerberos_time(now), _kerberos_time(end)
        cname = PrincipalName({"name-type": NT_PRINCIPAL, "name-string": [SMB_CLIENT_PRINCIPAL]})
        components = ["cifs", server_host] if server_host else list(service.components)
        sname = PrincipalName({"name-type": NT_SRV_INST, "name-string": components})
        key = EncryptionKey({"keytype": ENCTYPE_AES256, "keyvalue": session_key})
        enc_part = EncTicketPart({
            "flags": bits,
            "key": key,
            "crealm": realm,
            "cname": cname,
            "transited": {"tr-type": TR_DOMAIN_X500_COMPRESS, "contents": b""},
            "authtime": start_t,
            "starttime": start_t,
            "endtime": end_t,
            "renew-till": end_t,  # renewable up to its end time only (see DEFAULT_FLAGS)
        })
        ticket = Ticket({
            "tkt-vno": PVNO,
            "realm": realm,
            "sname": sname,
            "enc-part": {
                "etype": ENCTYPE_AES256,
                "kvno": service.kvno,
                "cipher": encrypt(service.key, KEY_USAGE_TICKET, enc_part.dump()),
            },
        })
        info = KrbCredInfo({
            "key": key,
            "prealm": realm,
            "pname": cname,
            "flags": bits,
            "authtime": start_t,
            "starttime": start_t,
            "endtime": end_t,
            "renew-till": end_t,
            "srealm": realm,
            "sname": sname,
        })
        cred_part = EncKrbCredPart({"ticket-info": [info]})
        cred = KrbCred({
            "pvno": PVNO,
            "msg-type": MSG_KRB_CRED,
            "tickets": [ticket],
            # etype 0 (null): the part travels in clear over the HTTPS reply, as the service sends it.
            "enc-part": {"etype": ENCTYPE_NULL, "cipher": cred_part.dump()},
        })
        return MintedCredential(cred.dump(), session_key, int(now), int(end))


def _now() -> float:
    # Keytab timestamps are informational (klist -k -t); wall time is right even under a skewed clock.
    return dt.datetime.now(dt.UTC).timestamp()


def ensure_keytab(data_dir: Path, accounts: Iterable[str]) -> KerberosMinter:
    """What server assembly calls at start-up so ``DIR/cifs.keytab`` exists before the first request."""
    data_dir.mkdir(parents=True, exist_ok=True)
    minter = KerberosMinter(data_dir, accounts)
    os.chmod(minter.path, 0o600)
    return minter
