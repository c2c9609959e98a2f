"""Read ``StorageFileLogs`` as people export it, one normalised request at a time, in bounded memory.

Accepted inputs (detected per file from its first bytes; ``.gz`` files are read through gzip):

* JSON lines, each object either a Log Analytics row (``TimeGenerated``, ``AuthenticationType``,
  ``CallerIpAddress``, ``UserAgentHeader``, ``RequesterObjectId``, ...) or a diagnostic-settings record
  (``time``, ``category``, ``operationName``, ``callerIpAddress``, ``identity.type``,
  ``identity.requester.objectId``, ``properties.userAgentHeader``, ...): the ``PT1H.json`` blobs under
  ``insights-logs-storageread|storagewrite|storagedelete``, and the emulator's ``audit.log``.
* a JSON array of row objects (``az monitor log-analytics query`` output, the portal's JSON export),
  streamed element by element; and the query API's ``{"tables": [{"columns": [...], "rows": [...]}]}``.
* CSV with a header row (the portal's "Export to CSV"; a ``TimeGenerated [UTC]`` header is understood).

The columns and their vocabularies, and how one record becomes a request, are in
``keyless.migrate.records``.

A line that is not a request record (the emulator's ``TokenIssuance`` lines, other tables) is counted as
skipped; a line that cannot be read is counted as malformed with its place, and reading goes on.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import operator
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from keyless.migrate.records import (
    ROW_DECODER,
    ROW_NAMES,
    Malformed,
    ReadStats,
    Request,
    Row,
    from_row,
    from_struct,
)

CHUNK = 1 << 20
# One JSON array element larger than this is not a log row: the file is abandoned as malformed there.
MAX_ELEMENT = 16 << 20


# --- files -----------------------------------------------------------------------------------------------


def read_logs(paths: list[Path], stats: ReadStats) -> Iterator[Request]:
    """Every request in ``paths`` (directories are walked for ``*.json``, ``*.csv``, ``*.log``, ``*.gz``)."""
    for path in _expand(paths, stats):
        if is_json_lines(path):  # the fast path: bytes straight to the decoder, no text layer
            stats.files += 1
            yield from read_range(path, 0, sys.maxsize, stats)
            continue
        try:
            handle = _open(path)
        except OSError as err:
            stats.unreadable.append(f"{path}: {err.strerror or err}")
            continue
        stats.files += 1
        try:
            with handle:
                yield from _read_one(path, handle, stats)
        except (OSError, EOFError, UnicodeDecodeError) as err:
            stats.unreadable.append(f"{path}: {err}")


def expand(paths: list[Path], stats: ReadStats) -> Iterator[Path]:
    """The log files named by ``paths``: files as given, directories walked; missing ones noted."""
    return _expand(paths, stats)


def is_json_lines(path: Path) -> bool:
    """Does the (uncompressed) file hold one JSON object per line? Decides whether it may be split."""
    if path.suffix.lower() == ".gz":
        return False
    try:
        with open(path, "rb") as handle:
            first = handle.readline(CHUNK).lstrip(b"\xef\xbb\xbf")
    except OSError:
        return False
    try:
        return isinstance(msgspec.json.decode(first), dict)
    except msgspec.DecodeError:
        return False


def read_range(path: Path, start: int, end: int, stats: ReadStats) -> Iterator[Request]:
    """The JSON-lines records of ``path`` whose line starts in bytes [start, end): one slice of a big file.

    Lines are decoded from bytes (no text decoding step); a malformed line is reported by its byte offset.
    """
    decode = ROW_DECODER.decode
    records = skipped = 0
    try:
        with open(path, "rb") as handle:
            if start:
                handle.seek(start - 1)
                if handle.read(1) != b"\n":
                    handle.readline()  # the line under way belongs to the slice before
            pos = handle.tell()
            number = 0  # line numbers are known only when reading from the start
            while pos < end:
                line = handle.readline()
                if not line:
                    break
                where, pos = pos, pos + len(line)
                number += 1
                if where == 0 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]
                try:
                    request = from_struct(decode(line))
                except msgspec.ValidationError as err:
                    stats.bad(_place(path, start, number, where), str(err))
                    continue
                except msgspec.DecodeError:
                    if line.strip():
                        stats.bad(_place(path, start, number, where), "not JSON")
                    continue
                except (Malformed, ValueError, TypeError) as err:
                    stats.bad(_place(path, start, number, where), str(err) or type(err).__name__)
                    continue
                if request is None:
                    skipped += 1
                    continue
                records += 1
                yield request
    except OSError as err:
        stats.unreadable.append(f"{path}: {err.strerror or err}")
    finally:
        stats.records += records
        stats.skipped += skipped


def _place(path: Path, start: int, number: int, offset: int) -> str:
    return f"{path}:{number}" if start == 0 else f"{path}@byte {offset}"


def _expand(paths: list[Path], stats: ReadStats) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file()
                           and p.suffix.lower() in (".json", ".csv", ".log", ".gz", ".jsonl"))
            yield from found
        elif path.exists():
            yield path
        else:
            stats.unreadable.append(f"{path}: no such file")


def _open(path: Path) -> IO[str]:
    raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 - handed to the caller, closed there
    if path.suffix.lower() == ".gz":
        raw = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def _read_one(path: Path, handle: IO[str], stats: ReadStats) -> Iterator[Request]:
    head = handle.readline(CHUNK)
    while head and not head.strip():
        head = handle.readline(CHUNK)
    first = head.lstrip()[:1]
    if first == "[":
        yield from _read_array(path, head, handle, stats)
    elif first == "{":
        try:
            json.loads(head)
        except ValueError:
            yield from _read_document(path, head + handle.read(), stats)  # a pretty-printed document
        else:
            yield from _read_lines(path, itertools.chain([head], handle), stats)
    elif first:
        yield from _read_csv(path, itertools.chain([head], handle), stats)


def _count(stats: ReadStats, where: str, obj: Any) -> Request | None:
    if not isinstance(obj, dict):
        stats.bad(where, "not a JSON object")
        return None
    try:
        request = from_row(obj)
    except (Malformed, ValueError, TypeError) as err:
        stats.bad(where, str(err) or type(err).__name__)
        return None
    if request is None:
        stats.skipped += 1
        return None
    stats.records += 1
    return request


def _read_lines(path: Path, lines: Iterator[str], stats: ReadStats) -> Iterator[Request]:
    decode = ROW_DECODER.decode
    records = skipped = 0
    try:
        for number, line in enumerate(lines, 1):
            try:
                request = from_struct(decode(line))
            except msgspec.ValidationError as err:
                stats.bad(f"{path}:{number}", str(err))
                continue
            except msgspec.DecodeError:
                if line.strip():
                    stats.bad(f"{path}:{number}", "not JSON")
                continue
            except (Malformed, ValueError, TypeError) as err:
                stats.bad(f"{path}:{number}", str(err) or type(err).__name__)
                continue
            if request is None:
                skipped += 1
                continue
            records += 1
            yield request
    finally:
        stats.records += records
        stats.skipped += skipped


def _read_array(path: Path, buf: str, handle: IO[str], stats: ReadStats) -> Iterator[Request]:
    decoder = json.JSONDecoder()
    pos = buf.index("[") + 1
    index = 0
    eof = False
    while True:
        while True:  # skip separators, refilling as needed
            while pos < len(buf) and buf[pos] in " \t\r\n,":
                pos += 1
            if pos < len(buf) or eof:
                break
            chunk = handle.read(CHUNK)
            eof = not chunk
            buf, pos = buf[pos:] + chunk, 0
        if pos >= len(buf):
            stats.bad(f"{path}[{index}]", "the array is not closed")
            return
        if buf[pos] == "]":
            return
        try:
            obj, end = decoder.raw_decode(buf, pos)
        except ValueError:
            if eof or len(buf) - pos > MAX_ELEMENT:
                stats.bad(f"{path}[{index}]", "not JSON; the rest of the file is skipped")
                return
            chunk = handle.read(CHUNK)
            eof = not chunk
            buf, pos = buf[pos:] + chunk, 0
            continue
        pos = end
        request = _count(stats, f"{path}[{index}]", obj)
        index += 1
        if request is not None:
            yield request


def _read_document(path: Path, text: str, stats: ReadStats) -> Iterator[Request]:
    """A single JSON object: the query API's ``tables`` answer, or one pretty-printed record."""
    try:
        doc = json.loads(text)
    except ValueError:
        stats.bad(str(path), "not JSON lines, not a JSON document")
        return
    tables = doc.get("tables") if isinstance(doc, dict) else None
    if not isinstance(tables, list):
        request = _count(stats, str(path), doc)
        if request is not None:
            yield request
        return
    for table in tables:
        columns = [str(c.get("name")) for c in table.get("columns", []) if isinstance(c, dict)]
        for index, row in enumerate(table.get("rows", [])):
            where = f"{path}:{table.get('name', 'table')}[{index}]"
            if not isinstance(row, list) or len(row) != len(columns):
                stats.bad(where, "row does not match the columns")
                continue
            request = _count(stats, where, dict(zip(columns, row, strict=True)))
            if request is not None:
                yield request


def _read_csv(path: Path, lines: Iterator[str], stats: ReadStats) -> Iterator[Request]:
    reader = csv.reader(lines)
    try:
        header = [h.strip() for h in next(reader)]
    except (StopIteration, csv.Error):
        stats.bad(f"{path}:1", "no CSV header")
        return
    # The portal's CSV export names the time column "TimeGenerated [UTC]".
    header = [h.partition(" [")[0] for h in header]
    if "AuthenticationType" not in header and "TimeGenerated" not in header:
        stats.bad(f"{path}:1", "not a StorageFileLogs export (no TimeGenerated or AuthenticationType column)")
        return
    width = len(header)
    # Each row becomes a Row positionally: column index per field, or the None appended to every row.
    index = {ROW_NAMES[f]: header.index(ROW_NAMES[f]) if ROW_NAMES[f] in header else width
             for f in Row.__struct_fields__}
    pick = operator.itemgetter(*(index[ROW_NAMES[f]] for f in Row.__struct_fields__))
    records = 0
    try:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                stats.bad(f"{path}:{reader.line_num}", f"CSV: {err}")
                continue
            if len(row) != width:
                if row:
                    stats.bad(f"{path}:{reader.line_num}", f"{len(row)} fields, the header has {width}")
                continue
            row.append(None)  # type: ignore[arg-type]  # the value of every column the export lacks
            try:
                request = from_struct(Row(*pick(row)))
            except (Malformed, ValueError, TypeError) as err:
                stats.bad(f"{path}:{reader.line_num}", str(err) or type(err).__name__)
                continue
            if request is None:
                stats.skipped += 1
                continue
            records += 1
            yield request
    finally:
        stats.records += records
