"""Emulator worlds the tests share, as TOML text for ``keyless.testing.start_emulator``."""

from __future__ import annotations


def minter_world(account: str, client_id: str, *, extra_identities: str = "") -> str:
    """One account with share ``data`` and a user-assigned identity ``minter`` holding Storage File Data
    Privileged Contributor on it: what minting and using a user delegation SAS needs."""
    return f"""
[[accounts]]
name = "{account}"
shares = ["data"]
[[identities]]
name = "minter"
type = "user"
client_id = "{client_id}"
{extra_identities}
[[role_assignments]]
role = "Storage File Data Privileged Contributor"
principal = "minter"
scope = "{account}/data"
"""
