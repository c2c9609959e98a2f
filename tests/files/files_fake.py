"""An in-memory stand-in for the Azure Files REST API, plugged into ShareClient as its transport.

It follows the Azure Files REST API closely enough to check the client's requests (headers, ranges, paging,
rename, errors) without a network; the real emulator is exercised by the e2e tests.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape

from keyless.emulator.errors import StorageError
from keyless.emulator.files import integrity
from keyless.files.transport import Body, Response, SendError

ACCOUNT = "acct"
SHARE = "share"
HOST = f"{ACCOUNT}.file.core.windows.net"
BASE = f"https://{HOST}/{SHARE}"


@dataclass
class Node:
    is_dir: bool
    data: bytearray = field(default_factory=bytearray)
    meta: dict[str, str] = field(default_factory=dict)
    content_type: str = ""
    etag: int = 1
    last_write: str = "2024-01-01T00:00:00.0000000Z"


class FakeTransport:
    def __init__(self, tokens: set[str] | None = None, page_size: int = 2) -> None:
        self.nodes: dict[str, Node] = {"": Node(True)}
        self.tokens = tokens if tokens is not None else {"good"}
        self.denied: set[str] = set()  # methods answered 403
        self.faults: list[Any] = []  # ints (status) or "drop" / "drop-unsent", consumed in order
        self.page_size = page_size
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()
        self.shared_key_seen = False
        self.structured = True  # False: a service that ignores x-ms-structured-body (answers plain bodies)

    # --- dispatch -----------------------------------------------------------------------------------------
    def request(self, method: str, url: str, headers: dict[str, str], body: Body | None = None) -> Response:
        if body is not None and not isinstance(body, bytes):
            body = b"".join(body) if isinstance(body, (list, tuple)) else bytes(body)
        with self.lock:
            self.requests.append((method, url, dict(headers)))
            if self.faults:
                fault = self.faults.pop(0)
                if fault == "drop":
                    raise SendError("connection dropped", sent=True)
                if fault == "drop-unsent":
                    raise SendError("connection refused", sent=False)
                return self._error(
                    int(fault),
                    "ServerBusy" if fault == 503 else "Fault",
                    {"retry-after": "0"} if fault in (429, 503) else None,
                )
            auth = headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                if auth[7:] not in self.tokens:
                    return self._error(401, "InvalidAuthenticationInfo")
                if headers.get("x-ms-file-request-intent") != "backup":
                    return self._error(
                        400,
                        "MissingRequiredHeader",
                        body_extra="<HeaderName>x-ms-file-request-intent</HeaderName>",
                    )
            elif auth.startswith("SharedKey "):
                self.shared_key_seen = True
                assert "x-ms-file-request-intent" not in headers
            else:
                return self._error(401, "NoAuthenticationInformation")
            if method in self.denied:
                return self._error(403, "AuthorizationPermissionMismatch")
            split = urlsplit(url)
            assert split.path.startswith(f"/{SHARE}"), split.path
            path = "/".join(unquote(s) for s in split.path[len(SHARE) + 2 :].split("/") if s)
            query = dict(parse_qsl(split.query))
            return self._handle(method, path, query, headers, body or b"")

    def _error(
        self, status: int, code: str, headers: dict[str, str] | None = None, body_extra: str = ""
    ) -> Response:
        body = (
            f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
            f"<Message>fake {code}\nRequestId:1\nTime:now</Message>{body_extra}</Error>"
        ).encode()
        return Response(
            status, {"x-ms-error-code": code, "x-ms-request-id": "rid-1", **(headers or {})}, body
        )

    def _parent_ok(self, path: str) -> bool:
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        node = self.nodes.get(parent)
        return node is not None and node.is_dir

    def _handle(self, method: str, path: str, q: dict[str, str], h: dict[str, str], body: bytes) -> Response:
        node = self.nodes.get(path)
        is_dir_op = q.get("restype") == "directory"
        if method == "PUT" and is_dir_op and q.get("comp") is None:
            if node is not None:
                return self._error(409, "ResourceAlreadyExists")
            if not self._parent_ok(path):
                return self._error(404, "ParentNotFound")
            self.nodes[path] = Node(True, meta=_meta(h))
            return Response(201, {}, b"")
        if method == "PUT" and h.get("x-ms-type") == "file":
            if not self._parent_ok(path):
                return self._error(404, "ParentNotFound")
            if node is not None and node.is_dir:
                return self._error(409, "ResourceAlreadyExists")
            self.nodes[path] = Node(
                False,
                bytearray(int(h["x-ms-content-length"])),
                _meta(h),
                h.get("x-ms-content-type", ""),
                last_write=h.get("x-ms-file-last-write-time", "2024-01-01T00:00:00.0000000Z"),
            )
            return Response(201, {}, b"")
        if method == "PUT" and q.get("comp") == "rename":
            src_url = urlsplit(h["x-ms-file-rename-source"])
            src = "/".join(unquote(s) for s in src_url.path[len(SHARE) + 2 :].split("/") if s)
            if src not in self.nodes:
                return self._error(404, "ResourceNotFound")
            if node is not None and h.get("x-ms-file-rename-replace-if-exists") != "true":
                return self._error(409, "ResourceAlreadyExists")
            for key in sorted(k for k in self.nodes if k == src or k.startswith(src + "/")):
                self.nodes[path + key[len(src) :]] = self.nodes.pop(key)
            return Response(200, {}, b"")
        if node is None:
            return self._error(404, "ResourceNotFound")
        if method == "PUT" and q.get("comp") == "range":
            start, end = (int(x) for x in h["x-ms-range"].split("=")[1].split("-"))
            if integrity.STRUCTURED_HEADER in h:
                assert self.structured, "a service without structured messages got one"
                try:
                    body = integrity.decode(body, int(h[integrity.STRUCTURED_LENGTH_HEADER]))
                except StorageError as exc:
                    return self._error(exc.status, exc.code)
            assert len(body) == end - start + 1 and end < len(node.data)
            md5 = h.get("Content-MD5")
            if md5 and md5 != base64.b64encode(hashlib.md5(body).digest()).decode():  # noqa: S324
                return self._error(400, "Md5Mismatch")
            node.data[start : end + 1] = body
            node.etag += 1
            return Response(201, {}, b"")
        if method == "PUT" and q.get("comp") == "metadata":
            node.meta = _meta(h)
            return Response(200, {}, b"")
        if method == "PUT" and q.get("comp") == "properties":
            size = int(h["x-ms-content-length"])
            node.data = node.data[:size] + bytearray(max(0, size - len(node.data)))
            return Response(200, {}, b"")
        if method == "DELETE":
            if node.is_dir != is_dir_op:
                return self._error(404, "ResourceNotFound")
            if node.is_dir and any(k.startswith(path + "/") for k in self.nodes):
                return self._error(409, "DirectoryNotEmpty")
            del self.nodes[path]
            return Response(202, {}, b"")
        if method == "HEAD" and not is_dir_op:
            if node.is_dir:
                return Response(404, {"x-ms-error-code": "ResourceNotFound"}, b"")
            return Response(200, self._file_headers(node, len(node.data)), b"")
        if method == "GET" and is_dir_op and q.get("comp") == "list":
            return self._list(path, q)
        if method == "GET" and is_dir_op:
            if not node.is_dir:
                return self._error(404, "ResourceNotFound")
            return Response(
                200, {"etag": f'"{node.etag}"', **{f"x-ms-meta-{k}": v for k, v in node.meta.items()}}, b""
            )
        if method == "GET":
            start, end = (int(x) for x in h["x-ms-range"].split("=")[1].split("-"))
            if start >= len(node.data) and node.data:
                return self._error(416, "InvalidRange")
            data = bytes(node.data[start : end + 1])
            headers = self._file_headers(node, len(data))
            if h.get("x-ms-range-get-content-md5") == "true":
                headers["content-md5"] = base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324
            if self.structured and integrity.STRUCTURED_HEADER in h:
                headers[integrity.STRUCTURED_HEADER] = integrity.STRUCTURED_V1_CRC64
                headers[integrity.STRUCTURED_LENGTH_HEADER] = str(len(data))
                data = b"".join(integrity.encode(len(data), lambda o, n: data[o : o + n]))
            return Response(206, headers, data)
        raise AssertionError(f"unhandled {method} {path} {q}")

    def _file_headers(self, node: Node, length: int) -> dict[str, str]:
        return {
            "content-length": str(length),
            "etag": f'"{node.etag}"',
            "content-type": node.content_type,
            "x-ms-file-last-write-time": node.last_write,
            **{f"x-ms-meta-{k}": v for k, v in node.meta.items()},
        }

    def _list(self, path: str, q: dict[str, str]) -> Response:
        prefix = path + "/" if path else ""
        children = sorted(k for k in self.nodes if k and k.startswith(prefix) and "/" not in k[len(prefix) :])
        start = int(q.get("marker") or 0)
        page = children[start : start + self.page_size]
        nxt = str(start + self.page_size) if start + self.page_size < len(children) else ""
        parts = []
        for key in page:
            node = self.nodes[key]
            name = key[len(prefix) :]
            if node.is_dir:
                parts.append(f"<Directory><Name>{escape(name)}</Name><Properties/></Directory>")
            else:
                parts.append(
                    f"<File><Name>{escape(name)}</Name><Properties><Content-Length>{len(node.data)}"
                    f"</Content-Length><LastWriteTime>{node.last_write}</LastWriteTime>"
                    f"</Properties></File>"
                )
        body = (
            f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Entries>{"".join(parts)}</Entries>'
            f"<NextMarker>{nxt}</NextMarker></EnumerationResults>"
        ).encode()
        return Response(200, {}, body)


def _meta(h: dict[str, str]) -> dict[str, str]:
    return {k[10:]: v for k, v in h.items() if k.lower().startswith("x-ms-meta-")}


class StaticCredential:
    """An azure-core-shaped credential that caches like real ones: ``get_token`` returns the current token
    until ``invalidate()`` moves on to the next one of ``tokens`` (the last one repeats)."""

    def __init__(self, *tokens: str, expires_in: float = 3600, invalidate: bool = True) -> None:
        import time

        self.tokens = list(tokens)
        self.calls = 0
        self.invalidations = 0
        self._expires = time.time() + expires_in
        if not invalidate:
            self.invalidate = None  # type: ignore[assignment]

    def get_token(self, *scopes: str, **kw: Any) -> Any:
        from collections import namedtuple

        self.calls += 1
        token = self.tokens[min(self.invalidations, len(self.tokens) - 1)]
        return namedtuple("AccessToken", "token expires_on")(token, int(self._expires))

    def invalidate(self) -> None:
        self.invalidations += 1
