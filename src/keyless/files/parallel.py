"""Bounded parallelism for transfers: a file is cut into ranges, and at most N of them are in flight."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from keyless import protocol as p

#: The largest range one Put Range may write; transfers move files in ranges of this size.
RANGE_SIZE = p.MAX_RANGE_UPDATE_BYTES

T = TypeVar("T")


def ranges(size: int, chunk: int = RANGE_SIZE) -> Iterator[tuple[int, int]]:
    """``(offset, length)`` of each range of a file of ``size`` bytes."""
    for offset in range(0, size, chunk):
        yield offset, min(chunk, size - offset)


def run_bounded(fn: Callable[[T], object], items: Iterable[T], concurrency: int) -> None:
    """Run ``fn`` over ``items`` with at most ``concurrency`` in flight; the first error cancels the rest
    and is raised. Items are pulled lazily, so a million ranges never become a million futures."""
    concurrency = max(1, concurrency)
    rest = iter(items)  # an iterator, so the items taken for ``head`` are not seen twice
    head = list(itertools.islice(rest, 2))
    if concurrency == 1 or len(head) < 2:
        # Zero or one item (a file of one range, the common case inside tree transfers): run it here. A
        # thread pool per small file cost more than its request (measured: ~2 ms of ~4 ms per 8 KiB file).
        for item in itertools.chain(head, rest):
            fn(item)
        return
    iterator = itertools.chain(head, rest)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        pending: set[Future[object]] = set()
        try:
            for item in iterator:
                pending.add(pool.submit(fn, item))
                if len(pending) >= concurrency * 2:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        fut.result()
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for fut in done:
                fut.result()
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
