"""The market-data spine in one object: BookSet + upstream feeds + Redis writer + freshness."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from crossbook._core import BookSet
from crossbook.aio import join
from crossbook.book.redis_writer import RedisBookWriter
from crossbook.config import Config
from crossbook.errors import FeedError
from crossbook.signing import HeaderSigner
from crossbook.venues.kalshi.feed import KalshiConnection
from crossbook.venues.kalshi.feed import connections_for as kalshi_connections
from crossbook.venues.polymarket.feed import PolymarketConnection
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
        self._frame_listeners: list[Callable[[str, tuple[str, ...]], object]] = []
        self._rejections: list[Callable[[str, str, str], object]] = []
        self.signer = signer
        self._notify = notify
        self._started = False
        for c in self.connections:
            self._adopt(c)
        self._by_market: dict[tuple[str, str], UpstreamConnection] = {
            (c.venue, m): c for c in self.connections for m in c.markets()
        }
        # Configured markets are pinned: streamed from start to stop, never released on demand.
        self.pinned: frozenset[tuple[str, str]] = frozenset(self._by_market)
        # Markets released on purpose: their books stay invalid ("unsubscribed") and never fresh.
        self._released: set[tuple[str, str]] = set()
        # Markets added on demand and not yet confirmed by a frame from the venue: (added ns, timer).
        self._pending: dict[tuple[str, str], tuple[int, asyncio.TimerHandle | None]] = {}
        self._empty_timers: dict[UpstreamConnection, asyncio.TimerHandle] = {}
        self._conn_names = itertools.count(len(self.connections))
        self._closers: set[asyncio.Task[None]] = set()

    def add_change_consumer(self, fn: Callable[[list[tuple[str, str]]], object]) -> None:
        """``fn(changed)`` receives every (venue, market) whose top of book or validity changed."""
        self._consumers.append(fn)

    def add_frame_listener(self, fn: Callable[[str, tuple[str, ...]], object]) -> None:
        """``fn(venue, markets)`` runs synchronously after every frame a connection applied (``markets``: that
        connection's), before the batched change dispatch of that burst: for the one consumer that must not
        wait a loop turn (the edge trigger's compiled check). It runs per frame, so it must be cheap; an
        exception is logged and costs nothing else."""
        self._frame_listeners.append(fn)

    def _frame_applied(self, conn: UpstreamConnection) -> None:
        # The listeners first, then the dispatch's wake-up: whatever a listener starts (the edge trigger's
        # intent task) is queued ahead of the batched dispatch, which no order waits for.
        for fn in self._frame_listeners:
            try:
                fn(conn.venue, conn.markets())
            except Exception:  # a listener's bug must not take the feed down
                log.exception("frame listener failed")
        self._changes.set()

    def dispatch_changes(self) -> int:
        """Hand the books changed since the last call to every consumer now. Returns how many."""
        changed = self.books.take_changed()
        if changed and self._released:
            self._keep_released_invalid(changed)
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

    def add_rejection_listener(self, fn: Callable[[str, str, str], object]) -> None:
        """``fn(venue, market, reason)``: a market added on demand was refused by the venue (unknown,
        or no data within ``feed.snapshot_timeout_s``); it is no longer subscribed."""
        self._rejections.append(fn)

    async def start(self) -> None:
        self._started = True
        if self.writer is not None:
            self.writer.start()
        if self._dispatcher is None:
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch_loop(), name="book-changes")
        for c in self.connections:
            c.start()
        log.info("market data: %d upstream connections, %d markets", len(self.connections), len(self._by_market))

    async def stop(self) -> None:
        self._started = False
        for h in self._empty_timers.values():
            h.cancel()
        self._empty_timers.clear()
        for _, timer in self._pending.values():
            if timer is not None:
                timer.cancel()
        self._pending.clear()
        await asyncio.gather(*(c.stop() for c in self.connections), *self._closers, return_exceptions=True)
        self._stopping = True
        self._changes.set()
        await join(self._dispatcher)
        self.dispatch_changes()  # the last changes still reach the writer's final flush
        if self.writer is not None:
            await self.writer.stop()

    def subscribed(self) -> list[tuple[str, str]]:
        return list(self._by_market)

    def link(self, venue: str, market: str) -> UpstreamConnection | None:
        """The upstream connection that keeps this market's book (its ``connected`` and
        ``last_heartbeat_ns`` are what :meth:`freshness` reads), or None if none does."""
        return self._by_market.get((venue, market))

    def fresh_within(self, venue: str, market: str, now_ns: int, limit_ms: float) -> bool:
        """True when :meth:`freshness` at ``now_ns`` reads valid, connected and at most ``limit_ms`` old: the
        breaker's test of one leg, without building the reading or its words (the order path reads it)."""
        if (venue, market) in self._released:
            return False
        conn = self._by_market.get((venue, market))
        if conn is None or not conn.connected:
            return False
        try:
            valid, last = self.books.health(venue, market)
        except KeyError:
            return False
        newest = max(last, conn.last_heartbeat_ns)
        return valid and newest != 0 and (now_ns - newest) / 1e6 <= limit_ms

    def freshness(self, venue: str, market: str, now_ns: int | None = None) -> Freshness:
        now = time.time_ns() if now_ns is None else now_ns
        conn = self._by_market.get((venue, market))
        stale_ns = self.cfg.feed.stale_after_ms * 1_000_000
        try:
            valid, last = self.books.health(venue, market)
            # The reason is read only when there is one (a valid book has none).
            reason = None if valid else self.books.book(venue, market, 0)["reason"]
        except KeyError:
            valid, reason, last = False, "no data received yet", 0
        if (venue, market) in self._released:
            # Released on purpose (no user wants it): whatever the book says, nobody keeps it current.
            # Not a link failure, so `connected` stays true and the breaker names the real reason.
            return Freshness(venue, market, False, True, float("inf"), "unsubscribed (released: no user demand)")
        connected = conn is not None and conn.connected
        hb = conn.last_heartbeat_ns if conn is not None else 0
        newest = max(last, hb) if connected else last
        age_ms = (now - newest) / 1e6 if newest else float("inf")
        if not connected and reason is None:
            reason = "feed disconnected"
        if reason is None and now - newest > stale_ns:
            reason = f"no update or heartbeat for {age_ms:.0f} ms (limit {self.cfg.feed.stale_after_ms} ms)"
        return Freshness(venue, market, valid, connected, age_ms, reason)

    # -- demand-driven subscriptions -----------------------------------------------------------
    def venue_enabled(self, venue: str) -> bool:
        if venue == "polymarket":
            return self.cfg.polymarket.enabled
        if venue == "kalshi":
            return self.cfg.kalshi.enabled
        return False

    def can_add(self, venue: str) -> bool:
        """Whether :meth:`add_market` can stream a new market of ``venue`` right now."""
        return (self._started and self.venue_enabled(venue)
                and self.on_demand(venue) < self.cfg.feed.max_on_demand_markets)

    def on_demand(self, venue: str) -> int:
        """How many markets of ``venue`` are streamed on demand (not pinned) right now."""
        return sum(1 for k in self._by_market if k[0] == venue and k not in self.pinned)

    def is_streamed(self, venue: str, market: str) -> bool:
        return (venue, market) in self._by_market

    def add_market(self, venue: str, market: str) -> None:
        """Stream one more market: on a connection with room, else a new connection. Its book arrives
        with the venue's snapshot; a refusal reaches the rejection listeners. Raises FeedError when
        the venue is disabled or market data is not running."""
        key = (venue, market)
        if key in self._by_market:
            return
        if not self.can_add(venue):
            why = ("market data is not running" if not self._started
                   else f"{venue} is disabled" if not self.venue_enabled(venue)
                   else f"already {self.cfg.feed.max_on_demand_markets} on-demand markets (feed.max_on_demand_markets)")
            raise FeedError(f"cannot stream {venue} market {market!r}: {why}")
        self._released.discard(key)
        # Fill existing connections first (an empty one inside its grace is reused, not replaced).
        conn = next((c for c in self.connections if c.venue == venue and c.has_room()), None)
        if conn is None:
            conn = self._new_connection(venue, market)
        else:
            self._cancel_empty_timer(conn)
            conn.add_market(market)
        self._by_market[key] = conn
        self._watch_first_frame(key)
        log.info("market data: streaming %s %s on %s (on demand)", venue, market, conn.name)

    def remove_market(self, venue: str, market: str) -> bool:
        """Stop streaming a market added on demand. Pinned (configured) markets are never released;
        returns whether the market was released."""
        key = (venue, market)
        if key in self.pinned:
            return False
        conn = self._by_market.pop(key, None)
        if conn is None:
            return False
        self._drop_pending(key)
        conn.remove_market(market)
        self._released.add(key)
        self.books.invalidate(venue, market, "unsubscribed")
        self._notify()
        self._integrity_event(f"{venue} {market} released (unsubscribed)")
        log.info("market data: released %s %s from %s", venue, market, conn.name)
        if not conn.markets():
            self._arm_empty_timer(conn)
        return True

    def _adopt(self, conn: UpstreamConnection) -> None:
        conn.on_integrity = self._integrity_event
        conn.on_update = functools.partial(self._frame_applied, conn)
        venue = conn.venue
        conn.on_rejected = lambda market, reason: self._rejected(venue, market, reason)

    def _new_connection(self, venue: str, market: str) -> UpstreamConnection:
        n = next(self._conn_names)
        conn: UpstreamConnection
        if venue == "polymarket":
            conn = PolymarketConnection(f"polymarket#{n}", [market], self.books, self.cfg.polymarket,
                                        self.cfg.feed, self._notify)
        else:
            conn = KalshiConnection(f"kalshi#{n}", [market], self.books, self.cfg.kalshi, self.cfg.feed,
                                    self.signer, self._notify)
        self._adopt(conn)
        self.connections.append(conn)
        conn.start()
        return conn

    def _arm_empty_timer(self, conn: UpstreamConnection) -> None:
        self._cancel_empty_timer(conn)
        loop = asyncio.get_running_loop()
        self._empty_timers[conn] = loop.call_later(self.cfg.feed.empty_connection_grace_s, self._close_if_empty, conn)

    def _cancel_empty_timer(self, conn: UpstreamConnection) -> None:
        h = self._empty_timers.pop(conn, None)
        if h is not None:
            h.cancel()

    def _close_if_empty(self, conn: UpstreamConnection) -> None:
        self._empty_timers.pop(conn, None)
        if conn.markets() or conn not in self.connections:
            return
        self.connections.remove(conn)
        log.info("market data: closing %s (no market left)", conn.name)
        task = asyncio.get_running_loop().create_task(conn.stop(), name=f"close:{conn.name}")
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    def _watch_first_frame(self, key: tuple[str, str]) -> None:
        self._drop_pending(key)
        timeout = self.cfg.feed.snapshot_timeout_s
        handle = asyncio.get_running_loop().call_later(timeout, self._check_first_frame, key)
        self._pending[key] = (time.time_ns(), handle)

    def _drop_pending(self, key: tuple[str, str]) -> None:
        entry = self._pending.pop(key, None)
        if entry is not None and entry[1] is not None:
            entry[1].cancel()

    def _check_first_frame(self, key: tuple[str, str]) -> None:
        entry = self._pending.get(key)
        conn = self._by_market.get(key)
        if entry is None or conn is None:
            return
        added_ns = entry[0]
        if self.books.last_update_ns(*key) >= added_ns:
            del self._pending[key]  # the venue knows it: confirmed
            return
        timeout_ns = int(self.cfg.feed.snapshot_timeout_s * 1e9)
        now = time.time_ns()
        # The clock runs only while the market was on a live connection (a reconnect restarts it).
        since = max(added_ns, conn.connected_at_ns)
        if conn.connected and now - since >= timeout_ns:
            self._pending.pop(key, None)
            conn.remove_market(key[1])
            self._rejected(key[0], key[1], f"no data from {key[0]} for {key[1]!r} within "
                           f"{self.cfg.feed.snapshot_timeout_s:g} s of subscribing: unknown or closed market")
            return
        wait = max(0.05, (since + timeout_ns - now) / 1e9) if conn.connected else self.cfg.feed.snapshot_timeout_s
        self._pending[key] = (added_ns, asyncio.get_running_loop().call_later(wait, self._check_first_frame, key))

    def _rejected(self, venue: str, market: str, reason: str) -> None:
        key = (venue, market)
        if key in self.pinned:
            log.error("market data: configured %s market %r refused by the venue: %s", venue, market, reason)
            return
        conn = self._by_market.pop(key, None)
        self._drop_pending(key)
        log.warning("market data: %s", reason)
        if conn is not None and not conn.markets():
            self._arm_empty_timer(conn)
        for fn in self._rejections:
            try:
                fn(venue, market, reason)
            except Exception:  # one listener's bug must not stop the others
                log.exception("rejection listener %r failed", fn)

    def _keep_released_invalid(self, changed: list[tuple[str, str]]) -> None:
        # A frame already in flight when we unsubscribed (a late snapshot) can revalidate a released
        # book; nobody updates it any more, so it must not be served as valid.
        for key in changed:
            if key in self._released and self.books.top(*key)["valid"]:
                self.books.invalidate(key[0], key[1], "unsubscribed")


class DemandUpstream:
    """The hub's demand upstream (``crossbook.hub.demand.Upstream``) over :class:`MarketData`.

    The first user of a market makes MarketData stream it; the hub's release after its grace period
    stops it. Configured markets are always served and never released. A market the venue refused
    is refused at once for ``refusal_ttl_s`` (no venue round trip for every retry of a bad id).
    """

    def __init__(self, md: MarketData, refusal_ttl_s: float = 60.0) -> None:
        self.md = md
        self.refusal_ttl_s = refusal_ttl_s
        self.subscribes = 0
        self.unsubscribes = 0
        self._refused: dict[tuple[str, str], float] = {}
        md.add_rejection_listener(self._on_rejected)

    @staticmethod
    def _key(topic: str) -> tuple[str, str]:
        venue, _, market = topic.partition(":")
        return venue, market

    def can_serve(self, topic: str) -> bool:
        venue, market = key = self._key(topic)
        if self.md.is_streamed(venue, market):
            return True
        until = self._refused.get(key)
        if until is not None:
            if time.monotonic() < until:
                return False
            del self._refused[key]
        return self.md.can_add(venue)

    def subscribe(self, topic: str) -> None:
        self.subscribes += 1
        self.md.add_market(*self._key(topic))

    def unsubscribe(self, topic: str) -> None:
        self.unsubscribes += 1
        self.md.remove_market(*self._key(topic))

    def _on_rejected(self, venue: str, market: str, reason: str) -> None:
        self._refused[(venue, market)] = time.monotonic() + self.refusal_ttl_s
        if len(self._refused) > 10_000:  # bounded: forget the oldest refusals first
            self._refused.pop(next(iter(self._refused)))
