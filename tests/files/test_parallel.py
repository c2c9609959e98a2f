"""``run_bounded``: at most N items in flight, items taken lazily, the first error stops the rest."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from keyless.files.parallel import run_bounded


def test_every_item_runs_once_and_never_more_than_n_at_a_time() -> None:
    lock = threading.Lock()
    running = peak = 0
    seen: list[int] = []

    def fn(item: int) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.002)
        with lock:
            running -= 1
            seen.append(item)

    run_bounded(fn, range(60), 4)
    assert sorted(seen) == list(range(60))
    assert 1 < peak <= 4


def test_items_are_taken_lazily() -> None:
    taken = 0
    done = 0
    lock = threading.Lock()
    most_ahead = 0

    def items() -> Iterator[int]:
        nonlocal taken, most_ahead
        for i in range(200):
            taken += 1
            most_ahead = max(most_ahead, taken - done)
            yield i

    def fn(_: int) -> None:
        nonlocal done
        with lock:
            done += 1

    run_bounded(fn, items(), 3)
    assert done == 200
    assert most_ahead <= 3  # never more taken than there are workers to run them


def test_the_first_error_is_raised_and_no_new_item_starts_after_it() -> None:
    started: list[int] = []

    def fn(item: int) -> None:
        started.append(item)
        if item == 5:
            raise ValueError("item 5 failed")
        time.sleep(0.001)

    with pytest.raises(ValueError, match="item 5"):
        run_bounded(fn, range(1000), 4)
    assert len(started) < 1000


def test_an_error_from_the_items_themselves_is_raised() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("listing failed")

    with pytest.raises(OSError, match="listing failed"):
        run_bounded(lambda _: None, items(), 2)


def test_one_item_runs_in_the_calling_thread() -> None:
    where: list[threading.Thread] = []
    run_bounded(lambda _: where.append(threading.current_thread()), [1], 8)
    assert where == [threading.current_thread()]


def test_no_more_threads_than_items() -> None:
    # A file of two ranges with 16 ranges allowed in flight (every 4-8 MiB file of a tree download) needs
    # two threads, not sixteen started only to find nothing to do.
    started: list[str] = []
    real_start = threading.Thread.start

    def counting_start(self: threading.Thread) -> None:
        started.append(self.name)
        real_start(self)

    done: list[int] = []
    threading.Thread.start = counting_start  # type: ignore[method-assign]
    try:
        run_bounded(done.append, [1, 2], 16)
        assert sorted(done) == [1, 2] and len(started) <= 2
        started.clear()
        run_bounded(done.append, range(100), 16)
        assert len(done) == 102 and len(started) == 16
    finally:
        threading.Thread.start = real_start  # type: ignore[method-assign]
