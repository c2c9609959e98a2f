"""Create / Get Permission at the byte level: the binary format in (which the SDK cannot send yet),
the JSON body's errors, and SDDL <-> binary round trips of the converter."""

from __future__ import annotations

import base64
import json

import pytest
from tests.emulator import test_files_rest as rest

from keyless.emulator.errors import StorageError
from keyless.emulator.files.sddl import binary_to_sddl, sddl_to_binary

A, Api = rest.A, rest.Api
api = rest.api  # the Files REST handlers over real HTTP, with a stand-in authentication

SDDL = "O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;0x1301bf;;;AU)S:AI(AU;SA;FA;;;WD)"


def _create(api: Api, body: object) -> rest.Resp:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return api.req("PUT", f"{A}/demo?restype=share&comp=filepermission", {"Content-Type": "application/json"},
                   raw)


def test_binary_permission_in_and_out(api: Api) -> None:
    binary = base64.b64encode(sddl_to_binary(SDDL)).decode()
    r = _create(api, {"permission": binary, "format": "Binary"})
    assert r.status == 201
    key = r.headers["x-ms-file-permission-key"]
    assert _create(api, {"permission": SDDL, "format": "Sddl"}).headers["x-ms-file-permission-key"] == key
    got = api.req("GET", f"{A}/demo?restype=share&comp=filepermission", {"x-ms-file-permission-key": key})
    assert json.loads(got.body) == {"permission": SDDL, "format": "Sddl"}
    got = api.req("GET", f"{A}/demo?restype=share&comp=filepermission",
                  {"x-ms-file-permission-key": key, "x-ms-file-permission-format": "binary"})
    assert json.loads(got.body)["permission"] == binary


def test_create_permission_errors(api: Api) -> None:
    assert _create(api, b"{not json").code == "InvalidInput"
    nested = _create(api, b'{"a":' * 5000 + b"1" + b"}" * 5000)  # deeper than the JSON parser recurses
    assert (nested.status, nested.code) == (400, "InvalidInput")
    assert _create(api, {"format": "sddl"}).code == "InvalidInput"
    assert _create(api, {"permission": "O:BA", "format": "xml"}).code == "InvalidHeaderValue"
    assert _create(api, {"permission": "!!!", "format": "binary"}).code == "FileInvalidPermission"
    r = api.req("GET", f"{A}/demo?restype=share&comp=filepermission", {"x-ms-file-permission-key": "1*2"})
    assert (r.status, r.code) == (400, "FileInvalidPermissionKey")
    r = api.req("GET", f"{A}/demo?restype=share&comp=filepermission")
    assert r.code == "MissingRequiredHeader"


@pytest.mark.parametrize("sddl", [
    SDDL, "O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x1301bf;;;AU)", "O:S-1-5-21-10-20-30-500G:BUD:P",
    "D:AI(D;OICIIO;FW;;;S-1-5-21-1-2-3-4)(A;ID;FR;;;WD)",
])
def test_sddl_binary_round_trip(sddl: str) -> None:
    assert binary_to_sddl(sddl_to_binary(sddl)) == sddl


@pytest.mark.parametrize("bad", ["", "O:", "O:DA", "D:(A;;FA;;;SY", "D:(OA;;FA;;;SY)", "G:BAG:BA", "D:X"])
def test_invalid_sddl_is_file_invalid_permission(bad: str) -> None:
    with pytest.raises(StorageError) as err:
        sddl_to_binary(bad)
    assert (err.value.status, err.value.code) == (400, "FileInvalidPermission")
