"""Redis pub/sub bridge: the feed node publishes every update; hub nodes anywhere deliver it.

One channel (``<prefix>``) carries every topic, so Redis keeps their relative order; the hash
``<prefix>:last`` keeps the latest update per topic so a hub node that starts (or reconnects) late
can seed a topic before its next update. Sequence numbers travel inside the payload, unchanged.

The other way, hub nodes lease the markets their users watch (:class:`RedisDemandUpstream`) and the
feed node streams them while leased (:class:`RemoteDemand`); see "demand from hub nodes" below.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
import socket
import time
from typing import TYPE_CHECKING, Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from crossbook.hub.protocol import ProtocolError, is_market, parse_topic

if TYPE_CHECKING:
    from crossbook.hub.demand import DemandTracker
    from crossbook.hub.server import Hub

log = logging.getLogger("crossbook.hub.bridge")

DEFAULT_PREFIX = "crossbook:hub"


async def _finish(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it is done, cancelling again if the cancel was swallowed:
    redis-py's ``PubSub.get_message(timeout=...)`` can swallow one that races its read timeout, which
    left ``crossbook hub`` hanging on SIGTERM."""
    for _ in range(100):
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=0.1)
        if done:
            return
    log.error("hub bridge: task %s did not stop", task.get_name())


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
            await _finish(self._task)
            self._task = None
        try:
            while await self.flush():
                pass
        except (RedisError, OSError):
            pass
        await self._redis.aclose()


class RedisBridgeSubscriber:
    """Feeds a :class:`Hub` from Redis; reconnects, and reseeds every topic after a reconnect.

    It also hears the feed node's refusals (``<prefix>:control``): a market the venue does not know is
    dropped from the hub (its users get ``unknown_market``) and from ``leases`` when given.
    """

    def __init__(self, url: str, hub: Hub, prefix: str = DEFAULT_PREFIX,
                 leases: RedisDemandUpstream | None = None) -> None:
        self.hub = hub
        self.prefix = prefix
        self.leases = leases
        self.dropped = 0
        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=2)
        self._task: asyncio.Task[None] | None = None
        self.received = 0
        self.ready = asyncio.Event()
        self._control_str = control_channel(prefix)
        self._control_bytes = self._control_str.encode()

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

    def _control(self, payload: bytes | str) -> None:
        try:
            msg = orjson.loads(payload)
            kind, topic = msg.get("type"), msg.get("topic")
        except (orjson.JSONDecodeError, AttributeError):
            log.warning("hub bridge: malformed control message %r", payload[:200])
            return
        if kind != "drop" or not isinstance(topic, str):
            return
        code, message = str(msg.get("code") or "unknown_market"), str(msg.get("message") or "")
        if self.leases is not None:
            self.leases.refused(topic)
        told = self.hub.drop_topic(topic, code, message)
        self.dropped += 1
        log.info("hub bridge: feed node refused %s (%s: %s); %d connection(s) told", topic, code, message, told)

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.prefix, control_channel(self.prefix))
                await self.seed()  # after subscribing, so nothing falls between seed and stream
                self.ready.set()
                if self.leases is not None:
                    self.leases.nudge()  # (re)connected: Redis may have restarted empty, lease again now
                backoff = 0.05
                while True:
                    m = await pubsub.get_message(timeout=1.0)
                    if m is None or m["type"] != "message":
                        continue
                    if m["channel"] in (self._control_bytes, self._control_str):
                        self._control(m["data"])
                        continue
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
            await _finish(self._task)
            self._task = None
        await self._redis.aclose()


# -- demand from hub nodes back to the feed node ------------------------------------------------------
#
# A hub node fed through Redis leases the markets its users watch: the set ``<prefix>:demand:node:<id>``
# holds its topics and carries a Redis TTL of ``lease_s``; the node rewrites it (and its TTL) whenever its
# demand changes and every ``refresh_s`` besides, and announces itself in the set
# ``<prefix>:demand:nodes``. A ``PUBLISH <prefix>:demand <id>`` after each write nudges the feed node to
# read that node at once; the feed node also reads every node each ``poll_s``. A node that dies stops
# refreshing: Redis expires its set and the feed node releases its markets (through the same grace as
# its own users). Markets the venue refuses go back to every node on ``<prefix>:control`` as
# ``{"type":"drop","topic":T,"code":"unknown_market","message":...}``.


def demand_key(prefix: str, node_id: str) -> str:
    return f"{prefix}:demand:node:{node_id}"


def demand_nodes_key(prefix: str) -> str:
    return f"{prefix}:demand:nodes"


def demand_channel(prefix: str) -> str:
    return f"{prefix}:demand"


def control_channel(prefix: str) -> str:
    return f"{prefix}:control"


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class RedisDemandUpstream:
    """A hub node's demand upstream (``crossbook.hub.demand.Upstream``): its markets, leased in Redis.

    ``subscribe`` / ``unsubscribe`` only change the local set and wake the writer, which rewrites the
    lease (one write per loop turn, however many users came and went). Redis down: the node keeps
    serving what it has, says so once, and re-publishes its whole set as soon as Redis answers again.
    """

    def __init__(
        self,
        url: str,
        prefix: str = DEFAULT_PREFIX,
        node_id: str | None = None,
        lease_s: float = 15.0,
        refresh_s: float | None = None,
        refusal_ttl_s: float = 60.0,
    ) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self.prefix = prefix
        self.node_id = node_id or default_node_id()
        self.lease_s = lease_s
        self.refresh_s = refresh_s if refresh_s is not None else lease_s / 3
        self.refusal_ttl_s = refusal_ttl_s
        self.active: set[str] = set()
        self.subscribes = 0
        self.unsubscribes = 0
        self.writes = 0
        self.errors = 0
        self.connected = False
        self._refused: dict[str, float] = {}
        self._redis = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def key(self) -> str:
        return demand_key(self.prefix, self.node_id)

    # -- Upstream ---------------------------------------------------------------------------------
    def can_serve(self, topic: str) -> bool:
        until = self._refused.get(topic)
        if until is not None:
            if time.monotonic() < until:
                return False  # the feed node refused it lately: no round trip for every retry
            del self._refused[topic]
        return True

    def subscribe(self, topic: str) -> None:
        self.subscribes += 1
        self.active.add(topic)
        self._wake.set()

    def unsubscribe(self, topic: str) -> None:
        self.unsubscribes += 1
        self.active.discard(topic)
        self._wake.set()

    def nudge(self) -> None:
        """Rewrite the lease now rather than at the next refresh."""
        self._wake.set()

    def refused(self, topic: str) -> None:
        """The feed node refused ``topic`` (unknown at the venue): stop leasing it, refuse it for a while."""
        self.active.discard(topic)
        self._refused[topic] = time.monotonic() + self.refusal_ttl_s
        if len(self._refused) > 10_000:
            self._refused.pop(next(iter(self._refused)))
        self._wake.set()

    # -- the writer -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="hub-demand-leases")

    async def publish(self) -> int:
        """Rewrite this node's lease (its whole set, a fresh TTL) and nudge the feed node."""
        topics = sorted(self.active)
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self.key)
        if topics:
            pipe.sadd(self.key, *topics)
            pipe.pexpire(self.key, int(self.lease_s * 1000))
        pipe.sadd(demand_nodes_key(self.prefix), self.node_id)
        pipe.publish(demand_channel(self.prefix), self.node_id)
        await pipe.execute()
        self.writes += 1
        return len(topics)

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel racing a set event
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.refresh_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                n = await self.publish()
            except (RedisError, OSError) as exc:
                self.errors += 1
                if self.connected or self.errors == 1:
                    log.warning("hub node %s: cannot lease its %d market(s) in Redis (%s); users keep what "
                                "they have, the feed node keeps the leases until they expire (%.0f s); "
                                "retrying", self.node_id, len(self.active), exc, self.lease_s)
                self.connected = False
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)
                self._wake.set()
                continue
            if not self.connected and self.errors:
                log.warning("hub node %s: Redis is back; re-published %d lease(s)", self.node_id, n)
            self.connected = True
            backoff = 0.05

    async def stop(self) -> None:
        """Stop refreshing and withdraw the leases (the feed node releases them after its grace)."""
        if self._task is not None:
            await _finish(self._task)
            self._task = None
        self.active.clear()
        with contextlib.suppress(RedisError, OSError):
            await self.publish()
        await self._redis.aclose()


class RemoteDemand:
    """The feed node's side: every hub node's leases, fed into its :class:`DemandTracker`.

    One (node, market) lease counts like one user of the market; a lease withdrawn or expired is
    released like a user leaving (the tracker's grace applies). Redis down: leases are kept until the
    deadline their last read gave them (now + their TTL), then released. A market the tracker
    refuses, or the venue refuses later (:meth:`on_rejected`), is sent to the nodes to drop.
    """

    # Remove a node from the index only if its lease is gone (it might be rewriting it right now).
    _FORGET = "if redis.call('exists', KEYS[2]) == 0 then return redis.call('srem', KEYS[1], ARGV[1]) end return 0"

    def __init__(self, url: str, demand: DemandTracker, prefix: str = DEFAULT_PREFIX, poll_s: float = 1.0,
                 refusal_repeat_s: float = 5.0) -> None:
        self.demand = demand
        self.prefix = prefix
        self.poll_s = poll_s
        self.refusal_repeat_s = refusal_repeat_s
        self.held: dict[str, set[str]] = {}  # node -> markets acquired for it
        self.deadline: dict[str, float] = {}  # node -> monotonic time its leases expire without news
        self.refusals = 0
        self.errors = 0
        self._told: dict[str, float] = {}  # topic -> when its refusal was last published
        self._pending: list[tuple[str, str, str]] = []
        self._nudged: set[str] = set()
        self._wake = asyncio.Event()
        self._redis = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._run(), name="hub-remote-demand"),
                           loop.create_task(self._listen(), name="hub-remote-demand-nudges")]

    def leases(self, topic: str) -> int:
        return sum(topic in ts for ts in self.held.values())

    # -- applying what Redis says -------------------------------------------------------------------
    def apply(self, node: str, topics: set[str], ttl_ms: int, now: float | None = None) -> None:
        """Node ``node`` leases ``topics`` for ``ttl_ms`` more (ttl_ms < 0: no lease, key absent)."""
        now = time.monotonic() if now is None else now
        if ttl_ms == -2:
            topics = set()
        old = self.held.get(node, set())
        kept = old & topics
        for t in old - topics:
            self.demand.release(t)
        for t in sorted(topics - old):
            try:
                parse_topic(t)
            except ProtocolError:
                log.warning("hub node %s leases a malformed topic %r; ignored", node, t[:100])
                continue
            if not is_market(t):  # nodes lease market topics only; nothing of the others is upstream
                continue
            try:
                self.demand.acquire(t)
            except ProtocolError as exc:
                self._refuse(t, exc.code, str(exc), now)
                continue
            kept.add(t)
        if kept:
            self.held[node] = kept
            self.deadline[node] = now + (ttl_ms / 1000 if ttl_ms > 0 else self.poll_s * 10)
        else:
            self.held.pop(node, None)
            self.deadline.pop(node, None)

    def expire(self, now: float | None = None) -> list[str]:
        """Release the leases of nodes not heard of before their deadline (Redis unreachable)."""
        now = time.monotonic() if now is None else now
        gone = [n for n, dl in self.deadline.items() if now >= dl]
        for node in gone:
            log.warning("hub node %s: leases expired unrefreshed; releasing %d market(s)", node,
                        len(self.held.get(node, ())))
            self.apply(node, set(), -2, now)
        return gone

    def on_rejected(self, venue: str, market: str, reason: str) -> None:
        """MarketData's rejection listener: the venue refused a market (the hub already dropped its
        demand); the nodes leasing it are told, and their leases of it forgotten."""
        topic = f"{venue}:{market}"
        for ts in self.held.values():
            ts.discard(topic)
        self._told.pop(topic, None)
        self._refuse(topic, "unknown_market", reason, time.monotonic())

    def _refuse(self, topic: str, code: str, message: str, now: float) -> None:
        last = self._told.get(topic)
        if last is not None and now - last < self.refusal_repeat_s:
            return
        self._told[topic] = now
        if len(self._told) > 10_000:
            self._told.pop(next(iter(self._told)))
        self._pending.append((topic, code, message))
        self._wake.set()

    # -- the loops ----------------------------------------------------------------------------------
    async def sync(self, nodes: set[str] | None = None) -> None:
        """Read the leases of ``nodes`` (all known ones when None) and apply them; publish refusals."""
        r = self._redis
        full = nodes is None
        if nodes is None:
            nodes = {n.decode() if isinstance(n, bytes) else n for n in await r.smembers(demand_nodes_key(self.prefix))}
            nodes |= set(self.held)
        order = sorted(nodes)
        if order:
            pipe = r.pipeline(transaction=False)
            for n in order:
                pipe.smembers(demand_key(self.prefix, n))
                pipe.pttl(demand_key(self.prefix, n))
            res = await pipe.execute()
            now = time.monotonic()
            for i, n in enumerate(order):
                members, ttl = res[2 * i], int(res[2 * i + 1])
                self.apply(n, {m.decode() if isinstance(m, bytes) else m for m in members}, ttl, now)
                if full and ttl == -2:
                    await r.eval(self._FORGET, 2, demand_nodes_key(self.prefix), demand_key(self.prefix, n), n)
        await self.flush_refusals()

    async def flush_refusals(self) -> None:
        while self._pending:
            topic, code, message = self._pending[0]
            await self._redis.publish(control_channel(self.prefix), orjson.dumps(
                {"type": "drop", "topic": topic, "code": code, "message": message}))
            self._pending.pop(0)
            self.refusals += 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_full = 0.0
        failing = False
        while True:
            timeout = max(0.0, next_full - loop.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if loop.time() >= next_full:
                    self._nudged.clear()
                    await self.sync()
                    next_full = loop.time() + self.poll_s
                else:
                    nudged, self._nudged = self._nudged, set()
                    await self.sync(nudged) if nudged else await self.flush_refusals()
                if failing:
                    log.warning("hub remote demand: Redis is back; leases of %d node(s) read", len(self.held))
                failing = False
            except (RedisError, OSError) as exc:
                self.errors += 1
                if not failing:
                    log.warning("hub remote demand: cannot read the hub nodes' leases (%s); keeping them until "
                                "they expire", exc)
                failing = True
                next_full = loop.time() + min(self.poll_s, 1.0)
            self.expire()

    async def _listen(self) -> None:
        backoff = 0.05
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(demand_channel(self.prefix))
                backoff = 0.05
                while True:
                    m = await pubsub.get_message(timeout=1.0)
                    if m is not None and m["type"] == "message":
                        data = m["data"]
                        self._nudged.add(data.decode() if isinstance(data, bytes) else str(data))
                        self._wake.set()
            except (RedisError, OSError):
                await asyncio.sleep(backoff)  # the poll loop says it once; leases are read every poll_s
                backoff = min(2.0, backoff * 2)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def stop(self) -> None:
        for t in self._tasks:
            await _finish(t)
        self._tasks = []
        await self._redis.aclose()
