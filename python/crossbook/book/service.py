"""The market-data spine in one object: BookSet + upstream feeds + Redis writer + freshness."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from crossbook._core import BookSet
from crossbook.aio import join
from crossbook.book.redis_writer import RedisBookWriter
from crossbook.config import Config
from crossbook.signing import HeaderSigner
from crossbook.venues.kalshi.feed import connections_for as kalshi_connections
from crossbook.venues.polymarket.feed import connections_for as polymarket_connections
from crossbook.venues.wsfeed import UpstreamConnection

log = logging.getLogger("crossbook.marketdata")


@dataclass(frozen=True)
class Freshness:
    """How much a book can be trusted right now (what the breaker reads)."""

    venue: str
    market: str
    valid: bool
    connected: bool
    age_ms: float  # since the last update of this book or heartbeat of its connection
    reason: str | None

    @property
    def fresh(self) -> bool:
        return self.valid and self.connected and self.reason is None


class MarketData:
    def __init__(self, cfg: Config, signer: HeaderSigner, redis_url: str | None) -> None:
        self.cfg = cfg
        self.books = BookSet(kalshi_use_yes_price=cfg.kalshi.use_yes_price, polymarket_verify_top=True)
        self.writer = RedisBookWriter(self.books, redis_url, prefix=cfg.redis.key_prefix) if redis_url else None
        # BookSet.take_changed() has one reader: this dispatcher, which fans the changed books out
        # to every consumer (the Redis writer, the hub, ...) once per burst of frames.
        self._consumers: list[Callable[[list[tuple[str, str]]], object]] = []
        if self.writer is not None:
            self._consumers.append(self.writer.add_changes)
        self._changes = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._stopping = False
        notify = self._changes.set
        self.connections: list[UpstreamConnection] = []
        if cfg.polymarket.enabled and cfg.polymarket.assets:
            self.connections += polymarket_connections(
                cfg.polymarket.assets, self.books, cfg.polymarket, cfg.feed, notify
            )
        if cfg.kalshi.enabled and cfg.kalshi.markets:
            self.connections += kalshi_connections(
                cfg.kalshi.markets, self.books, cfg.kalshi, cfg.feed, signer, notify
            )
        self._integrity: list[Callable[[str], object]] = []
        for c in self.connections:
            c.on_integrity = self._integrity_event
        self._by_market: dict[tuple[str, str], UpstreamConnection] = {
            (c.venue, m): c for c in self.connections for m in c.markets()
        }

    def add_change_consumer(self, fn: Callable[[list[tuple[str, str]]], object]) -> None:
        """``fn(changed)`` receives every (venue, market) whose top of book or validity changed."""
        self._consumers.append(fn)

    def dispatch_changes(self) -> int:
        """Hand the books changed since the last call to every consumer now. Returns how many."""
        changed = self.books.take_changed()
        if changed:
            for fn in self._consumers:
                try:
                    fn(changed)
                except Exception:  # one consumer's bug must not starve the others
                    log.exception("change consumer %r failed", fn)
        return len(changed)

    async def _dispatch_loop(self) -> None:
        while not self._stopping:
            await self._changes.wait()
            self._changes.clear()
            self.dispatch_changes()

    def add_integrity_listener(self, fn: Callable[[str], object]) -> None:
        """``fn(reason)`` runs synchronously the moment a feed invalidates books (sequence gap,
        divergence from the venue's top, disconnect), so the breaker trips before the next frame."""
        self._integrity.append(fn)

    def _integrity_event(self, reason: str) -> None:
        for fn in self._integrity:
            fn(reason)

    async def start(self) -> None:
        if self.writer is not None:
            self.writer.start()
        if self._dispatcher is None:
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch_loop(), name="book-changes")
        for c in self.connections:
            c.start()
        log.info("market data: %d upstream connections, %d markets", len(self.connections), len(self._by_market))

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop() for c in self.connections), return_exceptions=True)
        self._stopping = True
        self._changes.set()
        await join(self._dispatcher)
        self.dispatch_changes()  # the last changes still reach the writer's final flush
        if self.writer is not None:
            await self.writer.stop()

    def subscribed(self) -> list[tuple[str, str]]:
        return list(self._by_market)

    def freshness(self, venue: str, market: str, now_ns: int | None = None) -> Freshness:
        now = time.time_ns() if now_ns is None else now_ns
        conn = self._by_market.get((venue, market))
        stale_ns = self.cfg.feed.stale_after_ms * 1_000_000
        try:
            top = self.books.top(venue, market)
            book = self.books.book(venue, market, 0)
            valid, reason = top["valid"], book["reason"]
            last = self.books.last_update_ns(venue, market)
        except KeyError:
            valid, reason, last = False, "no data received yet", 0
        connected = conn is not None and conn.connected
        hb = conn.last_heartbeat_ns if conn is not None else 0
        newest = max(last, hb) if connected else last
        age_ms = (now - newest) / 1e6 if newest else float("inf")
        if not connected and reason is None:
            reason = "feed disconnected"
        if reason is None and now - newest > stale_ns:
            reason = f"no update or heartbeat for {age_ms:.0f} ms (limit {self.cfg.feed.stale_after_ms} ms)"
        return Freshness(venue, market, valid, connected, age_ms, reason)
