"""Private tunnels and the proxy pool with real parts: a real HTTP CONNECT proxy and a real SOCKS5 proxy
(pproxy, as subprocesses) in front of the venue simulators, real hub clients (`websockets`)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.client import ClientConnection, connect

from crossbook.hub import Hub, InMemoryUserStore
from crossbook.hub.proxies import Budget, NoProxyAvailable, ProxyBudgetExhausted, ProxyPool
from crossbook.hub.tunnels import InMemoryCredentials, PolymarketApiCreds, TunnelManager, TunnelSettings
from crossbook.signing import LocalHeaderSigner
from crossbook.venues.kalshi.sim import KalshiSim
from crossbook.venues.polymarket.sim import PolymarketSim
from tests.conftest import eventually
from tests.hub.conftest import PROXY_PASSWORD, ProxyProc

POLY_SECRET = {"alice": "alice-secret-XYZ", "bob": "bob-secret-XYZ"}
POLY_PASS = {"alice": "alice-pass-QQQ", "bob": "bob-pass-QQQ"}


@dataclass
class Env:
    kalshi: KalshiSim
    poly: PolymarketSim
    pool: ProxyPool
    tunnels: TunnelManager
    hub: Hub
    tokens: dict[str, str]
    key_ids: dict[str, str]
    proxies: tuple[ProxyProc, ProxyProc]


@pytest.fixture
async def env(proxies: tuple[ProxyProc, ProxyProc]) -> AsyncIterator[Env]:
    keys = {u: rsa.generate_private_key(public_exponent=65537, key_size=2048) for u in ("alice", "bob")}
    key_ids = {u: f"key-{u}" for u in keys}
    kalshi = KalshiSim(api_keys={key_ids[u]: k.public_key() for u, k in keys.items()}, tick_interval=0.2)
    poly = PolymarketSim(tick_interval=0.2)
    creds = InMemoryCredentials()
    for u, k in keys.items():
        creds.set_kalshi(u, LocalHeaderSigner(key_ids[u], k))
        creds.set_polymarket(u, PolymarketApiCreds(f"api-{u}", POLY_SECRET[u], POLY_PASS[u]))
        poly.add_api_creds(f"api-{u}", POLY_SECRET[u], POLY_PASS[u])
    await kalshi.start()
    await poly.start()
    pool = ProxyPool([p.url for p in proxies], health_target=("127.0.0.1", kalshi.port),
                     check_interval_s=1.0, check_timeout_s=1.0, retry_min_s=0.2, retry_max_s=1.0)
    pool.start()
    tunnels = TunnelManager(
        pool, creds, kalshi_ws_url=kalshi.ws_url, polymarket_user_url=f"ws://127.0.0.1:{poly.port}/ws/user",
        settings=TunnelSettings(connect_timeout_s=3, ping_idle_s=2, ping_reply_s=2,
                                reconnect_min_s=0.1, reconnect_max_s=0.5),
        grace_s=0.2,
    )
    users = InMemoryUserStore()
    tokens = {u: users.add_user_sync(u) for u in ("alice", "bob", "carol")}
    hub = await Hub(users, tunnels=tunnels).start()
    yield Env(kalshi, poly, pool, tunnels, hub, tokens, key_ids, proxies)
    await hub.stop()
    await pool.stop()
    await kalshi.stop()
    await poly.stop()


@dataclass
class Inbox:
    ws: ClientConnection
    msgs: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                self.msgs.append(orjson.loads(raw))

    def private(self, venue: str) -> list[dict[str, Any]]:
        return [m for m in self.msgs if m.get("type") == "private" and m["topic"] == f"private:{venue}"]

    def states(self, venue: str) -> list[str]:
        return [m["state"] for m in self.msgs if m.get("type") == "tunnel" and m["topic"] == f"private:{venue}"]


async def open_inbox(hub: Hub, token: str, topics: list[str]) -> Inbox:
    ws = await connect(hub.url, compression=None, open_timeout=10)
    await ws.send(orjson.dumps({"op": "auth", "token": token}))
    assert orjson.loads(await ws.recv())["type"] == "auth_ok"
    await ws.send(orjson.dumps({"op": "subscribe", "topics": topics, "id": 7}))
    ack = orjson.loads(await ws.recv())
    assert ack["type"] == "subscribed" and ack["topics"] == topics, ack
    box = Inbox(ws)
    box.task = asyncio.get_running_loop().create_task(box._run())
    return box


def fill(user: str, n: int) -> dict[str, Any]:
    return {"trade_id": f"{user}-fill-{n}", "order_id": f"{user}-ord", "market_ticker": "KXFEDDECISION-26DEC-H0",
            "is_taker": True, "yes_price_dollars": "0.4200", "count_fp": "3.00", "ts_ms": int(time.time() * 1000)}


def order(user: str, n: int) -> dict[str, Any]:
    return {"event_type": "order", "type": "PLACEMENT", "id": f"0x{user}-order-{n}", "market": "0xabc",
            "asset_id": "1", "side": "BUY", "price": "0.42", "original_size": "10", "size_matched": "0",
            "owner": f"api-{user}", "status": "LIVE", "timestamp": str(int(time.time() * 1000))}


async def test_each_user_gets_only_their_own_private_events(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    topics = ["private:kalshi", "private:polymarket"]
    alice1 = await open_inbox(env.hub, env.tokens["alice"], topics)
    alice2 = await open_inbox(env.hub, env.tokens["alice"], ["private:kalshi"])
    bob = await open_inbox(env.hub, env.tokens["bob"], topics)
    for u, v in itertools.product(("alice", "bob"), ("kalshi", "polymarket")):
        await eventually(lambda u=u, v=v: (t := env.tunnels.get(u, v)) is not None and t.connected,
                         timeout=10, what=f"{u}'s {v} tunnel up")
    # one upstream per user per venue, whatever the number of that user's hub connections
    assert len(env.tunnels.tunnels) == 4
    assert sum(1 for s in env.kalshi.subscriptions() if s["channel"] == "fill") == 2
    # 4 dials round-robin over 2 proxies: both the HTTP CONNECT and the SOCKS5 proxy carry tunnels
    used = {t.proxy_label for t in env.tunnels.tunnels.values()}
    assert used == {env.pool.label(p.url) for p in env.proxies}, used
    await eventually(lambda: "up" in alice1.states("kalshi") and "up" in bob.states("polymarket"), timeout=5)
    # a tunnel is up once its socket is; the venue takes its subscriptions a moment later
    await eventually(lambda: sorted(env.poly.user_subscribers()) == ["api-alice", "api-bob"], timeout=5,
                     what="both users' Polymarket subscriptions at the venue")  # fmt: skip
    await eventually(lambda: sorted(s["channel"] for s in env.kalshi.subscriptions()
                                    if s["channel"] in ("fill", "user_orders")) == ["fill", "fill", "user_orders",
                                                                                    "user_orders"],
                     timeout=5, what="both users' Kalshi fill and user_orders subscriptions")  # fmt: skip

    for n in range(5):
        for u in ("alice", "bob"):
            assert env.kalshi.push_user_event(env.key_ids[u], "fill", fill(u, n)) == 1
            assert env.kalshi.push_user_event(env.key_ids[u], "user_orders", {"order_id": f"{u}-uo-{n}"}) == 1
            assert env.poly.push_user_event(f"api-{u}", order(u, n)) == 1
    await eventually(lambda: len(alice1.private("kalshi")) == 10 and len(bob.private("kalshi")) == 10
                     and len(alice1.private("polymarket")) == 5 and len(bob.private("polymarket")) == 5
                     and len(alice2.private("kalshi")) == 10, timeout=10, what="every private event")
    await asyncio.sleep(0.3)  # nothing more (in particular nothing of the other user's) arrives

    for box, me, other in ((alice1, "alice", "bob"), (alice2, "alice", "bob"), (bob, "bob", "alice")):
        raw = orjson.dumps(box.msgs).decode()
        assert other not in raw, f"{me} saw {other}'s data"
        kal = box.private("kalshi")
        assert [m["seq"] for m in kal] == list(range(1, 11))
        assert {m["data"]["type"] for m in kal} == {"fill", "user_order"}
        assert [m["data"]["msg"]["trade_id"] for m in kal if m["data"]["type"] == "fill"] == [
            f"{me}-fill-{n}" for n in range(5)]
    assert alice2.private("polymarket") == []  # not subscribed to it on that connection
    assert [m["data"]["id"] for m in bob.private("polymarket")] == [f"0xbob-order-{n}" for n in range(5)]

    # carol has no venue credentials; private topics name no user, so nobody can ask for someone else's
    carol = await connect(env.hub.url)
    await carol.send(orjson.dumps({"op": "auth", "token": env.tokens["carol"]}))
    assert orjson.loads(await carol.recv())["type"] == "auth_ok"
    await carol.send(orjson.dumps({"op": "subscribe", "topics": ["private:kalshi"]}))
    ack = orjson.loads(await carol.recv())
    assert ack["topics"] == [] and ack["failed"][0]["code"] == "no_credentials", ack
    for bad in ("private:kalshi:alice", "private:alice", "private:kalshi@alice"):
        await carol.send(orjson.dumps({"op": "subscribe", "topics": [bad]}))
        assert orjson.loads(await carol.recv())["code"] == "bad_topic"
    await carol.close()
    await alice2.ws.send(orjson.dumps({"op": "snapshot", "topic": "private:kalshi"}))
    await eventually(lambda: any(m.get("code") == "no_snapshot" for m in alice2.msgs), timeout=3)

    # wrong Polymarket credentials: the venue refuses and nothing leaks
    assert env.poly.push_user_event("api-nobody", order("x", 0)) == 0

    # secrets never reach our logs (crossbook, picows; the `websockets` records are the simulated venue's
    # side and the test clients, which do see what was sent to them) or reprs
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets"))
    assert "tunnel kalshi/alice up via" in ours
    text = ours + repr(env.tunnels.tunnels) + repr(env.pool) + orjson.dumps(env.pool.status()).decode()
    text += repr(env.tunnels.credentials) + repr(PolymarketApiCreds("api-alice", POLY_SECRET["alice"], "p"))
    for secret in (*POLY_SECRET.values(), *POLY_PASS.values(), PROXY_PASSWORD, "api-alice"):
        assert secret not in text, f"{secret!r} leaked"

    # last listener gone: the tunnel closes after the grace period
    for box in (alice1, alice2, bob):
        await box.ws.close()
    await eventually(lambda: not env.tunnels.tunnels, timeout=5, what="tunnels closed after grace")


async def test_killed_proxy_tunnel_reconnects_through_the_other(env: Env) -> None:
    box = await open_inbox(env.hub, env.tokens["alice"], ["private:kalshi"])
    tunnel = await eventually(lambda: (t := env.tunnels.get("alice", "kalshi")) is not None and t.connected and t,
                              timeout=10, what="tunnel up")
    first = tunnel.proxy
    assert first is not None
    victim = next(p for p in env.proxies if p.url == first)
    survivor = next(p for p in env.proxies if p.url != first)

    sent: list[str] = []
    stop = asyncio.Event()

    async def pump() -> None:
        for n in itertools.count():
            if stop.is_set():
                return
            if env.kalshi.push_user_event(env.key_ids["alice"], "fill", fill("alice", n)):
                sent.append(f"alice-fill-{n}")
            await asyncio.sleep(0.05)

    pumper = asyncio.get_running_loop().create_task(pump())
    await eventually(lambda: len(box.private("kalshi")) >= 5, timeout=5, what="events before the kill")
    victim.kill()  # mid-run: the tunnel's TCP path dies with the proxy process
    await eventually(lambda: tunnel.connected and tunnel.proxy == survivor.url, timeout=10,
                     what="reconnected through the surviving proxy")
    await eventually(lambda: not env.pool.is_healthy(victim.url), timeout=5, what="dead proxy taken out")
    n_after = len(box.private("kalshi"))
    await eventually(lambda: len(box.private("kalshi")) >= n_after + 5, timeout=5, what="events after failover")
    stop.set()
    await pumper
    await eventually(lambda: len(box.private("kalshi")) == len(sent), timeout=5, what="all sent events")

    got = [m["data"]["msg"]["trade_id"] for m in box.private("kalshi")]
    assert got == sent  # what the venue sent on a live link arrives in order, nothing foreign
    assert [m["seq"] for m in box.private("kalshi")] == list(range(1, len(got) + 1))
    assert box.states("kalshi")[-2:] == ["down", "up"]
    assert tunnel.stats.connects == 2 and tunnel.stats.proxies == [env.pool.label(first),
                                                                    env.pool.label(survivor.url)]
    # while one proxy is out, every new dial goes through the other
    for _ in range(5):
        assert env.pool.acquire("kalshi") == survivor.url
    await box.ws.close()


async def test_health_check_takes_a_dead_proxy_out_and_back_in(proxies: tuple[ProxyProc, ProxyProc]) -> None:
    async with KalshiSim(tick_interval=1.0) as sim:
        http, socks = proxies
        pool = ProxyPool([http.url, socks.url], health_target=("127.0.0.1", sim.port),
                         check_interval_s=0.3, check_timeout_s=1.0, retry_min_s=0.2, retry_max_s=0.5)
        assert all(s["healthy"] for s in await pool.check_all())  # a real CONNECT/SOCKS tunnel to the sim
        pool.start()
        try:
            socks.kill()
            await eventually(lambda: not pool.is_healthy(socks.url), timeout=5, what="socks proxy out")
            status = {s["proxy"]: s for s in pool.status()}
            assert status[pool.label(socks.url)]["last_error"] and pool.healthy_count == 1
            for _ in range(4):
                assert pool.acquire("kalshi") == http.url
            socks.start()  # same port
            await eventually(lambda: pool.is_healthy(socks.url), timeout=5, what="socks proxy back")
            assert {pool.acquire("kalshi") for _ in range(4)} == {http.url, socks.url}
            http.kill()
            socks.kill()
            await eventually(lambda: pool.healthy_count == 0, timeout=5, what="both out")
            with pytest.raises(NoProxyAvailable, match="no healthy proxy for kalshi"):
                pool.acquire("kalshi")
            assert PROXY_PASSWORD not in repr(pool) + orjson.dumps(pool.status()).decode()
        finally:
            await pool.stop()


def test_budget_round_robin_and_refusal() -> None:
    now = [100.0]
    pool = ProxyPool(["http://10.0.0.1:3128", "socks5://u:pw@10.0.0.2:1080"],
                     {"kalshi": Budget(rate=2.0, burst=2.0), "kalshi-write": Budget(rate=1.0, burst=1.0)},
                     clock=lambda: now[0])
    a, b = "http://10.0.0.1:3128", "socks5://u:pw@10.0.0.2:1080"
    assert [pool.acquire("kalshi") for _ in range(4)] == [a, b, a, b]  # round-robin, 2 each
    with pytest.raises(ProxyBudgetExhausted) as exc:
        pool.acquire("kalshi")
    assert exc.value.retry_after_s == pytest.approx(0.5)
    assert "over its kalshi budget" in str(exc.value) and "pw" not in str(exc.value)
    # budgets are per venue: writes still have room
    assert pool.acquire("kalshi-write") in (a, b)
    now[0] += 0.5  # one token back on each proxy
    assert {pool.acquire("kalshi"), pool.acquire("kalshi")} == {a, b}
    with pytest.raises(ProxyBudgetExhausted):
        pool.acquire("kalshi")
    now[0] += 10
    assert pool.acquire("kalshi", avoid={a}) == b  # avoid is a preference ...
    pool.report_failure(b, "connection refused")
    assert pool.acquire("kalshi", avoid={a}) == a  # ... not a rule, and dead proxies are skipped
    with pytest.raises(ValueError):
        pool.acquire("kalshi", cost=3)
    with pytest.raises(Exception, match="no proxy request budget named 'nasdaq'"):
        pool.acquire("nasdaq")
    pool.report_failure(a, "timeout")
    with pytest.raises(NoProxyAvailable):
        pool.acquire("kalshi")
    assert "pw" not in repr(pool) + str(pool.status())
    cfg = ProxyPool.from_config({"urls": [a], "budgets": {"kalshi": {"rate": 5}}, "health_target": "h:443"})
    assert cfg.budgets["kalshi"] == Budget(5.0, 5.0) and cfg.health_target == ("h", 443)
