"""Demand-driven upstream subscriptions through the daemon's own wiring (``start_hub`` over a started
``MarketData``): real venue simulators, real users over WebSocket (``websockets``), real Redis.

However many users watch a market, the daemon holds one upstream subscription for it (counted at the
simulator); when the last user leaves it is released after the grace period; configured markets stay
pinned; a market the venue does not know reaches its users as ``unknown_market``; a reconnect
resubscribes the current set.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from crossbook.book.redis_writer import book_key
from crossbook.book.service import DemandUpstream, MarketData
from crossbook.config import Config
from crossbook.daemon import HubNode, build_safety, start_hub
from crossbook.hub import InMemoryUserStore
from crossbook.safety.breaker import PairLegs
from crossbook.signing import LocalHeaderSigner
from crossbook.store.embedded_redis import EmbeddedRedis
from crossbook.venues.kalshi.sim import KalshiSim
from crossbook.venues.polymarket.sim import PolymarketSim
from tests.conftest import eventually

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEY_ID = "md-key"
GRACE_S = 3.0  # long enough that "back within the grace" below is never a race on a busy machine


@dataclass
class Node:
    poly: PolymarketSim
    kal: KalshiSim
    md: MarketData
    hub: HubNode
    token: str
    redis: aioredis.Redis

    @property
    def upstream(self) -> DemandUpstream:
        up = self.hub.hub.demand.upstream
        assert isinstance(up, DemandUpstream)
        return up

    def sim(self, venue: str) -> PolymarketSim | KalshiSim:
        return self.poly if venue == "polymarket" else self.kal

    def upstream_holders(self, venue: str, market: str) -> int:
        """How many subscriptions at the venue carry ``market`` right now."""
        if venue == "polymarket":
            return sum(market in assets for assets in self.poly.subscribed_assets())
        return sum(market in s["markets"] for s in self.kal.subscriptions() if s["channel"] == "orderbook_delta")


@dataclass
class User:
    ws: ClientConnection
    msgs: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                self.msgs.append(orjson.loads(raw))

    def data(self, topic: str) -> list[dict[str, Any]]:
        return [m for m in self.msgs if m.get("topic") == topic and m["type"] in ("snapshot", "update")]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.msgs if m.get("type") == kind]

    async def subscribe(self, topics: list[str]) -> dict[str, Any]:
        n = len(self.of_type("subscribed"))
        await self.ws.send(orjson.dumps({"op": "subscribe", "topics": topics}))
        await eventually(lambda: len(self.of_type("subscribed")) > n, what="subscribed ack")
        return self.of_type("subscribed")[n]

    async def close(self) -> None:
        await self.ws.close()
        if self.task is not None:
            await asyncio.wait({self.task}, timeout=5)


async def user(node: Node, topics: list[str]) -> tuple[User, dict[str, Any]]:
    ws = await connect(node.hub.hub.url, max_queue=None)
    await ws.send(orjson.dumps({"op": "auth", "token": node.token}))
    assert orjson.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "auth_ok"
    u = User(ws)
    u.task = asyncio.get_running_loop().create_task(u._read())
    ack = await u.subscribe(topics)
    return u, ack


def config(poly: PolymarketSim, kal: KalshiSim, tmp_path: Path) -> Config:
    cfg = Config()
    cfg.state_dir = str(tmp_path / "state")
    cfg.polymarket.ws_url, cfg.polymarket.assets = poly.ws_url, [poly.markets[0]]  # pinned
    cfg.kalshi.ws_url, cfg.kalshi.markets = kal.ws_url, [kal.markets[0]]  # pinned
    for v in (cfg.polymarket, cfg.kalshi):
        v.ping_interval_s, v.pong_timeout_s = 0.1, 2.0
    cfg.feed.reconnect_min_s, cfg.feed.reconnect_max_s = 0.05, 0.2
    cfg.feed.snapshot_timeout_s = 1.5
    cfg.feed.empty_connection_grace_s = 0.3
    cfg.hub.port = 0
    cfg.hub.upstream_grace_s = GRACE_S
    return cfg


@pytest.fixture
async def node_factory(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[Any]:
    made: list[Node] = []

    async def make(**overrides: Any) -> Node:
        poly = PolymarketSim(seed=21, markets=3, tick_interval=0.05)
        kal = KalshiSim(seed=21, markets=3, tick_interval=0.05, api_keys={KEY_ID: KEY.public_key()})
        await poly.start()
        await kal.start()
        cfg = config(poly, kal, tmp_path)
        for k, v in overrides.items():
            section, name = k.split("__")
            setattr(getattr(cfg, section), name, v)
        md = MarketData(cfg, LocalHeaderSigner(KEY_ID, KEY), redis_server.url)
        await md.start()
        breaker, _ = build_safety(cfg, md)
        users = InMemoryUserStore()
        token = users.add_user_sync("trader")
        hub = await start_hub(cfg, md, breaker, redis_server.url, users=users)
        n = Node(poly, kal, md, hub, token, redis_client)
        made.append(n)
        return n

    yield make
    for n in made:
        await n.hub.stop()
        await n.md.stop()
        await n.poly.stop()
        await n.kal.stop()


@pytest.mark.parametrize("venue", ["kalshi", "polymarket"])
async def test_one_upstream_subscription_per_market_released_after_grace(venue: str, node_factory: Any) -> None:
    node: Node = await node_factory()
    sim = node.sim(venue)
    pinned, market = sim.markets[0], sim.markets[1]
    topic = f"{venue}:{market}"
    assert not node.md.is_streamed(venue, market)

    # the first user of an unstreamed market: one upstream subscription, then its book and updates
    first, ack = await user(node, [topic])
    assert ack["topics"] == [topic] and ack["failed"] == [], ack
    await eventually(lambda: len(first.data(topic)) >= 4, timeout=15, what=f"{topic} data")
    msgs = first.data(topic)
    assert msgs[0]["data"]["valid"] is True and msgs[0]["data"]["bid"] is not None, msgs[0]
    seqs = [m["seq"] for m in msgs]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    assert sim.stats[f"subscribe:{market}"] == 1 and node.upstream_holders(venue, market) == 1

    # 99 more users (100 in all): still one upstream subscription
    others = await asyncio.gather(*(user(node, [topic]) for _ in range(99)))
    everyone = [first] + [u for u, _ in others]
    await eventually(lambda: all(u.data(topic) for u in everyone), timeout=20, what="every user has data")
    assert node.hub.hub.demand.refs(topic) == 100
    assert sim.stats[f"subscribe:{market}"] == 1 and node.upstream_holders(venue, market) == 1
    assert node.upstream.subscribes == 1

    # all leave: inside the grace the subscription is kept; one user back within it reuses it
    await asyncio.gather(*(u.close() for u in everyone))
    await eventually(lambda: node.hub.hub.demand.refs(topic) == 0, timeout=10, what="every ref released")
    assert sim.stats[f"unsubscribe:{market}"] == 0 and node.upstream_holders(venue, market) == 1
    back, _ = await user(node, [topic])
    await eventually(lambda: back.data(topic), timeout=5, what="returning user has data")
    assert back.data(topic)[0]["type"] == "snapshot" and back.data(topic)[0]["data"]["valid"] is True
    assert sim.stats[f"subscribe:{market}"] == 1 and node.upstream.subscribes == 1
    await back.close()

    # released after the grace: one unsubscribe at the venue, the book invalid, Redis says so
    await eventually(lambda: sim.stats[f"unsubscribe:{market}"] == 1, timeout=GRACE_S + 10,
                     what="upstream released after the grace")
    assert node.upstream_holders(venue, market) == 0 and node.upstream.unsubscribes == 1
    assert node.md.books.book(venue, market)["reason"] == "unsubscribed"
    f = node.md.freshness(venue, market)
    assert not f.fresh and f.reason is not None and "unsubscribed" in f.reason

    async def redis_valid() -> bytes | None:
        v: bytes | None = await node.redis.hget(book_key("book", venue, market), "valid")
        return v

    await eventually(lambda: _eq(redis_valid(), b"0"), timeout=5, what="Redis valid=0 for the released book")
    # the configured market was never touched
    assert node.upstream_holders(venue, pinned) == 1 and sim.stats[f"unsubscribe:{pinned}"] == 0
    assert node.md.freshness(venue, pinned).valid

    # a user after the release: a second upstream subscription, and a valid book again
    late, _ = await user(node, [topic])
    await eventually(lambda: any(m["data"]["valid"] for m in late.data(topic)), timeout=15,
                     what="valid data after subscribing again")
    assert sim.stats[f"subscribe:{market}"] == 2 and node.upstream_holders(venue, market) == 1
    assert node.md.freshness(venue, market).valid
    await late.close()


async def _eq(value: Any, want: Any) -> bool:
    return bool(await value == want)


async def test_released_leg_of_a_pair_is_not_healthy_and_a_pinned_one_is_never_released(node_factory: Any) -> None:
    node: Node = await node_factory(hub__upstream_grace_s=0.2)
    pm, km = node.poly.markets[1], node.kal.markets[1]
    topics = [f"polymarket:{pm}", f"kalshi:{km}"]
    u, _ = await user(node, topics)
    await eventually(lambda: all(u.data(t) for t in topics), timeout=15, what="both legs streamed")
    # a pair over these legs (as if added at run time): healthy while users keep the legs streamed
    from crossbook.safety.breaker import Breaker

    breaker = Breaker(node.md, stale_after_ms=2000)
    breaker.add_pair(PairLegs("dyn", pm, km))
    await eventually(lambda: breaker.evaluate("dyn").enabled, timeout=10, what="pair enabled on live legs")
    await u.close()
    await eventually(lambda: not node.md.is_streamed("kalshi", km), timeout=10, what="legs released")
    st = breaker.evaluate("dyn")
    assert not st.enabled and any("book invalid: unsubscribed" in r for r in st.reasons), st
    # releasing a configured market is refused
    assert node.md.remove_market("kalshi", node.kal.markets[0]) is False
    assert node.md.is_streamed("kalshi", node.kal.markets[0])


@pytest.mark.parametrize("venue,bad", [("kalshi", "KXNOPE-26DEC-X"), ("polymarket", "12345678901234567890")])
async def test_market_unknown_at_the_venue_is_a_clear_error(venue: str, bad: str, node_factory: Any) -> None:
    node: Node = await node_factory()
    topic = f"{venue}:{bad}"
    u, ack = await user(node, [topic])
    assert ack["topics"] == [topic], ack  # accepted: only the venue can say it does not exist
    await eventually(lambda: u.of_type("error"), timeout=10, what="unknown_market error")
    err = u.of_type("error")[0]
    assert err["code"] == "unknown_market" and err["topic"] == topic and bad in err["message"], err
    assert node.hub.hub.demand.refs(topic) == 0 and topic not in node.hub.hub.demand.held()
    assert not node.md.is_streamed(venue, bad)
    # asked again right away: refused at once, without another venue round trip
    again = await u.subscribe([topic])
    assert again["topics"] == [] and again["failed"][0]["code"] == "unknown_market", again
    # the connection and its other markets are unaffected
    good = f"{venue}:{node.sim(venue).markets[2]}"
    await u.subscribe([good])
    await eventually(lambda: any(m["data"]["valid"] for m in u.data(good)), timeout=15, what="a real market")
    await u.close()


async def test_reconnect_resubscribes_the_current_set(node_factory: Any) -> None:
    node: Node = await node_factory(hub__upstream_grace_s=0.2)
    kept = {"polymarket": node.poly.markets[1], "kalshi": node.kal.markets[1]}
    gone = {"polymarket": node.poly.markets[2], "kalshi": node.kal.markets[2]}
    u, _ = await user(node, [f"{v}:{m}" for v, m in kept.items()])
    w, _ = await user(node, [f"{v}:{m}" for v, m in gone.items()])
    await eventually(lambda: all(u.data(f"{v}:{m}") for v, m in kept.items()), timeout=15, what="kept data")
    await w.close()
    await eventually(lambda: not any(node.md.is_streamed(v, m) for v, m in gone.items()), timeout=10,
                     what="released")
    connects = {id(c): c.stats.connects for c in node.md.connections}
    assert node.poly.drop_connections() >= 1 and node.kal.drop_connections() >= 1
    await eventually(lambda: all(c.connected and c.stats.connects > connects.get(id(c), 0)
                                 for c in node.md.connections), timeout=15, what="feeds reconnected")
    for venue, sim in (("polymarket", node.poly), ("kalshi", node.kal)):
        await eventually(lambda venue=venue: node.upstream_holders(venue, kept[venue]) == 1, timeout=10,
                         what=f"{venue} resubscribed the on-demand market")
        assert node.upstream_holders(venue, sim.markets[0]) == 1  # pinned
        assert node.upstream_holders(venue, gone[venue]) == 0  # released stays released
    # the user kept on the same topics sees valid data again after the reconnect
    for venue, market in kept.items():
        topic = f"{venue}:{market}"
        n = len(u.data(topic))
        await eventually(lambda topic=topic, n=n: any(m["data"]["valid"] for m in u.data(topic)[n:]),
                         timeout=15, what=f"{topic} valid after reconnect")
    await u.close()


async def test_polymarket_connection_limit_opens_and_closes_connections(node_factory: Any) -> None:
    node: Node = await node_factory(polymarket__max_assets_per_connection=2, hub__upstream_grace_s=0.2)
    extra = [a for a in node.poly.assets if a != node.poly.markets[0]][:3]
    u, _ = await user(node, [f"polymarket:{a}" for a in extra])
    await eventually(lambda: all(u.data(f"polymarket:{a}") for a in extra), timeout=15, what="data for all")
    # 1 pinned + 3 on demand at 2 per connection: two connections, each within the limit
    assert sorted(len(s) for s in node.poly.subscribed_assets()) == [2, 2]
    assert len([c for c in node.md.connections if c.venue == "polymarket"]) == 2
    await u.close()
    await eventually(lambda: len(node.poly.subscribed_assets()) == 1, timeout=10,
                     what="the emptied connection closed after its grace")
    assert node.poly.subscribed_assets() == [[node.poly.markets[0]]]
    assert len([c for c in node.md.connections if c.venue == "polymarket"]) == 1


async def test_kalshi_on_demand_only_opens_then_closes_its_connection(node_factory: Any) -> None:
    node: Node = await node_factory(kalshi__markets=[], hub__upstream_grace_s=0.2)
    assert not [c for c in node.md.connections if c.venue == "kalshi"]
    a, b, c = node.kal.markets
    # two markets asked at once ride one new connection and one subscription
    u, _ = await user(node, [f"kalshi:{a}", f"kalshi:{b}"])
    await eventually(lambda: all(any(m["data"]["valid"] for m in u.data(f"kalshi:{t}")) for t in (a, b)),
                     timeout=15, what="both on-demand Kalshi markets valid")
    # a third, later: added to that subscription's sid (update_subscription add_markets)
    await u.subscribe([f"kalshi:{c}"])
    await eventually(lambda: any(m["data"]["valid"] for m in u.data(f"kalshi:{c}")), timeout=15,
                     what="the added market valid")
    subs = [s for s in node.kal.subscriptions() if s["channel"] == "orderbook_delta"]
    assert len(subs) == 1 and sorted(subs[0]["markets"]) == sorted([a, b, c]), subs
    await u.close()
    await eventually(lambda: not node.kal.subscriptions(), timeout=10, what="subscription and connection gone")
    assert all(node.kal.stats[f"unsubscribe:{t}"] == 1 for t in (a, b, c))
    await eventually(lambda: not [c for c in node.md.connections if c.venue == "kalshi"], timeout=5,
                     what="the empty Kalshi connection closed")


async def test_kalshi_feed_finds_the_unknown_ticker_in_a_refused_batch_and_adds_while_subscribing() -> None:
    """Feed level, against the real simulator: the venue refuses a whole `subscribe` for one unknown
    ticker (error 16); the feed subscribes one ticker, then adds the others one per command, so the
    unknown one is named by its own refusal and the rest stream. A market added while a subscribe is
    still unacknowledged joins the sid once the ack names it."""
    from crossbook._core import BookSet
    from crossbook.venues.kalshi.feed import KalshiConnection

    kal = KalshiSim(seed=3, markets=3, tick_interval=0.05, api_keys={KEY_ID: KEY.public_key()})
    await kal.start()
    cfg = Config()
    cfg.kalshi.ws_url, cfg.kalshi.ping_interval_s = kal.ws_url, 0.2
    books = BookSet()
    a, b, c = kal.markets

    class AddOnConnect(KalshiConnection):
        """Adds a market in the very callback that sends the subscribe: before any ack can exist."""

        add_on_connect: str | None = None

        def subscribe_messages(self) -> list[bytes]:
            msgs = super().subscribe_messages()
            if self.add_on_connect is not None:
                market, self.add_on_connect = self.add_on_connect, None
                assert self._subscribing and self._sid is None
                self.add_market(market)
            return msgs

    conn = AddOnConnect("kalshi#t", [a, "KXNOPE-1", b], books, cfg.kalshi, cfg.feed, LocalHeaderSigner(KEY_ID, KEY))
    refused: list[tuple[str, str]] = []
    conn.on_rejected = lambda market, reason: refused.append((market, reason))
    conn.start()
    try:
        await eventually(lambda: refused, timeout=10, what="the unknown ticker refused")
        assert [m for m, _ in refused] == ["KXNOPE-1"] and "error 16" in refused[0][1]
        await eventually(lambda: all(_valid(books, t) for t in (a, b)), timeout=10, what="the known ones stream")
        assert conn.markets() == (a, b)
        # a fresh connection: c is added while its subscribe is unacknowledged
        conn.add_on_connect = c
        conn.kick("test: reconnect")
        await eventually(lambda: conn.stats.connects == 2 and conn.add_on_connect is None, timeout=10,
                         what="reconnected")
        await eventually(lambda: all(_valid(books, t) for t in (a, b, c)), timeout=10, what="all three valid")
        subs = [s for s in kal.subscriptions() if s["channel"] == "orderbook_delta"]
        assert len(subs) == 1 and sorted(subs[0]["markets"]) == sorted([a, b, c]), subs
    finally:
        await conn.stop()
        await kal.stop()


def _valid(books: Any, market: str) -> bool:
    try:
        return bool(books.top("kalshi", market)["valid"])
    except KeyError:
        return False


async def test_on_demand_markets_are_bounded_per_venue(node_factory: Any) -> None:
    node: Node = await node_factory(feed__max_on_demand_markets=1)
    first, second = (f"kalshi:{m}" for m in node.kal.markets[1:3])
    u, ack = await user(node, [first, second])
    assert ack["topics"] == [first] and [f["topic"] for f in ack["failed"]] == [second], ack
    assert ack["failed"][0]["code"] == "unknown_market"
    assert node.kal.stats[f"subscribe:{node.kal.markets[2]}"] == 0
    # configured markets are not counted against the bound
    pinned = f"kalshi:{node.kal.markets[0]}"
    assert (await u.subscribe([pinned]))["topics"] == [pinned]
    await u.close()
