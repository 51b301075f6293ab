"""Demand from hub nodes fed through Redis reaches the feed node: real venue simulators, the daemon's own
wiring (``start_hub`` over a started ``MarketData``), real Redis, hub nodes in-process (a ``Hub`` with
``RedisDemandUpstream`` + ``RedisBridgeSubscriber``, as ``crossbook hub`` builds it) or as a real
``crossbook hub --redis`` process, and real users over WebSocket (``websockets``).

A node's user subscribing a market the daemon does not stream opens one upstream subscription (counted
at the simulator) and gets a book then sequenced updates; the node's users leaving release it after the
daemon's grace; a killed node's leases expire and are released; a market the venue refuses reaches the
node's users as ``unknown_market``; Redis going away costs nothing before the leases expire, and the
leases come back with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from crossbook.hub import FileUserStore, Hub, InMemoryUserStore
from crossbook.hub.bridge import (
    DEFAULT_PREFIX,
    RedisBridgeSubscriber,
    RedisDemandUpstream,
    RemoteDemand,
    demand_key,
    demand_nodes_key,
)
from crossbook.hub.demand import DemandTracker
from crossbook.store.embedded_redis import EmbeddedRedis
from tests.conftest import eventually
from tests.hub.test_dynamic_upstream import Node, User, node_factory  # noqa: F401 (the fixture)

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "python")}


@dataclass
class RemoteNode:
    """A hub node fed through Redis, built as ``crossbook hub --redis`` builds it."""

    hub: Hub
    leases: RedisDemandUpstream
    sub: RedisBridgeSubscriber
    token: str

    async def stop(self) -> None:
        await self.sub.stop()
        await self.hub.stop()
        await self.leases.stop()


@pytest.fixture
async def remote_factory(redis_server: EmbeddedRedis) -> AsyncIterator[Any]:
    made: list[RemoteNode] = []

    async def make(node_id: str = "n1", lease_s: float = 1.5) -> RemoteNode:
        users = InMemoryUserStore()
        token = users.add_user_sync("remote")
        leases = RedisDemandUpstream(redis_server.url, node_id=node_id, lease_s=lease_s)
        hub = await Hub(users, demand=DemandTracker(leases, grace_s=0)).start()
        leases.start()
        sub = RedisBridgeSubscriber(redis_server.url, hub, leases=leases)
        sub.start()
        await asyncio.wait_for(sub.ready.wait(), 10)
        n = RemoteNode(hub, leases, sub, token)
        made.append(n)
        return n

    yield make
    for n in made:
        with contextlib.suppress(Exception):
            await n.stop()


async def ws_user(url: str, token: str, topics: list[str]) -> tuple[User, dict[str, Any]]:
    ws = await connect(url, max_queue=None)
    await ws.send(orjson.dumps({"op": "auth", "token": token}))
    assert orjson.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "auth_ok"
    u = User(ws)
    u.task = asyncio.get_running_loop().create_task(u._read())
    return u, await u.subscribe(topics)


def remote(node: Node) -> RemoteDemand:
    assert node.hub.remote is not None
    return node.hub.remote


def consecutive(msgs: list[dict[str, Any]]) -> bool:
    seqs = [m["seq"] for m in msgs]
    return seqs == list(range(seqs[0], seqs[0] + len(seqs)))


@pytest.mark.parametrize("venue", ["kalshi", "polymarket"])
async def test_a_node_user_opens_one_upstream_subscription_released_after_the_grace(
    venue: str, node_factory: Any, remote_factory: Any  # noqa: F811
) -> None:
    node: Node = await node_factory(hub__upstream_grace_s=1.5)
    far: RemoteNode = await remote_factory()
    sim = node.sim(venue)
    pinned, market = sim.markets[0], sim.markets[1]
    topic = f"{venue}:{market}"
    assert not node.md.is_streamed(venue, market)

    first, ack = await ws_user(far.hub.url, far.token, [topic])
    assert ack["topics"] == [topic] and ack["failed"] == [], ack
    await eventually(lambda: len(first.data(topic)) >= 4, timeout=15, what=f"{topic} data on the node")
    msgs = first.data(topic)
    assert msgs[0]["data"]["valid"] is True and msgs[0]["data"]["bid"] is not None, msgs[0]
    assert consecutive(msgs), [m["seq"] for m in msgs]
    assert sim.stats[f"subscribe:{market}"] == 1 and node.upstream_holders(venue, market) == 1
    assert remote(node).leases(topic) == 1 and node.hub.hub.demand.refs(topic) == 1
    assert await node.redis.smembers(demand_key(DEFAULT_PREFIX, "n1")) == {topic.encode()}
    assert await node.redis.sismember(demand_nodes_key(DEFAULT_PREFIX), "n1")

    # more users of the market, on the node and on the daemon itself: still one upstream subscription
    second, _ = await ws_user(far.hub.url, far.token, [topic])
    local, _ = await ws_user(node.hub.hub.url, node.token, [topic])
    await eventually(lambda: second.data(topic) and local.data(topic), timeout=10, what="everyone has data")
    assert second.data(topic)[0]["type"] == "snapshot" and consecutive(second.data(topic))
    assert node.hub.hub.demand.refs(topic) == 2  # one lease for the node, one user here
    assert sim.stats[f"subscribe:{market}"] == 1 and node.upstream_holders(venue, market) == 1
    await local.close()

    # the node's users leave: the lease is withdrawn at once, the daemon keeps the market for its grace
    await first.close()
    await second.close()
    await eventually(lambda: node.hub.hub.demand.refs(topic) == 0, timeout=5, what="the lease withdrawn")
    left = time.monotonic()
    assert remote(node).leases(topic) == 0 and sim.stats[f"unsubscribe:{market}"] == 0
    assert await node.redis.exists(demand_key(DEFAULT_PREFIX, "n1")) == 0
    await eventually(lambda: sim.stats[f"unsubscribe:{market}"] == 1, timeout=10, what="released after the grace")
    assert time.monotonic() - left >= 1.0  # the grace (1.5 s), give or take a poll
    assert node.upstream_holders(venue, market) == 0
    assert node.upstream_holders(venue, pinned) == 1 and sim.stats[f"unsubscribe:{pinned}"] == 0

    # back on the node after the release: subscribed again upstream, valid data again
    late, _ = await ws_user(far.hub.url, far.token, [topic])
    await eventually(lambda: any(m["data"]["valid"] for m in late.data(topic)), timeout=15,
                     what="valid data after subscribing again")
    assert sim.stats[f"subscribe:{market}"] == 2
    await late.close()


async def test_a_killed_node_s_leases_expire_and_are_released(
    node_factory: Any, redis_server: EmbeddedRedis, tmp_path: Path  # noqa: F811
) -> None:
    node: Node = await node_factory(hub__upstream_grace_s=0.5)
    users_file = tmp_path / "users.json"
    token = FileUserStore(users_file).add_user_sync("kate")
    market, pinned = node.kal.markets[2], node.kal.markets[0]
    topics = [f"kalshi:{market}", f"kalshi:{pinned}"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crossbook", "hub", "--redis", redis_server.url, "--port", "0",
        "--users", str(users_file), "--lease", "2", "--node-id", "doomed", "--seconds", "120",
        stdout=asyncio.subprocess.PIPE, cwd=ROOT, env=ENV)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("hub listening on ws://") and "node doomed" in line, line
        u, ack = await ws_user(line.split()[3], token, topics)
        assert ack["topics"] == topics, ack
        await eventually(lambda: len(u.data(topics[0])) >= 3, timeout=15, what="data through the node process")
        assert consecutive(u.data(topics[0])) and u.data(topics[0])[0]["data"]["valid"] is True
        assert node.kal.stats[f"subscribe:{market}"] == 1 and remote(node).leases(topics[0]) == 1
        assert remote(node).leases(topics[1]) == 1  # a pinned market leased: counted, never released

        proc.kill()  # no goodbye: the leases stay in Redis until their TTL runs out
        await proc.wait()
        killed = time.monotonic()
        await asyncio.sleep(0.5)
        assert remote(node).leases(topics[0]) == 1 and node.kal.stats[f"unsubscribe:{market}"] == 0
        await eventually(lambda: node.kal.stats[f"unsubscribe:{market}"] == 1, timeout=15,
                         what="the dead node's market released")
        assert time.monotonic() - killed >= 1.5  # not before the lease (2 s) expired
        assert remote(node).leases(topics[0]) == 0 and "doomed" not in remote(node).held
        assert node.upstream_holders("kalshi", market) == 0
        assert node.md.is_streamed("kalshi", pinned) and node.kal.stats[f"unsubscribe:{pinned}"] == 0
        await eventually(lambda: _not_member(node.redis, "doomed"), timeout=5, what="the dead node forgotten")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _not_member(r: aioredis.Redis, node_id: str) -> bool:
    return not await r.sismember(demand_nodes_key(DEFAULT_PREFIX), node_id)


@pytest.mark.parametrize("venue,bad", [("kalshi", "KXNOPE-26DEC-X"), ("polymarket", "12345678901234567890")])
async def test_a_market_unknown_at_the_venue_reaches_the_node_s_users(
    venue: str, bad: str, node_factory: Any, remote_factory: Any  # noqa: F811
) -> None:
    node: Node = await node_factory()
    far: RemoteNode = await remote_factory()
    topic = f"{venue}:{bad}"
    u, ack = await ws_user(far.hub.url, far.token, [topic])
    assert ack["topics"] == [topic], ack  # accepted: only the venue can say it does not exist
    await eventually(lambda: u.of_type("error"), timeout=10, what="unknown_market on the node")
    err = u.of_type("error")[0]
    assert err["code"] == "unknown_market" and err["topic"] == topic and bad in err["message"], err
    assert far.hub.demand.refs(topic) == 0 and topic not in far.leases.active
    assert remote(node).leases(topic) == 0 and not node.md.is_streamed(venue, bad)
    await eventually(lambda: _lease_gone(node.redis, topic), timeout=5, what="the node stops leasing it")
    # asked again on the node: refused at once
    again = await u.subscribe([topic])
    assert again["topics"] == [] and again["failed"][0]["code"] == "unknown_market", again
    # the connection and its other markets are unaffected
    good = f"{venue}:{node.sim(venue).markets[2]}"
    await u.subscribe([good])
    await eventually(lambda: any(m["data"]["valid"] for m in u.data(good)), timeout=15, what="a real market")
    await u.close()


async def _lease_gone(r: aioredis.Redis, topic: str) -> bool:
    return not await r.sismember(demand_key(DEFAULT_PREFIX, "n1"), topic)


async def test_a_market_past_the_daemon_s_bound_is_refused_to_the_node(
    node_factory: Any, remote_factory: Any  # noqa: F811
) -> None:
    node: Node = await node_factory(feed__max_on_demand_markets=1)
    far: RemoteNode = await remote_factory()
    first, second = (f"kalshi:{m}" for m in node.kal.markets[1:3])
    u, _ = await ws_user(far.hub.url, far.token, [first])
    await eventually(lambda: u.data(first), timeout=15, what="the first market")
    await u.subscribe([second])  # accepted by the node; the daemon has no room for it
    await eventually(lambda: u.of_type("error"), timeout=10, what="the refusal on the node")
    err = u.of_type("error")[0]
    assert err["code"] == "unknown_market" and err["topic"] == second, err
    assert node.kal.stats[f"subscribe:{node.kal.markets[2]}"] == 0
    await u.close()


async def test_redis_down_keeps_the_leases_until_they_expire_and_they_come_back_with_it(
    node_factory: Any, remote_factory: Any, redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    caplog.set_level(logging.WARNING, logger="crossbook.hub.bridge")
    node: Node = await node_factory(hub__upstream_grace_s=0.3)
    far: RemoteNode = await remote_factory(lease_s=3.0)
    market = node.kal.markets[1]
    topic = f"kalshi:{market}"
    u, _ = await ws_user(far.hub.url, far.token, [topic])
    await eventually(lambda: len(u.data(topic)) >= 2, timeout=15, what="data on the node")
    assert far.leases.connected
    try:
        await asyncio.to_thread(redis_server.stop)
        down = time.monotonic()
        await eventually(lambda: not far.leases.connected, timeout=10, what="the node sees Redis down")
        # the node keeps serving its users what it has (a snapshot on request), the daemon keeps the lease
        await u.ws.send(orjson.dumps({"op": "snapshot", "topic": topic}))
        await eventually(lambda: any(m["type"] == "snapshot" for m in u.data(topic)), timeout=5,
                         what="a snapshot from the node while Redis is down")
        assert remote(node).leases(topic) == 1 and node.kal.stats[f"unsubscribe:{market}"] == 0
        await eventually(lambda: node.kal.stats[f"unsubscribe:{market}"] == 1, timeout=15,
                         what="released once the lease expired unrefreshed")
        assert time.monotonic() - down >= 1.5
    finally:
        await asyncio.to_thread(redis_server.start)
    # Redis back: the node re-publishes its leases, the daemon streams the market again
    await eventually(lambda: far.leases.connected, timeout=15, what="the node re-published its leases")
    await eventually(lambda: node.kal.stats[f"subscribe:{market}"] == 2, timeout=15, what="subscribed again")
    n = len(u.data(topic))
    await eventually(lambda: len(u.data(topic)) >= n + 3 and u.data(topic)[-1]["data"]["valid"], timeout=15,
                     what="valid updates on the node again")
    assert remote(node).leases(topic) == 1
    said = [r.getMessage() for r in caplog.records if r.name == "crossbook.hub.bridge"]
    assert sum("hub node n1: cannot lease its 1 market(s) in Redis" in m for m in said) == 1, said  # once
    assert any("hub node n1: Redis is back; re-published 1 lease(s)" in m for m in said), said
    assert any("hub remote demand: cannot read the hub nodes' leases" in m for m in said), said
    await u.close()


async def test_a_node_that_stops_cleanly_withdraws_its_leases_at_once(
    node_factory: Any, redis_server: EmbeddedRedis, tmp_path: Path  # noqa: F811
) -> None:
    node: Node = await node_factory(hub__upstream_grace_s=0.5)
    users_file = tmp_path / "users.json"
    token = FileUserStore(users_file).add_user_sync("lea")
    market = node.poly.markets[1]
    topic = f"polymarket:{market}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crossbook", "hub", "--redis", redis_server.url, "--port", "0",
        "--users", str(users_file), "--lease", "60", "--seconds", "120",
        stdout=asyncio.subprocess.PIPE, cwd=ROOT, env=ENV)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        u, _ = await ws_user(line.split()[3], token, [topic])
        await eventually(lambda: u.data(topic), timeout=15, what="data through the node process")
        assert node.poly.stats[f"subscribe:{market}"] == 1
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        # a 60 s lease, yet released after the daemon's grace: the node withdrew it on its way out
        await eventually(lambda: node.poly.stats[f"unsubscribe:{market}"] == 1, timeout=10,
                         what="released after a clean stop")
        assert not remote(node).held
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_leases_already_in_redis_are_picked_up_and_junk_is_ignored(
    node_factory: Any, remote_factory: Any, redis_server: EmbeddedRedis  # noqa: F811
) -> None:
    node: Node = await node_factory()
    far: RemoteNode = await remote_factory(lease_s=30.0)
    await remote(node).stop()  # the daemon is away (restarting) while the node's users subscribe
    market = node.kal.markets[1]
    topic = f"kalshi:{market}"
    u, ack = await ws_user(far.hub.url, far.token, [topic])
    assert ack["topics"] == [topic], ack
    await eventually(lambda: _lease_there(node.redis, topic), timeout=5, what="the node leased it")
    junk = demand_key(DEFAULT_PREFIX, "junk")  # a confused node: nothing here is a market to stream
    await node.redis.sadd(junk, "kalshi:", "execute:p", "private:kalshi", "nonsense")
    await node.redis.pexpire(junk, 30_000)
    await node.redis.sadd(demand_nodes_key(DEFAULT_PREFIX), "junk")
    assert node.kal.stats[f"subscribe:{market}"] == 0 and not u.data(topic)

    back = RemoteDemand(redis_server.url, node.hub.hub.demand)  # the daemon is back: it reads what is leased
    node.hub.remote = back
    back.start()
    await eventually(lambda: len(u.data(topic)) >= 3, timeout=15, what="data once the daemon read the lease")
    assert u.data(topic)[0]["data"]["valid"] is True and consecutive(u.data(topic))
    assert node.kal.stats[f"subscribe:{market}"] == 1 and back.held == {"n1": {topic}}
    assert node.hub.hub.demand.held() == {topic} and back.refusals == 0
    await u.close()


async def _lease_there(r: aioredis.Redis, topic: str) -> bool:
    return bool(await r.sismember(demand_key(DEFAULT_PREFIX, "n1"), topic))
