"""Put Range From URL from another account, the source authorized by its own bearer token
(x-ms-copy-source-authorization), with the official SDK against a real emulator hosting two accounts:
the token must be valid for the source account and its identity must read the source share. Copy File
has no source-token header: from another account it needs a SAS on the source URL (see
test_sdk_fidelity_copy.py); without one it is 403 CannotVerifyCopySource."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.storage.fileshare import ShareFileClient

from keyless.testing import EmulatorProcess

WORLD = """
[[accounts]]
name = "source1"
shares = ["src", "private"]

[[accounts]]
name = "dest1"
shares = ["dst"]

[[identities]]
name = "vm"
type = "system"

[[role_assignments]]
role = "Storage File Data Privileged Reader"
principal = "vm"
scope = "source1/src"
"""


def _file(emu: EmulatorProcess, account: str, share: str, path: str) -> ShareFileClient:
    acct = emu.account(account)
    return ShareFileClient(acct["url"], share, path, credential={"account_name": acct["name"],
                                                                 "account_key": acct["key"]},
                           connection_verify=emu.ca_cert, token_intent="backup")


def test_range_from_another_account_with_a_source_token(
        emulator_factory: Callable[..., EmulatorProcess], monkeypatch: pytest.MonkeyPatch) -> None:
    emu = emulator_factory(WORLD)
    for var in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_url)
    token = ManagedIdentityCredential().get_token("https://storage.azure.com/.default").token
    bearer = f"Bearer {token}"

    source = _file(emu, "source1", "src", "data.bin")
    source.upload_file(b"cross-account bytes")
    private = _file(emu, "source1", "private", "secret.bin")
    private.upload_file(b"no role here")
    target = _file(emu, "dest1", "dst", "copy.bin")

    # Without a source credential the destination's key cannot read another account.
    ranged = _file(emu, "dest1", "dst", "ranged.bin")
    ranged.create_file(5)
    with pytest.raises(HttpResponseError) as unverified:
        ranged.upload_range_from_url(source.url, offset=0, length=5, source_offset=0)
    assert (unverified.value.status_code, unverified.value.error_code) == (403, "CannotVerifyCopySource")
    with pytest.raises(HttpResponseError) as copy:
        target.start_copy_from_url(source.url)
    assert (copy.value.status_code, copy.value.error_code) == (403, "CannotVerifyCopySource")

    ranged.upload_range_from_url(source.url, offset=0, length=5, source_offset=0, source_authorization=bearer)
    assert ranged.download_file().readall() == b"cross"

    # The token's identity has no role on source1/private: the source cannot be verified.
    with pytest.raises(HttpResponseError) as no_role:
        ranged.upload_range_from_url(private.url, offset=0, length=5, source_offset=0,
                                     source_authorization=bearer)
    assert (no_role.value.status_code, no_role.value.error_code) == (403, "CannotVerifyCopySource")
    with pytest.raises(HttpResponseError) as bad_token:
        ranged.upload_range_from_url(source.url, offset=0, length=5, source_offset=0,
                                     source_authorization="Bearer not.a.token")
    assert (bad_token.value.status_code, bad_token.value.error_code) == (403, "CannotVerifyCopySource")
    with pytest.raises(HttpResponseError) as scheme:
        ranged.upload_range_from_url(source.url, offset=0, length=5, source_offset=0,
                                     source_authorization="SharedKey source1:abc")
    assert (scheme.value.status_code, scheme.value.error_code) == (400, "InvalidHeaderValue")
