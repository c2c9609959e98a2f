"""Asynchronous Copy File: which copies answer 202 ``x-ms-copy-status: pending``, and the background task
that moves a pending copy's bytes.

Azure may finish a Copy File before it answers (``success``) or later (``pending``, then the status on Get
File Properties moves to ``success``, ``failed`` or ``aborted``; REST "Copy File", "Get File Properties",
"Abort Copy File"). A copy from another account is pending here, always; any copy is when a test sets a
copy rate through the control endpoint (``EmulatorProcess.set_copy_rate``), so clients' waiting and Abort
Copy File can be exercised deterministically:

* ``None`` (the default): same-account copies finish before the answer; cross-account copies run in the
  background at full speed.
* ``n > 0`` bytes per second: every copy is pending and advances about ``n`` bytes a second.
* ``0``: every copy is pending and holds still until the rate changes (or it is aborted).

The rate is read at every step, so changing it releases or slows copies already pending. A copy whose
process stops is failed at the next start (``Store.__init__``), never left looking pending or complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from keyless.emulator.errors import StorageError
from keyless.emulator.storage import Node, Store

log = logging.getLogger(__name__)

TICK_SECONDS = 0.05  # how often a throttled or held copy looks at the rate again
MAX_STEP_BYTES = 4 * 1024 * 1024  # bytes moved per step (and per write transaction)


class CopyEngine:
    """The copy rate and the tasks of the copies pending in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rate: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def bytes_per_second(self) -> int | None:
        with self._lock:
            return self._rate

    def set_rate(self, bytes_per_second: int | None) -> None:
        if bytes_per_second is not None and (isinstance(bytes_per_second, bool) or bytes_per_second < 0):
            raise ValueError("bytes_per_second: expected a whole number >= 0, or null for no limit")
        with self._lock:
            self._rate = bytes_per_second

    def describe(self) -> dict[str, object]:
        return {"bytes_per_second": self.bytes_per_second, "pending": len(self._tasks)}

    def is_async(self, *, cross_account: bool) -> bool:
        """Whether a copy answers pending (and runs in the background) rather than finishing first."""
        return cross_account or self.bytes_per_second is not None

    def start(self, store: Store, destination: Node, source: Node) -> None:
        """Run the pending copy ``destination.copy_id`` from ``source`` in the background."""
        task = asyncio.get_running_loop().create_task(self._run(store, destination, source))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop the background copies (the emulator is stopping): they stay pending in the store and
        the next start fails them."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self, store: Store, destination: Node, source: Node) -> None:
        assert destination.copy_id is not None
        node_id, copy_id, total = destination.id, destination.copy_id, destination.content_length
        offset = 0
        try:
            while offset < total:
                rate = self.bytes_per_second
                if rate == 0:
                    await asyncio.sleep(TICK_SECONDS)
                    continue
                per_tick = MAX_STEP_BYTES if rate is None else max(1, int(rate * TICK_SECONDS))
                step = min(per_tick, MAX_STEP_BYTES, total - offset)
                alive = await asyncio.to_thread(store.copy_step, node_id, copy_id, source, offset, step)
                if not alive:
                    return  # aborted, overwritten or deleted: nothing more to do
                offset += step
                if rate is not None:
                    await asyncio.sleep(TICK_SECONDS)
            await asyncio.to_thread(store.finish_copy, node_id, copy_id, source)
        except asyncio.CancelledError:
            raise
        except StorageError as err:
            await asyncio.to_thread(store.fail_copy, node_id, copy_id, err.message)
        except Exception:
            # A bug must not leave a copy pending forever nor look complete: fail it and say so.
            log.exception("pending copy %s failed", copy_id)
            await asyncio.to_thread(store.fail_copy, node_id, copy_id, "The copy failed: internal error.")
