"""Small asyncio helpers that never hang a shutdown.

Python 3.11's ``asyncio.wait_for`` can swallow a cancellation that races with its inner future
completing (fixed in 3.12), and a task that swallowed one runs forever. So loops here wait with
:func:`wait_event` and owners stop their tasks with :func:`cancel_and_wait`, which gives up (and
says so) instead of blocking the daemon's exit.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("crossbook.aio")


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait for ``event`` up to ``timeout`` seconds; True if it was set. Cancellation propagates."""
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()
    return event.is_set()


async def cancel_and_wait(task: asyncio.Task[object] | asyncio.Task[None] | None, timeout: float = 2.0) -> None:
    """Cancel ``task`` and wait (bounded) for it to finish; never raises, never hangs."""
    if task is None or task.done():
        return
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        log.error("task %s did not stop within %.1fs of being cancelled; leaving it", task.get_name(), timeout)
        return
    if not task.cancelled() and task.exception() is not None:
        log.debug("task %s ended with %r", task.get_name(), task.exception())


async def join(task: asyncio.Task[None] | None, timeout: float = 2.0) -> None:
    """Wait for a task that was asked to stop by a flag; cancel it if it does not within ``timeout``."""
    if task is None or task.done():
        return
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        await cancel_and_wait(task, timeout)


def retrieve(task: asyncio.Future[Any]) -> None:
    """Done-callback for a task that may never be awaited (a signature begun for an order refused
    meanwhile): its outcome is marked seen, so an exception in it is not reported as never retrieved."""
    if not task.cancelled():
        task.exception()


def poll_until_done(fut: asyncio.Future[object] | asyncio.Future[Any], max_s: float) -> None:
    """Keep the running loop busy-polling (one ``call_soon`` per turn, so every turn polls its sockets
    with a zero timeout) until ``fut`` is done or ``max_s`` has passed. For a reply due within a fraction
    of a millisecond (the signer's): an idle CPU that halted while waiting takes a hundred µs or more to
    wake on some machines (virtual ones above all), longer than the wait itself. Costs at most ``max_s``
    of this core; other callbacks still run at every turn."""
    if fut.done() or max_s <= 0:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_s

    def poll() -> None:
        if not fut.done() and loop.time() < deadline:
            loop.call_soon(poll)

    loop.call_soon(poll)


class BusyPoll:
    """Keep the running loop polling instead of sleeping, for good (until :meth:`stop`): one ``call_soon``
    per turn makes every turn wait on its sockets with a zero timeout, so a frame is read the moment it
    lands and the core never halts (waking a halted core costs a hundred µs or more on virtual machines,
    and it comes back with cold caches). It takes 100 % of a core: only for an engine pinned to cores of
    its own (``cpu_affinity``). Timers, callbacks and I/O run as usual."""

    def __init__(self) -> None:
        self._handle: asyncio.Handle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.turns = 0

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self) -> None:
        if self._handle is None:
            self._loop = asyncio.get_running_loop()
            self._handle = self._loop.call_soon(self._turn)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _turn(self) -> None:
        self.turns += 1
        if self._handle is not None and self._loop is not None:
            self._handle = self._loop.call_soon(self._turn)


class ManagedGC:
    """The cyclic garbage collector, run when the engine chooses instead of whenever allocations cross a
    threshold. Left automatic, a collection starts inside whatever code allocates next, often the order
    path: in the tick-to-trade bench the default collector put 3–37 ms into the slowest 1 % of orders
    (p99.9 32 ms; 4 ms with this). :meth:`start` collects once and freezes what start-up built (never
    scanned again: ``gc.freeze``), then disables automatic collection and collects every ``interval_s``
    from a loop timer instead: the young generations each time, everything every ``full_every_s``. While
    ``busy()`` says an order is in flight a collection waits for the next quiet turn, at most
    ``max_defer_s``. Reference counting frees almost everything at once either way; only cycles wait
    for a collection, so memory stays bounded. :meth:`stop` gives the collector back as it was."""

    def __init__(
        self, interval_s: float = 0.25, full_every_s: float = 60.0, max_defer_s: float = 2.0,
        busy: Callable[[], bool] | None = None,
    ) -> None:  # fmt: skip
        if interval_s <= 0 or full_every_s <= 0 or max_defer_s < 0:
            raise ValueError("ManagedGC: interval_s and full_every_s must be > 0, max_defer_s >= 0")
        self.interval_s = interval_s
        self.full_every_s = full_every_s
        self.max_defer_s = max_defer_s
        self.busy = busy
        self.collections = 0
        self.full_collections = 0
        self.deferred = 0
        self.longest_us = 0.0
        self.last_us = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._was_enabled = True
        self._last = self._last_full = 0.0

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self) -> None:
        """From inside the running loop, once start-up is done (what exists now is frozen)."""
        if self._handle is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._was_enabled = gc.isenabled()
        gc.collect()
        gc.freeze()
        gc.disable()
        self._last = self._last_full = self._loop.time()
        self._handle = self._loop.call_later(self.interval_s, self._tick)

    def stop(self) -> None:
        if self._handle is None:
            return
        self._handle.cancel()
        self._handle = None
        gc.unfreeze()
        if self._was_enabled:
            gc.enable()

    def _tick(self) -> None:
        loop = self._loop
        if loop is None or self._handle is None:
            return
        now = loop.time()
        if self.busy is not None and now - self._last < self.interval_s + self.max_defer_s:
            try:
                busy = self.busy()
            except Exception:  # a broken probe must not stop collection
                log.exception("ManagedGC: busy() failed; collecting anyway")
                busy = False
            if busy:
                self.deferred += 1
                self._handle = loop.call_later(min(0.005, self.interval_s), self._tick)
                return
        full = now - self._last_full >= self.full_every_s
        t0 = time.perf_counter_ns()
        gc.collect(2 if full else 1)
        self.last_us = (time.perf_counter_ns() - t0) / 1000
        self.longest_us = max(self.longest_us, self.last_us)
        self.collections += 1
        if full:
            self.full_collections += 1
            self._last_full = now
        self._last = loop.time()
        self._handle = loop.call_later(self.interval_s, self._tick)

    def stats(self) -> dict[str, float]:
        return {"collections": self.collections, "full_collections": self.full_collections,
                "deferred": self.deferred, "longest_us": self.longest_us, "last_us": self.last_us}  # fmt: skip
