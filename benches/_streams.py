"""Seeded, realistic WebSocket frame streams for the parse benchmark.

The generator keeps its own exact book state (ints) so every frame it emits is consistent:
Polymarket ``best_bid``/``best_ask`` match the book after each change, Kalshi ``seq`` is +1 per
message within each ``sid``, deltas never drive a level negative, books never cross. That state is
also the ground truth the benchmark checks every implementation against after the run.

Units: prices in micro-units (price * 10**6); Polymarket sizes and Kalshi counts in hundredths.
Frames are compact JSON bytes (``orjson.dumps``) with the field shapes of the vectors in
``shared/vectors/`` (strings for every number except Kalshi ``sid``/``seq``/``ts_ms``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

MICRO = 1_000_000
ONE = MICRO  # $1.00 in micro-units


def poly_price(micro: int) -> str:
    """Minimal decimal form, as Polymarket prints prices: 510000 -> "0.51"."""
    whole, frac = divmod(micro, MICRO)
    s = f"{whole}.{frac:06d}".rstrip("0").rstrip(".")
    return s or "0"


def poly_size(hundredths: int) -> str:
    """Minimal decimal form for sizes: 15000 -> "150", 19931 -> "199.31"."""
    whole, frac = divmod(hundredths, 100)
    return f"{whole}.{frac:02d}".rstrip("0").rstrip(".") if frac else str(whole)


def kalshi_price(micro: int) -> str:
    """Kalshi ``*_dollars``: 4 dp, "0.4200"."""
    whole, frac = divmod(micro, MICRO)
    return f"{whole}.{frac // 100:04d}"


def kalshi_count(hundredths: int) -> str:
    """Kalshi ``*_fp``: signed, 2 dp, "13.00" / "-54.00"."""
    sign = "-" if hundredths < 0 else ""
    whole, frac = divmod(abs(hundredths), 100)
    return f"{sign}{whole}.{frac:02d}"


@dataclass
class Frame:
    venue: str
    data: bytes
    recv_ns: int
    kind: str  # "snapshot" or "delta" (Polymarket price_change / Kalshi orderbook_delta)


@dataclass
class PolyAsset:
    asset_id: str
    market: str
    tick: int  # micro
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)

    def best_bid(self) -> int | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> int | None:
        return min(self.asks) if self.asks else None


@dataclass
class KalshiMarket:
    ticker: str
    market_id: str
    sid: int
    tick: int  # micro
    yes: dict[int, int] = field(default_factory=dict)  # YES bids
    no: dict[int, int] = field(default_factory=dict)  # NO bids (in NO price)


@dataclass
class PolyStream:
    frames: list[Frame]
    assets: dict[str, PolyAsset]
    counts: dict[str, int]


@dataclass
class KalshiStream:
    frames: list[Frame]
    markets: dict[str, KalshiMarket]
    counts: dict[str, int]


def _hex(rng: random.Random, nbytes: int) -> str:
    return f"{rng.getrandbits(nbytes * 8):0{nbytes * 2}x}"


def _rand_size(rng: random.Random) -> int:
    """Sizes in hundredths: mostly whole shares, some with cents, heavy-tailed."""
    shares = int(rng.paretovariate(1.2) * 20)
    cents = rng.choice((0, 0, 0, 0, rng.randrange(1, 100)))
    return max(1, shares * 100 + cents)


def _poly_snapshot_levels(rng: random.Random, a: PolyAsset, mid: int) -> None:
    """Fresh book around ``mid`` (a multiple of the tick): 10-30 levels per side, some gaps."""
    a.bids.clear()
    a.asks.clear()
    for book, direction, start in ((a.bids, -1, mid), (a.asks, +1, mid + a.tick)):
        n = rng.randint(10, 30)
        p = start
        while len(book) < n and a.tick <= p <= ONE - a.tick:
            book[p] = _rand_size(rng)
            p += direction * a.tick * rng.choice((1, 1, 1, 2, 3))


def _poly_book_event(a: PolyAsset, ts: str, h: str) -> dict[str, object]:
    # Polymarket lists bids ascending and asks descending (best level last), as in the vectors.
    return {
        "event_type": "book",
        "market": a.market,
        "asset_id": a.asset_id,
        "bids": [{"price": poly_price(p), "size": poly_size(s)} for p, s in sorted(a.bids.items())],
        "asks": [
            {"price": poly_price(p), "size": poly_size(s)} for p, s in sorted(a.asks.items(), reverse=True)
        ],
        "timestamp": ts,
        "hash": h,
    }


def polymarket_stream(n_frames: int, seed: int, n_assets: int = 20) -> PolyStream:
    """~5 % ``book`` snapshots, ~95 % batched ``price_change`` (1-3 changes) over ``n_assets``.

    Assets come in YES/NO pairs sharing a condition id, like real Polymarket markets. The first
    frame of each market is an array of both assets' ``book`` events (the subscribe burst).
    """
    rng = random.Random(seed)
    assets: list[PolyAsset] = []
    for _ in range(max(1, n_assets // 2)):
        market = "0x" + _hex(rng, 32)
        tick = MICRO // 100 if rng.random() < 0.8 else MICRO // 1000
        for _ in range(2):
            asset_id = str(rng.getrandbits(255) | (1 << 254))  # 77-78 digit token ids
            assets.append(PolyAsset(asset_id, market, tick))
    by_market: dict[str, list[PolyAsset]] = {}
    for a in assets:
        by_market.setdefault(a.market, []).append(a)
    ts_ms = 1_760_000_000_000
    recv_ns = ts_ms * 1_000_000
    frames: list[Frame] = []
    counts = {"book": 0, "price_change": 0, "levels": 0}

    def emit(obj: object) -> None:
        nonlocal recv_ns
        recv_ns += rng.randint(20_000, 2_000_000)
        kind = "delta" if isinstance(obj, dict) and obj["event_type"] == "price_change" else "snapshot"
        frames.append(Frame("polymarket", orjson.dumps(obj), recv_ns, kind))

    # Subscribe burst: one array frame per market with both outcome books (YES mid m, NO mid 1-m).
    for pair in by_market.values():
        tick = pair[0].tick
        mid = rng.randint(10, 90) * (MICRO // 100)
        mid -= mid % tick
        events = []
        for a, m in zip(pair, (mid, ONE - mid), strict=True):
            _poly_snapshot_levels(rng, a, m)
            events.append(_poly_book_event(a, str(ts_ms), _hex(rng, 20)))
            counts["book"] += 1
            counts["levels"] += len(a.bids) + len(a.asks)
        emit(events)

    while len(frames) < n_frames:
        ts_ms += rng.randint(1, 40)
        if rng.random() < 0.05:
            a = rng.choice(assets)
            bb, ba = a.best_bid(), a.best_ask()
            mid = ((bb or a.tick) + (ba or ONE - a.tick)) // 2
            mid = mid - mid % a.tick + a.tick * rng.randint(-1, 1)
            mid = min(max(mid, 2 * a.tick), ONE - 2 * a.tick)
            _poly_snapshot_levels(rng, a, mid)
            emit(_poly_book_event(a, str(ts_ms), _hex(rng, 20)))
            counts["book"] += 1
            counts["levels"] += len(a.bids) + len(a.asks)
            continue
        pair = by_market[rng.choice(assets).market]
        changes = []
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            a = rng.choice(pair)
            buy = rng.random() < 0.5
            book = a.bids if buy else a.asks
            bb, ba = a.best_bid(), a.best_ask()
            # A price near the top of that side that does not cross the other side.
            if buy:
                hi = (ba - a.tick) if ba is not None else ONE - a.tick
                p = hi - a.tick * int(rng.expovariate(0.35))
            else:
                lo = (bb + a.tick) if bb is not None else a.tick
                p = lo + a.tick * int(rng.expovariate(0.35))
            p = min(max(p, a.tick), ONE - a.tick)
            if p in book and len(book) > 1 and rng.random() < 0.3:
                del book[p]
                size = 0
            else:
                size = _rand_size(rng)
                book[p] = size
            bb, ba = a.best_bid(), a.best_ask()
            changes.append(
                {
                    "asset_id": a.asset_id,
                    "price": poly_price(p),
                    "size": poly_size(size),
                    "side": "BUY" if buy else "SELL",
                    "hash": _hex(rng, 20),
                    "best_bid": poly_price(bb) if bb is not None else "0",
                    "best_ask": poly_price(ba) if ba is not None else "1",
                }
            )
        counts["price_change"] += 1
        counts["levels"] += len(changes)
        emit(
            {
                "event_type": "price_change",
                "market": pair[0].market,
                "price_changes": changes,
                "timestamp": str(ts_ms),
            }
        )
    return PolyStream(frames, {a.asset_id: a for a in assets}, counts)


def _kalshi_snapshot_levels(rng: random.Random, m: KalshiMarket, mid: int) -> None:
    """YES bids below ``mid`` and NO bids below ``1 - mid`` (so YES asks sit above ``mid``)."""
    m.yes.clear()
    m.no.clear()
    for book, top in ((m.yes, mid - m.tick), (m.no, ONE - mid - m.tick)):
        n = rng.randint(5, 30)
        p = top
        while len(book) < n and p >= m.tick:
            book[p] = rng.randint(1, 2000) * 100 + rng.choice((0, 0, 0, 0, 0, 0, 0, 50))
            p -= m.tick * rng.choice((1, 1, 1, 2, 3))


def kalshi_stream(n_frames: int, seed: int, n_markets: int = 20, markets_per_sid: int = 5) -> KalshiStream:
    """~2 % ``orderbook_snapshot``, ~98 % ``orderbook_delta`` over ``n_markets`` tickers.

    Tickers are grouped ``markets_per_sid`` per subscription (one subscribe with ``market_tickers``
    yields one ``sid``); ``seq`` is per sid, +1 per message, starting at 1 with the first snapshot.
    """
    rng = random.Random(seed ^ 0x5A5A)
    markets: list[KalshiMarket] = []
    series = ("KXBTC", "KXETH", "KXFED", "KXCPI", "KXNBA", "KXNFL", "KXGDP", "KXSPX", "KXWTI", "KXGOLD")
    for i in range(n_markets):
        strike = f"{rng.randint(10, 999)}.{rng.randint(0, 99):02d}"
        ticker = f"{series[i % len(series)]}-26MAR{10 + i:02d}-T{strike}"
        market_id = f"{_hex(rng, 4)}-{_hex(rng, 2)}-{_hex(rng, 2)}-{_hex(rng, 2)}-{_hex(rng, 6)}"
        tick = MICRO // 100 if i % 5 else MICRO // 1000  # every 5th market trades in deci-cents
        markets.append(KalshiMarket(ticker, market_id, sid=1 + i // markets_per_sid, tick=tick))
    seq: dict[int, int] = {}
    ts_ms = 1_760_000_000_000
    recv_ns = ts_ms * 1_000_000
    frames: list[Frame] = []
    counts = {"orderbook_snapshot": 0, "orderbook_delta": 0, "levels": 0}

    def emit(m: KalshiMarket, kind: str, msg: dict[str, object]) -> None:
        nonlocal recv_ns
        recv_ns += rng.randint(20_000, 2_000_000)
        seq[m.sid] = seq.get(m.sid, 0) + 1
        obj = {"type": kind, "sid": m.sid, "seq": seq[m.sid], "msg": msg}
        frames.append(Frame("kalshi", orjson.dumps(obj), recv_ns, "delta" if kind == "orderbook_delta" else "snapshot"))
        counts[kind] += 1

    def snapshot(m: KalshiMarket, mid: int) -> None:
        _kalshi_snapshot_levels(rng, m, mid)
        msg: dict[str, object] = {"market_ticker": m.ticker, "market_id": m.market_id}
        # A side key is absent when that side is empty (KAPI).
        if m.yes:
            msg["yes_dollars_fp"] = [[kalshi_price(p), kalshi_count(s)] for p, s in sorted(m.yes.items())]
        if m.no:
            msg["no_dollars_fp"] = [[kalshi_price(p), kalshi_count(s)] for p, s in sorted(m.no.items())]
        counts["levels"] += len(m.yes) + len(m.no)
        emit(m, "orderbook_snapshot", msg)

    for m in markets:
        mid = rng.randint(8, 92) * (MICRO // 100)
        snapshot(m, mid)

    while len(frames) < n_frames:
        ts_ms += rng.randint(1, 40)
        m = rng.choice(markets)
        best_yes = max(m.yes) if m.yes else None
        best_no = max(m.no) if m.no else None
        if rng.random() < 0.02:
            yes_ask = ONE - best_no if best_no is not None else ONE - m.tick
            mid = ((best_yes or m.tick) + yes_ask) // 2
            mid = mid - mid % m.tick
            mid = min(max(mid, 3 * m.tick), ONE - 3 * m.tick)
            snapshot(m, mid)
            continue
        yes = rng.random() < 0.5
        book, other_best = (m.yes, best_no) if yes else (m.no, best_yes)
        # Highest price on this side that does not cross: p + other_best < $1.
        hi = ONE - (other_best if other_best is not None else 0) - m.tick
        if book and rng.random() < 0.45:
            # Reduce or remove an existing level near the top.
            top_levels = sorted(book, reverse=True)[:8]
            p = rng.choice(top_levels)
            size = book[p]
            if (len(book) > 1 and rng.random() < 0.4) or size < 200:
                delta = -size
            else:
                delta = -100 * rng.randint(1, size // 100 - 1)  # whole contracts
        else:
            p = hi - m.tick * int(rng.expovariate(0.3))
            p = min(max(p, m.tick), ONE - m.tick)
            delta = rng.randint(1, 500) * 100
        new = book.get(p, 0) + delta
        if new > 0:
            book[p] = new
        else:
            book.pop(p, None)
        counts["levels"] += 1
        ts = datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
        emit(
            m,
            "orderbook_delta",
            {
                "market_ticker": m.ticker,
                "market_id": m.market_id,
                "price_dollars": kalshi_price(p),
                "delta_fp": kalshi_count(delta),
                "side": "yes" if yes else "no",
                "ts": ts.replace("+00:00", "Z"),
                "ts_ms": ts_ms,
            },
        )
    return KalshiStream(frames, {m.ticker: m for m in markets}, counts)
