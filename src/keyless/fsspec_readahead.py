"""The read cache of ``azfiles://`` files: parallel read-ahead for sequential reads, small fetches for random
ones, memory bounded either way.

Strategy (``cache_type="azfiles-parallel"``, the default of :class:`keyless.fsspec_file.AzureFilesFile`):

* **Sequential or large reads stream through a window.** The file is cut into blocks of at most one range
  (4 MiB, one Get File each). When a read continues where the last one ended (or starts the file), or
  asks for at least two blocks at once, the blocks it needs are fetched in parallel by a small thread
  pool, and while reads stay sequential so are the next ones: 1, then 2, 4 ... up to ``concurrency``
  blocks ahead (a file read only for its header costs one block). The read takes its bytes from the
  blocks in order and drops each block once passed. So ``f.read()`` of 256 MiB, or a loop of
  ``f.read(1 << 20)``, keeps ``concurrency`` requests in flight like ``keyless get`` does, and holds at
  most ``concurrency + 1`` blocks besides what the caller asked for.
* **Random reads fetch what they ask for.** A read that neither continues the last one nor spans two
  blocks (a parquet footer, a column chunk, a seek-and-peek) drops the window and fetches exactly the
  requested bytes, rounded up to ``min_fetch`` (64 KiB) so that a run of small reads close together
  costs one request. Nothing further is read ahead: a footer read never pulls in 4 MiB of row groups.
  The last such fetch is kept, so reads inside it cost nothing.

The pool is created on the first streamed read and shut down by :meth:`close` (the file's ``close()``);
a file only read randomly never starts a thread.
"""

from __future__ import annotations

import collections
import contextlib
import io
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ClassVar

from fsspec.caching import BaseCache, register_cache

from keyless.files.parallel import RANGE_SIZE

#: The least a random read fetches: a request costs far more than 64 KiB of transfer.
MIN_FETCH = 64 * 1024


class BytesBuilder:
    """A ``bytes`` of a known size, filled in place (from many threads, at distinct offsets) through
    :attr:`view`, then handed out by :meth:`finish` without a copy: so a whole-file read allocates the
    file's size once, not a buffer and then a ``bytes`` copy of it (twice the size at the peak).

    It rests on ``io.BytesIO``: CPython keeps a BytesIO's content in a ``bytes`` object, grows it to the
    exact size when written past its end, and ``getvalue()`` returns that object itself when no view of it
    is held. Elsewhere ``getvalue()`` copies, which is still correct.
    """

    def __init__(self, size: int) -> None:
        self._io = io.BytesIO()
        if size:
            self._io.seek(size - 1)
            self._io.write(b"\0")  # one allocation of the exact size, zero-filled
        self.view = self._io.getbuffer()

    def finish(self) -> bytes:
        """The content; the builder is not used afterwards."""
        with contextlib.suppress(BufferError):  # a view still held elsewhere: getvalue() copies, correctly
            self.view.release()  # while a view is held, getvalue() would copy
        data = self._io.getvalue()
        self._io = io.BytesIO()  # not close(): that refuses while any slice of the view is still alive
        return data


class ParallelReadAhead(BaseCache):  # type: ignore[misc]  # fsspec is untyped
    """See the module docstring. ``fetcher(start, end)`` returns bytes ``[start, end)`` of the file."""

    name: ClassVar[str] = "azfiles-parallel"

    def __init__(self, blocksize: int, fetcher: Callable[[int, int], bytes], size: int, *,
                 concurrency: int = 8, min_fetch: int = MIN_FETCH) -> None:
        super().__init__(blocksize, fetcher, size)
        self.unit = max(1, min(blocksize, RANGE_SIZE))
        self.concurrency = max(1, concurrency)
        self.min_fetch = min_fetch
        self.nblocks = (size + self.unit - 1) // self.unit
        self._last_end = 0  # a read from the start of the file streams
        self._ahead = 0  # blocks to read ahead: grows as sequential reads go on
        self._streak = -1  # sequential streamed reads so far (-1: the last read was not streamed)
        self._prev_end = -1
        self._window: collections.OrderedDict[int, Future[bytes]] = collections.OrderedDict()
        self._pool: ThreadPoolExecutor | None = None
        self._kept_start = 0
        self._kept = b""
        #: The most blocks ever held at once (fetched or in flight), for tests of the memory bound.
        self.peak_blocks = 0

    # --- reads --------------------------------------------------------------------------------------------
    def _fetch(self, start: int | None, stop: int | None) -> bytes:
        start = 0 if start is None else max(0, start)
        stop = self.size if stop is None else min(stop, self.size)
        if start >= stop:
            return b""
        kept_end = self._kept_start + len(self._kept)
        if self._kept_start <= start and stop <= kept_end:
            self.hit_count += 1
            self._last_end = stop
            return self._kept[start - self._kept_start : stop - self._kept_start]
        first, last = start // self.unit, (stop - 1) // self.unit
        streaming = start == self._last_end or last > first or first in self._window
        self._prev_end, self._last_end = self._last_end, stop
        if streaming:
            return self._stream(start, stop, first, last)
        self._ahead, self._streak = 0, -1
        self._drop_window()
        self.miss_count += 1
        end = min(self.size, max(stop, start + self.min_fetch))
        self.total_requested_bytes += end - start
        self._kept_start, self._kept = start, self.fetcher(start, end)
        return self._kept[: stop - start]

    def _stream(self, start: int, stop: int, first: int, last: int) -> bytes:
        self._kept = b""
        if first not in self._window:
            self._drop_window()  # a jump: what was read ahead is elsewhere
        for index in list(self._window):  # blocks before this read will not be read again
            if index < first:
                self._window.pop(index).cancel()
        out = BytesBuilder(stop - start) if last > first else None
        # Read-ahead ramps up (0, 1, 2, 4 ... concurrency blocks) while reads stay sequential, so a file
        # read only at its start (a header) fetches one block, and a long stream soon has all in flight.
        self._streak = self._streak + 1 if self._streak >= 0 and start == self._prev_end else 0
        self._ahead = min(self.concurrency, 1 << (self._streak - 1)) if self._streak else 0
        for index in range(first, last + 1):
            self._schedule(index, last)
            try:
                block = self._window[index].result()
            except BaseException:
                self._drop_window()
                raise
            lo = index * self.unit
            a, b = max(start, lo) - lo, min(stop, lo + len(block)) - lo
            if out is None:
                return block[a:b]
            out.view[lo + a - start : lo + b - start] = memoryview(block)[a:b]
            if index < last:
                del self._window[index]
            del block  # freed before the next block is scheduled: the window stays the bound
        return out.finish() if out is not None else b""

    def _schedule(self, current: int, last: int) -> None:
        """Have blocks ``current`` up to ``concurrency`` blocks ahead of it fetched or in flight."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="azfiles-read")
        end = min(self.nblocks, max(current + 1 + self._ahead, last + 1))
        for index in range(current, end):
            if index in self._window:
                continue
            if len(self._window) > self.concurrency:  # the bound: never more than this many blocks held
                break
            lo = index * self.unit
            hi = min(self.size, lo + self.unit)
            self.miss_count += 1
            self.total_requested_bytes += hi - lo
            self._window[index] = self._pool.submit(self.fetcher, lo, hi)
        self.peak_blocks = max(self.peak_blocks, len(self._window))

    # --- life cycle ---------------------------------------------------------------------------------------
    def _drop_window(self) -> None:
        while self._window:
            self._window.popitem()[1].cancel()

    def close(self) -> None:
        """Cancel what is not yet fetched and stop the threads (those mid-request finish on their own)."""
        self._drop_window()
        self._kept = b""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def __getstate__(self) -> dict[str, Any]:  # fsspec pickles open read files by reopening them
        raise TypeError("azfiles: the read cache is not picklable; pickle the file, which reopens itself")


register_cache(ParallelReadAhead, clobber=True)
