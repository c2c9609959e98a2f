"""What the Files client returns: listing entries and properties, built from the service's replies."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # replies from the storage service; expat >= 2.4 limits expansion
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from keyless.files.errors import UnsafeName
from keyless.files.transport import Response

_META = "x-ms-meta-"


@dataclass(frozen=True, slots=True)
class Entry:
    """One item of a directory listing."""

    name: str
    path: str  # share-relative
    is_dir: bool
    size: int | None = None
    etag: str = ""
    last_modified: str = ""
    last_write_time: str = ""
    file_id: str = ""


@dataclass(frozen=True, slots=True)
class Properties:
    path: str
    is_dir: bool
    size: int = 0
    etag: str = ""
    last_modified: str = ""
    last_write_time: str = ""
    creation_time: str = ""
    content_type: str = ""
    content_md5: str = ""  # base64, as the service stores it
    metadata: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "type": "directory" if self.is_dir else "file",
            "size": self.size,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "last_write_time": self.last_write_time,
            "creation_time": self.creation_time,
            "content_type": self.content_type,
            "content_md5": self.content_md5,
            "metadata": self.metadata,
        }

    @classmethod
    def from_entry(cls, entry: Entry) -> Properties:
        """What a listing already says about an item (no request needed)."""
        return cls(
            path=entry.path,
            is_dir=entry.is_dir,
            size=entry.size or 0,
            etag=entry.etag,
            last_modified=entry.last_modified,
            last_write_time=entry.last_write_time,
        )


def meta_headers(metadata: dict[str, str] | None) -> dict[str, str]:
    return {f"{_META}{k}": v for k, v in (metadata or {}).items()}


def _metadata(resp: Response) -> dict[str, str]:
    return {k[len(_META) :]: v for k, v in resp.headers.items() if k.startswith(_META)}


def file_properties(path: str, resp: Response) -> Properties:
    """From a Get File Properties (HEAD) reply."""
    return Properties(
        path=path,
        is_dir=False,
        size=int(resp.header("content-length", "0") or 0),
        etag=resp.header("etag"),
        last_modified=resp.header("last-modified"),
        last_write_time=resp.header("x-ms-file-last-write-time"),
        creation_time=resp.header("x-ms-file-creation-time"),
        content_type=resp.header("content-type"),
        content_md5=resp.header("content-md5"),
        metadata=_metadata(resp),
    )


def dir_properties(path: str, resp: Response) -> Properties:
    """From a Get Directory Properties reply."""
    return Properties(
        path=path,
        is_dir=True,
        etag=resp.header("etag"),
        last_modified=resp.header("last-modified"),
        last_write_time=resp.header("x-ms-file-last-write-time"),
        creation_time=resp.header("x-ms-file-creation-time"),
        metadata=_metadata(resp),
    )


def _text(elem: ET.Element | None) -> str:
    return (elem.text or "") if elem is not None else ""


def _check_entry_name(name: str, parent: str) -> None:
    """A listing entry is one name in ``parent``: the service never returns ``.``, ``..``, an empty name,
    or one holding ``/``, ``\\`` or NUL, so such an entry comes from something else answering (a broken
    or hostile server) and is refused before any path is built from it."""
    if name in ("", ".", "..") or any(c in name for c in "/\\\x00"):
        raise UnsafeName(
            f"refusing the listed entry {name!r} in {parent or '(share root)'!r}: not a single name"
        )


def parse_listing(data: bytes, parent: str) -> tuple[list[Entry], str]:
    """The entries of one List Directories and Files page, and the marker of the next one ("" at the end)."""
    root = ET.fromstring(data)  # noqa: S314 - see the import
    entries: list[Entry] = []
    container = root.find("Entries")
    for elem in list(container) if container is not None else []:
        name_elem = elem.find("Name")
        name = _text(name_elem)
        if name_elem is not None and name_elem.get("Encoded", "").lower() == "true":
            name = unquote(name)  # names with characters XML cannot carry come percent-encoded
        _check_entry_name(name, parent)
        props = elem.find("Properties")
        is_dir = elem.tag == "Directory"
        size_text = _text(props.find("Content-Length")) if props is not None else ""
        entries.append(
            Entry(
                name=name,
                path=f"{parent}/{name}" if parent else name,
                is_dir=is_dir,
                size=None if is_dir else int(size_text or 0),
                etag=_text(props.find("Etag")) if props is not None else "",
                last_modified=_text(props.find("Last-Modified")) if props is not None else "",
                last_write_time=_text(props.find("LastWriteTime")) if props is not None else "",
                file_id=_text(elem.find("FileId")),
            )
        )
    return entries, _text(root.find("NextMarker"))
