"""File permissions with the official SDK (sync and async): Create / Get Permission in SDDL and binary,
permission keys on files and directories (an unknown key is 400 FileInvalidPermissionKey), inline
permissions readable back by their key, and 400 FileInvalidPermission for an SDDL that is not one."""

from __future__ import annotations

import asyncio
import base64
import uuid

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.fileshare import ContentSettings, ShareClient
from azure.storage.fileshare.aio import ShareClient as AsyncShareClient

from keyless.testing import EmulatorProcess

SDDL = "O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1301bf;;;AU)(D;;FW;;;S-1-5-21-1-2-3-1001)"


def _share(emulator: EmulatorProcess, cls: type = ShareClient) -> ShareClient:
    acct = emulator.account()
    return cls(acct["url"], "demo", credential={"account_name": acct["name"],  # type: ignore[no-any-return]
                                                "account_key": acct["key"]},
               connection_verify=emulator.ca_cert)


def test_create_and_get_permission_in_both_formats(emulator: EmulatorProcess) -> None:
    share = _share(emulator)
    key = share.create_permission_for_share(SDDL)
    assert key and share.create_permission_for_share(SDDL) == key  # the same permission, the same key
    assert share.get_permission_for_share(key) == SDDL
    binary = share.get_permission_for_share(key, file_permission_format="binary")
    raw = base64.b64decode(binary)
    # Revision 1; control 0x9404: self-relative, DACL protected (P) and auto-inherited (AI), DACL present.
    assert raw[0] == 1 and raw[2:4] == bytes([0x04, 0x94])
    # (Creating from the binary form is tested at the byte level: this SDK version drops the format
    # keyword from the request body, tests/emulator/test_files_permissions.py.)
    with pytest.raises(HttpResponseError) as bad:
        share.create_permission_for_share("not an SDDL")
    assert (bad.value.status_code, bad.value.error_code) == (400, "FileInvalidPermission")


def test_permission_keys_on_files_and_directories(emulator: EmulatorProcess) -> None:
    share = _share(emulator)
    key = share.create_permission_for_share(SDDL)
    directory = share.get_directory_client(f"perm-{uuid.uuid4().hex[:8]}")
    directory.create_directory(file_permission_key=key)
    try:
        assert directory.get_directory_properties().permission_key == key
        fc = directory.get_file_client("f.txt")
        fc.upload_file(b"x", permission_key=key)
        assert fc.get_file_properties().permission_key == key
        with pytest.raises(HttpResponseError) as unknown:
            fc.set_http_headers(ContentSettings(), permission_key="12345678901234567890*12345678901234567890")
        assert (unknown.value.status_code, unknown.value.error_code) == (400, "FileInvalidPermissionKey")
        # An inline permission is kept on the share too: its key reads it back.
        inline = "O:SYG:SYD:(A;;FA;;;SY)(A;;FR;;;WD)"
        fc.set_http_headers(ContentSettings(), file_permission=inline)
        assert share.get_permission_for_share(fc.get_file_properties().permission_key) == inline
        with pytest.raises(HttpResponseError) as invalid:
            directory.get_file_client("g.txt").upload_file(b"y", file_permission="D:(bad")
        assert invalid.value.error_code == "FileInvalidPermission"
    finally:
        for item in directory.list_directories_and_files():
            directory.get_file_client(item["name"]).delete_file()
        directory.delete_directory()


def test_async_client_permissions(emulator: EmulatorProcess) -> None:
    async def scenario() -> None:
        async with _share(emulator, AsyncShareClient) as share:  # type: ignore[attr-defined]
            key = await share.create_permission_for_share(SDDL)
            assert await share.get_permission_for_share(key) == SDDL

    asyncio.run(scenario())
