"""Ref-counted upstream demand: one upstream subscription per market, whatever the user count.

The hub calls :meth:`DemandTracker.acquire` / :meth:`release` per (user, topic). The first acquire
subscribes upstream; the last release schedules an unsubscribe after ``grace_s`` (a user who
reloads their page does not cost an upstream resubscribe and a fresh snapshot from the venue).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

from crossbook.hub.protocol import ProtocolError

if TYPE_CHECKING:
    from crossbook.book.service import MarketData

log = logging.getLogger("crossbook.hub.demand")


class Upstream(Protocol):
    """What the market-data side implements so the hub can drive demand."""

    def can_serve(self, topic: str) -> bool: ...
    def subscribe(self, topic: str) -> None: ...
    def unsubscribe(self, topic: str) -> None: ...


class MarketDataUpstream:
    """Serve only the markets MarketData already streams, refuse the rest (subscribe/unsubscribe
    only record the demand). The daemon uses ``crossbook.book.service.DemandUpstream`` instead,
    which streams a market on demand and releases it.
    """

    def __init__(self, md: MarketData) -> None:
        self.md = md
        self.active: set[str] = set()

    def can_serve(self, topic: str) -> bool:
        venue, _, market = topic.partition(":")
        return (venue, market) in set(self.md.subscribed())

    def subscribe(self, topic: str) -> None:
        self.active.add(topic)

    def unsubscribe(self, topic: str) -> None:
        self.active.discard(topic)


class AnyUpstream:
    """Accepts every well-formed market topic (hub nodes fed through Redis; tests)."""

    def __init__(self) -> None:
        self.active: set[str] = set()
        self.subscribes = 0
        self.unsubscribes = 0

    def can_serve(self, topic: str) -> bool:
        return True

    def subscribe(self, topic: str) -> None:
        self.active.add(topic)
        self.subscribes += 1

    def unsubscribe(self, topic: str) -> None:
        self.active.discard(topic)
        self.unsubscribes += 1


class DemandTracker:
    def __init__(self, upstream: Upstream, grace_s: float = 30.0) -> None:
        self.upstream = upstream
        self.grace_s = grace_s
        self._refs: dict[str, int] = {}
        self._releasing: dict[str, asyncio.TimerHandle] = {}

    def refs(self, topic: str) -> int:
        return self._refs.get(topic, 0)

    def held(self) -> set[str]:
        """Topics with an upstream subscription (including those inside their grace period)."""
        return set(self._refs) | set(self._releasing)

    def acquire(self, topic: str) -> None:
        """Raises ProtocolError("unknown_market") when the upstream cannot serve the topic."""
        n = self._refs.get(topic, 0)
        if n == 0:
            pending = self._releasing.pop(topic, None)
            if pending is not None:
                pending.cancel()  # came back within the grace period: still subscribed upstream
            else:
                if not self.upstream.can_serve(topic):
                    raise ProtocolError("unknown_market", f"no upstream serves {topic!r} on this node")
                self.upstream.subscribe(topic)
        self._refs[topic] = n + 1

    def release(self, topic: str) -> None:
        n = self._refs.get(topic, 0)
        if n <= 0:
            return
        if n > 1:
            self._refs[topic] = n - 1
            return
        del self._refs[topic]
        if self.grace_s <= 0:
            self.upstream.unsubscribe(topic)
            return
        loop = asyncio.get_running_loop()
        self._releasing[topic] = loop.call_later(self.grace_s, self._expire, topic)

    def _expire(self, topic: str) -> None:
        self._releasing.pop(topic, None)
        if topic not in self._refs:
            log.debug("releasing upstream %s after %.1f s without users", topic, self.grace_s)
            self.upstream.unsubscribe(topic)

    def drop(self, topic: str) -> None:
        """Forget ``topic`` entirely (no refs, no pending release, no unsubscribe call): the upstream
        refused it after accepting it, so there is nothing to release and the next user asks again."""
        self._refs.pop(topic, None)
        pending = self._releasing.pop(topic, None)
        if pending is not None:
            pending.cancel()

    def close(self) -> None:
        for h in self._releasing.values():
            h.cancel()
        self._releasing.clear()
