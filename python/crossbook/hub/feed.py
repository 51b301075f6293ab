"""Where hub updates come from: sequence numbers are assigned once, at the source.

:class:`TopicPublisher` owns the per-topic sequence and encodes each update once; every sink (the
local :class:`~crossbook.hub.server.Hub`, the Redis bridge to other hub nodes) receives the same
``(topic, seq, data, payload)``, so every hub node delivers the same sequence, byte for byte.
"""

from __future__ import annotations

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
    """BookSet changes → topic updates.

    ``MarketData`` drains ``books.take_changed()`` once per burst of frames and hands the list to
    :meth:`publish_changed`, so a burst for one market becomes one update with its latest top.
    """

    def __init__(self, books: BookSet, publisher: TopicPublisher) -> None:
        self.books = books
        self.publisher = publisher

    def publish_changed(self, changed: list[tuple[str, str]]) -> int:
        """Publish these books' current tops (``MarketData.add_change_consumer`` calls this)."""
        for venue, market in changed:
            self.publisher.publish(f"{venue}:{market}", top_data(self.books.top(venue, market)))
        return len(changed)
