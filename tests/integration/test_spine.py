"""The market-data spine end to end: venue simulators → picows feeds → Rust BookSet → real Redis.

One test per scripted fault. Every comparison is against the simulator's own true book, read
while its updates are paused, so nothing here depends on timing luck.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric import rsa

from crossbook.book.redis_writer import book_key
from crossbook.book.service import MarketData
from crossbook.config import Config
from crossbook.signing import LocalHeaderSigner
from crossbook.store.embedded_redis import EmbeddedRedis
from crossbook.venues.kalshi.sim import KalshiSim
from crossbook.venues.polymarket.sim import PolymarketSim
from tests.conftest import eventually, maybe_await

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEY_ID = "test-key"


@dataclass
class Spine:
    poly: PolymarketSim
    kal: KalshiSim
    md: MarketData
    redis: aioredis.Redis
    cfg: Config


def _cfg(poly: PolymarketSim, kal: KalshiSim) -> Config:
    cfg = Config()
    cfg.polymarket.ws_url = poly.ws_url
    cfg.polymarket.assets = list(poly.markets)
    cfg.polymarket.ping_interval_s = 0.1
    cfg.polymarket.pong_timeout_s = 0.6
    cfg.kalshi.ws_url = kal.ws_url
    cfg.kalshi.markets = list(kal.markets)
    cfg.kalshi.ping_interval_s = 0.1
    cfg.kalshi.pong_timeout_s = 0.6
    cfg.feed.reconnect_min_s = 0.05
    cfg.feed.reconnect_max_s = 0.2
    return cfg


@pytest.fixture
async def spine(redis_server: EmbeddedRedis, redis_client: aioredis.Redis) -> AsyncIterator[Spine]:
    poly = PolymarketSim(seed=11, markets=3, tick_interval=0.02)
    kal = KalshiSim(seed=11, markets=3, tick_interval=0.02, api_keys={KEY_ID: KEY.public_key()})
    await poly.start()
    await kal.start()
    cfg = _cfg(poly, kal)
    md = MarketData(cfg, LocalHeaderSigner(KEY_ID, KEY), redis_server.url)
    await md.start()
    try:
        yield Spine(poly, kal, md, redis_client, cfg)
    finally:
        await md.stop()
        await poly.stop()
        await kal.stop()


def _dec_levels(levels: list[Any]) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(str(p)), Decimal(str(s))) for p, s in levels]


def _all_valid(md: MarketData) -> bool:
    return all(md.books.top(v, m)["valid"] for v, m in md.subscribed()) if len(md.books) >= len(
        md.subscribed()
    ) else False


async def _quiesce(s: Spine) -> None:
    """Pause both simulators and let in-flight frames land."""
    await maybe_await(s.poly.pause_updates())
    await maybe_await(s.kal.pause_updates())
    await asyncio.sleep(0.25)


async def _resume(s: Spine) -> None:
    await maybe_await(s.poly.resume_updates())
    await maybe_await(s.kal.resume_updates())


async def _assert_books_match_truth(s: Spine) -> None:
    for venue, sim in (("polymarket", s.poly), ("kalshi", s.kal)):
        for market in sim.markets:
            ours = s.md.books.book(venue, market)
            truth = sim.book(market)
            assert ours["valid"], f"{venue} {market} invalid: {ours['reason']}"
            assert _dec_levels(ours["bids"]) == _dec_levels(truth["bids"]), f"{venue} {market} bids"
            assert _dec_levels(ours["asks"]) == _dec_levels(truth["asks"]), f"{venue} {market} asks"


async def _assert_redis_matches_books(s: Spine) -> None:
    s.md.dispatch_changes()
    await s.md.writer.flush()  # type: ignore[union-attr]
    for venue, market in s.md.subscribed():
        top = s.md.books.top(venue, market)
        h = await s.redis.hgetall(book_key("book", venue, market))
        got = {k.decode(): v.decode() for k, v in h.items()}
        assert got["valid"] == "1"
        assert Decimal(got["bid"]) == Decimal(top["bid"] or "0")
        assert Decimal(got["ask"]) == Decimal(top["ask"] or "0")
        assert Decimal(got["bid_size"]) == Decimal(top["bid_size"] or "0")
        assert 0 < int(got["ts"]) <= top["ts"]  # ts of the last top-of-book change


async def test_live_books_match_the_venues_and_land_in_redis(spine: Spine) -> None:
    await eventually(lambda: _all_valid(spine.md), what="all books valid")
    await asyncio.sleep(0.5)  # let updates flow
    assert spine.md.books.stats()["frames"] > 20
    await _quiesce(spine)
    await _assert_books_match_truth(spine)
    await _assert_redis_matches_books(spine)
    # keys exactly as DESIGN.md §3 says
    keys = sorted(k.decode() for k in await spine.redis.keys("book:*"))
    assert len(keys) == 6
    assert all(k.startswith(("book:poly:", "book:kalshi:")) for k in keys)
    for venue, market in spine.md.subscribed():
        assert spine.md.freshness(venue, market).fresh


async def test_dropped_connection_reconnects_and_rebuilds(spine: Spine) -> None:
    await eventually(lambda: _all_valid(spine.md), what="all books valid")
    before = [c.stats.connects for c in spine.md.connections]
    await maybe_await(spine.poly.drop_connections())
    await maybe_await(spine.kal.drop_connections())
    await eventually(
        lambda: all(c.stats.connects > b for c, b in zip(spine.md.connections, before, strict=True)),
        what="every connection to reconnect",
    )
    await eventually(lambda: _all_valid(spine.md), what="books valid again after reconnect")
    await _quiesce(spine)
    await _assert_books_match_truth(spine)
    await _assert_redis_matches_books(spine)


async def test_stalled_heartbeats_make_books_stale_then_reconnect(spine: Spine) -> None:
    await eventually(lambda: _all_valid(spine.md), what="all books valid")
    poly_conn = next(c for c in spine.md.connections if c.venue == "polymarket")
    asset = spine.poly.markets[0]
    await maybe_await(spine.poly.stall_heartbeats(2.0))
    stale = await eventually(
        lambda: not spine.md.freshness("polymarket", asset).fresh, timeout=3, what="book to turn stale"
    )
    assert stale
    await eventually(lambda: poly_conn.stats.heartbeat_timeouts >= 1, timeout=3, what="heartbeat timeout")
    await eventually(lambda: spine.md.freshness("polymarket", asset).fresh, timeout=6, what="fresh again")
    await _quiesce(spine)
    await _assert_books_match_truth(spine)


async def test_kalshi_sequence_gap_invalidates_then_heals_with_a_snapshot(spine: Spine) -> None:
    await eventually(lambda: _all_valid(spine.md), what="all books valid")
    conn = next(c for c in spine.md.connections if c.venue == "kalshi")
    gaps_before = spine.md.books.stats()["gaps"]
    await maybe_await(spine.kal.skip_seq())
    await eventually(lambda: spine.md.books.stats()["gaps"] > gaps_before, what="gap detected")
    await eventually(lambda: conn.snapshot_requests >= 1, what="snapshot requested")  # type: ignore[attr-defined]
    await eventually(lambda: _all_valid(spine.md), what="books healed by the snapshot")
    assert conn.stats.connects == 1  # healed in place, no reconnect needed
    await _quiesce(spine)
    await _assert_books_match_truth(spine)


async def test_garbage_frames_are_counted_and_dropped(spine: Spine) -> None:
    await eventually(lambda: _all_valid(spine.md), what="all books valid")
    await maybe_await(spine.poly.send_garbage(3))
    await maybe_await(spine.kal.send_garbage(3))
    await eventually(
        lambda: sum(c.stats.malformed for c in spine.md.connections) >= 2, what="malformed frames counted"
    )
    assert all(c.stats.connects == 1 for c in spine.md.connections)  # the feeds did not crash
    await _quiesce(spine)
    await _assert_books_match_truth(spine)


async def test_tick_size_change_starts_a_new_epoch(spine: Spine) -> None:
    await eventually(lambda: _all_valid(spine.md), what="all books valid")
    asset = spine.poly.markets[1]
    await maybe_await(spine.poly.change_tick_size(asset, "0.001"))
    await eventually(lambda: spine.md.books.book("polymarket", asset)["valid"], what="valid after new book")
    await _quiesce(spine)
    await _assert_books_match_truth(spine)


async def test_redis_restart_rewrites_every_book(spine: Spine, redis_server: EmbeddedRedis) -> None:
    await eventually(lambda: _all_valid(spine.md), what="all books valid")
    await spine.md.writer.flush()  # type: ignore[union-attr]
    redis_server.kill()
    await asyncio.sleep(0.3)  # the feed keeps running while Redis is down
    frames = spine.md.books.stats()["frames"]
    await asyncio.sleep(0.3)
    assert spine.md.books.stats()["frames"] > frames
    redis_server.start()
    async def all_keys_back() -> bool:
        try:
            return len(await spine.redis.keys("book:*")) == 6
        except Exception:
            return False
    await eventually(all_keys_back, timeout=8, what="every book rewritten after the restart")
    assert spine.md.writer.stats.errors >= 1  # type: ignore[union-attr]
    await _quiesce(spine)
    await _assert_redis_matches_books(spine)


async def test_kalshi_refuses_a_bad_signature(redis_server: EmbeddedRedis) -> None:
    poly = PolymarketSim(seed=3, markets=1)
    kal = KalshiSim(seed=3, markets=1, api_keys={KEY_ID: KEY.public_key()})
    await poly.start()
    await kal.start()
    cfg = _cfg(poly, kal)
    cfg.polymarket.enabled = False
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    md = MarketData(cfg, LocalHeaderSigner(KEY_ID, other), None)
    await md.start()
    try:
        conn = md.connections[0]
        await eventually(lambda: conn.stats.last_error, what="handshake error")
        assert "401" in conn.stats.last_error or "Unauthorized" in conn.stats.last_error
        assert conn.stats.connects == 0
        assert not md.freshness("kalshi", kal.markets[0]).fresh
    finally:
        await md.stop()
        await poly.stop()
        await kal.stop()


async def test_lost_polymarket_messages_are_caught_by_the_venue_top_and_resynced(spine: Spine) -> None:
    """A link that drops messages then recovers (shorter than the heartbeat timeout): Polymarket has
    no sequence numbers, so the venue's own best_bid/best_ask is what exposes the divergence."""
    await eventually(lambda: _all_valid(spine.md), what="all books valid")
    conn = next(c for c in spine.md.connections if c.venue == "polymarket")
    await maybe_await(spine.poly.stall_heartbeats(0.4))
    await eventually(lambda: conn.resyncs >= 1, timeout=5, what="a resync after lost messages")  # type: ignore[attr-defined]
    assert conn.stats.connects == 1  # healed by resubscribing, not by reconnecting
    await eventually(lambda: _all_valid(spine.md), what="books valid again")
    await _quiesce(spine)
    await _assert_books_match_truth(spine)


async def test_books_carry_no_verify_top_mismatch_in_normal_operation(spine: Spine) -> None:
    await eventually(lambda: _all_valid(spine.md), what="all books valid")
    await asyncio.sleep(1.0)
    assert spine.md.books.stats()["bba_mismatch"] == 0
