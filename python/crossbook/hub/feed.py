"""Where hub updates come from: sequence numbers are assigned once, at the source.

:class:`TopicPublisher` owns the per-topic sequence and encodes each update once; every sink (the
local :class:`~crossbook.hub.server.Hub`, the Redis bridge to other hub nodes) receives the same
``(topic, seq, data, payload)``, so every hub node delivers the same sequence, byte for byte.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from crossbook._core import BookSet
from crossbook.hub.protocol import parse_topic, top_data, update_msg

log = logging.getLogger("crossbook.hub.feed")


class Sink(Protocol):
    def deliver(self, topic: str, seq: int, data: Any, payload: bytes) -> None: ...


class TopicPublisher:
    def __init__(self, sinks: list[Sink] | None = None) -> None:
        self.sinks: list[Sink] = list(sinks or [])
        self._seq: dict[str, int] = {}

    def publish(self, topic: str, data: Any) -> int:
        seq = self._seq.get(topic, 0) + 1
        self._seq[topic] = seq
        payload = update_msg(topic, seq, data)
        for sink in self.sinks:
            sink.deliver(topic, seq, data, payload)
        return seq


class ExecuteStatePublisher(Protocol):
    """What the breaker feeds: per-pair "execute enabled / disabled, because ..."."""

    def publish_execute_state(self, pair_id: str, enabled: bool, reason: str | None) -> None: ...


class HubExecuteState:
    """Publishes the breaker's per-pair state on topic ``execute:<pair id>`` (only on change)."""

    def __init__(self, publisher: TopicPublisher) -> None:
        self.publisher = publisher
        self._last: dict[str, tuple[bool, str | None]] = {}

    def publish_execute_state(self, pair_id: str, enabled: bool, reason: str | None) -> None:
        topic = f"execute:{pair_id}"
        parse_topic(topic)
        state = (bool(enabled), reason)
        if self._last.get(pair_id) == state:
            return
        self._last[pair_id] = state
        self.publisher.publish(topic, {"pair": pair_id, "enabled": state[0], "reason": reason})


class BookFeed:
    """BookSet changes → topic updates. Must be the only consumer of ``books.take_changed()``.

    The feeds call :meth:`notify` (cheap); one task drains the changed set, so a burst of frames for
    one market becomes one update carrying its latest top of book.
    """

    def __init__(self, books: BookSet, publisher: TopicPublisher) -> None:
        self.books = books
        self.publisher = publisher
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        self._wake.set()

    def pump(self) -> int:
        return self.publish_changed(self.books.take_changed())

    def publish_changed(self, changed: list[tuple[str, str]]) -> int:
        """Publish these books' current tops (``MarketData.add_change_consumer`` calls this)."""
        for venue, market in changed:
            self.publisher.publish(f"{venue}:{market}", top_data(self.books.top(venue, market)))
        return len(changed)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="hub-book-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                self.pump()
            except Exception:  # a bad book must not kill the feed task; the next change retries
                log.exception("hub book feed: publishing changed books failed")
