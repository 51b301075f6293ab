"""The daemon: wires the components and owns their lifecycle (start, run, drain, stop)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from crossbook.aio import BusyPoll, ManagedGC, wait_event
from crossbook.book.service import DemandUpstream, MarketData
from crossbook.chain.uma import UmaWatcher
from crossbook.config import Config
from crossbook.hub.accounts import build_tunnels
from crossbook.hub.auth import FileUserStore, PgUserStore, UserStore
from crossbook.hub.bridge import RedisBridgePublisher, RemoteDemand
from crossbook.hub.demand import DemandTracker
from crossbook.hub.feed import BookFeed, HubExecuteState, TopicPublisher
from crossbook.hub.proxies import ProxyPool
from crossbook.hub.server import Hub
from crossbook.safety.breaker import Breaker, PairLegs
from crossbook.safety.gate import Gate, MemoryCatalog, PairInfo, refresh_reference_prices
from crossbook.safety.publisher import RedisStatePublisher
from crossbook.safety.store import PgSafetySync
from crossbook.signing import HeaderSigner, LocalHeaderSigner
from crossbook.store.embedded_redis import EmbeddedRedis

log = logging.getLogger("crossbook.daemon")


def pin_cpus(cores: list[int]) -> None:
    if cores:
        os.sched_setaffinity(0, set(cores))
        log.info("pinned to cores %s", sorted(cores))


def start_busy_poll(cfg: Config) -> BusyPoll:
    """``busy_poll = true``: the loop polls instead of sleeping (see crossbook.aio.BusyPoll)."""
    poller = BusyPoll()
    if cfg.busy_poll:
        if not cfg.cpu_affinity:
            log.warning("busy_poll without cpu_affinity: the loop will take a whole core the scheduler may "
                        "share with anything; pin the engine to cores of its own (crossbook tune)")  # fmt: skip
        poller.start()
        log.info("busy-polling: the event loop never sleeps (one core at 100 %%)")
    return poller


def start_gc(cfg: Config, busy: Callable[[], bool] | None = None) -> ManagedGC | None:
    """``gc = "managed"`` (the default): the cyclic GC from a loop timer, not inside a frame or an order."""
    if cfg.gc != "managed":
        return None
    collector = ManagedGC(cfg.gc_interval_s, busy=busy)
    collector.start()
    log.info("garbage collection managed: start-up objects frozen, a collection every %.2f s between frames",
             cfg.gc_interval_s)  # fmt: skip
    return collector


async def wait_for_stop(seconds: float | None = None) -> None:
    """Return on SIGINT/SIGTERM, or after ``seconds``."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        if seconds is None:
            await stop.wait()
        else:
            await wait_event(stop, seconds)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def run_daemon(cfg: Config, signer: HeaderSigner | None = None, seconds: float | None = None) -> None:
    pin_cpus(cfg.cpu_affinity)
    embedded: EmbeddedRedis | None = None
    redis_url = cfg.redis.url
    if not redis_url:
        embedded = EmbeddedRedis().start()
        redis_url = embedded.url
        log.info("started embedded Redis at %s", redis_url)
    if signer is None:
        signer = LocalHeaderSigner.from_files(cfg.kalshi.api_key_id, cfg.kalshi.private_key_path)
    md = MarketData(cfg, signer, redis_url)
    if not md.connections:
        log.warning("no markets configured: set polymarket.assets and/or kalshi.markets")
    await md.start()
    breaker, gate = build_safety(cfg, md)
    publisher = RedisStatePublisher(redis_url)
    breaker.add_listener(publisher)
    publisher.start()
    md.add_integrity_listener(lambda _reason: breaker.check_all())
    hub_node = await start_hub(cfg, md, breaker, redis_url) if cfg.hub.enabled else None
    resources = contextlib.AsyncExitStack()
    try:
        pool = await open_store(cfg, resources) if (cfg.postgres.url or cfg.chain.enabled
                                                     or cfg.execution.enabled) else None
        if pool is not None:
            sync = PgSafetySync(pool, breaker, gate.catalog)  # type: ignore[arg-type]
            await sync.sync_once()
            sync.start()
            resources.push_async_callback(sync.stop)
            await start_chain(cfg, breaker, pool, resources)
    except BaseException:
        await resources.aclose()
        raise
    breaker.start()
    busy: Callable[[], bool] | None = None
    if cfg.execution.enabled and pool is not None:
        from crossbook.execution.service import start_execution

        try:
            execution = await start_execution(cfg, md, gate, breaker, pool, resources)
            busy = execution.busy  # the managed GC waits while an intent is in flight
            if hub_node is not None:  # intents over the hub connection, for the users allowed to trade
                hub_node.hub.intent_users = frozenset(u for u in (cfg.execution.user, *cfg.execution.hub_users) if u)
                hub_node.hub.intents = execution.handle_for_user
        except BaseException:
            await resources.aclose()
            await breaker.stop()
            await md.stop()
            raise
    runtime = write_runtime_file(cfg, redis_url, hub_node.hub.url if hub_node else None)

    async def status_loop() -> None:
        while True:
            await asyncio.sleep(1)
            refresh_reference_prices(breaker, gate.catalog, md.books)
            if int(time.monotonic()) % 10:
                continue
            w = md.writer.stats if md.writer else None
            st = md.books.stats()
            log.info(
                "frames=%d malformed=%d gaps=%d redis_writes=%d redis_errors=%d connected=%d/%d",
                st.get("frames", 0), st.get("malformed", 0), st.get("gaps", 0),
                w.keys_written if w else 0, w.errors if w else 0,
                sum(c.connected for c in md.connections), len(md.connections),
            )

    status = asyncio.create_task(status_loop(), name="status")
    poller = start_busy_poll(cfg)
    collector = start_gc(cfg, busy)
    try:
        await wait_for_stop(seconds)
        log.info("stopping: draining feeds and the Redis writer")
    finally:
        if collector is not None:
            collector.stop()
        poller.stop()
        status.cancel()
        await resources.aclose()
        if hub_node is not None:
            await hub_node.stop()
        await breaker.stop()
        await publisher.stop()
        await md.stop()
        runtime.unlink(missing_ok=True)
        if embedded is not None:
            embedded.close()
        log.info("stopped")


def build_safety(cfg: Config, md: MarketData) -> tuple[Breaker, Gate]:
    breaker = Breaker(md, stale_after_ms=cfg.feed.stale_after_ms)
    catalog = MemoryCatalog()
    for pc in cfg.pairs:
        breaker.add_pair(PairLegs(pc.pair_id, pc.poly_asset, pc.kalshi_ticker, pc.condition_id))
        catalog.pairs[pc.pair_id] = PairInfo(pc.pair_id, "Verified" if pc.verified else "Unverified", pc.polarity)
    return breaker, Gate(breaker, catalog)


def runtime_file(cfg: Config) -> Path:
    return Path(cfg.state_dir) / "daemon.json"


def write_runtime_file(cfg: Config, redis_url: str, hub_url: str | None = None) -> Path:
    """Where a running daemon can be found (``crossbook status`` reads it). Holds no secret."""
    path = runtime_file(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps({"pid": os.getpid(), "redis_url": redis_url, "hub_url": hub_url,
                                   "started": time.time(), "pairs": [p.pair_id for p in cfg.pairs]}))
    return path


@dataclass
class HubNode:
    """The fan-out side of the daemon: the hub, the Redis bridge to other hub nodes, the book feed."""

    hub: Hub
    bridge: RedisBridgePublisher | None
    proxies: ProxyPool | None = None
    closers: list[Callable[[], Awaitable[Any]]] = dataclasses.field(default_factory=list)
    remote: RemoteDemand | None = None  # the leases of the hub nodes fed through Redis

    async def stop(self) -> None:
        if self.remote is not None:
            await self.remote.stop()
        await self.hub.stop()  # closes the private tunnels too
        if self.proxies is not None:
            await self.proxies.stop()
        if self.bridge is not None:
            await self.bridge.stop()
        for close in self.closers:
            await close()


async def start_hub(
    cfg: Config, md: MarketData, breaker: Breaker, redis_url: str | None, users: UserStore | None = None
) -> HubNode:
    closers: list[Callable[[], Awaitable[Any]]] = []
    if users is None and cfg.postgres.url:
        users, close_users = await open_pg_users(cfg.postgres.url)
        closers.append(close_users)
    if users is None:
        users = FileUserStore(cfg.hub.users_file or str(Path(cfg.state_dir) / "users.json"))
    private = build_tunnels(cfg)  # users' private tunnels through the proxy pool (hub.proxies + accounts)
    # Demand per market drives this node's feeds: the first user of a market the daemon does not stream
    # yet opens its one upstream subscription; the last user leaving releases it after the grace
    # (configured markets stay pinned). A market the venue refuses reaches its users as unknown_market.
    upstream = DemandUpstream(md)
    demand = DemandTracker(upstream, grace_s=cfg.hub.upstream_grace_s)
    hub = Hub(users, host=cfg.hub.host, port=cfg.hub.port,
              certfile=cfg.hub.certfile or None, keyfile=cfg.hub.keyfile or None,
              tunnels=private[0] if private else None, demand=demand)
    md.add_rejection_listener(
        lambda venue, market, reason: hub.drop_topic(f"{venue}:{market}", "unknown_market", reason))
    # Hub nodes fed through Redis lease their users' markets there: each lease counts like a user here.
    remote = RemoteDemand(redis_url, demand) if redis_url else None
    if remote is not None:
        md.add_rejection_listener(remote.on_rejected)
        remote.start()
    if private is not None:
        private[1].start()
        log.info("hub private tunnels via %s", private[1])
    publisher = TopicPublisher([hub])
    bridge = None
    if redis_url:
        bridge = RedisBridgePublisher(redis_url)
        publisher.sinks.append(bridge)
        bridge.start()
    md.add_change_consumer(BookFeed(md.books, publisher).publish_changed)
    execute = HubExecuteState(publisher)
    breaker.add_listener(lambda st: execute.publish_execute_state(
        st.pair_id, st.enabled, None if st.enabled else "; ".join(st.reasons)))
    await hub.start()
    log.info("hub serving users at %s (tokens: crossbook users add NAME)", hub.url)
    return HubNode(hub, bridge, private[1] if private else None, closers, remote)


async def open_pg_users(url: str) -> tuple[PgUserStore, Callable[[], Awaitable[Any]]]:
    """Hub users in PostgreSQL (``postgres.url``): migrated, with a small pool of their own."""
    from crossbook.store.postgres import create_pool, migrate

    await migrate(url)
    pool = await create_pool(url, min_size=1, max_size=2)
    return PgUserStore(pool), pool.close


async def open_store(cfg: Config, stack: contextlib.AsyncExitStack) -> Any:
    """PostgreSQL (embedded unless ``postgres.url``), migrated, as an asyncpg pool closed with ``stack``."""
    from crossbook.store.postgres import create_pool, migrate, postgres_url

    url = await stack.enter_async_context(postgres_url(cfg.postgres.url, cfg.state_dir))
    applied = await migrate(url)
    if applied:
        log.info("database migrated: %s", ", ".join(applied))
    pool = await create_pool(url, min_size=1, max_size=4)
    stack.push_async_callback(pool.close)
    return pool


async def start_chain(cfg: Config, breaker: Breaker, pool: Any, stack: contextlib.AsyncExitStack) -> UmaWatcher | None:
    """The UMA dispute watcher, when ``chain.enabled``: its cursor and logs live in PostgreSQL."""
    if not cfg.chain.enabled:
        return None
    from crossbook.chain.rpc import http_web3
    from crossbook.chain.store import PgChainStore
    from crossbook.chain.uma import WatcherConfig

    c = cfg.chain
    wcfg = WatcherConfig(chain_id=c.chain_id, poll_s=c.poll_s, confirmations=c.confirmations, start_block=c.start_block)
    wcfg = dataclasses.replace(wcfg, oracles=tuple(c.oracles) or wcfg.oracles,
                               adapters=tuple(c.adapters) or wcfg.adapters)
    watcher = UmaWatcher(http_web3(c.rpc_url), breaker, PgChainStore(pool), wcfg, ws_url=c.ws_url or None)
    await watcher.start()
    stack.push_async_callback(watcher.stop)
    log.info("UMA watcher on %s: %d oracle(s), %d adapter(s)", c.rpc_url, len(wcfg.oracles), len(wcfg.adapters))
    return watcher
