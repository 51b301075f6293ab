"""``crossbook status``: what a running daemon is doing, read from Redis (books and pair states)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from rich.console import Console
from rich.table import Table

from crossbook.config import Config
from crossbook.errors import StoreError
from crossbook.safety.publisher import state_key


def find_redis_url(cfg: Config, explicit: str | None) -> str:
    if explicit:
        return explicit
    if cfg.redis.url:
        return cfg.redis.url
    path = Path(cfg.state_dir) / "daemon.json"
    try:
        info = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise StoreError(
            f"no running daemon found ({path} does not exist): start `crossbook daemon`, or pass --redis URL"
        ) from None
    return str(info["redis_url"])


async def _collect(url: str) -> tuple[list[tuple[str, dict[str, str]]], list[tuple[str, dict[str, str]]]]:
    r = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)
    try:
        book_keys = sorted([k async for k in r.scan_iter("book:*", count=500)])
        pair_keys = sorted([k async for k in r.scan_iter(state_key("*"), count=500)])
        pipe = r.pipeline(transaction=False)
        for k in book_keys + pair_keys:
            pipe.hgetall(k)
        vals = await pipe.execute()
    except (RedisError, OSError) as exc:
        raise StoreError(f"cannot read Redis at {url}: {exc}") from None
    finally:
        await r.aclose()
    books = list(zip(book_keys, vals[: len(book_keys)], strict=True))
    pairs = list(zip(pair_keys, vals[len(book_keys):], strict=True))
    return books, pairs


def show_status(cfg: Config, redis_url: str | None, as_json: bool = False) -> int:
    url = find_redis_url(cfg, redis_url)
    books, pairs = asyncio.run(_collect(url))
    now_ms = int(time.time() * 1000)
    if as_json:
        print(orjson.dumps({"redis": url, "books": {k: v for k, v in books},
                            "pairs": {k.split(":", 2)[2]: v for k, v in pairs}}).decode())
        return 0
    console = Console()
    t = Table(title=f"books in {url}", title_justify="left")
    for col in ("key", "bid", "ask", "bid size", "ask size", "age ms", "valid"):
        t.add_column(col)
    for key, h in books:
        age = now_ms - int(h.get("ts") or 0) if h.get("ts") else None
        t.add_row(key, h.get("bid", ""), h.get("ask", ""), h.get("bid_size", ""), h.get("ask_size", ""),
                  "" if age is None else str(age), "yes" if h.get("valid") == "1" else "NO")
    console.print(t)
    p = Table(title="pairs: execute state (breaker)", title_justify="left")
    for col in ("pair", "execute", "why"):
        p.add_column(col)
    for key, h in pairs:
        on = h.get("enabled") == "1"
        p.add_row(key.split(":", 2)[2], "[green]enabled[/]" if on else "[red]disabled[/]", h.get("reasons", ""))
    console.print(p)
    if not books:
        console.print("no books in Redis yet: is the daemon running and configured with markets?")
    return 0
