"""A user delegation SAS carries no stored access policy ("Create a user delegation SAS": stored access
policies are not supported for a user delegation SAS), and its string-to-sign has no ``si`` slot (the
SDK's ``add_resource_signature`` signs ``si`` only without a delegation key). An ``si=`` added to one is
therefore unsigned: the emulator refuses the request with 403 ``AuthenticationFailed`` rather than ignore a
field it cannot trust (where Azure's exact reply is not published, the refusal is the safer answer)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.storage.fileshare import (
    AccessPolicy,
    ShareClient,
    ShareFileClient,
    ShareSasPermissions,
    ShareServiceClient,
    generate_file_sas,
)

from keyless.testing import EmulatorProcess, start_emulator
from worlds import minter_world

CLIENT_ID = "eeeeeeee-0000-0000-0000-000000000001"
WORLD = minter_world("siacct", CLIENT_ID)


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with start_emulator(tmp_path_factory.mktemp("sas-si"), WORLD) as started:
        acct = started.account("siacct")
        share = ShareClient(acct["url"], "data", connection_verify=started.ca_cert,
                            credential={"account_name": acct["name"], "account_key": acct["key"]})
        share.get_file_client("a.txt").upload_file(b"alpha")
        now = datetime.now(UTC).replace(microsecond=0)
        # A stored policy that would grant more than the SAS does, were its id honoured.
        wide = ShareSasPermissions(read=True, write=True, delete=True)
        share.set_share_access_policy({"wide": AccessPolicy(permission=wide, start=now - timedelta(minutes=5),
                                                            expiry=now + timedelta(days=1))})
        yield started
        assert "Traceback" not in started.stderr()


def _ud_sas(emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> str:
    for var in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_url)
    service = ShareServiceClient(emu.account("siacct")["url"], credential=ManagedIdentityCredential(
        client_id=CLIENT_ID), token_intent="backup", connection_verify=emu.ca_cert)
    now = datetime.now(UTC).replace(microsecond=0)
    key = service.get_user_delegation_key(start=now - timedelta(minutes=1), expiry=now + timedelta(hours=1))
    return generate_file_sas("siacct", "data", ["a.txt"], permission="r", expiry=now + timedelta(hours=1),
                             user_delegation_key=key)


def _file(emu: EmulatorProcess, sas: str) -> ShareFileClient:
    return ShareFileClient(emu.account("siacct")["url"], "data", "a.txt", credential=sas,
                           connection_verify=emu.ca_cert)


def test_user_delegation_sas_works_without_si(emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    sas = _ud_sas(emu, monkeypatch)
    assert "si=" not in sas
    assert _file(emu, sas).download_file().readall() == b"alpha"


@pytest.mark.parametrize("policy", ["wide", "no-such-policy", ""])
def test_an_unsigned_si_on_a_user_delegation_sas_is_refused(
        emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, policy: str) -> None:
    sas = _ud_sas(emu, monkeypatch) + f"&si={policy}"
    with pytest.raises(HttpResponseError) as read:
        _file(emu, sas).download_file().readall()
    assert (read.value.status_code, read.value.error_code) == (403, "AuthenticationFailed")
    with pytest.raises(HttpResponseError) as write:
        _file(emu, sas).upload_file(b"overwritten")
    assert (write.value.status_code, write.value.error_code) == (403, "AuthenticationFailed")
    assert _file(emu, _ud_sas(emu, monkeypatch)).download_file().readall() == b"alpha"
