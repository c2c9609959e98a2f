"""The floor under a Python client's CPU per GiB: the least a Python process must do to move a file over TLS.

Upload floor: read the file in 4 MiB ranges (``os.preadv`` into one reused buffer) and ``sendall`` each
range on a TLS socket. Download floor: read a TLS stream into a 4 MiB buffer (``SSLSocket.read(n, buffer)``,
one call per TLS record: OpenSSL's ``SSL_read`` returns at most one record's plaintext) and ``pwrite`` each
range into a file. Each also with Azure's CRC64 of every range (``awscrt``), which is what checked transfers
add; and, for comparison, the variants that cost more (a new ``bytes`` per range read, no preallocation of
the downloaded file). The server end runs in another process (the same TLS set-up as the emulator:
``ssl.create_default_context(Purpose.CLIENT_AUTH)`` with an EC P-256 certificate from
``keyless.emulator.ca``), so the numbers are the client process's own CPU (``getrusage(RUSAGE_SELF)``).

No HTTP, no structured message framing, no threads: what is left above these numbers in a real client is
its own work. One case writes with ``O_DIRECT`` (no copy into the page cache, and no fresh page-cache pages
to fault in: what bypassing the cache would save, at the price of the file not being cached afterwards).
Source data is random (and read once before timing, so it is in the page cache, as for the
client benchmark's uploads); each download goes to a new file, deleted afterwards.

    .venv/bin/python bench/bench_tls_floor.py [--size-mib 256] [--runs 5] [--client]

``--client`` adds keyless itself, in this process: ``transfer.upload_file`` and ``transfer.download_file``
of the same file against an emulator process (default concurrency, every range's CRC64 checked), so the
distance from the floor is measured in the same run, on the same machine state.

Prints a table (CPU seconds per GiB, best and median of the runs, and the TLS version and cipher the
server chose) and writes ``bench/results/tls_floor.json``.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "tls_floor.json"
MIB = 1024 * 1024
GIB = 1024 * MIB
RANGE = 4 * MIB
_COMMAND = struct.Struct("<cQ")  # b"U"/b"D", length


# --- the server end (a child process) --------------------------------------------------------------------


def serve(tls_dir: str) -> None:
    """Accept connections; per command, drain ``length`` bytes then answer one byte (upload), or send
    ``length`` bytes of random data (download)."""
    from keyless.emulator.ca import ensure_tls

    files = ensure_tls(Path(tls_dir), ["localhost"])
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)  # as keyless.emulator.server.tls_context
    ctx.load_cert_chain(files.server_cert, files.server_key)
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    payload = memoryview(os.urandom(RANGE))
    while True:
        raw, _ = listener.accept()
        threading.Thread(target=_serve_one, args=(ctx.wrap_socket(raw, server_side=True), payload)).start()


def _serve_one(conn: ssl.SSLSocket, payload: memoryview) -> None:
    buf = memoryview(bytearray(RANGE))
    with conn:
        head = bytearray(_COMMAND.size)
        while True:
            got = 0
            while got < len(head):
                n = conn.recv_into(memoryview(head)[got:])
                if not n:
                    return
                got += n
            command, length = _COMMAND.unpack(head)
            if command == b"U":
                while length:
                    length -= conn.recv_into(buf[: min(length, RANGE)])
                conn.sendall(b"k")
            elif command == b"D":
                while length:
                    n = min(length, RANGE)
                    conn.sendall(payload[:n])
                    length -= n
            else:
                return


# --- the client end (this process, measured) -------------------------------------------------------------


def _crc64() -> Callable[[Any, int], int]:
    from awscrt.checksums import crc64nvme

    return crc64nvme  # type: ignore[no-any-return]


def upload_preadv(sock: ssl.SSLSocket, source: int, size: int, crc: bool) -> None:
    crc64 = _crc64() if crc else None
    buf = bytearray(RANGE)
    view = memoryview(buf)
    sock.sendall(_COMMAND.pack(b"U", size))
    for offset in range(0, size, RANGE):
        n = os.preadv(source, [view[: min(RANGE, size - offset)]], offset)
        if crc64 is not None:
            crc64(view[:n], 0)
        sock.sendall(view[:n])
    if sock.recv(1) != b"k":
        raise RuntimeError("the server did not acknowledge the upload")


def upload_pread_bytes(sock: ssl.SSLSocket, source: int, size: int, crc: bool) -> None:
    """As keyless did before: a new ``bytes`` per range (``os.pread``)."""
    crc64 = _crc64() if crc else None
    sock.sendall(_COMMAND.pack(b"U", size))
    for offset in range(0, size, RANGE):
        data = os.pread(source, min(RANGE, size - offset), offset)
        if crc64 is not None:
            crc64(data, 0)
        sock.sendall(data)
    if sock.recv(1) != b"k":
        raise RuntimeError("the server did not acknowledge the upload")


def download(
    sock: ssl.SSLSocket | BioConnection,
    target: Path | None,
    size: int,
    crc: bool,
    fallocate: bool,
    direct: bool = False,
) -> int:
    """Returns the number of read calls (TLS records, in effect). ``direct``: write with ``O_DIRECT``
    (around the page cache, from a page-aligned buffer; ``size`` a multiple of the page size)."""
    crc64 = _crc64() if crc else None
    fd = -1
    if target is not None:
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | (getattr(os, "O_DIRECT", 0) if direct else 0)
        fd = os.open(target, flags, 0o600)
        if fallocate:
            os.posix_fallocate(fd, 0, size)
        else:
            os.ftruncate(fd, size)
    buf = memoryview(mmap.mmap(-1, RANGE))  # page-aligned, as O_DIRECT needs
    read = cast(Callable[[int, memoryview], int], sock.read)  # with a buffer: the number of bytes read
    calls = 0
    try:
        sock.sendall(_COMMAND.pack(b"D", size))
        for offset in range(0, size, RANGE):
            want = min(RANGE, size - offset)
            got = 0
            while got < want:
                n = read(want - got, buf[got:want])
                if not n:
                    raise RuntimeError("the server closed early")
                got += n
                calls += 1
            if crc64 is not None:
                crc64(buf[:want], 0)
            if fd >= 0:
                view = buf[:want]
                at = offset
                while view:
                    n = os.pwrite(fd, view, at)
                    view, at = view[n:], at + n
    finally:
        if fd >= 0:
            os.close(fd)
    return calls


def client_cases(work: Path, source: Path) -> tuple[dict[str, Callable[[], object]], Callable[[], None]]:
    """keyless's own upload and download of ``source``, against an emulator started here."""
    from keyless.files import transfer
    from keyless.files.client import ShareClient
    from keyless.files.transport import Transport
    from keyless.files.urls import share_url
    from keyless.identity import ManagedIdentityCredential
    from keyless.testing import start_emulator

    emu = start_emulator(work, name="emulator")
    client = ShareClient(
        share_url("devaccount", "demo", emulator_url=emu.files_url),
        ManagedIdentityCredential(source="imds", imds_host=emu.imds_url),
        transport=Transport(ca_cert=emu.ca_cert),
        emulator_url=emu.files_url,
    )
    counter = iter(range(1 << 30))

    def down() -> None:
        target = work / f"keyless-down-{next(counter)}.bin"
        try:
            transfer.download_file(client, "floor.bin", target)
        finally:
            target.unlink(missing_ok=True)

    def stop() -> None:
        client.close()
        emu.stop()

    cases: dict[str, Callable[[], object]] = {
        "keyless: upload_file (CRC64 structured messages)": lambda: transfer.upload_file(
            client, source, "floor.bin"
        ),
        "keyless: download_file (CRC64 structured messages)": down,
    }
    return cases, stop


def _nothing() -> None:
    pass


class BioConnection:
    """TLS over a memory BIO: this process reads the socket itself, 256 KiB per ``recv_into``, and OpenSSL
    decrypts from memory. ``SSLSocket`` lets OpenSSL read the socket, and without read-ahead (which
    Python's ``ssl`` cannot switch on) OpenSSL reads each record with two ``read`` calls, header then body:
    512 system calls per 4 MiB. This measures what reading in bulk would save, at the price of one copy."""

    def __init__(self, ctx: ssl.SSLContext, port: int) -> None:
        self.raw = socket.create_connection(("127.0.0.1", port))
        self.raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.chunk = memoryview(bytearray(256 * 1024))
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
        self._flush()

    def _flush(self) -> None:
        if self.outgoing.pending:
            self.raw.sendall(self.outgoing.read())

    def _fill(self) -> None:
        n = self.raw.recv_into(self.chunk)
        if not n:
            raise RuntimeError("the server closed early")
        self.incoming.write(self.chunk[:n])

    def sendall(self, data: bytes) -> None:
        self.tls.write(data)
        self._flush()

    def read(self, size: int, buffer: memoryview) -> int:
        while True:
            try:
                return cast(int, self.tls.read(size, buffer))
            except ssl.SSLWantReadError:
                self._fill()

    def close(self) -> None:
        self.raw.close()


def _cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(run: Callable[[], object], size: int, runs: int) -> dict[str, float]:
    run()  # warm-up: imports, page cache of the source, the connection's first records
    per_gib: list[float] = []
    for _ in range(runs):
        before = _cpu()
        run()
        per_gib.append((_cpu() - before) * GIB / size)
    return {"best": min(per_gib), "median": statistics.median(per_gib)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--client", action="store_true", help="also measure keyless's own transfers")
    parser.add_argument("--only", default="", help="run only the cases whose name holds this text")
    parser.add_argument("--serve", metavar="TLS_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="tls-floor-") as tmp:
        work = Path(tmp)
        from keyless.emulator.ca import ensure_tls

        files = ensure_tls(work / "tls", ["localhost"])
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(work / "tls")], stdout=subprocess.PIPE, text=True
        )
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            ctx = ssl.create_default_context(cafile=str(files.ca_cert))  # as keyless.files.http11's default
            host = "localhost"
            sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname=host)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # As keyless's connections: a read timeout makes the socket non-blocking underneath, so a read
            # that finds no data yet costs a failed recv and a poll before the real one.
            timed = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname=host)
            timed.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            timed.settimeout(120.0)
            source = work / "source.bin"
            with source.open("wb") as out:
                for _ in range(0, size, RANGE):
                    out.write(os.urandom(RANGE))
            src_fd = os.open(source, os.O_RDONLY)
            counter = iter(range(1 << 30))

            def fresh() -> Path:
                return work / f"down-{next(counter)}.bin"

            bio = BioConnection(ctx, port)

            def down(
                crc: bool,
                fallocate: bool,
                write: bool = True,
                conn: ssl.SSLSocket | BioConnection = sock,
                direct: bool = False,
            ) -> Callable[[], object]:
                def run() -> object:
                    target = fresh() if write else None
                    try:
                        return download(conn, target, size, crc, fallocate, direct)
                    finally:
                        if target is not None:
                            target.unlink()

                return run

            cases: dict[str, Callable[[], object]] = {
                "up: preadv into one buffer + sendall": lambda: upload_preadv(sock, src_fd, size, False),
                "up: + CRC64": lambda: upload_preadv(sock, src_fd, size, True),
                "up: pread (new bytes per range) + sendall + CRC64": lambda: upload_pread_bytes(
                    sock, src_fd, size, True
                ),
                "down: TLS read only (no file)": down(False, False, write=False),
                "down: read + pwrite (ftruncate)": down(False, False),
                "down: read + pwrite (posix_fallocate)": down(False, True),
                "down: + CRC64 (posix_fallocate)": down(True, True),
                "down: + CRC64 (ftruncate)": down(True, False),
                "down: + CRC64, O_DIRECT writes (posix_fallocate)": down(True, True, direct=True),
            }
            cases["up: + CRC64, socket with a timeout"] = lambda: upload_preadv(timed, src_fd, size, True)
            cases["down: TLS read only, socket with a timeout"] = down(False, False, False, timed)
            cases["down: read only, memory BIO (256 KiB socket reads)"] = down(False, False, False, bio)
            cases["down: + pwrite + CRC64, memory BIO (posix_fallocate)"] = down(True, True, True, bio)
            results: dict[str, Any] = {
                "openssl": ssl.OPENSSL_VERSION,
                "python": sys.version.split()[0],
                "tls_version": sock.version(),
                "cipher": (sock.cipher() or ("?",))[0],
                "size_mib": args.size_mib,
                "runs": args.runs,
                "cpu_s_per_gib": {},
            }
            records = download(sock, None, size, False, False)
            results["download_read_calls_per_4mib"] = records * RANGE / size
            print(f"{results['openssl']}, Python {results['python']}, {results['tls_version']} "
                  f"{results['cipher']}; {results['download_read_calls_per_4mib']:.0f} read calls per 4 MiB")
            print(f"{'case':<54}{'best s/GiB':>12}{'median':>10}")
            stop: Callable[[], None] = _nothing
            if args.client:
                keyless_cases, stop = client_cases(work, source)
                cases.update(keyless_cases)
            for name, run in cases.items():
                if args.only not in name:
                    continue
                started = time.perf_counter()
                numbers = measure(run, size, args.runs)
                numbers["wall_s"] = time.perf_counter() - started
                results["cpu_s_per_gib"][name] = numbers
                print(f"{name:<54}{numbers['best']:>12.3f}{numbers['median']:>10.3f}", flush=True)
            stop()
            bio.close()
            timed.close()
            sock.sendall(_COMMAND.pack(b"Q", 0))
            sock.close()
            os.close(src_fd)
        finally:
            server.terminate()
            server.wait()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
