"""``x-ms-client-request-id`` values: unique per request, cheap to make.

A request id ties a request to the service's logs (Storage Analytics, Azure Monitor), so it must be unique
per request, not per file or per client. ``str(uuid.uuid4())`` per request costs a ``urandom`` call and a
UUID object; here a process draws one version-4 UUID (74 random bits in its first four groups) and numbers
its requests after it, in UUID form (``xxxxxxxx-xxxx-4xxx-yxxx-<12 hex counter>``), so the ids still read
as UUIDs in the service's logs. The counter is an ``itertools.count``: its ``next`` is one atomic step, so
threads never get the same number.
A forked child draws a new prefix (its copy of the counter would repeat the parent's ids).
"""

from __future__ import annotations

import itertools
import os
import uuid

_COUNTER_HEX = 12  # the last UUID group: 2**48 requests before it wraps


class RequestIds:
    """Request ids for one process: a random UUID-shaped prefix followed by a request counter."""

    __slots__ = ("_counter", "_prefix")

    def __init__(self) -> None:
        self._prefix = ""
        self._counter = itertools.count()
        self.reseed()

    def reseed(self) -> None:
        """A new random prefix (a version-4 UUID's first four groups) and a counter from zero."""
        self._prefix = str(uuid.uuid4())[: -_COUNTER_HEX]
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFF:012x}"


_IDS = RequestIds()
if hasattr(os, "register_at_fork"):  # POSIX: a forked worker (multiprocessing, Dask) gets its own ids
    os.register_at_fork(after_in_child=_IDS.reseed)


def new_request_id() -> str:
    """A request id no other request of this process (or of any other, with near certainty) carries."""
    return _IDS.next()
