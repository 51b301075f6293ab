"""The fan-out hub with real parts: picows server, hundreds of real `websockets` clients, the venue
simulators through MarketData, a real Redis and a second hub *process* fed through it."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from crossbook_ext.fanout import stats as fanout_stats
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from crossbook.book.service import MarketData
from crossbook.config import Config
from crossbook.hub import (
    BookFeed,
    DemandTracker,
    FileUserStore,
    Hub,
    HubExecuteState,
    HubLimits,
    InMemoryUserStore,
    MarketDataUpstream,
    TopicPublisher,
)
from crossbook.hub.bridge import RedisBridgePublisher
from crossbook.hub.demand import AnyUpstream
from crossbook.signing import LocalHeaderSigner
from crossbook.store.embedded_redis import EmbeddedRedis
from crossbook.venues.kalshi.sim import KalshiSim
from crossbook.venues.polymarket.sim import PolymarketSim
from tests.conftest import eventually

ROOT = Path(__file__).resolve().parents[2]


async def client(url: str, token: str, topics: list[str], **kw: Any) -> ClientConnection:
    ws = await connect(url, compression=None, open_timeout=10, **kw)
    await ws.send(orjson.dumps({"op": "auth", "token": token, "id": 1}))
    ok = orjson.loads(await ws.recv())
    assert ok["type"] == "auth_ok", ok
    if topics:
        await ws.send(orjson.dumps({"op": "subscribe", "topics": topics, "id": 2}))
        sub = orjson.loads(await ws.recv())
        assert sub["type"] == "subscribed" and sub["topics"] == topics, sub
    return ws


@dataclass
class Reader:
    """Reads one client's stream and checks the sequence rule of docs/hub-protocol.md."""

    ws: ClientConnection
    last: dict[str, int] = field(default_factory=dict)
    gaps: int = 0
    latencies: list[float] = field(default_factory=list)
    seqs: dict[str, list[int]] = field(default_factory=dict)
    payloads: list[bytes] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def start(self) -> Reader:
        self.task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def _run(self) -> None:
        try:
            async for raw in self.ws:
                now = time.monotonic()
                msg = orjson.loads(raw)
                topic, seq = msg["topic"], msg["seq"]
                if msg["type"] == "update" and topic in self.last and seq != self.last[topic] + 1:
                    self.gaps += 1
                self.last[topic] = seq
                self.seqs.setdefault(topic, []).append(seq)
                self.payloads.append(raw if isinstance(raw, bytes) else raw.encode())
                if isinstance(msg["data"], dict) and "t" in msg["data"]:
                    self.latencies.append(now - msg["data"]["t"])
        except ConnectionClosed:
            pass


def p99(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=100)[98] if len(xs) > 2 else max(xs, default=0.0)


@pytest.fixture
async def hub() -> AsyncIterator[tuple[Hub, InMemoryUserStore]]:
    users = InMemoryUserStore()
    limits = HubLimits(max_paused_s=1.0, sndbuf_bytes=32 * 1024, max_buffered_bytes=256 * 1024,
                       max_subscriptions=5, msg_rate=50, msg_burst=10, max_violations=5)
    h = await Hub(users, demand=DemandTracker(AnyUpstream(), grace_s=0.3), limits=limits).start()
    yield h, users
    await h.stop()


async def test_300_clients_gap_free_and_a_slow_client_is_conflated_then_evicted(
    hub: tuple[Hub, InMemoryUserStore],
) -> None:
    h, users = hub
    pub = TopicPublisher([h])
    tokens = [users.add_user_sync(f"user{i}") for i in range(10)]
    topics = ["polymarket:A", "kalshi:K"]
    conns: list[ClientConnection] = []
    for start in range(0, 300, 50):  # batches: stay under the listen backlog
        conns += await asyncio.gather(*(
            client(h.url, tokens[i % 10], topics[: 1 + i % 2]) for i in range(start, start + 50)
        ))
    readers = [Reader(ws).start() for ws in conns]
    pad = "x" * 1500

    async def burst(n: int) -> None:
        for _ in range(n):
            for t in topics:
                pub.publish(t, {"t": time.monotonic(), "pad": pad})
            await asyncio.sleep(0.02)

    await burst(50)
    await eventually(lambda: all(r.last.get("polymarket:A") == 50 for r in readers), 10, what="phase 1")
    base = [x for r in readers for x in r.latencies]
    for r in readers:
        r.latencies.clear()

    # A client that stops reading: tiny receive buffer, and it never calls recv().
    before = h.connections
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", h.port))
    slow = await client(h.url, tokens[0], topics, sock=sock, max_queue=1)
    (slow_conn,) = h.connections - before

    await burst(100)
    await eventually(lambda: all(r.last.get("polymarket:A") == 150 for r in readers), 10, what="phase 2")
    await eventually(lambda: slow_conn.evicted, 5, what="slow client evicted")
    loaded = [x for r in readers for x in r.latencies]

    assert slow_conn.conflated > 0 and slow_conn.pauses >= 1
    assert slow_conn.evict_reason is not None and "slow consumer" in slow_conn.evict_reason
    assert len(slow_conn.pending_topics) == 0  # cleared on eviction; never more than its 2 topics
    assert h.evictions == 1
    assert sum(r.gaps for r in readers) == 0
    for i, r in enumerate(readers):
        assert r.seqs["polymarket:A"] == list(range(1, 151))
        if i % 2:
            assert r.seqs["kalshi:K"] == list(range(1, 151))
    print(f"\n300 clients: p99 {p99(base) * 1e3:.1f} ms without, {p99(loaded) * 1e3:.1f} ms with a stuck client")
    await slow.close()
    await asyncio.gather(*(ws.close() for ws in conns))


async def test_a_burst_per_turn_is_one_write_per_connection_in_publish_order(
    hub: tuple[Hub, InMemoryUserStore],
) -> None:
    """Several markets published in one loop turn (a feed dispatch) reach each client in one write."""
    h, users = hub
    pub = TopicPublisher([h])
    token = users.add_user_sync("frank")
    topics = ["polymarket:A", "polymarket:B", "kalshi:C", "execute:p1"]
    conns = await asyncio.gather(*(client(h.url, token, topics) for _ in range(20)))
    readers = [Reader(ws).start() for ws in conns]
    server_side = list(h.connections)
    assert len(server_side) == 20
    w0 = {c: c.writes for c in server_side}
    flushes0, _ = fanout_stats()
    turns = 30
    for _ in range(turns):
        for t in topics:  # one turn: no await between these publishes
            pub.publish(t, {"t": time.monotonic()})
        assert all(c.pending_frames == len(topics) for c in server_side)  # queued, not yet written
        await asyncio.sleep(0.005)
    await eventually(lambda: all(r.last.get(t) == turns for r in readers for t in topics), 10, what="all turns")
    for r in readers:
        assert r.gaps == 0
        assert all(r.seqs[t] == list(range(1, turns + 1)) for t in topics)
        order = [orjson.loads(p)["topic"] for p in r.payloads]
        assert order == topics * turns  # publish order within the turn, turn after turn
    for c in server_side:
        assert c.writes - w0[c] == turns and c.pending_frames == 0  # one write per connection per turn
    assert fanout_stats()[0] - flushes0 >= turns
    await asyncio.gather(*(ws.close() for ws in conns))


async def test_a_huge_burst_is_written_in_bounded_batches_in_order(hub: tuple[Hub, InMemoryUserStore]) -> None:
    h, users = hub
    pub = TopicPublisher([h])
    ws = await client(h.url, users.add_user_sync("gina"), ["kalshi:K"])
    r = Reader(ws).start()
    (conn,) = h.connections
    for _ in range(200):  # one turn
        pub.publish("kalshi:K", {"t": time.monotonic()})
        assert conn.pending_frames < 64  # a connection never holds more than one batch
    await eventually(lambda: r.last.get("kalshi:K") == 200, 10, what="200 updates")
    assert r.seqs["kalshi:K"] == list(range(1, 201)) and r.gaps == 0
    assert conn.writes == 4  # 64 + 64 + 64 written as they filled, 8 at the end of the turn
    await ws.close()


async def test_frames_queued_before_a_pause_are_conflated_then_snapshot_on_resume(
    hub: tuple[Hub, InMemoryUserStore],
) -> None:
    h, users = hub
    pub = TopicPublisher([h])
    ws = await client(h.url, users.add_user_sync("hank"), ["kalshi:K", "polymarket:P"])
    r = Reader(ws).start()
    (conn,) = h.connections
    pub.publish("kalshi:K", {"n": 1})
    await eventually(lambda: r.last.get("kalshi:K") == 1, what="first update")
    pub.publish("kalshi:K", {"n": 2})
    pub.publish("kalshi:K", {"n": 3})
    pub.publish("polymarket:P", {"n": 1})
    conn.pause_writing()  # the transport fills up after these were queued, before the end-of-turn write
    await asyncio.sleep(0.05)
    assert sorted(conn.pending_topics) == ["kalshi:K", "polymarket:P"] and conn.pending_frames == 0
    assert conn.conflated == 3
    pub.publish("kalshi:K", {"n": 4})  # while paused: conflated too
    assert r.seqs == {"kalshi:K": [1]}
    conn.resume_writing()
    await eventually(lambda: r.last.get("kalshi:K") == 4 and r.last.get("polymarket:P") == 1, what="snapshots")
    kinds = [(m["type"], m["topic"], m["seq"]) for m in map(orjson.loads, r.payloads)]
    assert kinds[0] == ("update", "kalshi:K", 1)
    assert sorted(kinds[1:]) == [("snapshot", "kalshi:K", 4), ("snapshot", "polymarket:P", 1)]
    assert orjson.loads(r.payloads[-1] if kinds[-1][1] == "kalshi:K" else r.payloads[-2])["data"] == {"n": 4}
    pub.publish("kalshi:K", {"n": 5})  # back to updates, no gap after the snapshot
    await eventually(lambda: r.last.get("kalshi:K") == 5, what="update after resume")
    assert r.gaps == 0
    await ws.close()


async def test_bad_token_is_refused_with_1008(hub: tuple[Hub, InMemoryUserStore]) -> None:
    h, users = hub
    users.add_user_sync("alice")
    async with connect(h.url) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "topics": ["kalshi:K"]}))
        assert orjson.loads(await ws.recv())["code"] == "not_authenticated"
        await ws.send(orjson.dumps({"op": "auth", "token": "cb_not-a-real-token"}))
        err = orjson.loads(await ws.recv())
        assert err["type"] == "error" and err["code"] == "auth_failed"
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 3)
        assert ws.close_code == 1008
    assert h.auth_failures == 1


async def test_limits_snapshot_request_and_execute_topic(hub: tuple[Hub, InMemoryUserStore]) -> None:
    h, users = hub
    token = users.add_user_sync("bob")
    pub = TopicPublisher([h])
    ex = HubExecuteState(pub)
    ex.publish_execute_state("pair-1", False, "Kalshi book stale for 2300 ms")
    ws = await client(h.url, token, ["execute:pair-1"])
    snap = orjson.loads(await ws.recv())
    assert snap["type"] == "snapshot" and snap["seq"] == 1
    assert snap["data"] == {"pair": "pair-1", "enabled": False, "reason": "Kalshi book stale for 2300 ms"}
    ex.publish_execute_state("pair-1", False, "Kalshi book stale for 2300 ms")  # no change: no message
    ex.publish_execute_state("pair-1", True, None)
    upd = orjson.loads(await ws.recv())
    assert (upd["type"], upd["seq"], upd["data"]["enabled"]) == ("update", 2, True)
    await ws.send(orjson.dumps({"op": "snapshot", "topic": "execute:pair-1"}))
    assert orjson.loads(await ws.recv())["seq"] == 2

    await ws.send(orjson.dumps({"op": "subscribe", "topics": ["nasdaq:AAPL"]}))
    assert orjson.loads(await ws.recv())["code"] == "bad_topic"
    await ws.send(orjson.dumps({"op": "subscribe", "topics": [f"kalshi:T{i}" for i in range(5)]}))
    assert orjson.loads(await ws.recv())["code"] == "too_many_subscriptions"
    # inbound rate: burst 10, then rate-limited errors, then closed after 5 violations
    for _ in range(30):
        await ws.send(orjson.dumps({"op": "ping"}))
    codes = []
    with pytest.raises(ConnectionClosed):
        while True:
            codes.append(orjson.loads(await asyncio.wait_for(ws.recv(), 3)).get("code"))
    assert "rate_limited" in codes and ws.close_code == 1008


async def test_one_upstream_per_market_released_after_grace(hub: tuple[Hub, InMemoryUserStore]) -> None:
    h, users = hub
    up = h.demand.upstream
    assert isinstance(up, AnyUpstream)
    token = users.add_user_sync("carol")
    a, b = await asyncio.gather(*(client(h.url, token, ["kalshi:FED"]) for _ in range(2)))
    assert (up.subscribes, h.demand.refs("kalshi:FED")) == (1, 2)
    await a.close()
    await eventually(lambda: h.demand.refs("kalshi:FED") == 1, what="ref released on disconnect")
    await b.send(orjson.dumps({"op": "unsubscribe", "topics": ["kalshi:FED"]}))
    await eventually(lambda: h.demand.refs("kalshi:FED") == 0, what="ref released on unsubscribe")
    assert "kalshi:FED" in up.active  # inside the grace period
    c = await client(h.url, token, ["kalshi:FED"])  # back within grace: no new upstream subscribe
    assert up.subscribes == 1 and up.unsubscribes == 0
    await c.close()
    await b.close()
    await eventually(lambda: "kalshi:FED" not in up.active, 3, what="upstream released after grace")
    assert (up.subscribes, up.unsubscribes) == (1, 1)


async def test_real_simulators_through_marketdata() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    poly = PolymarketSim(seed=5, markets=2, tick_interval=0.02)
    kal = KalshiSim(seed=5, markets=2, tick_interval=0.02, api_keys={"k": key.public_key()})
    await poly.start()
    await kal.start()
    cfg = Config()
    cfg.polymarket.ws_url, cfg.polymarket.assets = poly.ws_url, list(poly.markets)
    cfg.kalshi.ws_url, cfg.kalshi.markets = kal.ws_url, list(kal.markets)
    md = MarketData(cfg, LocalHeaderSigner("k", key), None)
    users = InMemoryUserStore()
    h = await Hub(users, demand=DemandTracker(MarketDataUpstream(md), grace_s=0)).start()
    feed = BookFeed(md.books, TopicPublisher([h]))
    md.add_change_consumer(feed.publish_changed)
    await md.start()
    try:
        topics = [f"polymarket:{poly.markets[0]}", f"kalshi:{kal.markets[0]}"]
        ws = await client(h.url, users.add_user_sync("dave"), topics)
        r = Reader(ws).start()
        await eventually(lambda: all(len(r.seqs.get(t, [])) >= 5 for t in topics), 10, what="sim updates")
        assert r.gaps == 0
        await ws.send(orjson.dumps({"op": "subscribe", "topics": ["kalshi:NOT-A-MARKET"]}))
        await eventually(lambda: h.demand.refs("kalshi:NOT-A-MARKET") == 0 and r.task is not None, what="ack")
        last = orjson.loads(r.payloads[-1])
        venue, market = last["topic"].split(":", 1)
        assert last["data"]["valid"] in (True, False) and md.books.top(venue, market)["ts"] >= last["data"]["ts"]
        await ws.close()
    finally:
        await md.stop()
        await h.stop()
        await poly.stop()
        await kal.stop()


async def test_second_hub_process_via_redis_delivers_the_same_sequence(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    redis_server.start()
    users_file = tmp_path / "users.json"
    store = FileUserStore(users_file)
    token = store.add_user_sync("erin")
    local = await Hub(store).start()
    bridge = RedisBridgePublisher(redis_server.url, prefix="t:hub")
    bridge.start()
    pub = TopicPublisher([local, bridge])
    pub.publish("polymarket:X", {"n": 0})  # before the remote hub exists: it seeds from Redis
    await bridge.flush()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crossbook", "hub", "--redis", redis_server.url, "--port", "0",
        "--users", str(users_file), "--prefix", "t:hub", "--seconds", "30",
        stdout=asyncio.subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "python")},
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        assert line.startswith("hub listening on ws://"), line
        remote_url = line.split()[3]
        a = Reader(await client(local.url, token, ["polymarket:X"])).start()
        b = Reader(await client(remote_url, token, ["polymarket:X"])).start()
        await eventually(lambda: a.seqs.get("polymarket:X") == [1] and b.seqs.get("polymarket:X") == [1],
                         what="both snapshots")
        for n in range(1, 200):
            pub.publish("polymarket:X", {"n": n})
            if n % 20 == 0:
                await asyncio.sleep(0.01)
        await eventually(lambda: b.last.get("polymarket:X") == 200, 10, what="remote hub caught up")
        assert a.seqs == b.seqs and a.seqs["polymarket:X"] == list(range(1, 201))
        assert a.payloads[1:] == b.payloads[1:]  # byte-identical updates after the snapshots
        assert a.gaps == b.gaps == 0
        await a.ws.close()
        await b.ws.close()
    finally:
        proc.terminate()
        await proc.wait()
        await bridge.stop()
        await local.stop()
