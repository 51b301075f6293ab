"""Several Kalshi connections into one BookSet, against the real Kalshi simulator.

Kalshi numbers subscriptions per WebSocket connection: every connection's first sid is 1 and its
seq starts at 1. The feed gives each connection (and each reconnect) its own stream id, so the
BookSet tracks sequence per (stream, sid): colliding sids never look like gaps, a real gap on one
connection heals with a snapshot asked on that connection, and a reconnect leaves the books of the
other connections alone. Snapshot requests are counted at the simulator, per connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from crossbook.book.service import MarketData
from crossbook.config import Config
from crossbook.signing import LocalHeaderSigner
from crossbook.venues.kalshi.feed import KalshiConnection
from crossbook.venues.kalshi.sim import KalshiSim
from tests.conftest import eventually

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEY_ID = "streams-key"


@dataclass
class Rig:
    kal: KalshiSim
    md: MarketData
    a: KalshiConnection  # carries kal.markets[0]
    b: KalshiConnection  # carries kal.markets[1]
    integrity: list[str] = field(default_factory=list)
    # get_snapshot requests seen at the simulator: (markets of that connection's orderbook sids, params)
    snapshot_asks: list[tuple[list[str], dict[str, Any]]] = field(default_factory=list)
    # markets seen invalid after their first valid book, checked after every frame of any connection
    went_invalid: set[str] = field(default_factory=set)

    @property
    def m_a(self) -> str:
        return self.kal.markets[0]

    @property
    def m_b(self) -> str:
        return self.kal.markets[1]

    def valid(self, market: str) -> bool:
        try:
            return bool(self.md.books.top("kalshi", market)["valid"])
        except KeyError:
            return False

    def matches_truth(self, market: str) -> bool:
        book = self.md.books.book("kalshi", market)
        truth = self.kal.book(market)
        ours = {side: [(Decimal(p), Decimal(s)) for p, s in book[side]] for side in ("bids", "asks")}
        return bool(book["valid"]) and ours == {"bids": truth["bids"], "asks": truth["asks"]}


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    kal = KalshiSim(seed=17, markets=3, tick_interval=0.01, api_keys={KEY_ID: KEY.public_key()}, ping_interval=0.2)
    await kal.start()
    cfg = Config()
    cfg.polymarket.enabled = False
    cfg.kalshi.ws_url = kal.ws_url
    cfg.kalshi.markets = list(kal.markets[:2])
    cfg.kalshi.max_markets_per_connection = 1  # one connection per market: their sids collide
    cfg.kalshi.ping_interval_s, cfg.kalshi.pong_timeout_s = 0.1, 2.0
    cfg.feed.reconnect_min_s, cfg.feed.reconnect_max_s = 0.05, 0.2
    md = MarketData(cfg, LocalHeaderSigner(KEY_ID, KEY), None)
    conns = [c for c in md.connections if isinstance(c, KalshiConnection)]
    assert [c.markets() for c in conns] == [(kal.markets[0],), (kal.markets[1],)]
    r = Rig(kal, md, conns[0], conns[1])
    md.add_integrity_listener(r.integrity.append)

    original_update = kal._update

    def recording_update(session: Any, conn: Any, cmd_id: int, params: Any) -> None:
        if isinstance(params, dict) and params.get("action") == "get_snapshot":
            carried = [m for s in conn.subs.values() if s.channel == "orderbook_delta" for m in s.markets]
            r.snapshot_asks.append((carried, dict(params)))
        original_update(session, conn, cmd_id, params)

    kal._update = recording_update  # type: ignore[method-assign]

    seen_valid: set[str] = set()
    for c in conns:
        notify = c.on_update

        def watch(notify: Any = notify) -> None:
            for m in (r.m_a, r.m_b):
                if r.valid(m):
                    seen_valid.add(m)
                elif m in seen_valid:
                    r.went_invalid.add(m)
            if notify is not None:
                notify()

        c.on_update = watch
    await md.start()
    try:
        await eventually(lambda: r.valid(r.m_a) and r.valid(r.m_b), timeout=10, what="both books valid")
        yield r
    finally:
        await md.stop()
        await kal.stop()


def _orderbook_sids(kal: KalshiSim) -> list[int]:
    return sorted(s["sid"] for s in kal.subscriptions() if s["channel"] == "orderbook_delta")


async def _stream_for(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def test_two_connections_with_colliding_sids_stream_without_false_gaps(rig: Rig) -> None:
    assert _orderbook_sids(rig.kal) == [1, 1]  # the collision this is about
    assert rig.a.stream != rig.b.stream and 0 not in (rig.a.stream, rig.b.stream)
    frames = rig.md.books.stats()["frames"]
    await _stream_for(1.0)
    assert rig.md.books.stats()["frames"] - frames > 50, "the simulator kept both books moving"
    assert rig.md.books.stats()["gaps"] == 0
    assert rig.integrity == []
    assert rig.snapshot_asks == []
    assert (rig.a.snapshot_requests, rig.b.snapshot_requests) == (0, 0)
    assert rig.went_invalid == set()
    rig.kal.pause_updates()
    await eventually(lambda: rig.matches_truth(rig.m_a) and rig.matches_truth(rig.m_b), what="books = truth")


async def test_real_gap_on_one_connection_heals_only_it_via_its_own_connection(rig: Rig) -> None:
    await _stream_for(0.2)
    assert rig.kal.skip_seq(rig.m_a) == 1  # only connection a's sid carries m_a
    await eventually(lambda: rig.a.snapshot_requests == 1, what="a snapshot asked")
    await eventually(lambda: rig.valid(rig.m_a), what="m_a rebuilt from the snapshot")
    await _stream_for(0.5)
    assert rig.md.books.stats()["gaps"] == 1
    assert rig.integrity == [f"{rig.a.name}: sequence gap"]
    assert rig.b.snapshot_requests == 0
    # asked once, at the venue, on the connection that carries m_a, for m_a on its sid
    assert len(rig.snapshot_asks) == 1
    carried, params = rig.snapshot_asks[0]
    assert carried == [rig.m_a]
    assert params["sids"] == [1] and params["market_tickers"] == [rig.m_a]
    assert rig.went_invalid == {rig.m_a}
    rig.kal.pause_updates()
    await eventually(lambda: rig.matches_truth(rig.m_a) and rig.matches_truth(rig.m_b), what="books = truth")


async def test_reconnect_does_not_invalidate_the_other_connections_markets(rig: Rig) -> None:
    await _stream_for(0.2)
    old_stream = rig.a.stream
    rig.a.kick("test: reconnect")
    await eventually(lambda: rig.a.stats.connects == 2 and rig.a.connected, timeout=10, what="a reconnected")
    assert rig.a.stream != old_stream  # a new connection is a new stream
    await eventually(lambda: rig.valid(rig.m_a), timeout=10, what="m_a resnapshotted on the new connection")
    await _stream_for(0.5)
    assert _orderbook_sids(rig.kal) == [1, 1]  # the new connection numbers from sid 1 again
    assert rig.md.books.stats()["gaps"] == 0
    assert rig.integrity == [f"{rig.a.name} disconnected"]
    assert rig.snapshot_asks == []
    assert rig.went_invalid == {rig.m_a}  # m_a while disconnected; m_b never
    assert rig.md.freshness("kalshi", rig.m_b).fresh
    rig.kal.pause_updates()
    await eventually(lambda: rig.matches_truth(rig.m_a) and rig.matches_truth(rig.m_b), what="books = truth")
