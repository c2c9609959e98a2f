"""Files REST handlers over real HTTP (aiohttp test server), with a stand-in authentication.

Requests go through ``http.client`` so paths reach the server byte for byte (``..``, ``%ff``, ...). The
injected stand-in ``authenticate`` always answers an AccountKey caller and ``authorize`` records what each
operation asked for. End-to-end tests with real authentication live in ``tests/e2e``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import os
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from keyless.emulator import files as files_rest
from keyless.emulator import management_actions
from keyless.emulator import request_keys as keys
from keyless.emulator.clock import Clock
from keyless.emulator.config import default_config
from keyless.emulator.copy_engine import CopyEngine
from keyless.emulator.errors import StorageError, error_body
from keyless.emulator.request_keys import Caller
from keyless.emulator.storage import Store

A = "/devaccount"


@dataclass
class Resp:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def code(self) -> str | None:
        return self.headers.get("x-ms-error-code")

    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)  # noqa: S314 - our own server's reply


@dataclass
class Api:
    port: int
    store: Store
    grants: list[tuple[str | None, frozenset[str]]] = field(default_factory=list)
    operations: list[str] = field(default_factory=list)

    def req(self, method: str, path: str, headers: dict[str, str] | None = None,
            body: bytes | None = None) -> Resp:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            hdrs = {"x-ms-version": "2025-05-05", **(headers or {})}
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in hdrs.items():
                conn.putheader(k, v)
            if body is not None and "Content-Length" not in hdrs:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            r = conn.getresponse()
            return Resp(r.status, r.headers, r.read())
        finally:
            conn.close()

    def mkfile(self, path: str, data: bytes = b"", **headers: str) -> Resp:
        r = self.req("PUT", path, {"x-ms-type": "file", "x-ms-content-length": str(len(data)), **headers})
        assert r.status == 201, r.body
        if data:
            r = self.put_range(path, 0, data, **headers)
            assert r.status == 201, r.body
        return r

    def put_range(self, path: str, start: int, data: bytes, **headers: str) -> Resp:
        return self.req("PUT", f"{path}?comp=range", {
            "x-ms-write": "update", "x-ms-range": f"bytes={start}-{start + len(data) - 1}", **headers,
        }, data)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    store = Store(tmp_path, Clock())
    store.ensure_shares(default_config())
    ctx = SimpleNamespace(config=default_config(), clock=Clock(), store=store, files_url="",
                          copies=CopyEngine())
    state = Api(0, store)

    def authenticate(ctx: Any, request: web.Request, account: str, **_: Any) -> Caller:
        return Caller("AccountKey", None, None)

    def authorize(ctx: Any, caller: Caller, account: str, share: str | None, actions: frozenset[str]) -> None:
        state.grants.append((share, actions))

    security = files_rest.Security(authenticate=authenticate, authorize=authorize)

    @web.middleware
    async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
        """What the server's middleware does: StorageError -> the service's error reply."""
        request_id = str(uuid.uuid4())
        request[keys.REQUEST_ID] = request_id
        try:
            response: web.StreamResponse = await handler(request)
        except StorageError as err:
            body = b"" if request.method == "HEAD" else error_body(err, request_id)
            response = web.Response(status=err.status, body=body, headers={"x-ms-error-code": err.code,
                                                                            **err.headers})
        state.operations.append(request.get(keys.OPERATION, "?"))
        return response

    async def entry(request: web.Request) -> web.StreamResponse:
        return await files_rest.handle_files_request(ctx, security, request)  # type: ignore[arg-type]

    app = web.Application(middlewares=[errors], client_max_size=5 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", entry)
    loop = asyncio.new_event_loop()
    server = TestServer(app, host="127.0.0.1")
    loop.run_until_complete(server.start_server())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    state.port = server.port or 0
    yield state
    asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()
    store.close()


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - the protocol's checksum


# --- shares --------------------------------------------------------------------------------------------


def test_share_lifecycle(api: Api) -> None:
    r = api.req("PUT", f"{A}/docs?restype=share", {"x-ms-share-quota": "7", "x-ms-meta-Team": "x"})
    assert r.status == 201 and r.headers["ETag"].startswith('"0x')
    assert r.headers["Last-Modified"].endswith("GMT")
    assert r.headers["x-ms-request-id"] and r.headers["x-ms-version"] == "2025-05-05"
    assert api.req("PUT", f"{A}/docs?restype=share").code == "ShareAlreadyExists"
    r = api.req("GET", f"{A}/docs?restype=share", {"x-ms-client-request-id": "abc"})
    assert r.status == 200 and r.headers["x-ms-share-quota"] == "7" and r.headers["x-ms-meta-Team"] == "x"
    assert r.headers["x-ms-client-request-id"] == "abc"
    r = api.req("PUT", f"{A}/docs?restype=share&comp=metadata", {"x-ms-meta-a": "1"})
    assert r.status == 200
    assert api.req("GET", f"{A}/docs?restype=share").headers.get("x-ms-meta-Team") is None
    assert api.req("DELETE", f"{A}/docs?restype=share").status == 202
    r = api.req("GET", f"{A}/docs?restype=share")
    assert (r.status, r.code) == (404, "ShareNotFound")
    assert api.req("PUT", f"{A}/Bad_Name?restype=share").code == "InvalidResourceName"
    assert api.operations[:2] == ["CreateShare", "CreateShare"]


def test_list_shares_paging_and_metadata(api: Api) -> None:
    for name in ("aaa", "bbb", "ccc"):
        api.req("PUT", f"{A}/{name}?restype=share", {"x-ms-meta-n": name})
    r = api.req("GET", f"{A}/?comp=list&maxresults=2&include=metadata")
    root = r.xml()
    assert [e.text for e in root.iter("Name")] == ["aaa", "bbb"]
    marker = root.findtext("NextMarker")
    assert marker and root.find("Shares/Share/Metadata/n") is not None
    r = api.req("GET", f"{A}?comp=list&maxresults=2&marker={marker}")
    assert [e.text for e in r.xml().iter("Name")] == ["ccc", "demo"]
    r = api.req("GET", f"{A}?comp=list&prefix=b")
    assert [e.text for e in r.xml().iter("Name")] == ["bbb"]
    assert api.req("GET", f"{A}?comp=list&maxresults=0").code == "OutOfRangeQueryParameterValue"
    assert api.grants[-1] == (None, management_actions.SHARE_LIST)  # account scope


# --- directories ---------------------------------------------------------------------------------------


def test_directory_lifecycle(api: Api) -> None:
    r = api.req("PUT", f"{A}/demo/d1?restype=directory", {"x-ms-meta-k": "v",
                                                          "x-ms-file-attributes": "Hidden"})
    assert r.status == 201
    assert r.headers["x-ms-file-attributes"] == "Hidden | Directory"
    assert r.headers["x-ms-file-id"] and r.headers["x-ms-file-permission-key"]
    assert r.headers["x-ms-file-creation-time"].endswith("Z") and r.headers["x-ms-request-server-encrypted"]
    assert api.req("PUT", f"{A}/demo/d1?restype=directory").code == "ResourceAlreadyExists"
    assert api.req("PUT", f"{A}/demo/x/y?restype=directory").code == "ParentNotFound"
    r = api.req("GET", f"{A}/demo/d1?restype=directory")
    assert r.status == 200 and r.headers["x-ms-meta-k"] == "v"
    r = api.req("HEAD", f"{A}/demo/nope?restype=directory")
    assert (r.status, r.code, r.body) == (404, "ResourceNotFound", b"")
    when = "2020-01-02T03:04:05.1234567Z"
    r = api.req("PUT", f"{A}/demo/d1?restype=directory&comp=properties", {"x-ms-file-creation-time": when})
    assert r.status == 200 and r.headers["x-ms-file-creation-time"] == when
    assert api.req("PUT", f"{A}/demo/d1?restype=directory&comp=metadata", {"x-ms-meta-z": "1"}).status == 200
    api.mkfile(f"{A}/demo/d1/f")
    assert api.req("DELETE", f"{A}/demo/d1?restype=directory").code == "DirectoryNotEmpty"
    assert api.req("DELETE", f"{A}/demo/d1/f").status == 202
    assert api.req("DELETE", f"{A}/demo/d1?restype=directory").status == 202


def test_list_directories_and_files(api: Api) -> None:
    api.req("PUT", f"{A}/demo/top?restype=directory")
    for name in ("b.txt", "a.txt", "c.txt"):
        api.mkfile(f"{A}/demo/top/{name}", b"12345")
    api.req("PUT", f"{A}/demo/top/sub?restype=directory")
    base = f"{A}/demo/top?restype=directory&comp=list"
    r = api.req("GET", f"{base}&maxresults=2&include=Timestamps,ETag,Attributes,PermissionKey",
                {"x-ms-file-extended-info": "true"})
    root = r.xml()
    assert root.get("ShareName") == "demo" and root.get("DirectoryPath") == "top"
    assert root.findtext("MaxResults") == "2" and root.findtext("DirectoryId")
    files = root.findall("Entries/File")
    assert [f.findtext("Name") for f in files] == ["a.txt", "b.txt"]
    props = files[0].find("Properties")
    assert props is not None and props.findtext("Content-Length") == "5"
    assert props.findtext("CreationTime") and props.findtext("Etag") and props.findtext("Last-Modified")
    assert files[0].findtext("Attributes") == "Archive" and files[0].findtext("PermissionKey")
    assert files[0].findtext("FileId")
    marker = root.findtext("NextMarker")
    assert marker
    rest = api.req("GET", f"{base}&marker={quote(marker)}").xml()
    assert [e.findtext("Name") for e in rest.find("Entries") or []] == ["sub", "c.txt"]  # directories first
    assert rest.findtext("NextMarker") == ""
    r = api.req("GET", f"{base}&prefix=B")  # prefixes match case-insensitively, like names
    assert [e.findtext("Name") for e in r.xml().iter("File")] == ["b.txt"]
    assert api.req("GET", f"{base}&maxresults=0").status == 400
    assert api.req("GET", f"{base}&maxresults=-1").status == 400
    assert api.req("GET", f"{base}&maxresults=99999").xml().findtext("MaxResults") == "5000"
    assert api.req("GET", f"{base}&maxresults=abc").code == "InvalidQueryParameterValue"
    root_listing = api.req("GET", f"{A}/demo?restype=directory&comp=list").xml()
    assert [e.findtext("Name") for e in root_listing.iter("Directory")] == ["top"]
    handles = api.req("GET", f"{A}/demo/top?restype=directory&comp=listhandles").xml()
    assert handles.find("Entries") is not None


# --- files ---------------------------------------------------------------------------------------------


def test_create_write_read_file(api: Api) -> None:
    data = os.urandom(3000)
    r = api.req("PUT", f"{A}/demo/f.bin", {"x-ms-type": "file", "x-ms-content-length": "3000",
                                           "x-ms-content-type": "text/plain", "x-ms-meta-Color": "red",
                                           "x-ms-content-md5": _md5(data)})
    assert r.status == 201 and r.headers["x-ms-file-attributes"] == "Archive"
    r = api.put_range(f"{A}/demo/f.bin", 0, data, **{"Content-MD5": _md5(data)})
    assert r.status == 201 and r.headers["Content-MD5"] == _md5(data)
    r = api.req("HEAD", f"{A}/demo/f.bin")
    assert r.status == 200 and r.headers["Content-Length"] == "3000" and r.body == b""
    assert r.headers["x-ms-type"] == "File" and r.headers["Content-Type"] == "text/plain"
    assert r.headers["x-ms-meta-Color"] == "red" and r.headers["Content-MD5"] == _md5(data)
    r = api.req("GET", f"{A}/demo/f.bin")
    assert r.status == 200 and r.body == data
    r = api.req("GET", f"{A}/demo/f.bin", {"x-ms-range": "bytes=10-19", "x-ms-range-get-content-md5": "true"})
    assert r.status == 206 and r.body == data[10:20]
    assert r.headers["Content-Range"] == "bytes 10-19/3000" and r.headers["Content-MD5"] == _md5(data[10:20])
    r = api.req("GET", f"{A}/demo/f.bin", {"Range": "bytes=2990-"})
    assert r.status == 206 and r.body == data[2990:] and r.headers["Content-Range"] == "bytes 2990-2999/3000"
    r = api.req("GET", f"{A}/demo/f.bin", {"Range": "bytes=0-99999"})
    assert r.body == data and r.headers["Content-Range"] == "bytes 0-2999/3000"
    r = api.req("GET", f"{A}/demo/f.bin", {"x-ms-range": "bytes=3000-3001"})
    assert (r.status, r.code, r.headers["Content-Range"]) == (416, "InvalidRange", "bytes */3000")
    assert api.req("GET", f"{A}/demo/f.bin", {"x-ms-range": "bytes=x-1"}).code == "InvalidHeaderValue"
    assert api.req("GET", f"{A}/demo/f.bin", {"x-ms-range-get-content-md5": "true"}).status == 400
    api.mkfile(f"{A}/demo/empty")
    assert api.req("GET", f"{A}/demo/empty", {"Range": "bytes=0-100"}).status == 416
    assert api.req("GET", f"{A}/demo/empty").status == 200


def test_large_file_streams(api: Api) -> None:
    data = os.urandom(5 * 1024 * 1024 + 3)
    api.req("PUT", f"{A}/demo/big", {"x-ms-type": "file", "x-ms-content-length": str(len(data))})
    for start in range(0, len(data), 4 * 1024 * 1024):
        assert api.put_range(f"{A}/demo/big", start, data[start:start + 4 * 1024 * 1024]).status == 201
    r = api.req("GET", f"{A}/demo/big")
    assert r.status == 200 and r.body == data and r.headers["x-ms-request-id"]
    r = api.req("GET", f"{A}/demo/big", {"Range": "bytes=1000-2000999"})
    assert r.body == data[1000:2001000]


def test_put_range_errors(api: Api) -> None:
    api.mkfile(f"{A}/demo/f", b"x" * 100)
    path = f"{A}/demo/f?comp=range"
    r = api.put_range(f"{A}/demo/f", 0, b"abc", **{"Content-MD5": _md5(b"abd")})
    assert (r.status, r.code) == (400, "Md5Mismatch")
    assert api.put_range(f"{A}/demo/f", 0, b"abc", **{"Content-MD5": "bm90LW1kNQ=="}).code == "InvalidMd5"
    assert api.put_range(f"{A}/demo/f", 98, b"abc").code == "InvalidRange"
    r = api.req("PUT", path, {"x-ms-write": "update", "x-ms-range": "bytes=0-4194304"}, b"a")
    assert (r.status, r.code) == (413, "RequestBodyTooLarge")
    r = api.req("PUT", path, {"x-ms-write": "update", "x-ms-range": "bytes=0-9"}, b"short")
    assert (r.status, r.code) == (400, "InvalidHeaderValue")
    assert api.req("PUT", path, {"x-ms-write": "zap", "x-ms-range": "bytes=0-1"}).code == "InvalidHeaderValue"
    assert api.req("PUT", path, {"x-ms-range": "bytes=0-1"}).code == "MissingRequiredHeader"
    assert api.req("PUT", path, {"x-ms-write": "clear"}).code == "MissingRequiredHeader"
    r = api.req("PUT", path, {"x-ms-write": "clear", "x-ms-range": "bytes=10-19"})
    assert r.status == 201
    body = api.req("GET", f"{A}/demo/f").body
    assert body == b"x" * 10 + bytes(10) + b"x" * 80
    r = api.req("PUT", path, {"x-ms-write": "update", "x-ms-range": "bytes=0-0",
                              "x-ms-structured-body": "XSM/1.0; properties=crc64"}, b"a")
    assert r.status == 400
    assert api.put_range(f"{A}/demo/missing", 0, b"a").code == "ResourceNotFound"


def test_create_file_errors(api: Api) -> None:
    assert api.req("PUT", f"{A}/demo/f", {"x-ms-content-length": "1"}).code == "MissingRequiredHeader"
    assert api.req("PUT", f"{A}/demo/f", {"x-ms-type": "file"}).code == "MissingRequiredHeader"
    r = api.req("PUT", f"{A}/demo/f", {"x-ms-type": "file", "x-ms-content-length": "abc"})
    assert r.code == "InvalidHeaderValue"
    r = api.req("PUT", f"{A}/demo/f", {"x-ms-type": "file", "x-ms-content-length": "-1"})
    assert r.status == 400
    r = api.req("PUT", f"{A}/demo/f", {"x-ms-type": "file", "x-ms-content-length": "1",
                                       "x-ms-file-attributes": "Bogus"})
    assert r.code == "InvalidHeaderValue"
    r = api.req("PUT", f"{A}/demo/f", {"x-ms-type": "file", "x-ms-content-length": "1",
                                       "x-ms-file-creation-time": "2020-13-01T00:00:00Z"})
    assert r.code == "InvalidHeaderValue"
    r = api.req("PUT", f"{A}/demo/no/f", {"x-ms-type": "file", "x-ms-content-length": "1"})
    assert (r.status, r.code) == (404, "ParentNotFound")
    r = api.req("PUT", f"{A}/nosuch/f", {"x-ms-type": "file", "x-ms-content-length": "1"})
    assert (r.status, r.code) == (404, "ShareNotFound")
    r = api.req("PUT", f"{A}/demo/f", {"x-ms-type": "file", "x-ms-content-length": "2"}, b"hi")
    assert r.status == 201 and api.req("GET", f"{A}/demo/f").body == b"hi"  # create with initial data


def test_metadata_validation(api: Api) -> None:
    base = {"x-ms-type": "file", "x-ms-content-length": "0"}
    assert api.req("PUT", f"{A}/demo/f", {**base, "x-ms-meta-1bad": "v"}).code == "InvalidMetadata"
    assert api.req("PUT", f"{A}/demo/f", {**base, "x-ms-meta-": "v"}).code == "EmptyMetadataKey"
    big = {f"x-ms-meta-k{i}": "v" * 1000 for i in range(9)}
    assert api.req("PUT", f"{A}/demo/f", {**base, **big}).code == "MetadataTooLarge"
    api.mkfile(f"{A}/demo/f")
    r = api.req("PUT", f"{A}/demo/f?comp=metadata", {"x-ms-meta-New": "1"})
    assert r.status == 200
    assert api.req("HEAD", f"{A}/demo/f").headers["x-ms-meta-New"] == "1"


def test_set_file_properties(api: Api) -> None:
    api.mkfile(f"{A}/demo/f", b"abcdef", **{"x-ms-content-type": "a/b"})
    r = api.req("PUT", f"{A}/demo/f?comp=properties", {"x-ms-content-length": "3"})
    assert r.status == 200
    r = api.req("HEAD", f"{A}/demo/f")
    assert r.headers["Content-Length"] == "3" and r.headers["Content-Type"] == "a/b"  # resize keeps headers
    api.req("PUT", f"{A}/demo/f?comp=properties", {"x-ms-content-length": "5", "x-ms-cache-control": "no"})
    r = api.req("GET", f"{A}/demo/f")
    assert r.body == b"abc\0\0" and r.headers["Cache-Control"] == "no"
    assert r.headers["Content-Type"] == "application/octet-stream"  # content headers are set as a group
    r = api.req("PUT", f"{A}/demo/f?comp=properties", {"x-ms-file-attributes": "ReadOnly|Archive"})
    assert r.headers["x-ms-file-attributes"] == "ReadOnly | Archive"


def test_rename(api: Api) -> None:
    api.req("PUT", f"{A}/demo/d?restype=directory")
    api.mkfile(f"{A}/demo/d/a", b"A")
    api.mkfile(f"{A}/demo/b", b"B")
    src = f"http://127.0.0.1:{api.port}{A}/demo/d/a"
    r = api.req("PUT", f"{A}/demo/b?comp=rename", {"x-ms-file-rename-source": src})
    assert (r.status, r.code) == (409, "ResourceAlreadyExists")
    r = api.req("PUT", f"{A}/demo/b?comp=rename", {"x-ms-file-rename-source": src,
                                                   "x-ms-file-rename-replace-if-exists": "true"})
    assert r.status == 200 and api.grants[-1] == ("demo", files_rest.WRITE | files_rest.DELETE)
    assert api.req("GET", f"{A}/demo/b").body == b"A"
    assert api.req("HEAD", f"{A}/demo/d/a").status == 404
    r = api.req("PUT", f"{A}/demo/e?restype=directory&comp=rename", {"x-ms-file-rename-source": "d"})
    assert r.status == 200 and api.operations[-1] == "RenameDirectory"
    assert api.req("GET", f"{A}/demo/e?restype=directory").status == 200
    r = api.req("PUT", f"{A}/demo/e/inner?restype=directory&comp=rename", {"x-ms-file-rename-source": "e"})
    assert r.status == 400
    assert api.req("PUT", f"{A}/demo/c?comp=rename").code == "MissingRequiredHeader"
    r = api.req("PUT", f"{A}/demo/c?comp=rename", {"x-ms-file-rename-source": "nothing"})
    assert r.code == "ResourceNotFound"


def test_copy_same_account(api: Api) -> None:
    data = os.urandom(70000)
    api.mkfile(f"{A}/demo/src", data, **{"x-ms-meta-m": "1"})
    api.req("PUT", f"{A}/other?restype=share")
    src = f"https://127.0.0.1:{api.port}{A}/demo/src?sv=redacted"
    r = api.req("PUT", f"{A}/other/dst", {"x-ms-copy-source": src})
    assert r.status == 202 and r.headers["x-ms-copy-status"] == "success" and r.headers["x-ms-copy-id"]
    assert api.operations[-1] == "CopyFile"
    assert ("demo", files_rest.READ) in api.grants and ("other", files_rest.WRITE) in api.grants
    r = api.req("GET", f"{A}/other/dst")
    assert r.body == data and r.headers["x-ms-meta-m"] == "1" and r.headers["x-ms-copy-status"] == "success"
    r = api.req("PUT", f"{A}/other/dst2", {"x-ms-copy-source": f"https://127.0.0.1{A}/demo/none"})
    assert r.status == 404
    r = api.req("PUT", f"{A}/other/dst2", {"x-ms-copy-source": "https://127.0.0.1/elsewhere/demo/src"})
    assert r.status == 400


def test_leases(api: Api) -> None:
    api.mkfile(f"{A}/demo/f", b"abc")
    path = f"{A}/demo/f?comp=lease"
    r = api.req("PUT", path, {"x-ms-lease-action": "acquire", "x-ms-lease-duration": "-1"})
    assert r.status == 201 and api.operations[-1] == "AcquireFileLease"
    lease = r.headers["x-ms-lease-id"]
    assert api.put_range(f"{A}/demo/f", 0, b"z").code == "LeaseIdMissing"
    assert api.req("DELETE", f"{A}/demo/f").status == 412
    assert api.put_range(f"{A}/demo/f", 0, b"z", **{"x-ms-lease-id": lease}).status == 201
    assert api.req("HEAD", f"{A}/demo/f").headers["x-ms-lease-state"] == "leased"
    r = api.req("PUT", path, {"x-ms-lease-action": "change", "x-ms-lease-id": lease})
    assert (r.status, r.code) == (400, "MissingRequiredHeader")
    assert r.xml().findtext("HeaderName") == "x-ms-proposed-lease-id"
    new = str(uuid.uuid4())
    r = api.req("PUT", path, {"x-ms-lease-action": "change", "x-ms-lease-id": lease,
                              "x-ms-proposed-lease-id": new})
    assert r.status == 200 and r.headers["x-ms-lease-id"] == new
    assert api.req("PUT", path, {"x-ms-lease-action": "release", "x-ms-lease-id": lease}).status == 409
    assert api.req("PUT", path, {"x-ms-lease-action": "release", "x-ms-lease-id": new}).status == 200
    api.req("PUT", path, {"x-ms-lease-action": "acquire"})
    assert api.req("PUT", path, {"x-ms-lease-action": "break"}).status == 202
    assert api.req("DELETE", f"{A}/demo/f").status == 202
    r = api.req("PUT", path, {"x-ms-lease-action": "acquire", "x-ms-lease-duration": "15"})
    assert r.status == 400


def test_range_list_and_handles(api: Api) -> None:
    api.req("PUT", f"{A}/demo/f", {"x-ms-type": "file", "x-ms-content-length": str(1024 * 1024)})
    api.put_range(f"{A}/demo/f", 512 * 1024, b"q" * 512)
    r = api.req("GET", f"{A}/demo/f?comp=rangelist")
    assert r.status == 200 and r.headers["x-ms-content-length"] == str(1024 * 1024)
    starts = [int(e.text or "") for e in r.xml().iter("Start")]
    assert len(starts) == 1 and starts[0] <= 512 * 1024
    assert api.req("GET", f"{A}/demo/f?comp=listhandles").status == 200
    r = api.req("PUT", f"{A}/demo/f?comp=forceclosehandles", {"x-ms-handle-id": "*"})
    assert r.headers["x-ms-number-of-handles-closed"] == "0"
    r = api.req("PUT", f"{A}/demo/f?comp=copy&copyid=x", {"x-ms-copy-action": "abort"})
    assert r.code == "NoPendingCopyOperation"


# --- names and bad requests ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["with space", "100%", "hash#tag", "ünïcødé ✓", "中文.txt", "a+b=c;d"])
def test_names_round_trip(api: Api, name: str) -> None:
    api.mkfile(f"{A}/demo/{quote(name, safe='')}", b"1")
    listing = api.req("GET", f"{A}/demo?restype=directory&comp=list").xml()
    assert [e.findtext("Name") for e in listing.iter("File")] == [name]
    assert api.req("GET", f"{A}/demo/{quote(name, safe='')}").body == b"1"


def test_trailing_dots(api: Api) -> None:
    api.mkfile(f"{A}/demo/dots..", b"1", **{"x-ms-allow-trailing-dot": "true"})
    names = [e.findtext("Name") for e in api.req("GET", f"{A}/demo?restype=directory&comp=list").xml()
             .iter("File")]
    assert names == ["dots.."]
    api.mkfile(f"{A}/demo/trim.", b"2")  # without the header the service trims trailing dots
    assert api.req("GET", f"{A}/demo/trim").body == b"2"
    assert api.req("GET", f"{A}/demo/dots..", {"x-ms-allow-trailing-dot": "true"}).body == b"1"


def test_inner_slash_encoded_by_the_directory_client(api: Api) -> None:
    api.req("PUT", f"{A}/demo/p?restype=directory")
    assert api.req("PUT", f"{A}/demo/p%2Fq?restype=directory").status == 201
    assert api.req("GET", f"{A}/demo/p/q?restype=directory").status == 200


@pytest.mark.parametrize(("path", "status", "code"), [
    (f"{A}/demo/a/../b", 400, "InvalidResourceName"),
    (f"{A}/demo/./b", 400, "InvalidResourceName"),
    (f"{A}/demo/%ff%fe", 400, "InvalidUri"),
    (f"{A}/demo/a%3Fb", 400, "InvalidResourceName"),
    (f"{A}/demo/a%3Ab", 400, "InvalidResourceName"),
    (f"{A}/demo/a%00b", 400, "InvalidResourceName"),
    (f"{A}/demo/a//b", 400, "InvalidUri"),
    (f"{A}/demo/{'x' * 256}", 400, "InvalidResourceName"),
    ("/nosuchacct/demo/f", 400, "InvalidUri"),
    ("/", 400, "InvalidUri"),
    (f"{A}/demo/f?comp=bogus", 400, "InvalidQueryParameterValue"),
    (f"{A}/demo/f?restype=bogus", 400, "InvalidQueryParameterValue"),
    (f"{A}/demo/f?restype=directory&comp=%ff", 400, "InvalidQueryParameterValue"),
    (f"{A}/demo?restype=share&sharesnapshot=2020", 400, "InvalidQueryParameterValue"),
])
def test_bad_paths(api: Api, path: str, status: int, code: str) -> None:
    r = api.req("GET", path)
    assert (r.status, r.code) == (status, code), r.body
    if r.body:
        assert r.xml().findtext("Code") == code


def test_unsupported_verbs(api: Api) -> None:
    r = api.req("DELETE", f"{A}/demo?restype=directory&comp=list")
    assert (r.status, r.code) == (405, "UnsupportedHttpVerb")
    assert api.req("POST", f"{A}/demo/f").status in (400, 405)
    assert api.req("PATCH", f"{A}/?comp=list").status == 405


def test_operations_and_actions(api: Api) -> None:
    api.mkfile(f"{A}/demo/f", b"1")
    api.req("GET", f"{A}/demo/f")
    api.req("HEAD", f"{A}/demo/f")
    api.req("DELETE", f"{A}/demo/f")
    assert api.operations == ["CreateFile", "PutRange", "GetFile", "GetFileProperties", "DeleteFile"]
    assert [g for _, g in api.grants] == [files_rest.WRITE, files_rest.WRITE, files_rest.READ,
                                          files_rest.READ, files_rest.DELETE]


# --- the official SDK, over plain HTTP with the account-key credential ----------------------------------


def test_official_sdk_round_trip(api: Api) -> None:
    import azure.storage.fileshare as sdk
    url = f"http://127.0.0.1:{api.port}/devaccount"
    service = sdk.ShareServiceClient(url, credential={"account_name": "devaccount", "account_key": "a2V5"})
    share = service.get_share_client("demo")
    directory = share.create_directory("sdk dir")
    for size in (0, 1, 4 * 1024 * 1024 + 1):
        data = os.urandom(size)
        client = directory.get_file_client(f"file {size}")
        client.upload_file(data, metadata={"size": str(size)})
        assert client.download_file().readall() == data
        props = client.get_file_properties()
        assert props.size == size and props.metadata == {"size": str(size)}
    pages = list(directory.list_directories_and_files(results_per_page=2).by_page())
    assert [len(list(p)) for p in pages] == [2, 1]
    renamed = directory.get_file_client("file 1").rename_file("sdk dir/renamed")
    assert renamed.download_file().readall() is not None
    renamed.delete_file()
    assert [s.name for s in service.list_shares()] == ["demo"]


# --- the worker-thread rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(("worker", "size", "in_thread"), [
    (files_rest.model.Worker.NEVER, 10 * files_rest.model.INLINE_BYTES, False),
    (files_rest.model.Worker.ABOVE_INLINE_BYTES, files_rest.model.INLINE_BYTES, False),
    (files_rest.model.Worker.ABOVE_INLINE_BYTES, files_rest.model.INLINE_BYTES + 1, True),
    (files_rest.model.Worker.ALWAYS, 0, True),
])
def test_store_work_runs_where_the_operation_declares(worker: Any, size: int, in_thread: bool) -> None:
    async def handler(call: Any) -> web.StreamResponse:
        return web.Response()

    op = files_rest.model.Op("Test", frozenset(), handler, worker)
    call = files_rest.model.Call(SimpleNamespace(), SimpleNamespace(), SimpleNamespace(),  # type: ignore[arg-type]
                                 files_rest.model.Target("a", None, ()), {}, op)

    async def run() -> tuple[int, int]:
        return threading.get_ident(), await call.run(threading.get_ident, size=size)

    loop_thread, work_thread = asyncio.run(run())
    assert (work_thread != loop_thread) is in_thread


def _raw_put(api: Api, path: str, headers: list[tuple[str, bytes]]) -> Resp:
    """A Create File whose header values are sent as the given bytes, exactly."""
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
    try:
        conn.putrequest("PUT", path, skip_accept_encoding=True)
        for name, value in [("x-ms-version", b"2025-05-05"), ("x-ms-type", b"file"),
                            ("x-ms-content-length", b"0"), *headers]:
            conn.putheader(name, value)
        conn.endheaders()
        r = conn.getresponse()
        return Resp(r.status, r.headers, r.read())
    finally:
        conn.close()


def test_header_bytes_that_are_not_utf8_are_refused_and_utf8_is_accepted(api: Api) -> None:
    # The check that runs before anything reads a header: bytes that are not UTF-8 are 400, naming the
    # header (a metadata header: InvalidMetadata naming the key); UTF-8 beyond ASCII passes.
    r = _raw_put(api, f"{A}/demo/bad-bytes", [("x-ms-client-request-id", b"caf\xff")])
    assert (r.status, r.code) == (400, "InvalidHeaderValue")
    assert b"<HeaderName>x-ms-client-request-id</HeaderName>" in r.body
    r = _raw_put(api, f"{A}/demo/bad-bytes", [("x-ms-meta-owner", b"\xc3(")])
    assert (r.status, r.code) == (400, "InvalidMetadata")
    assert b"<MetadataName>owner</MetadataName>" in r.body
    assert api.req("GET", f"{A}/demo/bad-bytes").status == 404  # nothing was created
    r = _raw_put(api, f"{A}/demo/utf8", [("x-ms-client-request-id", "café-1".encode())])
    assert r.status == 201, r.body
