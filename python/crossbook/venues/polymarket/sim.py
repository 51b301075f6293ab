"""Local Polymarket CLOB simulator: the public market channel (``/ws/market``) and a little REST.

Wire shapes follow the vectors in ``shared/vectors/polymarket`` (``book``, batched
``price_change``, ``last_trade_price``, ``best_bid_ask``, ``tick_size_change``) and the real
venue's habits: numbers as trimmed decimal strings, ``book`` levels best-LAST (bids ascending,
asks descending), several initial books as one JSON array, text ``PING`` answered with ``PONG``.

Each simulated market (condition) has a YES and a NO token; the NO book is the mirror of the
YES book (NO bid at 1 - p for every YES ask at p), so one YES change is announced for both.

Run standalone: ``python -m crossbook.venues.polymarket.sim --port 8001``.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from websockets.http11 import Response

from crossbook.venues.simcore import (
    JSON,
    PRICE_SCALE,
    BookView,
    Change,
    HttpRequest,
    LadderBook,
    Session,
    SimServer,
    fmt_trim,
    json_response,
    now_ms,
    price_dec,
    run_standalone,
    size_dec,
)

MAX_ASSETS_PER_CONNECTION = 500
MIN_ORDER_SIZE = "5"

_DEFAULT_QUESTIONS = [
    ("Will the Fed hold rates at the December 2026 FOMC meeting?", "fed-hold-december-2026", 100),
    ("Will Bitcoin be above $100,000 on December 31, 2026?", "bitcoin-above-100k-dec-31-2026", 100),
    ("Will Ethereum be above $5,000 on December 31, 2026?", "ethereum-above-5000-dec-31-2026", 100),
    ("Will US CPI inflation be above 3.0% for November 2026?", "us-cpi-above-3pt0-nov-2026", 10),
]


@dataclass
class PolyMarket:
    condition_id: str
    question: str
    slug: str
    yes_id: str
    no_id: str
    book: LadderBook
    last_trade: tuple[int, str, int] | None = None  # YES price units, side, size units


@dataclass
class PolySub:
    assets: set[str] = field(default_factory=set)
    custom: bool = False


def _book_hash(summary: dict[str, Any]) -> str:
    """SHA1 of the compact book summary with ``hash`` blank (py-clob-client's algorithm)."""
    keyed = {
        "market": summary["market"],
        "asset_id": summary["asset_id"],
        "timestamp": summary["timestamp"],
        "hash": "",
        "bids": summary["bids"],
        "asks": summary["asks"],
        "min_order_size": summary["min_order_size"],
        "tick_size": summary["tick_size"],
        "neg_risk": summary["neg_risk"],
        "last_trade_price": summary["last_trade_price"],
    }
    return hashlib.sha1(orjson.dumps(keyed)).hexdigest()


def _p(units: int) -> str:
    return fmt_trim(price_dec(units))


def _s(units: int) -> str:
    return fmt_trim(size_dec(units))


class PolymarketSim(SimServer):
    """Polymarket market-channel simulator.

    Attributes: ``markets`` (YES token ids, one per condition), ``assets`` (all token ids),
    ``titles`` (token id -> question), ``conditions`` (token id -> condition id),
    ``stats`` (Counter of what was sent), ``port``/``ws_url``/``rest_url`` after ``start()``.
    """

    ws_path = "/ws/market"
    venue = "polymarket"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        markets: int | list[str] = 4,
        tick_interval: float = 0.05,
        heartbeat: bool = True,
        retick_delay: float = 0.05,
        trade_probability: float = 0.1,
    ) -> None:
        super().__init__(host=host, port=port, seed=seed, tick_interval=tick_interval, heartbeat=heartbeat)
        self.retick_delay = retick_delay
        self.trade_probability = trade_probability
        self._by_asset: dict[str, PolyMarket] = {}
        self._markets: list[PolyMarket] = []
        questions = (
            [(q, q.lower().replace(" ", "-")[:60], 100) for q in markets]
            if isinstance(markets, list)
            else [
                _DEFAULT_QUESTIONS[i]
                if i < len(_DEFAULT_QUESTIONS)
                else (f"Simulated market #{i}: will it resolve Yes?", f"simulated-market-{i}", 100)
                for i in range(markets)
            ]
        )
        for i, (question, slug, tick) in enumerate(questions):
            rng = random.Random(f"polymarket:{seed}:{i}")
            condition_id = "0x" + format(rng.getrandbits(256), "064x")
            yes_id = str(rng.randrange(10**76, 10**77))
            no_id = str(rng.randrange(10**76, 10**77))
            fair = rng.randint(PRICE_SCALE * 2 // 10, PRICE_SCALE * 8 // 10)
            book = LadderBook(rng, tick=tick, fair=fair, fractional_sizes=True)
            market = PolyMarket(condition_id, question, slug, yes_id, no_id, book, (book.fair, "BUY", 1000))
            self._markets.append(market)
            self._by_asset[yes_id] = market
            self._by_asset[no_id] = market
        self.markets: list[str] = [m.yes_id for m in self._markets]
        self.assets: list[str] = [a for m in self._markets for a in (m.yes_id, m.no_id)]
        self.titles: dict[str, str] = {a: self._by_asset[a].question for a in self.assets}
        self.conditions: dict[str, str] = {a: self._by_asset[a].condition_id for a in self.assets}
        self._subs: dict[Session, PolySub] = {}

    # -- truth -------------------------------------------------------------------------------
    def book(self, market: str) -> BookView:
        """The true current book of a token: prices/sizes as Decimal, best first."""
        return {side: [(price_dec(p), size_dec(s)) for p, s in levels] for side, levels in self._levels(market).items()}

    def tick_size(self, asset: str) -> Decimal:
        return price_dec(self._by_asset[asset].book.tick)

    def no_token(self, asset: str) -> str:
        """The other token of the same condition."""
        m = self._by_asset[asset]
        return m.no_id if asset == m.yes_id else m.yes_id

    def _levels(self, asset: str) -> dict[str, list[tuple[int, int]]]:
        m = self._by_asset[asset]
        bids, asks = m.book.sorted_bids(), m.book.sorted_asks()
        if asset == m.yes_id:
            return {"bids": bids, "asks": asks}
        return {
            "bids": [(PRICE_SCALE - p, s) for p, s in asks],
            "asks": [(PRICE_SCALE - p, s) for p, s in bids],
        }

    def _last_trade(self, asset: str) -> str:
        m = self._by_asset[asset]
        if m.last_trade is None:
            return ""
        price = m.last_trade[0] if asset == m.yes_id else PRICE_SCALE - m.last_trade[0]
        return _p(price)

    def _summary(self, asset: str, ts: str) -> dict[str, Any]:
        m = self._by_asset[asset]
        levels = self._levels(asset)
        summary: dict[str, Any] = {
            "market": m.condition_id,
            "asset_id": asset,
            "timestamp": ts,
            "hash": "",
            # The venue lists both sides best-LAST: bids ascending, asks descending.
            "bids": [{"price": _p(p), "size": _s(s)} for p, s in reversed(levels["bids"])],
            "asks": [{"price": _p(p), "size": _s(s)} for p, s in reversed(levels["asks"])],
            "min_order_size": MIN_ORDER_SIZE,
            "tick_size": _p(m.book.tick),
            "neg_risk": False,
            "last_trade_price": self._last_trade(asset),
        }
        summary["hash"] = _book_hash(summary)
        return summary

    def _book_event(self, asset: str, ts: str) -> dict[str, Any]:
        return {"event_type": "book", **self._summary(asset, ts)}

    def _top(self, asset: str) -> tuple[str, str]:
        levels = self._levels(asset)
        bid = _p(levels["bids"][0][0]) if levels["bids"] else "0"
        ask = _p(levels["asks"][0][0]) if levels["asks"] else "1"
        return bid, ask

    # -- faults ------------------------------------------------------------------------------
    def change_tick_size(self, asset: str, new_tick: str | Decimal) -> None:
        """Re-tick a market: ``tick_size_change`` now, a fresh ``book`` a moment later."""
        m = self._by_asset[asset]
        new_units = int(Decimal(new_tick) * PRICE_SCALE)
        if new_units <= 0 or Decimal(new_units) != Decimal(new_tick) * PRICE_SCALE:
            raise ValueError(f"tick size {new_tick!r} is not a multiple of 0.0001")
        old = _p(m.book.tick)
        m.book.retick(new_units)
        ts = str(now_ms())
        targets: list[tuple[Session, str]] = []
        for session, sub in self._subs.items():
            for a in (m.yes_id, m.no_id):
                if a in sub.assets:
                    msg = {
                        "event_type": "tick_size_change",
                        "asset_id": a,
                        "market": m.condition_id,
                        "old_tick_size": old,
                        "new_tick_size": _p(new_units),
                        "timestamp": ts,
                    }
                    session.enqueue("tick_size_change", msg)
                    targets.append((session, a))

        def resend() -> None:
            now = str(now_ms())
            for session, a in targets:
                if session in self._subs and a in self._subs[session].assets:
                    session.enqueue("book", self._book_event(a, now))

        asyncio.get_running_loop().call_later(self.retick_delay, resend)

    def _fault_table(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        table = super()._fault_table()
        table["tick_size_change"] = lambda a: self.change_tick_size(
            str(a.get("asset") or a.get("asset_id") or self.markets[0]), str(a.get("new_tick", "0.001"))
        )
        table["change_tick_size"] = table["tick_size_change"]
        return table

    def _garbage_frames(self, session: Session) -> list[str]:
        sub = self._subs.get(session)
        asset = next(iter(sorted(sub.assets)), self.markets[0]) if sub else self.markets[0]
        m = self._by_asset[asset]
        bad_price = orjson.dumps(
            {
                "event_type": "price_change",
                "market": m.condition_id,
                "price_changes": [
                    {
                        "asset_id": asset,
                        "price": "abc",
                        "size": "10",
                        "side": "BUY",
                        "hash": "0",
                        "best_bid": "abc",
                        "best_ask": "0.5",
                    }
                ],
                "timestamp": str(now_ms()),
            }
        ).decode()
        full = orjson.dumps(self._book_event(asset, str(now_ms()))).decode()
        return ["{not json at all", full[: len(full) // 2], bad_price]

    # -- the stream --------------------------------------------------------------------------
    def _step_markets(self) -> None:
        ts = str(now_ms())
        for m in self._markets:
            tops_before = {a: self._top(a) for a in (m.yes_id, m.no_id)}
            changes = m.book.step()
            trade = None
            if m.book.rng.random() < self.trade_probability:
                trade = m.book.trade()
            if not self._subs:
                if trade is not None:
                    m.last_trade = (trade[1], "SELL" if trade[0] == "bid" else "BUY", trade[2])
                continue
            entries = {a: self._entries(m, a, changes) for a in (m.yes_id, m.no_id)} if changes else {}
            trade_msgs: dict[str, dict[str, Any]] = {}
            if trade is not None:
                side, price, size = trade
                taker = "SELL" if side == "bid" else "BUY"  # hitting the bid is a sell
                m.last_trade = (price, taker, size)
                for a in (m.yes_id, m.no_id):
                    is_yes = a == m.yes_id
                    trade_msgs[a] = {
                        "asset_id": a,
                        "event_type": "last_trade_price",
                        "fee_rate_bps": "0",
                        "market": m.condition_id,
                        "price": _p(price if is_yes else PRICE_SCALE - price),
                        "side": taker if is_yes else ("BUY" if taker == "SELL" else "SELL"),
                        "size": _s(size),
                        "timestamp": ts,
                    }
            bbo: dict[str, dict[str, Any]] = {}
            for a in (m.yes_id, m.no_id):
                top = self._top(a)
                if top != tops_before[a]:
                    bbo[a] = {
                        "event_type": "best_bid_ask",
                        "market": m.condition_id,
                        "asset_id": a,
                        "best_bid": top[0],
                        "best_ask": top[1],
                        "spread": fmt_trim(Decimal(top[1]) - Decimal(top[0])),
                        "timestamp": ts,
                    }
            for session, sub in self._subs.items():
                mine = [a for a in (m.yes_id, m.no_id) if a in sub.assets]
                if not mine:
                    continue
                batch = [e for a in mine for e in entries.get(a, [])]
                if batch:
                    self.deliver(
                        session,
                        "price_change",
                        {
                            "event_type": "price_change",
                            "market": m.condition_id,
                            "price_changes": batch,
                            "timestamp": ts,
                        },
                    )
                for a in mine:
                    if a in trade_msgs:
                        self.deliver(session, "last_trade_price", trade_msgs[a])
                    if sub.custom and a in bbo:
                        self.deliver(session, "best_bid_ask", bbo[a])

    def _entries(self, m: PolyMarket, asset: str, changes: list[Change]) -> list[dict[str, str]]:
        is_yes = asset == m.yes_id
        best_bid, best_ask = self._top(asset)
        book_hash = _book_hash(self._summary(asset, ""))
        out: list[dict[str, str]] = []
        for c in changes:
            if is_yes:
                price, side = c.price, ("BUY" if c.side == "bid" else "SELL")
            else:
                price, side = PRICE_SCALE - c.price, ("SELL" if c.side == "bid" else "BUY")
            out.append(
                {
                    "asset_id": asset,
                    "price": _p(price),
                    "size": _s(c.size),
                    "side": side,
                    "hash": book_hash,
                    "best_bid": best_bid,
                    "best_ask": best_ask,
                }
            )
        return out

    async def _on_open(self, session: Session) -> None:
        self._subs[session] = PolySub()

    def _on_close(self, session: Session) -> None:
        self._subs.pop(session, None)

    async def _on_message(self, session: Session, message: str | bytes) -> None:
        text = message.decode() if isinstance(message, bytes) else message
        if text.strip() == "PING":
            if self.is_stalled(session.conn):
                self.stats["pongs_withheld"] += 1
            else:
                session.enqueue("pong", "PONG")
            return
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.stats["bad_client_messages"] += 1
            return
        if not isinstance(req, dict) or not isinstance(req.get("assets_ids"), list):
            self.stats["bad_client_messages"] += 1
            return
        sub = self._subs.setdefault(session, PolySub())
        requested = [str(a) for a in req["assets_ids"]]
        if req.get("custom_feature_enabled") is True:
            sub.custom = True
        operation = req.get("operation")
        if operation == "unsubscribe":
            sub.assets.difference_update(requested)
            return
        if len(sub.assets | set(requested)) > MAX_ASSETS_PER_CONNECTION:
            self.stats["refused_too_many_assets"] += 1
            await session.conn.close(1008, f"too many assets (max {MAX_ASSETS_PER_CONNECTION})")
            return
        fresh = [a for a in dict.fromkeys(requested) if a in self._by_asset and a not in sub.assets]
        # Unknown ids are ignored silently, as the venue does.
        sub.assets.update(fresh)
        if not fresh:
            return
        ts = str(now_ms())
        books = [self._book_event(a, ts) for a in fresh]
        for _ in books:
            self.stats["book_snapshots"] += 1
        session.enqueue("book", books if len(books) > 1 else books[0])

    # -- REST --------------------------------------------------------------------------------
    def _route(self, request: HttpRequest) -> Response | None:
        if request.method != "GET":
            return None
        if request.path == "/book":
            token = request.param("token_id") or ""
            if token not in self._by_asset:
                return json_response(404, {"error": "No orderbook exists for the requested token id"})
            return json_response(200, self._summary(token, str(now_ms())))
        if request.path == "/markets":
            data = [self._clob_market(m) for m in self._markets]
            page = {"limit": 1000, "count": len(data), "next_cursor": "LTE=", "data": data}
            return json_response(200, page)
        if request.path == "/gamma/markets":
            return json_response(200, [self._gamma_market(i, m) for i, m in enumerate(self._markets)])
        return None

    def _clob_market(self, m: PolyMarket) -> JSON:
        yes_price = _p(m.book.fair)
        no_price = _p(PRICE_SCALE - m.book.fair)
        return {
            "condition_id": m.condition_id,
            "question_id": "0x" + hashlib.sha256(m.condition_id.encode()).hexdigest(),
            "question": m.question,
            "market_slug": m.slug,
            "end_date_iso": "2026-12-31T00:00:00Z",
            "active": True,
            "closed": False,
            "archived": False,
            "accepting_orders": True,
            "enable_order_book": True,
            "minimum_order_size": int(MIN_ORDER_SIZE),
            "minimum_tick_size": _p(m.book.tick),
            "neg_risk": False,
            "tokens": [
                {"token_id": m.yes_id, "outcome": "Yes", "price": yes_price, "winner": False},
                {"token_id": m.no_id, "outcome": "No", "price": no_price, "winner": False},
            ],
        }

    def _gamma_market(self, i: int, m: PolyMarket) -> JSON:
        tokens = [m.yes_id, m.no_id]
        return {
            "id": str(500000 + i),
            "question": m.question,
            "conditionId": m.condition_id,
            "condition_id": m.condition_id,
            "slug": m.slug,
            "endDate": "2026-12-31T00:00:00Z",
            "active": True,
            "closed": False,
            "enableOrderBook": True,
            "negRisk": False,
            "orderPriceMinTickSize": _p(m.book.tick),
            "orderMinSize": MIN_ORDER_SIZE,
            # Gamma really sends these two as JSON-encoded strings.
            "outcomes": orjson.dumps(["Yes", "No"]).decode(),
            "clobTokenIds": orjson.dumps(tokens).decode(),
            "clob_token_ids": tokens,
            "tokens": [{"token_id": m.yes_id, "outcome": "Yes"}, {"token_id": m.no_id, "outcome": "No"}],
        }


def main(argv: list[str] | None = None) -> None:
    run_standalone(
        lambda host, port, seed: PolymarketSim(host=host, port=port, seed=seed),
        argv,
        "Local Polymarket CLOB market-channel simulator",
    )


if __name__ == "__main__":
    main()
