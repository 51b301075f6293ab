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
import base64
import binascii
import hashlib
import hmac
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response

from crossbook.venues.simcore import (
    JSON,
    PRICE_SCALE,
    SIZE_SCALE,
    BookView,
    Change,
    HttpRequest,
    LadderBook,
    Session,
    SimDisconnect,
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
TOKEN_DECIMALS = 10**6  # pUSD and outcome tokens: 6 decimals; wire amounts are base units
# Order V2 EIP-712 (CTF Exchange "2", Polygon). The sim checks signatures with eth-account, an
# implementation independent of crossbook's Rust signer, so a shared bug cannot hide.
EXCHANGE_V2 = "0xE111180000d2663C0091e4f400237545B87B996B"
NEG_RISK_EXCHANGE_V2 = "0xe2222d279d744050d28e00520010520000310F59"
_ORDER_V2_FIELDS = (
    ("salt", "uint256"), ("maker", "address"), ("signer", "address"), ("tokenId", "uint256"),
    ("makerAmount", "uint256"), ("takerAmount", "uint256"), ("side", "uint8"), ("signatureType", "uint8"),
    ("timestamp", "uint256"), ("metadata", "bytes32"), ("builder", "bytes32"),
)  # fmt: skip
ORDER_TYPES = ("GTC", "GTD", "FOK", "FAK")
L2_MAX_SKEW_S = 30

_DEFAULT_QUESTIONS = [
    ("Will the Fed hold rates at the December 2026 FOMC meeting?", "fed-hold-december-2026", 100),
    ("Will Bitcoin be above $100,000 on December 31, 2026?", "bitcoin-above-100k-dec-31-2026", 100),
    ("Will Ethereum be above $5,000 on December 31, 2026?", "ethereum-above-5000-dec-31-2026", 100),
    ("Will US CPI inflation be above 3.0% for November 2026?", "us-cpi-above-3pt0-nov-2026", 10),
]


# A realistic Gamma catalog (question, slug, description, endDate) for `crossbook pairs sync`: texts in the venue's
# own style, modeled on the shared labelled pairs. Served by ``/gamma/markets`` after the book markets when the sim
# is built with ``catalog=CATALOG`` (or any list of such tuples).
CATALOG: list[tuple[str, str, str, str]] = [
    (
        'Knicks vs. Trail Blazers: Will the Knicks win?',
        'nba-nyk-por-2026-03-12',
        ('In the upcoming NBA game, scheduled for March 12, 2026 at 10:00PM ET:\nIf the New York Knicks '
         'win, the market will resolve to "Yes".\nIf the Portland Trail Blazers win, the market will '
         'resolve to "No".\nIf the game is postponed, this market will remain open until the game has been '
         'completed, provided it is completed within 14 days of the originally scheduled date. If the game '
         'is canceled entirely, with no make-up game within that period, this market will resolve '
         '50-50.\n\nThe result will be determined based on the official final score as reported by the NBA, '
         'including overtime.'),
        '2026-03-13T05:00:00Z',
    ),
    (
        'Chiefs vs. Bills: Will the Chiefs win?',
        'nfl-kc-buf-2025-11-02',
        ('In the upcoming NFL game, scheduled for November 2, 2025 at 4:25PM ET:\nIf the Kansas City Chiefs '
         'win, the market will resolve to "Yes".\nIf the Buffalo Bills win, the market will resolve to '
         '"No".\nIf the game ends in a tie, this market will resolve 50-50.\nIf the game is postponed, this '
         'market will remain open until the game has been completed, provided it is completed within 14 '
         'days of the originally scheduled date; otherwise this market will resolve 50-50.\n\nThe '
         'resolution source is the official NFL final score, including overtime.'),
        '2025-11-03T02:00:00Z',
    ),
    (
        'June 2026 CPI month-over-month above 0.3%?',
        'june-2026-cpi-mom-above-0pt3',
        ('This market will resolve to "Yes" if the seasonally adjusted month-over-month percent change in '
         'the Consumer Price Index for All Urban Consumers (CPI-U) for June 2026, as published by the U.S. '
         'Bureau of Labor Statistics, is greater than 0.3%. Otherwise, this market will resolve to '
         '"No".\n\nThe resolution source will be the BLS CPI release for June 2026 (scheduled for July 14, '
         '2026). The figure is reported to one decimal place; subsequent revisions will not be '
         'considered.\n\nIf the release is delayed, this market will remain open until the data is '
         'published.'),
        '2026-07-14T12:30:00Z',
    ),
    (
        'Will the highest temperature in Chicago be 90°F or higher on July 20?',
        'highest-temperature-in-chicago-90f-or-higher-july-20-2026',
        ('This market will resolve to "Yes" if the highest temperature recorded at Chicago Midway '
         'International Airport on July 20, 2026, as reported in the National Weather Service Daily '
         'Climatological Report (CLI) for Chicago Midway (CLIMDW), is 90°F or higher. Otherwise, this '
         'market will resolve to "No".\n\nThe resolution source measures temperatures in whole degrees '
         'Fahrenheit. Only the final CLI value for July 20 will be used; later revisions will not be '
         'considered.'),
        '2026-07-21T12:00:00Z',
    ),
    (
        'Ethereum above $3,999.99 on September 30 at 5PM ET?',
        'ethereum-above-3999-on-september-30-5pm-et',
        ('This market will resolve to "Yes" if the CF Benchmarks Ether-Dollar Real Time Index (ETHUSD_RTI), '
         'calculated as the simple average of the sixty seconds of index values before 5:00 PM ET on '
         'September 30, 2026, is above $3,999.99. Otherwise, this market will resolve to "No".\n\nThe '
         'resolution source for this market is CF Benchmarks. Price precision is two decimal places.'),
        '2026-09-30T21:00:00Z',
    ),
    (
        'Will the highest temperature in Philadelphia be 80°F or higher on May 18?',
        'highest-temperature-in-philadelphia-80f-or-higher-may-18-2026',
        ('This market will resolve to "Yes" if the highest temperature recorded at Philadelphia '
         'International Airport on May 18, 2026, as reported in the National Weather Service Daily '
         'Climatological Report (CLIPHL), is 80°F or higher. Otherwise, this market will resolve to '
         '"No".\n\nTemperatures are reported in whole degrees Fahrenheit. Only the final CLI value will be '
         'used.'),
        '2026-05-19T12:00:00Z',
    ),
    (
        'Will the highest temperature in New York City be 88°F or higher on July 21?',
        'highest-temperature-in-nyc-on-july-21-2026-88forhigher',
        ('This market will resolve to the temperature range that contains the highest temperature recorded '
         "at the LaGuardia Airport Station in degrees Fahrenheit on 21 Jul '26.\n\nThe resolution source "
         'for this market will be information from Wunderground, specifically the highest temperature '
         'recorded for all times on this day for the LaGuardia Airport Station, available here: '
         'https://www.wunderground.com/history/daily/us/ny/new-york-city/KLGA.\n\nThis market can not '
         'resolve until the first data point for the following date has been published on the resolution '
         'source.\n\nThe resolution source for this market measures temperatures to whole degrees '
         'Fahrenheit (eg, 21°F). Thus, this is the level of precision that will be used when resolving the '
         'market.'),
        '2026-07-21T12:00:00Z',
    ),
    (
        'Will the highest temperature in Miami be 90°F or higher on August 4?',
        'highest-temperature-in-miami-90f-or-higher-aug-4-2026',
        ('This market will resolve to "Yes" if the highest temperature recorded at Miami International '
         'Airport on August 4, 2026, as reported in the National Weather Service Daily Climatological '
         'Report (CLIMIA), is 90°F or higher. Otherwise, this market will resolve to "No".\n\nTemperatures '
         'are reported in whole degrees Fahrenheit. Only the final CLI value will be used.'),
        '2026-08-05T12:00:00Z',
    ),
    (
        'Fed decreases interest rates by 25 bps after March 2026 meeting?',
        'fed-decreases-interest-rates-by-25-bps-after-march-2026-meeting',
        ('The FED interest rates are defined in this market by the upper bound of the target federal funds '
         'range. The decisions on the target federal fund range are made by the Federal Open Market '
         'Committee (FOMC) meetings.\n\nThis market will resolve to "Yes" if the upper bound of the target '
         'federal funds rate is decreased by exactly 25 basis points at the conclusion of the FOMC meeting '
         'scheduled for March 17 - 18, 2026, compared to the level it was prior to the meeting. Otherwise, '
         'this market will resolve to "No".\n\nIf no statement is released by the end date of the next '
         'scheduled meeting, this market will resolve to the "No" outcome.\n\nThe resolution source for '
         'this market is the FOMC’s statement after its meeting.'),
        '2026-03-18T18:00:00Z',
    ),
    (
        'Will the Seattle Seahawks win Super Bowl 2026?',
        'will-the-seattle-seahawks-win-super-bowl-2026',
        ('This market will resolve to "Yes" if the Seattle Seahawks win Super Bowl LX, scheduled for '
         'February 8, 2026. Otherwise, this market will resolve to "No".\n\nIf the Super Bowl is postponed, '
         'this market will remain open until the game is played. The resolution source will be the official '
         'NFL result.'),
        '2026-02-09T05:00:00Z',
    ),
    (
        'Will the Los Angeles Rams win Super Bowl 2026?',
        'will-the-los-angeles-rams-win-super-bowl-2026',
        ('This market will resolve to "Yes" if the Los Angeles Rams win Super Bowl LX, scheduled for '
         'February 8, 2026. Otherwise, this market will resolve to "No".\n\nThe resolution source will be '
         'the official NFL result.'),
        '2026-02-09T05:00:00Z',
    ),
    (
        'Will Arsenal win the 2025–26 English Premier League?',
        'will-arsenal-win-the-2025-26-english-premier-league',
        ('This market will resolve to "Yes" if Arsenal is officially crowned champion of the 2025–26 '
         'English Premier League season. Otherwise, this market will resolve to "No".\n\nThe resolution '
         'source will be the official Premier League website. If the season is not completed, this market '
         'will resolve according to the title as officially awarded by the Premier League.'),
        '2026-05-24T23:00:00Z',
    ),
    (
        'Will Gavin Newsom win the 2028 Democratic presidential nomination?',
        'will-gavin-newsom-win-the-2028-democratic-presidential-nomination-568',
        ('This market will resolve to “Yes” if the named individual wins and accepts the 2028 nomination of '
         'the Democratic Party for U.S. president. Otherwise, this market will resolve to “No”.\n\nThe '
         'resolution source for this market will be a consensus of official Democratic Party '
         'sources.\n\nAny replacement of the democratic nominee before election day will not change the '
         'resolution of the market.'),
        '2028-11-07T00:00:00Z',
    ),
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


@dataclass
class PolyUserSub:
    """A ``/ws/user`` connection: which API key it authenticated as, and its market filter."""

    api_key: str = ""
    markets: set[str] = field(default_factory=set)  # condition ids; empty = all


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
    ws_extra_paths = ("/ws/user",)
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
        catalog: Sequence[tuple[str, str, str, str]] = (),
    ) -> None:
        super().__init__(host=host, port=port, seed=seed, tick_interval=tick_interval, heartbeat=heartbeat)
        self.catalog = [_catalog_market(i, *entry) for i, entry in enumerate(catalog)]
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
        self._api_creds: dict[str, tuple[str, str]] = {}  # api key -> (secret, passphrase)
        self._user_subs: dict[Session, PolyUserSub] = {}
        self._api_addresses: dict[str, str] = {}  # api key -> wallet address (lowercase)
        self.orders: dict[str, dict[str, Any]] = {}  # order hash -> the venue's order record
        self.trades: list[dict[str, Any]] = []
        self.order_rate = (50.0, 50.0)  # POST /order per API key: tokens per second, burst
        self.read_rate = (100.0, 100.0)
        self.chain_id = 137
        # Heartbeat-based cancellation: once an API key has sent a heartbeat, a gap longer than this
        # cancels all its open orders (the venue's order-safety heartbeat; tests shorten it).
        self.heartbeat_timeout_s = 10.0
        self._heartbeats: dict[str, tuple[float, str]] = {}  # api key -> (last seen, monotonic s; heartbeat id)

    async def start(self) -> None:
        # eth-account takes ~0.7 s to import: pay that before the first order, not inside its reply time.
        await asyncio.to_thread(_import_eth_account)
        await super().start()
        self._tasks.append(asyncio.get_running_loop().create_task(self._heartbeat_watch()))

    # -- order safety: heartbeats and cancels ----------------------------------------------------
    def post_heartbeat(self, api_key: str, body: bytes) -> dict[str, Any]:
        """``POST /v1/heartbeats``: arms (or feeds) the key's dead man's switch; answers the heartbeat id."""
        try:
            req = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            raise OrderError(400, "Invalid heartbeat payload: body is not JSON") from None
        previous = self._heartbeats.get(api_key)
        given = req.get("heartbeat_id") if isinstance(req, dict) else None
        if previous is not None and given and given != previous[1]:
            raise OrderError(400, f"unknown heartbeat_id {given!r} (expected the last one returned)")
        hb_id = previous[1] if previous is not None else str(uuid.uuid4())
        self._heartbeats[api_key] = (time.monotonic(), hb_id)
        self.stats["heartbeats"] += 1
        return {"status": "ok", "heartbeat_id": hb_id}

    async def _heartbeat_watch(self) -> None:
        while True:
            await asyncio.sleep(min(0.05, self.heartbeat_timeout_s / 4))
            now = time.monotonic()
            for api_key, (seen, _) in list(self._heartbeats.items()):
                if now - seen > self.heartbeat_timeout_s:
                    del self._heartbeats[api_key]  # disarmed until the next heartbeat
                    n = len(self.cancel_orders(api_key, None))
                    self.stats["heartbeat_expiries"] += 1
                    self.stats["heartbeat_cancels"] += n

    def shift_book(self, market: str | None = None, ticks: int = 1) -> int:
        """Reprice the YES book (its NO token mirrors it) of ``market`` (a token id; None: all) by ``ticks``."""
        ms = [self._by_asset[market]] if market else self._markets
        return sum(len(m.book.shift(ticks)) for m in ms)

    def open_orders(self, api_key: str | None = None) -> list[dict[str, Any]]:
        return [o for o in self.orders.values() if o["status"] == "LIVE" and api_key in (None, o["owner"])]

    def cancel_orders(self, api_key: str, ids: list[str] | None) -> list[str]:
        """Cancel the key's live orders (``ids`` None: all of them); returns the ids cancelled."""
        done: list[str] = []
        for o in self.open_orders(api_key):
            if ids is not None and o["id"] not in ids:
                continue
            o["status"] = "CANCELED"
            done.append(o["id"])
            self.stats["orders_cancelled"] += 1
            now = now_ms()
            self.push_user_event(api_key, {
                "event_type": "order", "type": "CANCELLATION", "id": o["id"], "asset_id": o["asset_id"],
                "market": o["market"], "side": o["side"], "price": o["price"], "original_size": o["original_size"],
                "size_matched": o["size_matched"], "status": "CANCELED", "outcome": o["outcome"], "owner": api_key,
                "order_owner": api_key, "timestamp": str(now),
            })  # fmt: skip
        return done

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

    # -- user channel (/ws/user) ---------------------------------------------------------------
    def add_api_creds(self, api_key: str, secret: str, passphrase: str, address: str | None = None) -> None:
        """Accept these L2 API credentials on ``/ws/user`` and the trading endpoints. With ``address``,
        orders and ``POLY_ADDRESS`` must name that wallet (the key was derived for it)."""
        self._api_creds[api_key] = (secret, passphrase)
        if address is not None:
            self._api_addresses[api_key] = address.lower()

    def user_subscribers(self) -> list[str]:
        """The API keys of the ``/ws/user`` connections authenticated so far (one entry per connection)."""
        return [sub.api_key for sub in self._user_subs.values() if sub.api_key]

    def push_user_event(self, api_key: str, event: dict[str, Any]) -> int:
        """Send an ``order``/``trade`` event to the ``/ws/user`` connections authenticated as
        ``api_key`` (filtered by their ``markets`` when they named some). Returns how many got it."""
        count = 0
        for session, sub in self._user_subs.items():
            if sub.api_key != api_key or (sub.markets and event.get("market") not in sub.markets):
                continue
            if self.deliver(session, str(event.get("event_type", "user_event")), event):
                count += 1
        self.stats["user_events"] += count
        return count

    async def _on_user_message(self, session: Session, text: str) -> None:
        # Bad credentials: the connection is closed (policy violation); the real venue's exact
        # reaction is not documented in shared/reference, so clients should treat both alike.
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.stats["bad_client_messages"] += 1
            return
        sub = self._user_subs[session]
        if not isinstance(req, dict):
            self.stats["bad_client_messages"] += 1
            return
        auth = req.get("auth")
        if isinstance(auth, dict):
            key, secret, passphrase = auth.get("apiKey"), auth.get("secret"), auth.get("passphrase")
            if not isinstance(key, str) or self._api_creds.get(key) != (secret, passphrase):
                self.stats["user_auth_refused"] += 1
                await session.conn.close(1008, "invalid api credentials")
                return
            sub.api_key = key
        if not sub.api_key:
            self.stats["user_auth_refused"] += 1
            await session.conn.close(1008, "auth required")
            return
        markets = req.get("markets")
        if isinstance(markets, list):
            if req.get("operation") == "unsubscribe":
                sub.markets.difference_update(str(m) for m in markets)
            else:
                sub.markets.update(str(m) for m in markets)

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
        request = session.conn.request
        if request is not None and request.path.split("?", 1)[0] in self.ws_extra_paths:
            self._user_subs[session] = PolyUserSub()
            return
        self._subs[session] = PolySub()

    def _on_close(self, session: Session) -> None:
        self._subs.pop(session, None)
        self._user_subs.pop(session, None)

    async def _on_message(self, session: Session, message: str | bytes) -> None:
        text = message.decode() if isinstance(message, bytes) else message
        if text.strip() == "PING":
            if self.is_stalled(session.conn):
                self.stats["pongs_withheld"] += 1
            else:
                session.enqueue("pong", "PONG")
            return
        if session in self._user_subs:
            await self._on_user_message(session, text)
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
            for a in dict.fromkeys(requested):
                if a in sub.assets:  # per asset, for tests: how often the venue was asked to stop one
                    self.stats[f"unsubscribe:{a}"] += 1
            sub.assets.difference_update(requested)
            return
        if len(sub.assets | set(requested)) > MAX_ASSETS_PER_CONNECTION:
            self.stats["refused_too_many_assets"] += 1
            await session.conn.close(1008, f"too many assets (max {MAX_ASSETS_PER_CONNECTION})")
            return
        fresh = [a for a in dict.fromkeys(requested) if a in self._by_asset and a not in sub.assets]
        # Unknown ids are ignored silently, as the venue does.
        sub.assets.update(fresh)
        for a in fresh:  # per asset, for tests: how often the venue was asked to start one
            self.stats[f"subscribe:{a}"] += 1
        if not fresh:
            return
        ts = str(now_ms())
        books = [self._book_event(a, ts) for a in fresh]
        for _ in books:
            self.stats["book_snapshots"] += 1
        session.enqueue("book", books if len(books) > 1 else books[0])

    def subscribed_assets(self) -> list[list[str]]:
        """Per open market-channel connection, the asset ids it is subscribed to (for tests)."""
        return [sorted(sub.assets) for sub in self._subs.values()]

    # -- trading REST (L2 auth) --------------------------------------------------------------
    def check_l2(self, request: HttpRequest) -> tuple[str, str]:
        """(api key, address) if the L2 headers authenticate this exact request; else OrderError 401.

        Exactly as the venue: ``POLY_SIGNATURE = base64url(HMAC_SHA256(base64url_decode(secret),
        timestamp + METHOD + path + body))`` over the body bytes as sent."""
        h = request.headers
        key, sig, ts, address, passphrase = (
            h.get("POLY_API_KEY"), h.get("POLY_SIGNATURE"), h.get("POLY_TIMESTAMP"), h.get("POLY_ADDRESS"),
            h.get("POLY_PASSPHRASE"),
        )  # fmt: skip
        if not (key and sig and ts and address and passphrase):
            raise OrderError(401, "Unauthorized/Invalid api key")
        creds = self._api_creds.get(key)
        if creds is None or not hmac.compare_digest(creds[1], passphrase):
            raise OrderError(401, "Unauthorized/Invalid api key")
        if not ts.isdigit() or abs(int(ts) - time.time()) > L2_MAX_SKEW_S:
            raise OrderError(401, "Unauthorized/Invalid timestamp")
        bound = self._api_addresses.get(key)
        if bound is not None and bound != address.lower():
            raise OrderError(401, "Unauthorized/POLY_ADDRESS does not own this api key")
        try:
            secret = base64.urlsafe_b64decode(creds[0])
        except (binascii.Error, ValueError):
            raise OrderError(401, "Unauthorized/Invalid api key") from None
        message = ts.encode() + request.method.upper().encode() + request.path.encode() + request.body
        expected = base64.urlsafe_b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected, sig):
            self.stats["l2_signature_refused"] += 1
            raise OrderError(401, "Unauthorized/Invalid signature")
        return key, address.lower()

    async def _route_async(self, request: HttpRequest, conn: ServerConnection) -> Response | None:
        trading = request.path in ("/order", "/cancel-all", "/v1/heartbeats", "/heartbeats") or (
            request.path.startswith("/data/"))  # fmt: skip
        if not trading:
            return self._route(request)
        try:
            api_key, address = self.check_l2(request)
            write = request.method in ("POST", "DELETE")
            rate, burst = self.order_rate if write else self.read_rate
            if request.path not in ("/v1/heartbeats", "/heartbeats") and self.rate_limited(
                f"{api_key}:{'write' if write else 'read'}", rate, burst
            ):
                return json_response(429, {"error": "Too Many Requests"}, {"Retry-After": "1"})
            if request.method == "POST" and request.path in ("/v1/heartbeats", "/heartbeats"):
                return json_response(200, self.post_heartbeat(api_key, request.body))
            if request.method == "DELETE" and request.path == "/cancel-all":
                return json_response(200, {"canceled": self.cancel_orders(api_key, None), "not_canceled": {}})
            if request.method == "DELETE" and request.path == "/order":
                try:
                    order_id = str(orjson.loads(request.body or b"{}").get("orderID", ""))
                except (orjson.JSONDecodeError, AttributeError):
                    raise OrderError(400, "Invalid payload: {\"orderID\": ...} expected") from None
                done = self.cancel_orders(api_key, [order_id])
                missing = {} if done else {order_id: "order can't be found - already canceled or matched"}
                return json_response(200, {"canceled": done, "not_canceled": missing})
            if request.method == "POST" and request.path == "/order":
                try:
                    reply, hold = self.post_order(api_key, address, request.body)
                except SimDisconnect:
                    return await self.drop_mid_order(conn)
                response = json_response(200, reply)
                return await self._reply(conn, response, hold)
            if request.method == "GET" and request.path.startswith("/data/order/"):
                record = self.orders.get(request.path[len("/data/order/") :])
                if record is None or record["owner"] != api_key:
                    return json_response(404, {"error": "order not found"})
                return json_response(200, record)
            if request.method == "GET" and request.path == "/data/trades":
                wanted = {k: request.param(k) for k in ("id", "market", "asset_id", "taker_order_id")}
                data = [
                    t for t in self.trades
                    if t["owner"] == api_key and all(v is None or t.get(k) == v for k, v in wanted.items())
                ]  # fmt: skip
                return json_response(200, {"data": data, "next_cursor": "LTE=", "limit": 500, "count": len(data)})
        except OrderError as exc:
            return json_response(exc.status, {"error": str(exc)})
        return None

    def post_order(self, api_key: str, address: str, body: bytes) -> tuple[dict[str, Any], str]:
        """Validate, match and book one ``POST /order`` body; returns (reply, hold the reply back)."""
        try:
            req = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise OrderError(400, "Invalid order payload: body is not JSON") from None
        if not isinstance(req, dict) or not isinstance(req.get("order"), dict):
            raise OrderError(400, "Invalid order payload: missing order")
        order: dict[str, Any] = req["order"]
        if req.get("owner") != api_key:
            raise OrderError(400, "the order owner has to be the owner of the API KEY")
        order_type = str(req.get("orderType", "GTC"))
        if order_type not in ORDER_TYPES:
            raise OrderError(400, f"invalid order type {order_type!r}")
        order_hash, recovered = recover_order_signer(order, self.chain_id)
        signer = str(order.get("signer", "")).lower()
        maker = str(order.get("maker", "")).lower()
        if recovered != signer:
            self.stats["order_signature_refused"] += 1
            raise OrderError(400, "invalid signature")
        if int(order.get("signatureType", 0)) == 0 and maker != signer:
            raise OrderError(400, "invalid order: an EOA order (signatureType 0) needs maker == signer")
        if address not in (signer, maker):
            raise OrderError(400, "invalid order: POLY_ADDRESS is neither the maker nor the signer")
        if order_hash in self.orders:
            self.stats["orders_duplicate"] += 1
            raise OrderError(400, f"order {order_hash} already exists (duplicate)")
        token = str(order.get("tokenId", ""))
        m = self._by_asset.get(token)
        if m is None:
            raise OrderError(400, f"invalid order: unknown tokenId {token}")
        side = str(order.get("side"))
        if side not in ("BUY", "SELL"):
            raise OrderError(400, "invalid order: side must be BUY or SELL")
        maker_amount, taker_amount = int(order["makerAmount"]), int(order["takerAmount"])
        if maker_amount <= 0 or taker_amount <= 0:
            raise OrderError(400, "invalid order: amounts must be above 0")
        usdc, shares = (maker_amount, taker_amount) if side == "BUY" else (taker_amount, maker_amount)
        tick = m.book.tick
        if (usdc * PRICE_SCALE) % shares:
            raise OrderError(400, f"invalid order: price breaks minimum tick size rule: {_p(tick)}")
        price = usdc * PRICE_SCALE // shares  # token price, PRICE_SCALE units
        if price % tick or not tick <= price <= PRICE_SCALE - tick:
            raise OrderError(
                400, f"invalid order: price ({fmt_trim(Decimal(usdc) / shares)}), min: {_p(tick)} - max: "
                f"{_p(PRICE_SCALE - tick)} (tick {_p(tick)})",
            )  # fmt: skip
        unit = TOKEN_DECIMALS // SIZE_SCALE
        if shares % unit:
            raise OrderError(400, "invalid order: size has more than 2 decimals")
        size = shares // unit  # SIZE_SCALE units
        if size < Decimal(MIN_ORDER_SIZE) * SIZE_SCALE:
            raise OrderError(400, f"invalid order: size lower than the minimum: {MIN_ORDER_SIZE}")
        fault = self.take_order_fault()
        if fault == ("disconnect", "before_accept"):
            raise SimDisconnect()
        if fault is not None and fault[0] == "reject":
            self.stats["orders_rejected"] += 1
            raise OrderError(400, fault[1])
        cap = size
        if fault is not None and fault[0] == "partial":
            cap = int(size * Decimal(fault[1]))
        # Match against the YES ladder: a NO-token order is the mirror order on the YES book.
        is_yes = token == m.yes_id
        buy_yes = (side == "BUY") == is_yes
        ladder_side: Literal["bid", "ask"] = "ask" if buy_yes else "bid"
        limit = price if is_yes else PRICE_SCALE - price
        if order_type == "FOK" and (cap < size or m.book.available(ladder_side, limit) < size):
            self.stats["orders_killed"] += 1
            raise OrderError(400, "order couldn't be fully filled. FOK orders are fully filled or killed.")
        fills = m.book.take(ladder_side, limit, cap)
        matched = sum(f[1] for f in fills)
        if order_type == "FAK" and matched == 0:
            self.stats["orders_killed"] += 1
            raise OrderError(
                400, "no orders found to match with FAK order. FAK orders are partially filled or killed if no "
                "match is found.",
            )  # fmt: skip
        self.stats["orders_accepted"] += 1
        now = now_ms()
        resting = matched < size and order_type in ("GTC", "GTD")
        status = "LIVE" if resting else ("MATCHED" if matched else "CANCELED")
        outcome = "Yes" if is_yes else "No"
        trade_ids: list[str] = []
        making = taking = 0  # making: what the taker gave, taking: what it got (base units)
        for ladder_price, got in fills:
            tprice = ladder_price if is_yes else PRICE_SCALE - ladder_price
            notional = tprice * got * (TOKEN_DECIMALS // (PRICE_SCALE * SIZE_SCALE))
            if side == "BUY":
                making, taking = making + notional, taking + got * unit
            else:
                making, taking = making + got * unit, taking + notional
            trade_id = str(uuid.uuid4())
            trade_ids.append(trade_id)
            trade = {
                "event_type": "trade", "type": "TRADE", "id": trade_id, "taker_order_id": order_hash,
                "market": m.condition_id, "asset_id": token, "side": side, "price": _p(tprice), "size": _s(got),
                "status": "MATCHED", "outcome": outcome, "owner": api_key, "trade_owner": api_key,
                "maker_address": maker, "trader_side": "TAKER", "fee_rate_bps": "0", "bucket_index": 0,
                "match_time": str(now // 1000), "last_update": str(now // 1000), "timestamp": str(now),
                "maker_orders": [{
                    "order_id": "0x" + hashlib.sha256(f"{trade_id}:maker".encode()).hexdigest(),
                    "asset_id": token, "matched_amount": _s(got), "price": _p(tprice), "outcome": outcome,
                    "owner": "sim-liquidity", "maker_address": "0x" + "11" * 20, "fee_rate_bps": "0",
                }],
            }  # fmt: skip
            self.trades.append(trade)
        record = {
            "id": order_hash, "status": status, "owner": api_key, "maker_address": maker,
            "market": m.condition_id, "asset_id": token, "side": side, "original_size": _s(size),
            "size_matched": _s(matched), "price": _p(price), "outcome": outcome,
            "expiration": str(order.get("expiration", "0")), "order_type": order_type,
            "associate_trades": trade_ids, "created_at": now // 1000,
        }  # fmt: skip
        self.orders[order_hash] = record
        self.push_user_event(api_key, {
            "event_type": "order", "type": "PLACEMENT", "id": order_hash, "asset_id": token, "market": m.condition_id,
            "side": side, "price": _p(price), "original_size": _s(size), "size_matched": _s(matched),
            "status": status, "order_type": order_type, "outcome": outcome, "owner": api_key, "order_owner": api_key,
            "maker_address": maker, "associate_trades": trade_ids or None, "created_at": str(now),
            "expiration": None, "timestamp": str(now),
        })  # fmt: skip
        for trade in self.trades[len(self.trades) - len(fills) :]:
            self.push_user_event(api_key, trade)
        reply = {
            "success": True, "orderID": order_hash, "errorMsg": "", "status": status.lower() if matched or resting
            else "unmatched", "makingAmount": fmt_trim(Decimal(making) / TOKEN_DECIMALS),
            "takingAmount": fmt_trim(Decimal(taking) / TOKEN_DECIMALS), "transactionsHashes": [], "tradeIDs": trade_ids,
        }  # fmt: skip
        return reply, fault[0] if fault is not None and fault[0] in ("timeout", "disconnect") else ""

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
            listed = [self._gamma_market(i, m) for i, m in enumerate(self._markets)] + self.catalog
            return json_response(200, _gamma_page(listed, request.param("limit"), request.param("offset")))
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
            "description": f'This market will resolve to "Yes" if the answer to "{m.question}" is yes. Otherwise, '
            'this market will resolve to "No".',
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


class OrderError(Exception):
    """A refused order: HTTP status and the venue's error text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _typed_order(order: dict[str, Any], verifying_contract: str, chain_id: int) -> dict[str, Any]:
    message: dict[str, Any] = {}
    for name, kind in _ORDER_V2_FIELDS:
        value = order.get(name, "0x" + "00" * 32 if kind == "bytes32" else None)
        if value is None:
            raise OrderError(400, f"invalid order: missing field {name}")
        if name == "side":
            value = {"BUY": 0, "SELL": 1}.get(str(value), value)
        if kind.startswith("uint"):
            if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
                raise OrderError(400, f"invalid order: {name} must be an unsigned integer")
            value = int(value)
        message[name] = value
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Order": [{"name": n, "type": t} for n, t in _ORDER_V2_FIELDS],
        },
        "primaryType": "Order",
        "domain": {
            "name": "Polymarket CTF Exchange",
            "version": "2",
            "chainId": chain_id,
            "verifyingContract": verifying_contract,
        },
        "message": message,
    }


def _import_eth_account() -> None:
    import eth_account.messages  # noqa: F401


def recover_order_signer(order: dict[str, Any], chain_id: int = 137) -> tuple[str, str]:
    """(order hash, recovered signer address, lowercase) of a signed V2 order, via eth-account."""
    from eth_account import Account
    from eth_account.messages import _hash_eip191_message, encode_typed_data

    typed = _typed_order(order, EXCHANGE_V2, chain_id)
    signable = encode_typed_data(full_message=typed)
    digest = _hash_eip191_message(signable)
    signature = order.get("signature")
    if not isinstance(signature, str) or not signature.startswith("0x") or len(signature) != 132:
        raise OrderError(400, "invalid order: signature must be 0x + 65 bytes hex")
    try:
        signer = Account.recover_message(signable, signature=bytes.fromhex(signature[2:]))
    except Exception:  # eth-account raises several types for a malformed signature
        raise OrderError(400, "invalid signature") from None
    return "0x" + digest.hex(), str(signer).lower()


def _gamma_page(items: list[JSON], limit: str | None, offset: str | None) -> list[JSON]:
    """Gamma pages with ``limit``/``offset`` (a short page means the end)."""
    start = int(offset) if offset and offset.isdigit() else 0
    n = int(limit) if limit and limit.isdigit() else len(items)
    return items[start : start + n]


def _catalog_market(i: int, question: str, slug: str, description: str, end_date: str) -> JSON:
    """One Gamma market for a catalog entry; ids are derived from the slug so they are stable across runs."""
    condition_id = "0x" + hashlib.sha256(f"condition:{slug}".encode()).hexdigest()
    tokens = [str(int(hashlib.sha256(f"{side}:{slug}".encode()).hexdigest(), 16) % 10**77) for side in ("yes", "no")]
    return {
        "id": str(600000 + i),
        "question": question,
        "conditionId": condition_id,
        "slug": slug,
        "description": description,
        "endDate": end_date,
        "active": True,
        "closed": False,
        "enableOrderBook": True,
        "negRisk": False,
        "outcomes": orjson.dumps(["Yes", "No"]).decode(),
        "clobTokenIds": orjson.dumps(tokens).decode(),
    }


def main(argv: list[str] | None = None) -> None:
    run_standalone(
        lambda host, port, seed: PolymarketSim(host=host, port=port, seed=seed, catalog=CATALOG),
        argv,
        "Local Polymarket CLOB market-channel simulator",
    )


if __name__ == "__main__":
    main()
