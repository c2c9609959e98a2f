"""The official SDK's clients for the emulator's first account, as the SDK fidelity tests build them."""

from __future__ import annotations

from azure.storage.fileshare import ShareServiceClient

from keyless.testing import EmulatorProcess


def key_service(emulator: EmulatorProcess) -> ShareServiceClient:
    """A service client signing with the account key (Shared Key)."""
    acct = emulator.account()
    key = {"account_name": acct["name"], "account_key": acct["key"]}
    return ShareServiceClient(acct["url"], credential=key, connection_verify=emulator.ca_cert)
