"""``crossbook demo``: embedded Redis + both venue simulators + the market-data daemon, live on screen.

Everything runs on this machine: the simulators speak the venues' real wire protocols (Kalshi's
handshake is RSA-PSS signed with a throwaway key made at start), the daemon rebuilds the books in
Rust, writes the top of book to Redis, and the table below reads it back from Redis.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import sys
import time
from typing import Any

import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric import rsa
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from crossbook.book.redis_writer import book_key
from crossbook.book.service import MarketData
from crossbook.config import Config
from crossbook.daemon import start_hub, wait_for_stop
from crossbook.hub.auth import InMemoryUserStore
from crossbook.safety.breaker import Breaker, PairLegs
from crossbook.signing import LocalHeaderSigner
from crossbook.store.embedded_redis import EmbeddedRedis
from crossbook.venues.kalshi.sim import CATALOG as KALSHI_CATALOG
from crossbook.venues.kalshi.sim import KalshiSim
from crossbook.venues.polymarket.sim import CATALOG as POLY_CATALOG
from crossbook.venues.polymarket.sim import PolymarketSim

log = logging.getLogger("crossbook.demo")


class _Recent(logging.Handler):
    def __init__(self, n: int = 8) -> None:
        super().__init__(logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=n)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _short(s: str, n: int = 44) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


async def _snapshot(md: MarketData, r: aioredis.Redis, titles: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    rows = []
    pipe = r.pipeline(transaction=False)
    keys = md.subscribed()
    for venue, market in keys:
        pipe.hgetall(book_key(md.cfg.redis.key_prefix, venue, market))
    try:
        stored = await pipe.execute()
    except Exception:
        stored = [{} for _ in keys]
    now = time.time_ns()
    for (venue, market), h in zip(keys, stored, strict=True):
        f = md.freshness(venue, market, now)
        h = {k.decode(): v.decode() for k, v in h.items()}
        rows.append({
            "venue": venue,
            "market": titles.get((venue, market), market),
            "bid": h.get("bid", ""), "bid_size": h.get("bid_size", ""),
            "ask": h.get("ask", ""), "ask_size": h.get("ask_size", ""),
            "age_ms": f.age_ms, "status": "live" if f.fresh else (f.reason or "stale"),
        })
    return rows


def _pairs_table(breaker: Breaker, titles: dict[tuple[str, str], str]) -> Table:
    t = Table(title="pairs: the breaker's execute state", title_justify="left")
    t.add_column("pair")
    t.add_column("event")
    t.add_column("execute")
    t.add_column("why")
    legs = {p.pair_id: p for p in breaker.pairs()}
    for st in breaker.states():
        state = Text("enabled", style="green") if st.enabled else Text("disabled", style="red")
        t.add_row(st.pair_id, _short(titles.get(("polymarket", legs[st.pair_id].poly_asset), "")), state,
                  "; ".join(st.reasons))
    return t


def _table(rows: list[dict[str, Any]], md: MarketData, started: float) -> Table:
    st = md.books.stats()
    w = md.writer.stats if md.writer else None
    t = Table(
        title=f"crossbook demo — live top of book from Redis  (up {time.monotonic() - started:.0f}s, "
        f"frames {st.get('frames', 0)}, malformed {st.get('malformed', 0)}, gaps {st.get('gaps', 0)}, "
        f"redis writes {w.keys_written if w else 0})",
        title_justify="left",
    )
    for col, just in (("venue", "left"), ("market", "left"), ("bid size", "right"), ("bid", "right"),
                      ("ask", "right"), ("ask size", "right"), ("age ms", "right"), ("status", "left")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        ok = r["status"] == "live"
        age = "∞" if r["age_ms"] == float("inf") else f"{r['age_ms']:.0f}"
        t.add_row(
            r["venue"], _short(r["market"]), r["bid_size"], Text(r["bid"], style="green"),
            Text(r["ask"], style="red"), r["ask_size"], age,
            Text(_short(r["status"], 48), style="green" if ok else "yellow"),
        )
    return t


async def _chaos(poly: PolymarketSim, kal: KalshiSim, every_s: float) -> None:
    faults = itertools.cycle(["garbage", "kalshi-gap", "drop-poly", "tick", "drop-kalshi", "stall-poly"])
    while True:
        await asyncio.sleep(every_s)
        f = next(faults)
        log.warning("chaos: injecting %s", f)
        if f == "garbage":
            poly.send_garbage(1)
            kal.send_garbage(1)
        elif f == "kalshi-gap":
            kal.skip_seq()
        elif f == "drop-poly":
            poly.drop_connections()
        elif f == "drop-kalshi":
            kal.drop_connections()
        elif f == "tick":
            poly.change_tick_size(poly.markets[0], "0.001")
        elif f == "stall-poly":
            poly.stall_heartbeats(1.5)


async def run_demo(seconds: float | None = None, markets: int = 4, chaos: bool = False, seed: int = 7) -> int:
    recent = _Recent()
    root = logging.getLogger()
    root.handlers[:] = [recent]
    root.setLevel(logging.INFO)
    logging.getLogger("picows").setLevel(logging.ERROR)
    logging.getLogger("websockets").setLevel(logging.ERROR)

    console = Console()
    if not console.is_terminal:  # piped or in CI: don't wrap the table at 80 columns
        console = Console(width=150)
    redis = EmbeddedRedis().start()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_id = "crossbook-demo"
    # the catalogs (GET /gamma/markets, /trade-api/v2/markets) carry the public pairs' markets too, so
    # `crossbook pairs sync --gamma-url ... --kalshi-url ...` has something to match against the demo
    poly = PolymarketSim(seed=seed, markets=markets, catalog=POLY_CATALOG)
    kal = KalshiSim(seed=seed, markets=markets, api_keys={key_id: key.public_key()}, catalog=KALSHI_CATALOG)
    await poly.start()
    await kal.start()
    cfg = Config()
    cfg.polymarket.ws_url = poly.ws_url
    cfg.polymarket.assets = list(poly.markets)
    cfg.kalshi.ws_url = kal.ws_url
    cfg.kalshi.markets = list(kal.markets)
    md = MarketData(cfg, LocalHeaderSigner(key_id, key), redis.url)
    titles = {("polymarket", m): t for m, t in poly.titles.items()}
    titles.update({("kalshi", m): t for m, t in kal.titles.items()})
    r = aioredis.Redis.from_url(redis.url, socket_timeout=1)
    log.info("simulators: polymarket %s, kalshi %s; redis %s", poly.ws_url, kal.ws_url, redis.url)
    log.info("catalogs: %s/gamma/markets and %s/trade-api/v2/markets (for crossbook pairs sync)",
             poly.rest_url.rstrip("/"), kal.rest_url.rstrip("/"))
    await md.start()
    breaker = Breaker(md, stale_after_ms=cfg.feed.stale_after_ms)
    for i, (pm, km) in enumerate(zip(poly.markets, kal.markets, strict=False)):
        breaker.add_pair(PairLegs(f"pair-{i + 1}", pm, km))
    md.add_integrity_listener(lambda _reason: breaker.check_all())
    users = InMemoryUserStore()
    token = users.add_user_sync("demo")
    cfg.hub.port = 0
    hub_node = await start_hub(cfg, md, breaker, redis.url, users)
    hub_line = (f"hub: {hub_node.hub.url}  token: {token}  (any WebSocket client; protocol: docs/hub-protocol.md,"
                f" e.g. {{\"op\":\"auth\",\"token\":\"...\"}})")
    log.info("%s", hub_line)
    console.print(hub_line, markup=False, highlight=False)
    breaker.start()
    started = time.monotonic()
    tasks = [asyncio.create_task(_chaos(poly, kal, 4.0))] if chaos else []
    stopper = asyncio.create_task(wait_for_stop(seconds))
    interactive = console.is_terminal
    try:
        if interactive:
            with Live(console=console, refresh_per_second=4, screen=False) as live:
                while not stopper.done():
                    rows = await _snapshot(md, r, titles)
                    live.update(Group(_table(rows, md, started), _pairs_table(breaker, titles),
                                      Panel("\n".join(recent.lines) or "…", title="log (Ctrl-C stops)")))
                    await asyncio.sleep(0.25)
        else:
            while not stopper.done():
                await asyncio.sleep(min(2.0, seconds or 2.0))
                rows = await _snapshot(md, r, titles)
                console.print(_table(rows, md, started))
                console.print(_pairs_table(breaker, titles))
                for line in recent.lines:
                    console.print(line, markup=False, highlight=False)
                recent.lines.clear()
                sys.stdout.flush()
    finally:
        stopper.cancel()
        for t in tasks:
            t.cancel()
        await hub_node.stop()
        await breaker.stop()
        await md.stop()
        await r.aclose()
        await poly.stop()
        await kal.stop()
        redis.close()
    console.print(
        f"demo stopped cleanly: {len(md.books)} books tracked, {md.books.stats().get('frames', 0)} frames applied"
    )
    return 0
