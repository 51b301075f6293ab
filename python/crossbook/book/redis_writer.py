"""Writes the live top of book to Redis: ``HSET book:<venue>:<market> bid ask bid_size ask_size ts valid``.

The feed never waits for Redis. Changed books arrive through :meth:`RedisBookWriter.add_changes`
(cheap); a single writer task takes the set of changed books and writes their *current*
tops in one pipeline. While Redis is away the changes simply accumulate as a set of keys (so memory
is bounded by the number of markets, and only the latest state is ever written); when Redis comes
back every book is rewritten, because a restarted Redis has lost them all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from crossbook._core import BookSet
from crossbook.aio import join

log = logging.getLogger("crossbook.redis")

REDIS_VENUE = {"polymarket": "poly", "kalshi": "kalshi"}


def book_key(prefix: str, venue: str, market: str) -> str:
    return f"{prefix}:{REDIS_VENUE.get(venue, venue)}:{market}"


@dataclass
class WriterStats:
    flushes: int = 0
    keys_written: int = 0
    errors: int = 0
    full_rewrites: int = 0
    last_error: str = ""
    last_flush_ms: float = 0.0


class RedisBookWriter:
    def __init__(self, books: BookSet, url: str, *, prefix: str = "book", timeout_s: float = 1.0) -> None:
        """Changed books arrive through :meth:`add_changes` (``MarketData``'s dispatcher)."""
        self.books = books
        self.url = url
        self.prefix = prefix
        self.stats = WriterStats()
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=0
        )
        self._pending: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._flush_lock = asyncio.Lock()
        self._need_full = True  # first write after start or after a Redis outage rewrites everything
        self.connected = False

    def add_changes(self, changed: list[tuple[str, str]]) -> None:
        """The books whose top changed (from ``MarketData``'s dispatcher); written on the next flush."""
        self._pending.update(changed)
        self._wake.set()

    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="redis-writer")
        return self._task

    async def stop(self) -> None:
        # A stop flag rather than cancel(): redis-py can swallow a CancelledError that lands inside a
        # pipeline, which would leave a cancelled writer waiting forever.
        self._stopping = True
        self._wake.set()
        await join(self._task)
        self._task = None
        try:
            await self.flush()
        except (RedisError, OSError):
            pass
        await self._redis.aclose()

    async def _run(self) -> None:
        backoff = 0.05
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.flush()
                backoff = 0.05
            except (RedisError, OSError) as exc:
                self.stats.errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                if self.connected or self.stats.errors == 1:
                    log.warning("redis %s unavailable (%s); books keep updating, will rewrite all on return",
                                self.url, self.stats.last_error)
                self.connected = False
                self._need_full = True
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)
                self._wake.set()  # try again; the feed is never blocked meanwhile

    async def flush(self) -> int:
        """Write every changed book (or every book after an outage). Returns keys written.

        Flushes are serialized: two in flight could land out of order and leave an older top in
        Redis with nothing left to correct it."""
        async with self._flush_lock:
            return await self._flush()

    async def _flush(self) -> int:
        if self._need_full:
            for venue in ("polymarket", "kalshi"):
                self._pending.update((venue, m) for m in self.books.markets(venue))
        if not self._pending:
            return 0
        t0 = time.perf_counter()
        # Take the pending set: a book that changes while this pipeline is in flight is added to a
        # fresh set and written by the next flush, never dropped as "already written".
        todo, self._pending = list(self._pending), set()
        pipe = self._redis.pipeline(transaction=False)
        for venue, market in todo:
            top = self.books.top(venue, market)
            valid = top["valid"]
            pipe.hset(
                book_key(self.prefix, venue, market),
                mapping={
                    "bid": (top["bid"] or "") if valid else "",
                    "ask": (top["ask"] or "") if valid else "",
                    "bid_size": (top["bid_size"] or "") if valid else "",
                    "ask_size": (top["ask_size"] or "") if valid else "",
                    "ts": top["ts"],
                    "valid": 1 if valid else 0,
                },
            )
        try:
            await pipe.execute()
        except BaseException:
            self._pending.update(todo)
            raise
        if self._need_full:
            self.stats.full_rewrites += 1
            if not self.connected and self.stats.flushes:
                log.info("redis %s is back; rewrote %d books", self.url, len(todo))
        self._need_full = False
        self.connected = True
        self.stats.flushes += 1
        self.stats.keys_written += len(todo)
        self.stats.last_flush_ms = (time.perf_counter() - t0) * 1000
        return len(todo)
