# size: one HTTP/1.1 client, read as one: the request head, the reply framing and its RFC 9112 refusals, the
# connection buffer and the pool each rely on the others' invariants (what is buffered, what is reusable).
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

What it refuses, as a hostile server or a careless network would test it: a reply it cannot frame exactly
(conflicting or non-digit lengths, Content-Length with Transfer-Encoding, header lines that are not
``token: value``, bare CR/LF), a body cut short, an unverified TLS context or one allowing less than
TLS 1.2, and unbounded waits (each read is bounded, the reply head as a whole too). Errors never repeat a
URL's query or a header value: they may hold a SAS or a token.
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
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

from keyless import __version__

USER_AGENT = f"keyless/{__version__}"
_MAX_HEAD = 256 * 1024  # a reply's header block larger than this is refused, not buffered without end
_SMALL_BODY = 64 * 1024  # bodies up to this size go out in the same write as the request head
_BUFFER = 64 * 1024
_SAMPLES = 16
_HAS_POLL = hasattr(select, "poll")
#: A body read whole is allocated at most this much ahead of the bytes that arrived (a 4 MiB range with its
#: structured-message overhead fits in one allocation): an announced length alone never costs memory.
_PREALLOCATE = 8 * 1024 * 1024
_MAX_LENGTH_DIGITS = 18  # a Content-Length past 10**18 bytes is nonsense, not a number to allocate


class SendError(Exception):
    """A request got no reply. ``sent`` says whether it may have reached the service."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent

    def __reduce__(self) -> tuple[Callable[[str, bool], SendError], tuple[str, bool]]:
        # Exception pickling calls the class with ``args`` alone, which lacks the keyword-only ``sent``.
        return _send_error, (str(self), self.sent)


def _send_error(message: str, sent: bool) -> SendError:
    return SendError(message, sent=sent)


class _Closed(Exception):
    """The peer closed the connection."""


@dataclass(slots=True)
class Reply:
    """A fully read reply. Bodies are at most one range (4 MiB) or one listing page, so reading them whole
    keeps memory bounded by concurrency x 4 MiB. The client's ``Response`` is this class: one object per
    reply, never copied into another."""

    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    data: bytes = field(repr=False)

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


class _Connection:
    """One socket and its read buffer."""

    __slots__ = ("buf", "end", "generation", "poller", "sock", "start", "tls")

    def __init__(self, sock: socket.socket, generation: int) -> None:
        self.sock = sock
        self.buf = bytearray(_BUFFER)
        self.start = 0
        self.end = 0
        self.generation = generation  # the pool's generation when opened: an older one is closed on return
        self.tls = isinstance(sock, ssl.SSLSocket)
        # poll where there is one: select refuses descriptors past FD_SETSIZE (1024) in a busy process
        # (Windows has no poll, and no such limit on select). One poller per connection, not per request.
        self.poller: select.poll | None = None
        if _HAS_POLL:
            self.poller = select.poll()
            self.poller.register(sock, select.POLLIN)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def dropped(self) -> bool:
        """An idle connection that is readable has been closed by the server (or sent garbage)."""
        if self.start != self.end:
            return True
        # Bytes the TLS layer decrypted but nobody read (the rest of a record that held a body's end) are
        # invisible to poll: without this check they would pass for the next request's reply.
        if self.tls and self.sock.pending():  # type: ignore[attr-defined]
            return True
        try:
            if self.poller is not None:
                return bool(self.poller.poll(0))
            readable, _, _ = select.select([self.sock], [], [], 0)
            return bool(readable)
        except (OSError, ValueError):
            return True

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

    def read_until(self, marker: bytes, deadline: float | None = None, timeout: float | None = None) -> bytes:
        """Bytes up to and including ``marker`` (a reply's header block or a chunk-size line). With
        ``deadline`` (``time.monotonic()``), reads after the first wait only until then: a server that
        trickles a byte at a time must not stretch one read timeout into one per byte. The socket's
        ``timeout`` is put back after a shortened wait."""
        waits = 0
        try:
            while True:
                at = self.buf.find(marker, self.start, self.end)
                if at >= 0:
                    out = bytes(self.buf[self.start : at + len(marker)])
                    self.start = at + len(marker)
                    return out
                if deadline is not None and waits:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    self.sock.settimeout(left)
                waits += 1
                self._fill()
        finally:
            if waits > 1 and deadline is not None:
                self.sock.settimeout(timeout)

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
        out = bytearray(min(size, _PREALLOCATE))
        got = 0
        while got < size:
            if got == len(out):  # grows only as bytes arrive (no view of ``out`` is held here)
                out.extend(bytes(min(size - got, len(out))))
            got += self.readinto(memoryview(out)[got:])
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
        self.ssl_context = _verified(ssl_context or ssl.create_default_context())
        self.maxsize = maxsize
        self.connect_timeout = _finite("connect_timeout", connect_timeout)
        self.read_timeout = _finite("read_timeout", read_timeout)
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._lock = threading.Lock()
        self._generation = 0  # bumped by clear(): connections in flight then are closed when handed back
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
                # A TCP close without TLS's close_notify raises (SSLEOFError) instead of looking like the
                # end of the data: the one way to tell a body read to the close from one cut short.
                sock = self.ssl_context.wrap_socket(sock, server_hostname=host, suppress_ragged_eofs=False)
            sock.settimeout(self.read_timeout)
        except TimeoutError:
            sock.close()
            message = f"ConnectTimeoutError: {host}:{port}: TLS handshake timed out"
            raise SendError(message, sent=False) from None
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            # The handshake failed: the request itself never went out.
            hint = ""
            if isinstance(exc, ssl.SSLCertVerificationError):
                hint = " (check the host name; a private CA such as the emulator's is trusted with ca_cert=)"
            raise SendError(f"SSLError: {host}:{port}: {exc}{hint}", sent=False) from None
        return _Connection(sock, self._generation)

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
            if len(idle) < self.maxsize and conn.generation == self._generation:
                idle.append(conn)
                return
        conn.close()

    def clear(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
            self._generation += 1
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
        origin, target = _split(url)
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
                failed = SendError(_describe(exc, "sending the request"), sent=True)
                if isinstance(exc, TimeoutError):
                    raise failed from None
                reply = self._early_reply(conn, method)
                if reply is None:
                    raise failed from None
                conn.close()
                return reply
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
            # The whole head, 1xx replies included, within one read timeout (urllib3 bounds each read).
            deadline = time.monotonic() + self.read_timeout
            while True:
                head = conn.read_until(b"\r\n\r\n", deadline, self.read_timeout)
                status, headers, http10 = _parse_head(head)
                if not 100 <= status < 200:
                    break  # 1xx (100 Continue, 103 Early Hints) precede the real reply
                if time.monotonic() > deadline:
                    raise TimeoutError  # 1xx after 1xx, each in time: the final reply never comes
            keep = _keep_alive(headers.get("connection", ""), http10)
            if method == "HEAD" or status in (204, 304):
                return Reply(status, headers, b""), keep
            te = headers.get("transfer-encoding")
            length_text = headers.get("content-length")
            if te is not None:
                # RFC 9112 section 6.1/6.3: only "chunked" is asked for (Accept-Encoding: identity); with a
                # Content-Length as well, or in an HTTP/1.0 reply, the framing is ambiguous: a smuggling
                # attempt, refused rather than guessed.
                if te.strip().lower() != "chunked" or length_text is not None or http10:
                    raise ValueError("transfer-encoding")
                data = _read_chunked(conn)
            elif length_text is not None:
                length = _content_length(length_text)
                if sink is not None and 200 <= status < 300:
                    return Reply(status, headers, b""), self._sink(conn, headers, length, sink) and keep
                data = conn.read_exact(length)
            else:
                # No length: the body ends at the close. It still goes to the sink below: a caller whose
                # sink was never called would take a body nobody read or checked for a complete one.
                data = conn.read_to_close()
                keep = False
            if sink is not None and 200 <= status < 300:
                sink(headers, io.BytesIO(data).readinto, len(data))
                data = b""
            return Reply(status, headers, data), keep
        except (_Closed, ssl.SSLEOFError):
            message = "ProtocolError: the connection closed before the reply was complete"
            raise SendError(message, sent=True) from None
        except TimeoutError:
            message = f"ReadTimeoutError: no reply within {self.read_timeout} s (read timed out)"
            raise SendError(message, sent=True) from None
        except (OSError, ssl.SSLError) as exc:
            raise SendError(_describe(exc, "reading the reply"), sent=True) from None
        except ValueError:
            raise SendError("ProtocolError: the reply is not valid HTTP/1.1", sent=True) from None

    def _early_reply(self, conn: _Connection, method: str) -> Reply | None:
        """The error reply a server sent before it stopped reading the request (413, or 403 for a token it
        refuses, then a close that breaks the upload), as urllib3 reads it after a broken pipe. Only an
        error counts: a success for a body that never went out whole must not pass for a finished write."""
        try:
            reply, _ = self._read_reply(conn, method, None)
        except SendError:
            return None
        return reply if reply.status >= 400 else None

    @staticmethod
    def _sink(conn: _Connection, headers: dict[str, str], length: int, sink: Sink) -> bool:
        """Hand a body of ``length`` bytes to ``sink``; True when it read exactly that (the connection can
        then carry the next request)."""
        remaining = length
        # SSLSocket.read(n, buffer) is recv_into without its extra Python layer. OpenSSL hands out at most
        # one TLS record (16 KiB) per read, so a 4 MiB range takes 256 reads: they run in this one loop,
        # which fills the caller's view whole (never past the body), not one caller's call per record.
        sock = conn.sock
        # With a buffer, read returns the number of bytes (typeshed's ``bytes | int`` covers both forms).
        read = cast(Callable[[int, memoryview], int], sock.read) if isinstance(sock, ssl.SSLSocket) else None

        def read_into(view: memoryview) -> int:
            nonlocal remaining
            want = min(len(view), remaining)
            if want <= 0:
                return 0
            got = conn.readinto(view[:want]) if conn.start != conn.end else 0  # what the head read buffered
            while got < want:
                n = read(want - got, view[got:want]) if read is not None else sock.recv_into(view[got:want])
                if not n:
                    raise _Closed
                got += n
            remaining -= got
            return got

        sink(headers, read_into, length)
        return remaining == 0


def _route(origin: str) -> tuple[tuple[str, str, int], str]:
    """``((scheme, host, port), netloc)`` of ``scheme://netloc``."""
    split = urlsplit(origin)
    scheme = split.scheme.lower()
    # The message names the scheme and host only: the rest of a URL may hold a SAS or a password.
    if scheme not in ("http", "https") or not split.hostname:
        raise ValueError(f"not an http(s) URL (scheme {scheme!r}, host {split.hostname!r})")
    if "@" in split.netloc:
        host = split.hostname
        raise ValueError(f"credentials in the URL of {host!r} are not supported: use a token or a SAS")
    port = split.port or (443 if scheme == "https" else 80)
    return (scheme, split.hostname, port), split.netloc


def _format(
    method: str, target: str, host: str, headers: dict[str, str], body: Body | None
) -> tuple[bytes, list[bytes | memoryview]]:
    """The request head (with the body when it is small) and what follows it."""
    # A space or control character would end the request line early (request splitting, as http.client
    # refuses too); the message never repeats the target, whose query may be a SAS.
    if _UNSAFE_TARGET.search(target) or _UNSAFE_TARGET.search(method):
        raise ValueError("invalid character in the request target: percent-encode the path and query")
    chunks: list[bytes | memoryview]
    if body is None:
        chunks, size = [], 0
    elif isinstance(body, bytes):
        chunks, size = [body], len(body)
    elif isinstance(body, memoryview):
        chunks, size = [body], body.nbytes
    else:
        chunks = list(body)
        size = sum(c.nbytes if isinstance(c, memoryview) else len(c) for c in chunks)
    # The two spellings callers use (a third would go out twice, and the service refuse the request).
    declared = headers.get("Content-Length", headers.get("content-length"))
    if declared is None and body is not None:
        length = f"Content-Length: {size}\r\n"
    elif declared is not None and declared.strip() != str(size):
        # The body's framing is its own length: a Content-Length that disagrees would leave the server
        # reading the next request as the rest of this body (or this body's tail as the next request).
        raise ValueError(f"Content-Length {declared} does not match the body's {size} bytes")
    else:
        length = ""
    fields = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    text = (
        f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
        f"Accept-Encoding: identity\r\n{fields}{length}\r\n"
    )
    # Header injection guard (http.client refuses these too): a CR or LF would start a new header, a colon
    # in a name would move the name's end. Checked on the whole head at once: exactly one CRLF per line.
    lines = len(headers) + (6 if length else 5)
    if text.count("\n") != lines or text.count("\r") != lines or ":" in "".join(headers):
        for name, value in headers.items():
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name or ":" in name:
                raise ValueError(f"invalid character in the {name!r} header")
        raise ValueError("invalid character in the Host header")
    if not text.isascii():
        # Not raised from the encoder's error: that one holds the whole head, Authorization included.
        try:
            head = text.encode("latin-1")
        except UnicodeEncodeError:
            head = b""
        if not head:
            bad = next((n for n, v in headers.items() if not _latin1(n + v)), "Host")
            raise ValueError(f"the {bad!r} header holds a character outside Latin-1: encode it first")
    else:
        head = text.encode("ascii")
    if body is None:
        return head, []
    if size <= _SMALL_BODY:
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


_UNSAFE_TARGET = re.compile(r"[^\x21-\x7e]")  # what a request line's method and target never hold


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


_TOKEN = "[-!#$%&'*+.^_`|~0-9A-Za-z]+"  # noqa: S105 - RFC 9110 section 5.6.2: a field name, no secret
_NAME = re.compile(_TOKEN)
_STATUS_LINE = re.compile(r"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: [^\r\n]*)?")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
#: Header names already checked to be tokens, each with its lower-case form. A service sends the same few
#: dozen names in every reply: one dict look-up then stands for the check and ``lower()``. Bounded, so
#: that a server inventing names costs the check each time, never memory.
_CHECKED_NAMES: dict[str, str] = {}
_MAX_CHECKED_NAMES = 512


def _parse_head(block: bytes) -> tuple[int, dict[str, str], bool]:
    """``(status, headers, is HTTP/1.0)`` of a header block ending with an empty line. A line that is not
    ``token: value`` is refused: a line folded onto the previous one (obs-fold), blanks before the colon
    (RFC 9112 section 5.1 and 5.2) or a name that is not a token."""
    # A bare CR or LF ends a line for some parsers and not for others (a header hidden from one of them is
    # how responses are split), and NUL is never valid (RFC 9110 section 5.5): refused outright.
    lf = block.count(b"\n")
    if lf != block.count(b"\r\n") or lf != block.count(b"\r") or b"\x00" in block:
        raise ValueError("bare CR, LF or NUL in the header block")
    text = block.decode("latin-1")
    first, _, rest = text.partition("\r\n")
    status_line = _STATUS_LINE.fullmatch(first)
    if status_line is None:
        raise ValueError("status line")
    status = int(status_line.group(2))
    http10 = status_line.group(1) == "0"
    headers: dict[str, str] = {}
    if rest == "\r\n":
        return status, headers, http10
    if not rest.endswith("\r\n\r\n"):
        raise ValueError("header block end")
    checked = _CHECKED_NAMES
    for line in rest[:-4].split("\r\n"):
        name, sep, value = line.partition(":")
        lower = checked.get(name)
        if lower is None or not sep:
            if not sep or not _NAME.fullmatch(name):
                raise ValueError("header line")
            lower = name.lower()
            if len(checked) < _MAX_CHECKED_NAMES:
                checked[name] = lower
        value = value.strip(" \t")
        headers[lower] = f"{headers[lower]}, {value}" if lower in headers else value
    return status, headers, http10


def _content_length(text: str) -> int:
    """A Content-Length: ASCII digits only (``int`` would take ``+5``, ``5_0`` or ``0x5`` in other
    spellings). Repeated identical values count as one (RFC 9110 section 8.6); differing ones are
    refused: two framings of one reply are a smuggling attempt."""
    if text.isdigit() and text.isascii() and len(text) <= _MAX_LENGTH_DIGITS:
        return int(text)  # one plain value: every reply has one
    values = {value.strip(" \t") for value in text.split(",")}
    if len(values) != 1:
        raise ValueError("conflicting content-length")
    (value,) = values
    if not (value.isascii() and value.isdigit()) or len(value) > _MAX_LENGTH_DIGITS:
        raise ValueError("content-length")
    return int(value)


def _keep_alive(connection: str, http10: bool) -> bool:
    """Whether the connection may carry another request: ``Connection`` is a list of tokens (RFC 9110
    section 7.6.1); HTTP/1.0 closes unless it says keep-alive."""
    if not connection:
        return not http10
    tokens = {token.strip(" \t").lower() for token in connection.split(",")}
    return "close" not in tokens and (not http10 or "keep-alive" in tokens)


def _split(url: str) -> tuple[str, str]:
    """``(scheme://netloc, request target)``: the target starts at the first ``/``, ``?`` or ``#`` after
    the authority (``https://host?comp=list`` asks for ``/?comp=list``); a fragment is never sent."""
    begin = url.find("://")
    begin = begin + 3 if begin >= 0 else 0
    end = len(url)
    for sep in "/?#":
        at = url.find(sep, begin, end)
        if at >= 0:
            end = at
    target = url[end:].partition("#")[0]
    if not target.startswith("/"):
        target = "/" + target
    return url[:end], target


def _read_chunked(conn: _Connection) -> bytes:
    parts: list[bytes] = []
    while True:
        # chunk-size [BWS ; extensions] CRLF; the size in hex digits only (int(..., 16) takes "0x", "+", "_").
        size_text = conn.read_until(b"\r\n")[:-2].split(b";", 1)[0].rstrip(b" \t")
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise ValueError("chunk size")
        size = int(size_text, 16)
        if size == 0:
            # Trailers, up to the empty line: discarded, but no more of them than a header block may hold.
            seen = 0
            while (line := conn.read_until(b"\r\n")) != b"\r\n":
                seen += len(line)
                if seen > _MAX_HEAD:
                    raise ValueError("trailers")
            return b"".join(parts)
        parts.append(conn.read_exact(size))
        if conn.read_exact(2) != b"\r\n":
            raise ValueError("chunk not followed by CRLF")


def _verified(context: ssl.SSLContext) -> ssl.SSLContext:
    """``context``, once it is known to check the certificate and the host name and to refuse protocols
    older than TLS 1.2: a client with a credential must never talk to an unverified server."""
    if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
        raise ValueError("the TLS context must verify the certificate and the host name")
    if context.minimum_version < ssl.TLSVersion.TLSv1_2:
        raise ValueError("the TLS context must refuse protocols older than TLS 1.2")
    return context


def _finite(name: str, seconds: float | None) -> float:
    """A timeout: finite and positive, so that no blocking call waits without end."""
    if seconds is None or not 0 < seconds < float("inf"):
        raise ValueError(f"{name}: the timeout must be a finite number of seconds above 0, not {seconds!r}")
    return float(seconds)


def _describe(exc: BaseException, doing: str) -> str:
    # Socket and TLS messages name the error, never headers: safe to show.
    if isinstance(exc, TimeoutError):
        return f"ReadTimeoutError: {doing} timed out"
    return f"{type(exc).__name__} while {doing}: {exc}"
