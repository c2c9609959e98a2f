"""RFC 3961 / 3962 test vectors for the emulator's Kerberos crypto, plus cross-checks against MIT libkrb5."""

from __future__ import annotations

import os

import krb5
import pytest

from keyless.emulator.kerberos import (
    IntegrityError,
    aes_cts_decrypt,
    aes_cts_encrypt,
    decrypt,
    encrypt,
    nfold,
    string_to_key,
)

# RFC 3961 appendix A.1
NFOLD_VECTORS = [
    (b"012345", 64, "be072631276b1955"),
    (b"password", 56, "78a07b6caf85fa"),
    (b"Rough Consensus, and Running Code", 64, "bb6ed30870b7f0e0"),
    (b"password", 168, "59e4a8ca7c0385c3c37b3f6d2000247cb6e6bd5b3e"),
    (b"MASSACHVSETTS INSTITVTE OF TECHNOLOGY", 192, "db3b0d8f0b061e603282b308a50841229ad798fab9540c1b"),
    (b"Q", 168, "518a54a215a8452a518a54a215a8452a518a54a215"),
    (b"ba", 168, "fb25d531ae8974499f52fd92ea9857c4ba24cf297e"),
    (b"kerberos", 64, "6b65726265726f73"),
    (b"kerberos", 128, "6b65726265726f737b9b5b2b93132b93"),
    (b"kerberos", 256, "6b65726265726f737b9b5b2b93132b935c9bdcdad95c9899c4cae4dee6d6cae4"),
]


@pytest.mark.parametrize(("data", "bits", "expected"), NFOLD_VECTORS)
def test_nfold_rfc3961_vectors(data: bytes, bits: int, expected: str) -> None:
    assert nfold(data, bits // 8).hex() == expected


# RFC 3962 appendix B: AES-CTS with the key "chicken teriyaki".
CTS_KEY = b"chicken teriyaki"
CTS_PLAIN = b"I would like the General Gau's Chicken, please, and wonton soup."
CTS_VECTORS = [
    (17, "c6353568f2bf8cb4d8a580362da7ff7f97"),
    (31, "fc00783e0efdb2c1d445d4c8eff7ed2297687268d6ecccc0c07b25e25ecfe5"),
    (32, "39312523a78662d5be7fcbcc98ebf5a897687268d6ecccc0c07b25e25ecfe584"),
    (47, "97687268d6ecccc0c07b25e25ecfe584b3fffd940c16a18c1b5549d2f838029e39312523a78662d5be7fcbcc98ebf5"),
    (48, "97687268d6ecccc0c07b25e25ecfe5849dad8bbb96c4cdc03bc103e1a194bbd839312523a78662d5be7fcbcc98ebf5a8"),
    (64, "97687268d6ecccc0c07b25e25ecfe58439312523a78662d5be7fcbcc98ebf5a8"
         "4807efe836ee89a526730dbc2f7bc8409dad8bbb96c4cdc03bc103e1a194bbd8"),
]


@pytest.mark.parametrize(("length", "expected"), CTS_VECTORS)
def test_aes_cts_rfc3962_vectors(length: int, expected: str) -> None:
    ciphertext = aes_cts_encrypt(CTS_KEY, CTS_PLAIN[:length])
    assert ciphertext.hex() == expected
    assert aes_cts_decrypt(CTS_KEY, ciphertext) == CTS_PLAIN[:length]


def test_string_to_key_rfc3962_vector() -> None:
    # RFC 3962 B: iteration count 1, "password", salt "ATHENA.MIT.EDUraeburn", 256-bit key.
    key = string_to_key(b"password", b"ATHENA.MIT.EDUraeburn", iterations=1)
    assert key.hex() == "fe697b52bc0d3ce14432ba036a92e65bbb52280990a2fa27883998d72af30161"


@pytest.mark.parametrize("password", [b"password", b"\xf0\x9d\x84\x9e", b"x" * 65])
def test_string_to_key_matches_mit(password: bytes) -> None:
    """n-fold, DR/DK and PBKDF2 as MIT's own implementation computes them (default 4096 iterations)."""
    ctx = krb5.init_context()
    mit = krb5.c_string_to_key(ctx, 18, password, b"FILES.AZURE.STORAGE.MICROSOFT.COMAzureFileClient")
    assert mit.data == string_to_key(password, b"FILES.AZURE.STORAGE.MICROSOFT.COMAzureFileClient")


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 31, 32, 33, 100])
def test_encrypt_round_trip_and_integrity(length: int) -> None:
    key = os.urandom(32)
    plain = os.urandom(length)
    sealed = encrypt(key, 2, plain)
    assert len(sealed) == 16 + length + 12  # confounder + plaintext (CTS keeps length) + HMAC-SHA1-96
    assert decrypt(key, 2, sealed) == plain
    with pytest.raises(IntegrityError):
        decrypt(key, 3, sealed)  # another key usage derives other keys
    tampered = bytearray(sealed)
    tampered[0] ^= 1
    with pytest.raises(IntegrityError):
        decrypt(key, 2, bytes(tampered))
