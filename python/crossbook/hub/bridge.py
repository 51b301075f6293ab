"""Redis pub/sub bridge: the feed node publishes every update; hub nodes anywhere deliver it.

One channel (``<prefix>``) carries every topic, so Redis keeps their relative order; the hash
``<prefix>:last`` keeps the latest update per topic so a hub node that starts (or reconnects) late
can seed a topic before its next update. Sequence numbers travel inside the payload, unchanged.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING, Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from crossbook.hub.server import Hub

log = logging.getLogger("crossbook.hub.bridge")

DEFAULT_PREFIX = "crossbook:hub"


class RedisBridgePublisher:
    """A :class:`~crossbook.hub.feed.Sink` that forwards updates to Redis without blocking the feed.

    The queue is bounded: if Redis stalls longer than ``max_queue`` updates, the oldest are dropped
    and remote clients see a sequence gap (and ask for a snapshot) instead of the daemon growing.
    """

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX, max_queue: int = 100_000) -> None:
        self.prefix = prefix
        self._redis = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._queue: collections.deque[tuple[str, bytes]] = collections.deque(maxlen=max_queue)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        self.errors = 0

    def deliver(self, topic: str, seq: int, data: Any, payload: bytes) -> None:
        self._queue.append((topic, payload))
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="hub-redis-publisher")

    async def flush(self) -> int:
        batch = [self._queue.popleft() for _ in range(min(len(self._queue), 1000))]
        if not batch:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        last: dict[str, bytes] = {}
        for topic, payload in batch:
            pipe.publish(self.prefix, payload)
            last[topic] = payload
        pipe.hset(f"{self.prefix}:last", mapping=last)  # type: ignore[arg-type]
        try:
            await pipe.execute()
        except (RedisError, OSError):
            self._queue.extendleft(reversed(batch))  # retry in order; the deque bound still holds
            raise
        self.published += len(batch)
        return len(batch)

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                while await self.flush():
                    pass
                backoff = 0.05
            except (RedisError, OSError) as exc:
                self.errors += 1
                log.warning("hub bridge: redis publish failed (%s); retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)
                self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            while await self.flush():
                pass
        except (RedisError, OSError):
            pass
        await self._redis.aclose()


class RedisBridgeSubscriber:
    """Feeds a :class:`Hub` from Redis; reconnects, and reseeds every topic after a reconnect."""

    def __init__(self, url: str, hub: Hub, prefix: str = DEFAULT_PREFIX) -> None:
        self.hub = hub
        self.prefix = prefix
        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=2)
        self._task: asyncio.Task[None] | None = None
        self.received = 0
        self.ready = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="hub-redis-subscriber")

    async def seed(self) -> int:
        """Deliver the latest stored update of every topic (older seqs are ignored by the hub)."""
        last = await self._redis.hgetall(f"{self.prefix}:last")
        for payload in last.values():
            self._deliver(payload)
        return len(last)

    def _deliver(self, payload: bytes | str) -> None:
        raw = payload.encode() if isinstance(payload, str) else payload
        msg = orjson.loads(raw)
        self.hub.deliver(msg["topic"], int(msg["seq"]), msg["data"], raw)

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.prefix)
                await self.seed()  # after subscribing, so nothing falls between seed and stream
                self.ready.set()
                backoff = 0.05
                while True:
                    m = await pubsub.get_message(timeout=1.0)
                    if m is not None and m["type"] == "message":
                        self.received += 1
                        self._deliver(m["data"])
            except (RedisError, OSError) as exc:
                self.ready.clear()
                log.warning("hub bridge: redis subscription lost (%s); reconnecting", exc)
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._redis.aclose()
