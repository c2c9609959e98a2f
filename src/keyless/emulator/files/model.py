"""What a Files handler is given and what the routing table declares about it.

A :class:`Call` is one request after dispatch: the parsed :class:`Target`, the query, the injected
:class:`Security`, and the :class:`Op` the routing table chose. Handlers import this module and the
parsing/reply helpers, never the dispatcher, so the table can import every handler.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from aiohttp import web

from keyless.emulator.request_keys import Caller
from keyless.protocol import ACTION_DELETE, ACTION_READ, ACTION_READ_BACKUP, ACTION_WRITE, ACTION_WRITE_BACKUP

if TYPE_CHECKING:
    from keyless.emulator.context import Emulator

# Data actions each operation needs (the backup variants are what the Privileged roles grant).
READ = frozenset({ACTION_READ, ACTION_READ_BACKUP})
WRITE = frozenset({ACTION_WRITE, ACTION_WRITE_BACKUP})
DELETE = frozenset({ACTION_DELETE, ACTION_WRITE_BACKUP})

INLINE_BYTES = 256 * 1024  # file bytes up to this move on the event loop; more go to a worker thread

T = TypeVar("T")


class Authenticator(Protocol):
    def __call__(self, ctx: Emulator, request: web.Request, account: str) -> Caller: ...


class Authorizer(Protocol):
    def __call__(self, ctx: Emulator, caller: Caller, account: str, share: str | None,
                 actions: frozenset[str]) -> None: ...


@dataclass(frozen=True)
class Security:
    """Who is calling (authentication) and whether they may (authorization), as the server wires them."""

    authenticate: Authenticator
    authorize: Authorizer


class Worker(enum.Enum):
    """Where an operation's store work runs: the one rule, declared per operation in the routing table.

    Metadata work stays on the event loop (SQLite lookups cost microseconds); work that moves file bytes
    goes to a worker thread once it is larger than ``INLINE_BYTES``; work that grows with the data it
    touches (deleting a share, copying a file, scanning a file's ranges) always does.
    """

    NEVER = "never"
    ABOVE_INLINE_BYTES = "above-inline-bytes"
    ALWAYS = "always"


@dataclass(frozen=True)
class Target:
    account: str
    share: str | None
    path: tuple[str, ...]


Handler = Callable[["Call"], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Op:
    name: str
    actions: frozenset[str]
    handler: Handler
    worker: Worker = Worker.NEVER
    # Reads (and Delete Share) may name a share snapshot (``sharesnapshot=``); any other operation
    # that names one is refused with 400 ShareSnapshotOperationNotSupported, as snapshots are read-only.
    on_snapshot: bool = False
    # Manages the FileService or FileShare resource (the service-level and share-level operations other
    # than permissions): before version 2024-11-04 these refuse bearer tokens (see dispatch).
    manages: bool = False
    # The SMB ticket exchange shares the Files endpoint but not its rules: it is matched before the
    # account check and authenticates the caller itself (a bearer token without the intent header).
    authenticates_itself: bool = False


@dataclass
class Call:
    ctx: Emulator
    security: Security
    request: web.Request
    target: Target
    query: dict[str, str]
    op: Op

    @property
    def share(self) -> str:
        assert self.target.share is not None  # routing guarantees it for share-level operations
        return self.target.share

    @property
    def snapshot(self) -> str:
        """The share snapshot the request reads (``sharesnapshot=``), or "" for the live share."""
        return self.query.get("sharesnapshot", "")

    @property
    def headers(self) -> Mapping[str, str]:
        return self.request.headers

    async def run(self, work: Callable[[], T], *, size: int = 0) -> T:
        """Run store ``work`` that moves ``size`` bytes where this operation's :class:`Worker` says."""
        worker = self.op.worker
        if worker is Worker.ALWAYS or (worker is Worker.ABOVE_INLINE_BYTES and size > INLINE_BYTES):
            return await asyncio.to_thread(work)
        return work()
