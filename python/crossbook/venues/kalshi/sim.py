"""Local Kalshi simulator: the v2 WebSocket (``/trade-api/ws/v2``) and a little REST.

Shapes follow ``shared/vectors/kalshi`` (fixed-point strings: prices ``"0.4200"``, counts
``"300.00"``). The handshake is authenticated like Kalshi (RSA-PSS over
``timestamp + "GET" + "/trade-api/ws/v2"``); refused handshakes get HTTP 401 with a JSON body.
The book is kept as YES bids and NO bids (a NO bid at q is a YES ask at 1 - q), never crossed.

Quirks copied from the venue: ``seq`` per sid starting at 1 with the first snapshot; an empty
snapshot omits both ladder keys; ``get_snapshot`` needs ``market_tickers`` (else error 14, which
also burns a seq slot on that sid); ``use_yes_price`` reports NO levels at 1 - price; ping frames
with payload ``heartbeat`` every ``ping_interval`` seconds.

Run standalone: ``python -m crossbook.venues.kalshi.sim --port 8002`` (prints a dev key to use).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from crossbook.venues.kalshi.auth import (
    KEY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WS_PATH,
    load_public_key,
    verify_signature,
)
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
    fmt_fixed,
    json_response,
    now_ms,
    price_dec,
    run_standalone,
    size_dec,
)

REST_PREFIX = "/trade-api/v2"
ORDERS_PATH = REST_PREFIX + "/portfolio/orders"
FILLS_PATH = REST_PREFIX + "/portfolio/fills"
GROUPS_PATH = REST_PREFIX + "/portfolio/order_groups"
TIME_IN_FORCE = ("fill_or_kill", "good_till_canceled", "immediate_or_cancel")
TAKER_FEE_RATE = Decimal("0.07")  # Kalshi's general taker fee: ceil(0.07 × C × P × (1 − P)) to the cent
CHANNELS = ("orderbook_delta", "ticker", "trade", "fill", "user_orders")
# Private channels: events of the key that authenticated the connection, injected by push_user_event.
PRIVATE_CHANNELS = {"fill": "fill", "user_orders": "user_order"}  # channel -> message type
_SEQ_CHANNELS = {"orderbook_delta", "trade"}

ERRORS = {
    1: "Unable to process message",
    2: "Params required",
    3: "Channels required",
    4: "Subscription IDs required",
    5: "Unknown command",
    6: "Already subscribed",
    7: "Unknown subscription ID",
    8: "Unknown channel name",
    11: "Invalid parameter",
    12: "Exactly one subscription ID is required",
    13: "Unsupported action",
    14: "Market Ticker required",
    15: "Action required",
    16: "Market not found",
}

# ticker, event_ticker, title, yes_sub_title, close_time
_DEFAULT_MARKETS = [
    (
        "KXFEDDECISION-26DEC-H0",
        "KXFEDDECISION-26DEC",
        "Will the Fed hold rates at its December 2026 meeting?",
        "Hold",
        "2026-12-09T18:55:00Z",
    ),
    (
        "KXBTCD-26DEC31-T100000",
        "KXBTCD-26DEC31",
        "Will the Bitcoin price be above $100,000 on Dec 31, 2026 at 5pm EST?",
        "$100,000 or above",
        "2026-12-31T22:00:00Z",
    ),
    (
        "KXETHD-26DEC31-T5000",
        "KXETHD-26DEC31",
        "Will the Ethereum price be above $5,000 on Dec 31, 2026 at 5pm EST?",
        "$5,000 or above",
        "2026-12-31T22:00:00Z",
    ),
    (
        "KXCPIYOY-26NOV-T3.0",
        "KXCPIYOY-26NOV",
        "Will CPI inflation be above 3.0% for November 2026?",
        "Above 3.0%",
        "2026-12-10T13:25:00Z",
    ),
]


# A realistic markets catalog for `crossbook pairs sync` (ticker, event_ticker, title, yes_sub_title, rules_primary,
# rules_secondary, close_time, expiration_time), in the venue's own rule style and modeled on the shared labelled
# pairs. Listed by ``GET /trade-api/v2/markets`` after the book markets when built with ``catalog=CATALOG``.
CATALOG: list[tuple[str, str, str, str, str, str, str, str]] = [
    (
        'KXNBAGAME-26MAR12NYKPOR-NYK',
        'KXNBAGAME-26MAR12NYKPOR',
        'New York vs Portland Winner?',
        'New York',
        ('If New York wins the New York vs Portland professional basketball game originally scheduled for '
         'Mar 12, 2026, then the market resolves to Yes.'),
        ('The following market refers to the New York vs Portland professional basketball game originally '
         'scheduled for Mar 12, 2026. If the game is postponed, the market will remain open and close after '
         'the rescheduled game has finished (within two weeks). If the game is cancelled or not completed '
         'within two weeks of the original date, the market will resolve to $0.50. Overtime counts toward '
         'the final result.'),
        '2026-03-26T05:00:00Z',
        '2026-03-26T05:00:00Z',
    ),
    (
        'KXNBAGAME-26MAR12NYKPOR-POR',
        'KXNBAGAME-26MAR12NYKPOR',
        'New York vs Portland Winner?',
        'Portland',
        ('If Portland wins the New York vs Portland professional basketball game originally scheduled for '
         'Mar 12, 2026, then the market resolves to Yes.'),
        ('The following market refers to the New York vs Portland professional basketball game originally '
         'scheduled for Mar 12, 2026. If the game is postponed, the market will remain open and close after '
         'the rescheduled game has finished (within two weeks). If the game is cancelled or not completed '
         'within two weeks of the original date, the market will resolve to $0.50. Overtime counts toward '
         'the final result.'),
        '2026-03-26T05:00:00Z',
        '2026-03-26T05:00:00Z',
    ),
    (
        'KXNFLGAME-25NOV02KCBUF-KC',
        'KXNFLGAME-25NOV02KCBUF',
        'Kansas City at Buffalo Winner?',
        'Kansas City',
        ('If Kansas City wins the Kansas City at Buffalo professional football game originally scheduled '
         'for Nov 2, 2025, then the market resolves to Yes.'),
        ('The following market refers to the Kansas City at Buffalo professional football game originally '
         'scheduled for Nov 2, 2025. If the game is postponed, the market will remain open and close after '
         'the rescheduled game has finished (within two weeks). If the game is cancelled or not completed '
         'within two weeks of the original date, the market will resolve to $0.50. Overtime counts toward '
         'the final result. If the game ends in a tie, the market will resolve to $0.50.'),
        '2025-11-16T02:00:00Z',
        '2025-11-16T02:00:00Z',
    ),
    (
        'KXCPI-26JUN-T0.3',
        'KXCPI-26JUN',
        'CPI in Jun 2026?',
        'Above 0.3%',
        'If CPI increases by more than 0.3% in June 2026, then the market resolves to Yes.',
        ('The month-over-month percent change in the seasonally adjusted CPI-U, as first reported by the '
         'Bureau of Labor Statistics, rounded to one decimal place, is used. Revisions after the initial '
         'release are not considered. If the release is delayed, the market remains open until it is '
         'published.'),
        '2026-07-14T12:25:00Z',
        '2026-07-21T14:00:00Z',
    ),
    (
        'KXHIGHCHI-26JUL20-T89',
        'KXHIGHCHI-26JUL20',
        'Highest temperature in Chicago on Jul 20, 2026?',
        '90° or above',
        ('If the highest temperature recorded at Chicago Midway, IL for July 20, 2026 as reported by the '
         "National Weather Service's Climatological Report (Daily), is greater than 89°, then the market "
         'resolves to Yes.'),
        ('The official and final value used to determine this market is the highest temperature as reported '
         'by the corresponding NWS Climatological Report (Daily) linked in the rules above. Preliminary NWS '
         'reporting and measurement methods may be subject to underlying rounding and conversion nuances; '
         'only the final Climatological Report value is used.'),
        '2026-07-21T04:59:00Z',
        '2026-07-21T14:00:00Z',
    ),
    (
        'KXETHD-26SEP3017-T3999.99',
        'KXETHD-26SEP3017',
        'Ethereum price on Sep 30, 2026 at 5pm EDT?',
        '$4,000 or above',
        ("If the simple average of the sixty seconds of CF Benchmarks' Ether-Dollar Real-Time Index "
         '(ETHUSD_RTI) before 5 PM EDT is above 3999.99 on Sep 30, 2026 at 5pm EDT, then the market '
         'resolves to Yes.'),
        ('Not all cryptocurrency price data is the same. While checking a source like Google or Coinbase '
         "may help guide your decision, the price used to determine this market is based on CF Benchmarks' "
         "corresponding Real Time Index (RTI). At the expiration time, CF Benchmarks' RTI value is "
         'calculated as the simple average of the sixty seconds of RTI values before the expiration time.'),
        '2026-09-30T20:59:00Z',
        '2026-09-30T21:00:00Z',
    ),
    (
        'KXHIGHPHIL-26MAY18-T80',
        'KXHIGHPHIL-26MAY18',
        'Highest temperature in Philadelphia on May 18, 2026?',
        '79° or below',
        ('If the highest temperature recorded at Philadelphia International Airport for May 18, 2026 as '
         "reported by the National Weather Service's Climatological Report (Daily), is less than 80°, then "
         'the market resolves to Yes.'),
        ('The official and final value used to determine this market is the highest temperature as reported '
         'by the corresponding NWS Climatological Report (Daily) linked in the rules above. Preliminary NWS '
         'reporting and measurement methods may be subject to underlying rounding and conversion nuances; '
         'only the final Climatological Report value is used.'),
        '2026-05-19T03:59:00Z',
        '2026-05-19T14:00:00Z',
    ),
    (
        'KXHIGHNY-26JUL21-T87',
        'KXHIGHNY-26JUL21',
        'Highest temperature in NYC on Jul 21, 2026?',
        '88° or above',
        ('If the highest temperature recorded in Central Park, New York for July 21, 2026 as reported by '
         "the National Weather Service's Climatological Report (Daily), is greater than 87°, then the "
         'market resolves to Yes.'),
        ('The official and final value used to determine this market is the highest temperature as reported '
         'by the corresponding NWS Climatological Report (Daily) linked in the rules above. Preliminary NWS '
         'reporting and measurement methods may be subject to underlying rounding and conversion nuances; '
         'only the final Climatological Report value is used.'),
        '2026-07-22T03:59:00Z',
        '2026-07-22T14:00:00Z',
    ),
    (
        'KXHIGHMIA-26AUG04-T90',
        'KXHIGHMIA-26AUG04',
        'Highest temperature in Miami on Aug 4, 2026?',
        '91° or above',
        ('If the highest temperature recorded at Miami International Airport for August 4, 2026 as reported '
         "by the National Weather Service's Climatological Report (Daily), is greater than 90°, then the "
         'market resolves to Yes.'),
        ('The official and final value used to determine this market is the highest temperature as reported '
         'by the corresponding NWS Climatological Report (Daily) linked in the rules above. Preliminary NWS '
         'reporting and measurement methods may be subject to underlying rounding and conversion nuances; '
         'only the final Climatological Report value is used.'),
        '2026-08-05T03:59:00Z',
        '2026-08-05T14:00:00Z',
    ),
    (
        'KXFEDDECISION-26MAR-C25',
        'KXFEDDECISION-26MAR',
        'Fed decision in Mar 2026?',
        'Cut 25bps',
        ('If the Federal Reserve cuts the upper bound of the federal funds target range by exactly 25 basis '
         'points at its Mar 18, 2026 meeting, then the market resolves to Yes.'),
        ('The outcome is determined by the FOMC statement published on federalreserve.gov following the '
         'meeting. If no decision is announced at the scheduled meeting, the market resolves to No.'),
        '2026-03-18T17:55:00Z',
        '2026-03-25T14:00:00Z',
    ),
    (
        'KXSB-26-SEA',
        'KXSB-26',
        'Will Seattle win the 2026 Pro Football Championship?',
        'Seattle',
        'If Seattle wins the 2026 Pro Football Championship, then the market resolves to Yes.',
        '',
        '2028-02-08T15:00:00Z',
        '2028-02-08T15:00:00Z',
    ),
    (
        'KXSB-26-LAC',
        'KXSB-26',
        'Will the Los Angeles C win the 2026 Pro Football Championship?',
        'Los Angeles C',
        'If Los Angeles C wins the 2026 Pro Football Championship, then the market resolves to Yes.',
        '',
        '2028-02-08T15:00:00Z',
        '2028-02-08T15:00:00Z',
    ),
    (
        'KXPREMIERLEAGUE-26-ARS',
        'KXPREMIERLEAGUE-26',
        'Will Arsenal win the English Premier League?',
        'Arsenal',
        'If Arsenal wins the English Premier League, then the market resolves to Yes.',
        '',
        '2026-05-25T14:00:00Z',
        '2026-05-25T14:00:00Z',
    ),
    (
        'KXPRESNOMD-28-GN',
        'KXPRESNOMD-28',
        '2028 Democratic nominee for President?',
        'Gavin Newsom',
        ('If Gavin Newsom wins and accepts the nomination for the Presidency for the Democratic party, then '
         'the market resolves to Yes.'),
        ('This market will close after Democratic nominates an individual for the Presidency and they '
         'accept that nomination.'),
        '2028-11-07T15:00:00Z',
        '2028-11-07T15:00:00Z',
    ),
]

PublicKeyLike = rsa.RSAPublicKey | bytes | str


@dataclass
class KalshiMarket:
    ticker: str
    event_ticker: str
    title: str
    yes_sub_title: str
    close_time: str
    market_id: str
    book: LadderBook
    last_price: int
    last_size: int = 0
    volume: int = 0  # size units
    open_interest: int = 0


@dataclass
class Subscription:
    sid: int
    channel: str
    markets: list[str]
    use_yes_price: bool = False
    seq: int = 0  # last seq used on this sid
    skip_pending: bool = False
    all_markets: bool = False  # subscribed without tickers (private channels: every market)

    def next_seq(self) -> int:
        self.seq += 1
        if self.skip_pending:
            self.seq += 1
            self.skip_pending = False
        return self.seq


@dataclass
class KalshiConn:
    next_sid: int = 1
    subs: dict[int, Subscription] = field(default_factory=dict)
    pinger: asyncio.Task[None] | None = None
    key_id: str = ""  # the API key that signed this connection's handshake


def _pd(units: int) -> str:
    return fmt_fixed(price_dec(units), 4)


def _cf(units: int) -> str:
    return fmt_fixed(size_dec(units), 2)


def _iso(ts_ms: int, micros: bool = True) -> str:
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    if micros:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _auth_error(details: str) -> Response:
    return json_response(
        401, {"error": {"code": "authentication_error", "message": "authentication error", "details": details}}
    )


class KalshiSim(SimServer):
    """Kalshi v2 WebSocket + REST simulator.

    Attributes: ``markets`` (tickers), ``titles`` (ticker -> title), ``market_ids`` (ticker ->
    uuid), ``stats``; ``dev_key_id``/``dev_private_key`` when constructed without ``api_keys``.
    """

    ws_path = WS_PATH
    venue = "kalshi"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        markets: int | list[str] = 4,
        tick_interval: float = 0.05,
        heartbeat: bool = True,
        api_keys: Mapping[str, PublicKeyLike] | None = None,
        max_clock_skew: float = 30.0,
        ping_interval: float = 10.0,
        trade_probability: float = 0.1,
        catalog: Sequence[tuple[str, str, str, str, str, str, str, str]] = (),
    ) -> None:
        super().__init__(host=host, port=port, seed=seed, tick_interval=tick_interval, heartbeat=heartbeat)
        self.catalog = [_catalog_market(*entry) for entry in catalog]
        self.max_clock_skew = max_clock_skew
        self.ping_interval = ping_interval
        self.trade_probability = trade_probability
        self.dev_key_id: str | None = None
        self.dev_private_key: rsa.RSAPrivateKey | None = None
        if api_keys is None:
            # A throwaway key so the demo can connect; tests pass their own keys.
            self.dev_private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.dev_key_id = str(uuid.UUID(int=random.Random(f"kalshi-key:{seed}").getrandbits(128), version=4))
            api_keys = {self.dev_key_id: self.dev_private_key.public_key()}
        self.api_keys: dict[str, rsa.RSAPublicKey] = {k: load_public_key(v) for k, v in api_keys.items()}

        specs = (
            [(t, t.rsplit("-", 1)[0], f"Simulated market {t}", "Yes", "2026-12-31T22:00:00Z") for t in markets]
            if isinstance(markets, list)
            else [
                _DEFAULT_MARKETS[i]
                if i < len(_DEFAULT_MARKETS)
                else (
                    f"KXSIM-26DEC31-T{i}",
                    "KXSIM-26DEC31",
                    f"Simulated market #{i}?",
                    f"Above {i}",
                    "2026-12-31T22:00:00Z",
                )
                for i in range(markets)
            ]
        )
        self._markets: dict[str, KalshiMarket] = {}
        for i, (ticker, event, title, sub_title, close) in enumerate(specs):
            rng = random.Random(f"kalshi:{seed}:{i}")
            market_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            fair = rng.randint(PRICE_SCALE * 2 // 10, PRICE_SCALE * 8 // 10)
            book = LadderBook(rng, tick=PRICE_SCALE // 100, fair=fair, fractional_sizes=False)
            self._markets[ticker] = KalshiMarket(
                ticker, event, title, sub_title, close, market_id, book, book.fair,
                volume=rng.randint(1000, 90000) * SIZE_SCALE, open_interest=rng.randint(1000, 50000) * SIZE_SCALE,
            )  # fmt: skip
        self.markets: list[str] = list(self._markets)
        self.titles: dict[str, str] = {t: m.title for t, m in self._markets.items()}
        self.market_ids: dict[str, str] = {t: m.market_id for t, m in self._markets.items()}
        self._conns: dict[Session, KalshiConn] = {}
        self.orders: dict[str, dict[str, Any]] = {}  # order_id -> the venue's order record
        self.order_keys: dict[str, str] = {}  # order_id -> API key id that placed it
        self._client_ids: dict[tuple[str, str], str] = {}  # (key id, client_order_id) -> order_id
        self.fills: list[dict[str, Any]] = []
        self.write_rate = (10.0, 10.0)  # Basic tier: 10 writes/s per key (tokens per second, burst)
        self.read_rate = (20.0, 20.0)
        # Order groups: id -> {"key", "contracts_limit", "triggered", "orders": [order ids]}.
        self.order_groups: dict[str, dict[str, Any]] = {}
        self.trading_paused = False

    # -- truth -------------------------------------------------------------------------------
    def book(self, market: str) -> BookView:
        """The true YES view: YES bids, and asks = 1 - NO bids; Decimal, best first."""
        b = self._markets[market].book
        return {
            "bids": [(price_dec(p), size_dec(s)) for p, s in b.sorted_bids()],
            "asks": [(price_dec(p), size_dec(s)) for p, s in b.sorted_asks()],
        }

    def no_bids(self, market: str) -> list[tuple[Decimal, Decimal]]:
        """NO bids as the venue publishes them, best (highest) first."""
        b = self._markets[market].book
        return [(price_dec(PRICE_SCALE - p), size_dec(s)) for p, s in b.sorted_asks()]

    def subscriptions(self) -> list[dict[str, Any]]:
        """Every live subscription (for tests): sid, channel, markets, seq."""
        return [
            {"sid": s.sid, "channel": s.channel, "markets": list(s.markets), "seq": s.seq}
            for c in self._conns.values()
            for s in c.subs.values()
        ]

    # -- private channels --------------------------------------------------------------------
    def push_user_event(self, key_id: str, channel: str, msg: Mapping[str, Any]) -> int:
        """Send ``msg`` on ``channel`` (``fill`` or ``user_orders``) to every connection signed by
        ``key_id`` that subscribed to it (and to its ``market_ticker``, if it named tickers).
        Returns how many subscriptions got it; other keys' connections never see it."""
        kind = PRIVATE_CHANNELS.get(channel)
        if kind is None:
            raise ValueError(f"private channel {channel!r}: use one of {', '.join(PRIVATE_CHANNELS)}")
        ticker = msg.get("market_ticker") or msg.get("ticker")
        count = 0
        for session, conn in self._conns.items():
            if conn.key_id != key_id:
                continue
            for sub in conn.subs.values():
                if sub.channel != channel or not (sub.all_markets or ticker in sub.markets):
                    continue
                frame = {"type": kind, "sid": sub.sid, "seq": sub.next_seq(), "msg": dict(msg)}
                if self.deliver(session, kind, frame):
                    count += 1
        self.stats[f"user_events_{channel}"] += count
        return count

    # -- auth --------------------------------------------------------------------------------
    def check_auth(self, method: str, path: str, headers: Mapping[str, str]) -> str | None:
        """None if the Kalshi headers authenticate this request, else why not."""
        key_id = headers.get(KEY_HEADER)
        ts = headers.get(TIMESTAMP_HEADER)
        signature = headers.get(SIGNATURE_HEADER)
        if not key_id or not ts or not signature:
            return f"missing {KEY_HEADER} / {TIMESTAMP_HEADER} / {SIGNATURE_HEADER} header"
        public_key = self.api_keys.get(key_id)
        if public_key is None:
            return "unknown API key id"
        try:
            ts_ms = int(ts)
        except ValueError:
            return "timestamp is not integer milliseconds"
        if abs(time.time() * 1000 - ts_ms) > self.max_clock_skew * 1000:
            return "timestamp outside the allowed clock skew"
        if not verify_signature(public_key, ts_ms, method, path, signature):
            return "invalid signature"
        return None

    def _authenticate(self, request: HttpRequest) -> Response | None:
        reason = self.check_auth("GET", request.path, request.headers)
        return None if reason is None else _auth_error(reason)

    # -- faults ------------------------------------------------------------------------------
    def skip_seq(self, market: str | None = None) -> int:
        """Skip one seq on the next message of every orderbook sid carrying ``market`` (all if None)."""
        count = 0
        for conn in self._conns.values():
            for sub in conn.subs.values():
                if sub.channel == "orderbook_delta" and (market is None or market in sub.markets):
                    sub.skip_pending = True
                    count += 1
        self.stats["seq_skips"] += count
        return count

    def _fault_table(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        table = super()._fault_table()
        table["skip_seq"] = lambda a: self.skip_seq(a.get("market"))
        table["pause_trading"] = lambda a: self.pause_trading()
        table["resume_trading"] = lambda a: self.resume_trading()
        return table

    # -- order safety: exchange pause, order groups, cancels -----------------------------------
    def pause_trading(self) -> int:
        """The exchange pauses trading: resting orders placed with ``cancel_order_on_pause`` are cancelled,
        the others stay; new orders are refused until :meth:`resume_trading`. Returns how many cancelled."""
        self.trading_paused = True
        ids = [oid for oid, o in self.orders.items() if o["status"] == "resting" and o.get("cancel_order_on_pause")]
        for oid in ids:
            self._cancel(oid, "exchange paused")
        self.stats["pause_cancels"] += len(ids)
        return len(ids)

    def shift_book(self, market: str | None = None, ticks: int = 1) -> int:
        """Reprice the YES book of ``market`` (a ticker; None: all) by ``ticks``."""
        ms = [self._markets[market]] if market else list(self._markets.values())
        return sum(len(m.book.shift(ticks)) for m in ms)

    def resume_trading(self) -> None:
        self.trading_paused = False

    def open_orders(self, key_id: str | None = None) -> list[dict[str, Any]]:
        return [o for oid, o in self.orders.items()
                if o["status"] == "resting" and key_id in (None, self.order_keys[oid])]  # fmt: skip

    def _cancel(self, order_id: str, why: str) -> dict[str, Any]:
        o = self.orders[order_id]
        if o["status"] == "resting":
            o["status"] = "canceled"
            o["remaining_count_fp"] = _cf(0)
            o["last_update_time"] = _iso(now_ms())
            self.stats["orders_cancelled"] += 1
            self.push_user_event(self.order_keys[order_id], "user_orders", o)
        return o

    def _groups(self, request: HttpRequest, key_id: str) -> Response | None:
        rest = request.path[len(GROUPS_PATH):].strip("/").split("/")
        if request.method == "POST" and rest == ["create"]:
            try:
                body = orjson.loads(request.body or b"{}")
                limit = int(str(body.get("contracts_limit_fp") or body.get("contracts_limit") or ""). split(".")[0])
            except (orjson.JSONDecodeError, AttributeError, ValueError):
                limit = 0
            if not 1 <= limit <= 1_000_000:
                return json_response(400, {"error": {"code": "invalid_parameters",
                                                     "message": "contracts_limit must be 1..1000000"}})  # fmt: skip
            gid = str(uuid.uuid4())
            self.order_groups[gid] = {"key": key_id, "contracts_limit": limit, "triggered": False, "orders": []}
            return json_response(201, {"order_group_id": gid})
        group = self.order_groups.get(rest[0]) if rest and rest[0] else None
        if group is None or group["key"] != key_id:
            return json_response(404, {"error": {"code": "not_found", "message": "order group not found"}})
        gid = rest[0]
        if request.method == "GET" and len(rest) == 1:
            return json_response(200, {"is_auto_cancel_enabled": True, "orders": list(group["orders"]),
                                       "contracts_limit_fp": _cf(group["contracts_limit"] * SIZE_SCALE)})  # fmt: skip
        if request.method == "DELETE" and len(rest) == 1:  # deleting a group cancels its resting orders
            for oid in group["orders"]:
                self._cancel(oid, "order group deleted")
            del self.order_groups[gid]
            self.stats["order_groups_deleted"] += 1
            return json_response(200, {})
        if request.method == "PUT" and rest[1:] == ["trigger"]:
            for oid in group["orders"]:
                self._cancel(oid, "order group triggered")
            group["triggered"] = True
            return json_response(200, {})
        if request.method == "PUT" and rest[1:] == ["reset"]:
            group["triggered"] = False
            return json_response(200, {})
        return None

    def _garbage_frames(self, session: Session) -> list[str]:
        ticker = self.markets[0]
        sid = next(iter(self._conns[session].subs), 1) if session in self._conns else 1
        bad_price = orjson.dumps(
            {
                "type": "orderbook_delta",
                "sid": sid,
                "seq": 0,
                "msg": {
                    "market_ticker": ticker,
                    "market_id": self.market_ids[ticker],
                    "price_dollars": "abc",
                    "delta_fp": "1.00",
                    "side": "yes",
                    "ts_ms": now_ms(),
                },
            }
        ).decode()
        whole = orjson.dumps(self._snapshot_msg_body(ticker, False)).decode()
        return ["{not json at all", '{"type":"orderbook_snapshot","msg":' + whole[: len(whole) // 2], bad_price]

    # -- message building --------------------------------------------------------------------
    def _snapshot_msg_body(self, ticker: str, use_yes_price: bool) -> dict[str, Any]:
        m = self._markets[ticker]
        yes = [[_pd(p), _cf(s)] for p, s in sorted(m.book.bids.items())]
        if use_yes_price:
            no = [[_pd(p), _cf(s)] for p, s in sorted(m.book.asks.items())]
        else:
            no = [[_pd(PRICE_SCALE - p), _cf(s)] for p, s in sorted(m.book.asks.items(), reverse=True)]
        body: dict[str, Any] = {"market_ticker": ticker, "market_id": m.market_id}
        if yes:
            body["yes_dollars_fp"] = yes
        if no:
            body["no_dollars_fp"] = no
        return body

    def _send_snapshot(self, session: Session, sub: Subscription, ticker: str) -> None:
        frame = {
            "type": "orderbook_snapshot",
            "sid": sub.sid,
            "seq": sub.next_seq(),
            "msg": self._snapshot_msg_body(ticker, sub.use_yes_price),
        }
        self.deliver(session, "orderbook_snapshot", frame)

    def _delta_frame(self, sub: Subscription, m: KalshiMarket, c: Change, ts_ms: int) -> dict[str, Any]:
        if c.side == "bid":
            side, price = "yes", c.price
        else:
            side, price = "no", (c.price if sub.use_yes_price else PRICE_SCALE - c.price)
        delta = c.size - c.old
        return {
            "type": "orderbook_delta",
            "sid": sub.sid,
            "seq": sub.next_seq(),
            "msg": {
                "market_ticker": m.ticker,
                "market_id": m.market_id,
                "price_dollars": _pd(price),
                "delta_fp": _cf(delta),
                "side": side,
                "ts": _iso(ts_ms),
                "ts_ms": ts_ms,
            },
        }

    def _ticker_body(self, m: KalshiMarket, ts_ms: int) -> dict[str, Any]:
        bid = m.book.best_bid()
        ask = m.book.best_ask()
        volume_dollars = m.volume * m.last_price // (SIZE_SCALE * PRICE_SCALE)
        return {
            "market_id": m.market_id,
            "market_ticker": m.ticker,
            "price_dollars": _pd(m.last_price),
            "yes_bid_dollars": _pd(bid) if bid is not None else "0.0000",
            "yes_ask_dollars": _pd(ask) if ask is not None else "1.0000",
            "volume_fp": _cf(m.volume),
            "open_interest_fp": _cf(m.open_interest),
            "dollar_volume": volume_dollars,
            "dollar_open_interest": m.open_interest * m.last_price // (SIZE_SCALE * PRICE_SCALE),
            "yes_bid_size_fp": _cf(m.book.bids[bid]) if bid is not None else "0.00",
            "yes_ask_size_fp": _cf(m.book.asks[ask]) if ask is not None else "0.00",
            "last_trade_size_fp": _cf(m.last_size),
            "ts": ts_ms // 1000,
            "ts_ms": ts_ms,
            "time": _iso(ts_ms, micros=False),
        }

    # -- the stream --------------------------------------------------------------------------
    def _step_markets(self) -> None:
        ts_ms = now_ms()
        for m in self._markets.values():
            top_before = (m.book.best_bid(), m.book.best_ask())
            changes = m.book.step()
            trade_body: dict[str, Any] | None = None
            if m.book.rng.random() < self.trade_probability:
                trade = m.book.trade()
                if trade is not None:
                    side, price, size = trade
                    m.last_price, m.last_size = price, size
                    m.volume += size
                    taker = "no" if side == "bid" else "yes"  # hitting the YES bid = buying NO
                    trade_body = {
                        "trade_id": str(uuid.UUID(int=m.book.rng.getrandbits(128), version=4)),
                        "market_ticker": m.ticker,
                        "yes_price_dollars": _pd(price),
                        "no_price_dollars": _pd(PRICE_SCALE - price),
                        "count_fp": _cf(size),
                        "taker_side": taker,
                        "taker_outcome_side": taker,
                        "taker_book_side": "ask" if taker == "no" else "bid",
                        "is_block_trade": False,
                        "ts": ts_ms // 1000,
                        "ts_ms": ts_ms,
                    }
            ticker_due = trade_body is not None or top_before != (m.book.best_bid(), m.book.best_ask())
            ticker_body = self._ticker_body(m, ts_ms) if ticker_due else None
            for session, conn in self._conns.items():
                for sub in conn.subs.values():
                    if m.ticker not in sub.markets:
                        continue
                    if sub.channel == "orderbook_delta":
                        for c in changes:
                            self.deliver(session, "orderbook_delta", self._delta_frame(sub, m, c, ts_ms))
                    elif sub.channel == "trade" and trade_body is not None:
                        frame = {"type": "trade", "sid": sub.sid, "seq": sub.next_seq(), "msg": trade_body}
                        self.deliver(session, "trade", frame)
                    elif sub.channel == "ticker" and ticker_body is not None:
                        self.deliver(session, "ticker", {"type": "ticker", "sid": sub.sid, "msg": ticker_body})

    async def _ping_loop(self, session: Session) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(self.ping_interval)
                if not self.heartbeat or self.is_stalled(session.conn):
                    self.stats["pings_withheld"] += 1
                    continue
                await session.conn.ping(b"heartbeat")
                self.stats["pings"] += 1

    async def _on_open(self, session: Session) -> None:
        conn = KalshiConn(key_id=session.conn.request.headers.get(KEY_HEADER, "") if session.conn.request else "")
        conn.pinger = asyncio.get_running_loop().create_task(self._ping_loop(session))
        self._conns[session] = conn

    def _on_close(self, session: Session) -> None:
        conn = self._conns.pop(session, None)
        if conn is not None and conn.pinger is not None:
            conn.pinger.cancel()

    # -- commands ----------------------------------------------------------------------------
    def _error(self, session: Session, cmd_id: int, code: int) -> None:
        self.deliver(session, "error", {"id": cmd_id, "type": "error", "msg": {"code": code, "msg": ERRORS[code]}})

    async def _on_message(self, session: Session, message: str | bytes) -> None:
        conn = self._conns[session]
        try:
            req = orjson.loads(message)
        except orjson.JSONDecodeError:
            self._error(session, 0, 1)
            return
        if not isinstance(req, dict):
            self._error(session, 0, 1)
            return
        raw_id = req.get("id", 0)
        cmd_id = raw_id if isinstance(raw_id, int) else 0
        cmd = req.get("cmd")
        params = req.get("params")
        if cmd == "list_subscriptions":
            subs = [{"channel": s.channel, "sid": s.sid} for s in conn.subs.values()]
            self.deliver(session, "ok", {"id": cmd_id, "type": "ok", "msg": subs})
            return
        if cmd not in ("subscribe", "unsubscribe", "update_subscription"):
            self._error(session, cmd_id, 5)
            return
        if not isinstance(params, dict):
            self._error(session, cmd_id, 2)
            return
        if cmd == "subscribe":
            self._subscribe(session, conn, cmd_id, params)
        elif cmd == "unsubscribe":
            self._unsubscribe(session, conn, cmd_id, params)
        else:
            self._update(session, conn, cmd_id, params)

    @staticmethod
    def _tickers(params: Mapping[str, Any]) -> list[str] | None:
        if isinstance(params.get("market_tickers"), list):
            return [str(t) for t in params["market_tickers"]]
        if isinstance(params.get("market_ticker"), str):
            return [params["market_ticker"]]
        return None

    def _subscribe(self, session: Session, conn: KalshiConn, cmd_id: int, params: Mapping[str, Any]) -> None:
        channels = params.get("channels")
        if not isinstance(channels, list) or not channels:
            self._error(session, cmd_id, 3)
            return
        if any(ch not in CHANNELS for ch in channels):
            self._error(session, cmd_id, 8)
            return
        tickers = self._tickers(params)
        if tickers is not None and any(t not in self._markets for t in tickers):
            self._error(session, cmd_id, 16)
            return
        if tickers is None and "orderbook_delta" in channels:
            self._error(session, cmd_id, 14)
            return
        use_yes = params.get("use_yes_price") is True
        for channel in dict.fromkeys(str(c) for c in channels):
            markets = list(dict.fromkeys(tickers)) if tickers is not None else list(self.markets)
            taken = {t for s in conn.subs.values() if s.channel == channel for t in s.markets}
            if taken & set(markets):
                self._error(session, cmd_id, 6)
                continue
            sub = Subscription(conn.next_sid, channel, markets, use_yes_price=use_yes, all_markets=tickers is None)
            conn.next_sid += 1
            conn.subs[sub.sid] = sub
            if channel == "orderbook_delta" and tickers is not None:
                for t in markets:  # per ticker, for tests: how often the venue was asked to start one
                    self.stats[f"subscribe:{t}"] += 1
            ack = {"id": cmd_id, "type": "subscribed", "msg": {"channel": channel, "sid": sub.sid}}
            self.deliver(session, "subscribed", ack)
            if channel == "orderbook_delta":
                for ticker in markets:
                    self._send_snapshot(session, sub, ticker)

    def _unsubscribe(self, session: Session, conn: KalshiConn, cmd_id: int, params: Mapping[str, Any]) -> None:
        sids = params.get("sids")
        if not isinstance(sids, list) or not sids:
            self._error(session, cmd_id, 4)
            return
        for sid in sids:
            sub = conn.subs.pop(sid, None) if isinstance(sid, int) else None
            if sub is None:
                self._error(session, cmd_id, 7)
                continue
            if sub.channel == "orderbook_delta" and not sub.all_markets:
                for t in sub.markets:
                    self.stats[f"unsubscribe:{t}"] += 1
            self.deliver(
                session, "unsubscribed", {"id": cmd_id, "sid": sub.sid, "seq": sub.seq + 1, "type": "unsubscribed"}
            )

    def _update(self, session: Session, conn: KalshiConn, cmd_id: int, params: Mapping[str, Any]) -> None:
        sids = params.get("sids")
        if isinstance(sids, list):
            if len(sids) != 1:
                self._error(session, cmd_id, 12)
                return
            sid = sids[0]
        else:
            sid = params.get("sid")
        if sid is None:
            self._error(session, cmd_id, 4)
            return
        sub = conn.subs.get(sid) if isinstance(sid, int) else None
        if sub is None:
            self._error(session, cmd_id, 7)
            return
        action = params.get("action")
        if action is None:
            self._error(session, cmd_id, 15)
            return
        if action not in ("add_markets", "delete_markets", "get_snapshot"):
            self._error(session, cmd_id, 13)
            return
        if action == "get_snapshot" and sub.channel != "orderbook_delta":
            self._error(session, cmd_id, 13)
            return
        tickers = self._tickers(params)
        if not tickers:
            if action == "get_snapshot":
                sub.next_seq()  # observed on the venue: this error burns a seq slot on the sid
            self._error(session, cmd_id, 14)
            return
        if any(t not in self._markets for t in tickers):
            self._error(session, cmd_id, 16)
            return
        if action == "get_snapshot":
            for ticker in tickers:
                if ticker in sub.markets:
                    self._send_snapshot(session, sub, ticker)
            return
        if action == "add_markets":
            fresh = [t for t in dict.fromkeys(tickers) if t not in sub.markets]
            sub.markets.extend(fresh)
            if sub.channel == "orderbook_delta":
                for t in fresh:
                    self.stats[f"subscribe:{t}"] += 1
        else:
            fresh = []
            if sub.channel == "orderbook_delta":
                for t in dict.fromkeys(tickers):
                    if t in sub.markets:
                        self.stats[f"unsubscribe:{t}"] += 1
            sub.markets = [t for t in sub.markets if t not in tickers]
        ok = {"id": cmd_id, "sid": sub.sid, "seq": sub.seq, "type": "ok", "msg": {"market_tickers": sub.markets}}
        self.deliver(session, "ok", ok)
        if sub.channel == "orderbook_delta":
            for ticker in fresh:
                self._send_snapshot(session, sub, ticker)

    # -- REST --------------------------------------------------------------------------------
    def _route(self, request: HttpRequest) -> Response | None:
        path = request.path
        if not path.startswith(REST_PREFIX + "/"):
            return None
        if path.startswith(REST_PREFIX + "/portfolio/"):
            reason = self.check_auth(request.method, path, request.headers)
            if reason is not None:
                return _auth_error(reason)
            if path == REST_PREFIX + "/portfolio/balance" and request.method == "GET":
                return json_response(200, {"balance": 1_000_000, "portfolio_value": 0, "updated_ts": now_ms()})
            return None
        if request.method != "GET":
            return None
        parts = path[len(REST_PREFIX) + 1 :].split("/")
        if parts == ["exchange", "status"]:  # public; clients also use it to open a connection ahead of need
            return json_response(200, {"exchange_active": True, "trading_active": not self.trading_paused})
        if parts == ["markets"]:
            wanted = request.param("tickers")
            event = request.param("event_ticker")
            listed = [
                self._market_json(m)
                for m in self._markets.values()
                if (not wanted or m.ticker in wanted.split(",")) and (not event or m.event_ticker == event)
            ]
            listed += [
                c
                for c in self.catalog
                if (not wanted or c["ticker"] in wanted.split(",")) and (not event or c["event_ticker"] == event)
            ]
            return json_response(200, _markets_page(listed, request.param("limit"), request.param("cursor")))
        if parts == ["events"]:
            return json_response(200, self._events_page(request))
        if len(parts) in (2, 3) and parts[0] == "markets":
            m = self._markets.get(parts[1])
            if m is None:
                return json_response(404, {"error": {"code": "not_found", "message": "market not found"}})
            if len(parts) == 2:
                return json_response(200, {"market": self._market_json(m)})
            if parts[2] == "orderbook":
                return json_response(200, self._rest_orderbook(m, request.param("depth")))
        return None

    def _events_page(self, request: HttpRequest) -> JSON:
        """``GET /events``: the catalog grouped by event_ticker, cursor-paged like the venue (limit at most 200);
        ``with_nested_markets=true`` puts each event's markets inside it, as Kalshi does."""
        events: dict[str, JSON] = {}
        for c in [self._market_json(m) for m in self._markets.values()] + list(self.catalog):
            ev = events.setdefault(c["event_ticker"], {
                "event_ticker": c["event_ticker"], "series_ticker": c["event_ticker"].split("-", 1)[0],
                "title": c["title"], "sub_title": "", "category": "", "mutually_exclusive": False, "markets": []})
            ev["markets"].append(c)
        status = request.param("status")
        listed = [e for e in events.values() if not status or status == "open"]
        limit = request.param("limit")
        page = _markets_page(listed, str(min(int(limit), 200)) if limit and limit.isdigit() else "200",
                             request.param("cursor"))
        nested = (request.param("with_nested_markets") or "").lower() == "true"
        out = [e if nested else {k: v for k, v in e.items() if k != "markets"} for e in page["markets"]]
        return {"events": out, "cursor": page["cursor"]}

    # -- trading REST ------------------------------------------------------------------------
    async def _route_async(self, request: HttpRequest, conn: ServerConnection) -> Response | None:
        path = request.path
        if not (path == ORDERS_PATH or path.startswith(ORDERS_PATH + "/") or path == FILLS_PATH
                or path.startswith(GROUPS_PATH + "/")):  # fmt: skip
            return self._route(request)
        reason = self.check_auth(request.method, path, request.headers)
        if reason is not None:
            return _auth_error(reason)
        key_id = request.headers[KEY_HEADER]
        write = request.method in ("POST", "DELETE", "PUT")
        rate, burst = self.write_rate if write else self.read_rate
        if self.rate_limited(f"{key_id}:{'write' if write else 'read'}", rate, burst):
            return json_response(429, {"error": {"code": "too_many_requests", "message": "too many requests"}})
        if write and path == ORDERS_PATH:
            try:
                order, hold = self.create_order(key_id, request.body)
            except SimDisconnect:
                return await self.drop_mid_order(conn)
            except KalshiOrderError as exc:
                return json_response(exc.status, {"error": {"code": exc.code, "message": str(exc)}})
            response = json_response(201, {"order": order})
            return await self._reply(conn, response, hold)
        if path.startswith(GROUPS_PATH + "/"):
            return self._groups(request, key_id)
        if request.method == "DELETE" and path.startswith(ORDERS_PATH + "/"):
            oid = path[len(ORDERS_PATH) + 1 :]
            if oid not in self.orders or self.order_keys[oid] != key_id:
                return json_response(404, {"error": {"code": "not_found", "message": "order not found"}})
            was = self.orders[oid]["status"]
            order = self._cancel(oid, "cancelled by the user")
            return json_response(200, {"order": order, "reduced_by_fp": order["initial_count_fp"]
                                       if was == "resting" else _cf(0)})  # fmt: skip
        if request.method != "GET":
            return None
        if path == ORDERS_PATH:
            client_id, ticker = request.param("client_order_id"), request.param("ticker")
            mine = [
                o for oid, o in self.orders.items()
                if self.order_keys[oid] == key_id and (client_id is None or o["client_order_id"] == client_id)
                and (ticker is None or o["ticker"] == ticker)
            ]  # fmt: skip
            return json_response(200, {"orders": mine, "cursor": ""})
        if path == FILLS_PATH:
            order_id = request.param("order_id")
            fills = [f for f in self.fills if f["_key"] == key_id and (order_id is None or f["order_id"] == order_id)]
            return json_response(200, {"fills": [_public(f) for f in fills], "cursor": ""})
        order_id = path[len(ORDERS_PATH) + 1 :]
        if order_id in self.orders and self.order_keys[order_id] == key_id:
            return json_response(200, {"order": self.orders[order_id]})
        return json_response(404, {"error": {"code": "not_found", "message": "order not found"}})

    def create_order(self, key_id: str, body: bytes) -> tuple[dict[str, Any], str]:
        """Validate, match and book one CreateOrder body; returns (order, hold the reply back)."""
        try:
            req = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise KalshiOrderError(400, "invalid_parameters", "request body is not JSON") from None
        if not isinstance(req, dict):
            raise KalshiOrderError(400, "invalid_parameters", "request body must be a JSON object")
        ticker = req.get("ticker")
        m = self._markets.get(ticker) if isinstance(ticker, str) else None
        if m is None:
            raise KalshiOrderError(404, "market_not_found", f"market {ticker!r} not found")
        side, action = req.get("side"), req.get("action")
        if side not in ("yes", "no"):
            raise KalshiOrderError(400, "invalid_parameters", "side must be 'yes' or 'no'")
        if action not in ("buy", "sell"):
            raise KalshiOrderError(400, "invalid_parameters", "action must be 'buy' or 'sell'")
        count = _order_count(req)
        price = _order_price(req, side, m.book.tick)
        tif = req.get("time_in_force", "good_till_canceled")
        if tif not in TIME_IN_FORCE:
            allowed = ", ".join(TIME_IN_FORCE)
            raise KalshiOrderError(400, "invalid_parameters", f"time_in_force must be one of {allowed}")
        client_id = req.get("client_order_id")
        if client_id is not None and (not isinstance(client_id, str) or not client_id):
            raise KalshiOrderError(400, "invalid_parameters", "client_order_id must be a non-empty string")
        if client_id is not None and (key_id, client_id) in self._client_ids:
            self.stats["orders_duplicate"] += 1
            raise KalshiOrderError(409, "order_already_exists", f"an order with client_order_id {client_id} exists")
        group_id = req.get("order_group_id")
        group = self.order_groups.get(group_id) if isinstance(group_id, str) else None
        if group_id is not None and (group is None or group["key"] != key_id):
            raise KalshiOrderError(404, "order_group_not_found", f"order group {group_id!r} not found")
        if group is not None and group["triggered"]:
            raise KalshiOrderError(409, "order_group_triggered", "the order group was triggered; reset it first")
        if self.trading_paused:
            raise KalshiOrderError(409, "trading_is_paused", "trading is paused on the exchange")
        fault = self.take_order_fault()
        if fault == ("disconnect", "before_accept"):
            raise SimDisconnect()
        if fault is not None and fault[0] == "reject":
            self.stats["orders_rejected"] += 1
            raise KalshiOrderError(400, "order_rejected", fault[1])
        cap = count
        if fault is not None and fault[0] == "partial":
            cap = int(count * Decimal(fault[1])) // SIZE_SCALE * SIZE_SCALE
        # YES ladder: buy YES / sell NO lift the asks; buy NO / sell YES hit the bids (a NO at q is a YES at 1 - q).
        lift = (side == "yes") == (action == "buy")
        ladder_side: Literal["bid", "ask"] = "ask" if lift else "bid"
        limit = price if side == "yes" else PRICE_SCALE - price
        if tif == "fill_or_kill" and (cap < count or m.book.available(ladder_side, limit) < count):
            self.stats["orders_killed"] += 1
            raise KalshiOrderError(409, "fill_or_kill_insufficient_resting_volume", "insufficient resting volume")
        fills = m.book.take(ladder_side, limit, cap)
        matched = sum(f[1] for f in fills)
        self.stats["orders_accepted"] += 1
        now = now_ms()
        order_id = str(uuid.uuid4())
        resting = matched < count and tif == "good_till_canceled"
        status = "resting" if resting else ("executed" if matched == count else "canceled")
        cost = fees = Decimal(0)
        for ladder_price, got in fills:
            yes_price = ladder_price
            side_price = yes_price if side == "yes" else PRICE_SCALE - yes_price
            contracts = size_dec(got)
            fee = kalshi_taker_fee(contracts, price_dec(side_price))
            cost += contracts * price_dec(side_price)
            fees += fee
            m.volume += got
            fill = {
                "_key": key_id, "trade_id": str(uuid.uuid4()), "order_id": order_id, "client_order_id": client_id,
                "market_ticker": m.ticker, "is_taker": True, "side": side, "action": action,
                "yes_price_dollars": _pd(yes_price), "no_price_dollars": _pd(PRICE_SCALE - yes_price),
                "count_fp": _cf(got), "fee_cost": fmt_fixed(fee, 6), "outcome_side": side,
                "book_side": "bid" if action == "buy" else "ask", "purchased_side": side,
                "ts": now // 1000, "ts_ms": now, "created_time": _iso(now),
            }  # fmt: skip
            self.fills.append(fill)
        yes_limit = price if side == "yes" else PRICE_SCALE - price
        order = {
            "order_id": order_id, "user_id": key_id, "client_order_id": client_id, "ticker": m.ticker,
            "side": side, "action": action, "type": "limit", "status": status, "time_in_force": tif,
            "outcome_side": side, "book_side": "bid" if action == "buy" else "ask",
            "yes_price_dollars": _pd(yes_limit), "no_price_dollars": _pd(PRICE_SCALE - yes_limit),
            "fill_count_fp": _cf(matched), "remaining_count_fp": _cf(count - matched if resting else 0),
            "initial_count_fp": _cf(count), "taker_fill_cost_dollars": fmt_fixed(cost, 6),
            "maker_fill_cost_dollars": "0.000000", "taker_fees_dollars": fmt_fixed(fees, 6),
            "maker_fees_dollars": "0.000000", "created_time": _iso(now), "created_ts_ms": now,
            "last_update_time": _iso(now), "self_trade_prevention_type": "taker_at_cross",
            "order_group_id": group_id, "cancel_order_on_pause": bool(req.get("cancel_order_on_pause")),
        }  # fmt: skip
        self.orders[order_id] = order
        if group is not None:
            group["orders"].append(order_id)
        self.order_keys[order_id] = key_id
        if client_id is not None:
            self._client_ids[(key_id, client_id)] = order_id
        self.push_user_event(key_id, "user_orders", order)
        for f in self.fills[len(self.fills) - len(fills) :]:
            self.push_user_event(key_id, "fill", {**_public(f), "post_position_fp": _cf(matched)})
        return order, fault[0] if fault is not None and fault[0] in ("timeout", "disconnect") else ""

    def _rest_orderbook(self, m: KalshiMarket, depth: str | None) -> JSON:
        yes = sorted(m.book.bids.items())
        no = sorted(((PRICE_SCALE - p, s) for p, s in m.book.asks.items()))
        if depth and depth.isdigit() and int(depth) > 0:
            n = int(depth)
            yes, no = yes[-n:], no[-n:]
        return {
            "orderbook_fp": {
                "yes_dollars": [[_pd(p), _cf(s)] for p, s in yes],
                "no_dollars": [[_pd(p), _cf(s)] for p, s in no],
            }
        }

    def _market_json(self, m: KalshiMarket) -> JSON:
        bid, ask = m.book.best_bid(), m.book.best_ask()
        return {
            "ticker": m.ticker,
            "event_ticker": m.event_ticker,
            "market_type": "binary",
            "title": m.title,
            "subtitle": m.yes_sub_title,
            "yes_sub_title": m.yes_sub_title,
            "no_sub_title": m.yes_sub_title,
            "open_time": "2026-01-01T15:00:00Z",
            "close_time": m.close_time,
            "expiration_time": m.close_time,
            "latest_expiration_time": m.close_time,
            "status": "active",
            "yes_bid_dollars": _pd(bid) if bid is not None else "0.0000",
            "yes_ask_dollars": _pd(ask) if ask is not None else "1.0000",
            "no_bid_dollars": _pd(PRICE_SCALE - ask) if ask is not None else "0.0000",
            "no_ask_dollars": _pd(PRICE_SCALE - bid) if bid is not None else "1.0000",
            "last_price_dollars": _pd(m.last_price),
            "volume_fp": _cf(m.volume),
            "open_interest_fp": _cf(m.open_interest),
            "notional_value_dollars": "1.0000",
            "price_level_structure": "linear_cent",
            "fractional_trading_enabled": False,
            "can_close_early": True,
            "rules_primary": f"If {m.title.rstrip('?')}, then the market resolves to Yes.",
            "rules_secondary": "",
        }


class KalshiOrderError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def kalshi_taker_fee(contracts: Decimal, price: Decimal) -> Decimal:
    """ceil(0.07 × C × P × (1 − P)) to the next cent."""
    raw = TAKER_FEE_RATE * contracts * price * (1 - price)
    return (raw * 100).to_integral_value(rounding="ROUND_CEILING") / 100


def _public(fill: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fill.items() if not k.startswith("_")}


def _order_count(req: Mapping[str, Any]) -> int:
    """Contracts in SIZE_SCALE units from ``count`` and/or ``count_fp`` (they must agree)."""
    count, count_fp = req.get("count"), req.get("count_fp")
    units: int | None = None
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise KalshiOrderError(400, "invalid_parameters", "count must be an integer >= 1")
        units = count * SIZE_SCALE
    if count_fp is not None:
        try:
            value = Decimal(str(count_fp))
        except ArithmeticError:
            raise KalshiOrderError(400, "invalid_parameters", f"count_fp {count_fp!r} is not a decimal") from None
        fp_units = value * SIZE_SCALE
        if not isinstance(count_fp, str) or fp_units != fp_units.to_integral_value() or fp_units <= 0:
            raise KalshiOrderError(400, "invalid_parameters", "count_fp must be a positive string with <= 2 decimals")
        if units is not None and units != int(fp_units):
            raise KalshiOrderError(400, "invalid_parameters", "count and count_fp disagree")
        units = int(fp_units)
    if units is None:
        raise KalshiOrderError(400, "invalid_parameters", "count or count_fp is required")
    if units % SIZE_SCALE:
        raise KalshiOrderError(400, "invalid_parameters", "fractional contracts are not enabled on this market")
    return units


def _order_price(req: Mapping[str, Any], side: str, tick: int) -> int:
    """The order's price on its own side, PRICE_SCALE units; exactly one price field, on the tick."""
    given = {k: req[k] for k in ("yes_price", "no_price", "yes_price_dollars", "no_price_dollars") if k in req}
    if len(given) != 1:
        raise KalshiOrderError(
            400, "invalid_parameters", "give exactly one of yes_price(_dollars) / no_price(_dollars)"
        )
    (name, raw), = given.items()
    if name.endswith("_dollars"):
        try:
            value = Decimal(raw) if isinstance(raw, str) else None
        except ArithmeticError:
            value = None
        if value is None:
            raise KalshiOrderError(400, "invalid_parameters", f"{name} must be a decimal string like \"0.4200\"")
        units_dec = value * PRICE_SCALE
    else:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise KalshiOrderError(400, "invalid_parameters", f"{name} must be integer cents")
        units_dec = Decimal(raw) * (PRICE_SCALE // 100)
    if units_dec != units_dec.to_integral_value():
        raise KalshiOrderError(400, "invalid_parameters", f"{name} {raw!r} is finer than 0.0001")
    units = int(units_dec)
    if units % tick or not tick <= units <= PRICE_SCALE - tick:
        raise KalshiOrderError(400, "invalid_price", f"{name} {raw!r} must be on the {_pd(tick)} tick within (0, 1)")
    on_yes = name.startswith("yes")
    return units if on_yes == (side == "yes") else PRICE_SCALE - units


def _markets_page(items: list[JSON], limit: str | None, cursor: str | None) -> JSON:
    """Kalshi cursor paging: the cursor is an opaque string (here the next offset); empty at the end."""
    start = int(cursor) if cursor and cursor.isdigit() else 0
    n = int(limit) if limit and limit.isdigit() and int(limit) > 0 else len(items) or 1
    page = items[start : start + n]
    nxt = str(start + n) if start + n < len(items) else ""
    return {"markets": page, "cursor": nxt}


def _catalog_market(
    ticker: str, event: str, title: str, sub: str, primary: str, secondary: str, close: str, expiration: str
) -> JSON:
    return {
        "ticker": ticker,
        "event_ticker": event,
        "market_type": "binary",
        "title": title,
        "subtitle": sub,
        "yes_sub_title": sub,
        "no_sub_title": sub,
        "open_time": "2025-01-01T15:00:00Z",
        "close_time": close,
        "expiration_time": expiration,
        "latest_expiration_time": expiration,
        "status": "active",
        "notional_value_dollars": "1.0000",
        "price_level_structure": "linear_cent",
        "can_close_early": True,
        "rules_primary": primary,
        "rules_secondary": secondary,
    }


def main(argv: list[str] | None = None) -> None:
    def factory(host: str, port: int, seed: int) -> KalshiSim:
        sim = KalshiSim(host=host, port=port, seed=seed, catalog=CATALOG)
        if sim.dev_private_key is not None:
            pem = sim.dev_private_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode()
            print(f"dev API key id: {sim.dev_key_id}\ndev private key (throwaway):\n{pem}", flush=True)
        return sim

    run_standalone(factory, argv, "Local Kalshi v2 WebSocket + REST simulator")


if __name__ == "__main__":
    main()
