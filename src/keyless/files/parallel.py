"""Bounded parallelism for transfers: a file is cut into ranges, and at most N of them are in flight."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from keyless import protocol as p

#: The largest range one Put Range may write; transfers move files in ranges of this size.
RANGE_SIZE = p.MAX_RANGE_UPDATE_BYTES

T = TypeVar("T")


def ranges(size: int, chunk: int = RANGE_SIZE) -> Iterator[tuple[int, int]]:
    """``(offset, length)`` of each range of a file of ``size`` bytes."""
    for offset in range(0, size, chunk):
        yield offset, min(chunk, size - offset)


def run_bounded(fn: Callable[[T], object], items: Iterable[T], concurrency: int) -> None:
    """Run ``fn`` over ``items`` with at most ``concurrency`` in flight; the first error stops the rest (the
    items in flight finish, no new one starts) and is raised. Items are pulled lazily, so a million ranges
    never become a million futures."""
    concurrency = max(1, concurrency)
    rest = iter(items)  # an iterator, so the items taken for ``head`` are not seen twice
    # Up to one item per thread: fewer items than threads (a file of two ranges) start only that many.
    head = list(itertools.islice(rest, max(2, concurrency)))
    if concurrency == 1 or len(head) < 2:
        # Zero or one item (a file of one range, the common case inside tree transfers): run it here. A
        # thread pool per small file cost more than its request (measured: ~2 ms of ~4 ms per 8 KiB file).
        for item in itertools.chain(head, rest):
            fn(item)
        return
    _Workers(fn, itertools.chain(head, rest)).run(min(concurrency, len(head)))


class _Workers:
    """``concurrency`` threads, each taking the next item itself when it is done with one: no future, no
    queue and no wake-up of a dispatching thread per item (which cost more than a small file's requests)."""

    __slots__ = ("errors", "fn", "items", "lock")

    def __init__(self, fn: Callable[[T], object], items: Iterator[T]) -> None:
        self.fn: Callable[[Any], object] = fn
        self.items: Iterator[Any] = items
        self.lock = threading.Lock()  # one taker at a time: ``items`` may be a generator
        self.errors: list[BaseException] = []  # the first one is raised; any one stops the takers

    def run(self, concurrency: int) -> None:
        threads = [threading.Thread(target=self._work, name=f"keyless-{i}") for i in range(concurrency)]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except BaseException as exc:  # Ctrl-C while waiting: no new item starts, those in flight finish
            self._fail(exc)
            for thread in threads:
                thread.join()
            raise
        if self.errors:
            raise self.errors[0]

    def _fail(self, exc: BaseException) -> None:
        with self.lock:
            self.errors.append(exc)

    def _work(self) -> None:
        fn, lock, errors, items = self.fn, self.lock, self.errors, self.items
        while True:
            with lock:
                if errors:
                    return
                try:
                    item = next(items, _DONE)
                except BaseException as exc:  # the items themselves failed (a listing, a directory walk)
                    errors.append(exc)
                    return
            if item is _DONE:
                return
            try:
                fn(item)
            except BaseException as exc:
                self._fail(exc)
                return


_DONE = object()
