"""A small HTTP/1.1 client for the Files REST API: persistent TLS connections and nothing else.

Why not urllib3 + http.client for every request: measured per small-file upload (three requests), about
three quarters of the client's CPU went to them, mostly to building headers one ``putheader`` call at a time
and to parsing reply headers through the ``email`` package. Here a request is one formatted block and one
``sendall`` (with a small body in the same block), and a reply's header block is split in one pass.

What it does: ``http``/``https`` with keep-alive, Content-Length and chunked replies, replies without a
length (read to the close), bodies handed to a sink that reads them into its own buffer, a bounded pool of
idle connections per host. What it never does: follow redirects, retry (the client's retry layer decides),
proxies, compression (``Accept-Encoding: identity``). Errors become :class:`SendError`, saying whether the
request may have reached the service.
"""

from __future__ import annotations

import contextlib
import io
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from keyless import __version__

USER_AGENT = f"keyless/{__version__}"
_MAX_HEAD = 256 * 1024  # a reply's header block larger than this is refused, not buffered without end
_SMALL_BODY = 64 * 1024  # bodies up to this size go out in the same write as the request head
_BUFFER = 64 * 1024
_SAMPLES = 16


class SendError(Exception):
    """A request got no reply. ``sent`` says whether it may have reached the service."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class _Closed(Exception):
    """The peer closed the connection."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    data: bytes


class _Connection:
    """One socket and its read buffer."""

    __slots__ = ("buf", "end", "sock", "start")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray(_BUFFER)
        self.start = 0
        self.end = 0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def dropped(self) -> bool:
        """An idle connection that is readable has been closed by the server (or sent garbage)."""
        if self.start != self.end:
            return True
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _fill(self) -> None:
        if self.start == self.end:
            self.start = self.end = 0
        elif self.end == len(self.buf):
            if self.start:
                size = self.end - self.start
                self.buf[:size] = self.buf[self.start : self.end]
                self.start, self.end = 0, size
            else:
                if len(self.buf) >= _MAX_HEAD:
                    raise SendError("ProtocolError: the reply's header block is too large", sent=True)
                self.buf.extend(bytes(len(self.buf)))
        n = self.sock.recv_into(memoryview(self.buf)[self.end :])
        if not n:
            raise _Closed
        self.end += n

    def read_until(self, marker: bytes) -> bytes:
        """Bytes up to and including ``marker`` (a reply's header block or a chunk-size line)."""
        while True:
            at = self.buf.find(marker, self.start, self.end)
            if at >= 0:
                out = bytes(self.buf[self.start : at + len(marker)])
                self.start = at + len(marker)
                return out
            self._fill()

    def readinto(self, view: memoryview) -> int:
        """Up to ``len(view)`` bytes: buffered ones first, then straight from the socket into ``view``."""
        if self.start != self.end:
            n = min(len(view), self.end - self.start)
            view[:n] = self.buf[self.start : self.start + n]
            self.start += n
            return n
        n = self.sock.recv_into(view)
        if not n:
            raise _Closed
        return n

    def read_exact(self, size: int) -> bytes:
        out = bytearray(size)
        view = memoryview(out)
        got = 0
        while got < size:
            got += self.readinto(view[got:])
        return bytes(out)

    def read_to_close(self) -> bytes:
        parts = [bytes(self.buf[self.start : self.end])]
        self.start = self.end = 0
        while chunk := self.sock.recv(_BUFFER):
            parts.append(chunk)
        return b"".join(parts)


#: Reads a 2xx reply's body itself, straight into its own buffer: ``sink(headers, readinto, length)``.
Sink = Callable[[dict[str, str], Callable[[memoryview], int], int], None]
#: A request body: bytes, or chunks sent one after the other (a range between its structured-message header
#: and trailer, never copied into one buffer). Chunks are a sequence, so a retry can send them again.
Body = bytes | memoryview | Sequence[bytes | memoryview]


class Http11Pool:
    """Connections to any number of hosts, at most ``maxsize`` idle ones kept per host. Thread-safe."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        maxsize: int = 16,
        connect_timeout: float | None = 10.0,
        read_timeout: float | None = 120.0,
    ) -> None:
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.maxsize = maxsize
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._lock = threading.Lock()
        self._routes: dict[str, tuple[tuple[str, str, int], str]] = {}  # origin -> (pool key, Host)
        #: Seconds from sending a request to its reply's head, for the first exchanges (connection set-up
        #: not included): what the concurrency rule (:mod:`keyless.files.tuning`) works from.
        self.exchange_times: list[float] = []

    # --- connections -------------------------------------------------------------------------------------
    def _connect(self, scheme: str, host: str, port: int) -> _Connection:
        try:
            sock = socket.create_connection((host, port), timeout=self.connect_timeout)
        except socket.gaierror as exc:
            raise SendError(f"NameResolutionError: {host}: {exc}", sent=False) from None
        except TimeoutError:
            raise SendError(f"ConnectTimeoutError: {host}:{port}: connect timed out", sent=False) from None
        except OSError as exc:
            raise SendError(f"NewConnectionError: {host}:{port}: {exc}", sent=False) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                sock = self.ssl_context.wrap_socket(sock, server_hostname=host)
            sock.settimeout(self.read_timeout)
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            # The handshake failed: the request itself never went out.
            raise SendError(f"SSLError: {exc}", sent=False) from None
        return _Connection(sock)

    def _get(self, key: tuple[str, str, int]) -> _Connection:
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                conn = idle.pop()
                if not conn.dropped():
                    return conn
                conn.close()
        return self._connect(*key)

    def _put(self, key: tuple[str, str, int], conn: _Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.maxsize:
                idle.append(conn)
                return
        conn.close()

    def clear(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()

    # --- one exchange ------------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Body | None = None,
        sink: Sink | None = None,
    ) -> Reply:
        slash = url.find("/", url.find("://") + 3) if "://" in url else -1
        origin, target = (url, "/") if slash < 0 else (url[:slash], url[slash:])
        route = self._routes.get(origin)
        if route is None:
            route = self._routes[origin] = _route(origin)
        key, netloc = route
        head, chunks = _format(method, target, netloc, headers, body)
        conn = self._get(key)
        timing = len(self.exchange_times) < _SAMPLES
        try:
            started = time.perf_counter() if timing else 0.0
            try:
                conn.sock.sendall(head)
                for chunk in chunks:
                    conn.sock.sendall(chunk)
            except (OSError, ssl.SSLError) as exc:
                raise SendError(_describe(exc, "sending the request"), sent=True) from None
            reply, reusable = self._read_reply(conn, method, sink)
            if timing:
                self.exchange_times.append(time.perf_counter() - started)
        except BaseException:
            conn.close()
            raise
        if reusable:
            self._put(key, conn)
        else:
            conn.close()
        return reply

    def _read_reply(self, conn: _Connection, method: str, sink: Sink | None) -> tuple[Reply, bool]:
        try:
            while True:
                status, headers = _parse_head(conn.read_until(b"\r\n\r\n"))
                if not 100 <= status < 200:
                    break  # 1xx (100 Continue, 103 Early Hints) precede the real reply
            keep = headers.get("connection", "").lower() != "close"
            if method == "HEAD" or status in (204, 304):
                return Reply(status, headers, b""), keep
            te = headers.get("transfer-encoding", "").lower()
            length_text = headers.get("content-length")
            if "chunked" in te:
                data = _read_chunked(conn)
            elif length_text is not None:
                length = int(length_text)
                if length < 0:
                    raise ValueError(length_text)
                if sink is not None and 200 <= status < 300:
                    return Reply(status, headers, b""), self._sink(conn, headers, length, sink) and keep
                data = conn.read_exact(length)
            else:
                return Reply(status, headers, conn.read_to_close()), False
            if sink is not None and 200 <= status < 300:
                sink(headers, io.BytesIO(data).readinto, len(data))
                data = b""
            return Reply(status, headers, data), keep
        except _Closed:
            message = "ProtocolError: the connection closed before the reply was complete"
            raise SendError(message, sent=True) from None
        except TimeoutError:
            message = f"ReadTimeoutError: no reply within {self.read_timeout} s (read timed out)"
            raise SendError(message, sent=True) from None
        except (OSError, ssl.SSLError) as exc:
            raise SendError(_describe(exc, "reading the reply"), sent=True) from None
        except ValueError:
            raise SendError("ProtocolError: the reply is not valid HTTP/1.1", sent=True) from None

    @staticmethod
    def _sink(conn: _Connection, headers: dict[str, str], length: int, sink: Sink) -> bool:
        """Hand a body of ``length`` bytes to ``sink``; True when it read exactly that (the connection can
        then carry the next request)."""
        remaining = length
        # SSLSocket.read(n, buffer) is recv_into without its extra Python layer: a 4 MiB range arrives in
        # ~260 TLS records, one call each.
        sock = conn.sock
        tls_read = sock.read if isinstance(sock, ssl.SSLSocket) else None

        def read_into(view: memoryview) -> int:
            nonlocal remaining
            if remaining <= 0:
                return 0
            if len(view) > remaining:
                view = view[:remaining]
            if conn.start != conn.end:
                n = conn.readinto(view)  # what the header read buffered first
            else:
                n = int(tls_read(len(view), view)) if tls_read is not None else sock.recv_into(view)
                if not n:
                    raise _Closed
            remaining -= n
            return n

        sink(headers, read_into, length)
        return remaining == 0


def _route(origin: str) -> tuple[tuple[str, str, int], str]:
    """``((scheme, host, port), netloc)`` of ``scheme://netloc``."""
    split = urlsplit(origin)
    scheme = split.scheme.lower()
    if scheme not in ("http", "https") or not split.hostname:
        raise ValueError(f"not an http(s) URL: {origin!r}")
    port = split.port or (443 if scheme == "https" else 80)
    return (scheme, split.hostname, port), split.netloc


def _format(
    method: str, target: str, host: str, headers: dict[str, str], body: Body | None
) -> tuple[bytes, list[bytes | memoryview]]:
    """The request head (with the body when it is small) and what follows it."""
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"]
    lines.append("Accept-Encoding: identity\r\n")
    for name, value in headers.items():
        # Header injection guard (http.client refuses these too): a CR or LF would start a new header.
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name or ":" in name:
            raise ValueError(f"invalid character in the {name!r} header")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    head = "".join(lines).encode("latin-1")
    if body is None:
        return head, []
    chunks: list[bytes | memoryview] = [body] if isinstance(body, (bytes, memoryview)) else list(body)
    if sum(len(c) for c in chunks) <= _SMALL_BODY:
        return b"".join([head, *chunks]), []
    # A large body is written as it is, never copied; the small pieces around it join the head.
    out: list[bytes | memoryview] = []
    pending: list[bytes | memoryview] = [head]
    for chunk in chunks:
        if len(chunk) <= 1024:
            pending.append(chunk)
            continue
        if pending:
            out.append(b"".join(pending))
            pending = []
        out.append(chunk)
    if pending:
        out.append(b"".join(pending))
    return bytes(out[0]), out[1:]


_HEADER_LINE = re.compile(r"([^:\r\n]+):[ \t]*([^\r\n]*?)[ \t]*\r\n")


def _parse_head(block: bytes) -> tuple[int, dict[str, str]]:
    text = block.decode("latin-1")
    first, _, rest = text.partition("\r\n")
    version, _, status_text = first.partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(first)
    status = int(status_text[:3])
    pairs = _HEADER_LINE.findall(rest)
    headers = {name.lower(): value for name, value in pairs}
    # Every line taken by the pattern (rest ends with the empty line) and no name repeated: done.
    if len(headers) == len(pairs) == rest.count("\r\n") - 1:
        return status, headers
    return status, _parse_lines(rest)


def _parse_lines(rest: str) -> dict[str, str]:
    """The careful way, for a block with repeated headers or a line the pattern did not take."""
    headers: dict[str, str] = {}
    for line in rest.split("\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(line)
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _read_chunked(conn: _Connection) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int(conn.read_until(b"\r\n").split(b";", 1)[0].strip(), 16)
        if size == 0:
            while conn.read_until(b"\r\n") != b"\r\n":  # trailers, up to the empty line
                pass
            return b"".join(parts)
        parts.append(conn.read_exact(size))
        if conn.read_exact(2) != b"\r\n":
            raise ValueError("chunk not followed by CRLF")


def _describe(exc: BaseException, doing: str) -> str:
    # Socket and TLS messages name the error, never headers: safe to show.
    if isinstance(exc, TimeoutError):
        return f"ReadTimeoutError: {doing} timed out"
    return f"{type(exc).__name__} while {doing}: {exc}"
