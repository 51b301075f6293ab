"""Property tests: ``crossbook.BookSet`` against a plain Python reference book (dicts of Decimal).

Hypothesis plays random but venue-shaped event sequences, encodes every step as a real JSON frame
(Polymarket sometimes as an array of events), applies it to ``BookSet`` and to the reference, and
compares every level of every book (as ``Decimal``, so formatting is free) and validity after each
step. A second family throws garbage and mutated frames at the parser: each must either be accepted
or raise ``FrameError`` (a ``ValueError``) and, when rejected, leave every book exactly as it was.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crossbook
from crossbook.errors import FrameError

ONE = Decimal(1)
T0_NS = 1_760_000_000_000_000_000  # recv_ns of the first frame in a sequence
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Levels = list[tuple[Decimal, Decimal]]


# --------------------------------------------------------------------------- reference books


@dataclass
class RefBook:
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)  # Kalshi: NO bids as received
    valid: bool = False
    sid: int | None = None


class RefPoly:
    """Polymarket market channel semantics, written for clarity rather than speed."""

    def __init__(self) -> None:
        self.books: dict[str, RefBook] = {}

    def _get(self, asset_id: str) -> RefBook:
        return self.books.setdefault(asset_id, RefBook())

    def apply(self, frame: Any) -> None:
        for ev in frame if isinstance(frame, list) else [frame]:
            self.event(ev)

    def event(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event_type")
        if kind == "book":
            b = self._get(ev["asset_id"])
            b.bids = {Decimal(lv["price"]): Decimal(lv["size"]) for lv in ev["bids"]}
            b.asks = {Decimal(lv["price"]): Decimal(lv["size"]) for lv in ev["asks"]}
            b.valid = True
        elif kind == "price_change":
            for c in ev["price_changes"] if "price_changes" in ev else [ev]:
                self.set_level(c["asset_id"], c["side"], Decimal(c["price"]), Decimal(c["size"]))
        elif kind == "tick_size_change":
            b = self._get(ev["asset_id"])
            b.bids, b.asks, b.valid = {}, {}, False

    def set_level(self, asset_id: str, side: str, price: Decimal, size: Decimal) -> None:
        b = self._get(asset_id)
        if not b.valid:  # cleared by a tick-size change: nothing to apply to until the next book
            return
        levels = b.bids if side == "BUY" else b.asks
        if size == 0:
            levels.pop(price, None)
        else:
            levels[price] = size

    def view(self, asset_id: str) -> tuple[Levels, Levels, bool]:
        b = self.books[asset_id]
        return sorted(b.bids.items(), reverse=True), sorted(b.asks.items()), b.valid


class RefKalshi:
    """Kalshi v2 orderbook channel; books printed as the YES book."""

    def __init__(self, use_yes_price: bool) -> None:
        self.use_yes_price = use_yes_price
        self.books: dict[str, RefBook] = {}
        self.last_seq: dict[int, int] = {}

    def apply(self, msg: dict[str, Any]) -> bool:
        """Apply one message; True when it revealed a sequence gap."""
        kind, sid, seq, body = msg["type"], msg["sid"], msg["seq"], msg["msg"]
        b = self.books.setdefault(body["market_ticker"], RefBook())
        if kind == "orderbook_snapshot":
            b.bids = {Decimal(p): Decimal(s) for p, s in body.get("yes_dollars_fp", [])}
            b.asks = {Decimal(p): Decimal(s) for p, s in body.get("no_dollars_fp", [])}
            b.valid, b.sid = True, sid
            self.last_seq[sid] = seq
            return False
        if kind == "orderbook_delta":
            last = self.last_seq.get(sid)
            self.last_seq[sid] = seq
            if last is None or seq != last + 1:
                b.valid = False  # a gap: stays invalid until the next snapshot
                return True
            if not b.valid:
                return False
            levels = b.bids if body["side"] == "yes" else b.asks
            price = Decimal(body["price_dollars"])
            new = levels.get(price, Decimal(0)) + Decimal(body["delta_fp"])
            assert new >= 0, "the strategy never drives a level negative"
            if new == 0:
                levels.pop(price, None)
            else:
                levels[price] = new
        return False

    def view(self, ticker: str) -> tuple[Levels, Levels, bool]:
        b = self.books[ticker]
        bids = sorted(b.bids.items(), reverse=True)
        if self.use_yes_price:  # NO levels already carry the YES price: a NO level at p is a YES ask at p
            asks = sorted(b.asks.items())
        else:  # a NO bid at q is a YES ask at 1 - q
            asks = sorted((ONE - q, s) for q, s in b.asks.items())
        return bids, asks, b.valid


# --------------------------------------------------------------------------- comparing


def as_levels(levels: list[list[str]]) -> Levels:
    return [(Decimal(p), Decimal(s)) for p, s in levels]


def check_book_shape(d: dict[str, Any]) -> None:
    """Invariants of any served book: decimal strings, best first, strictly ordered, sizes > 0."""
    bids, asks = as_levels(d["bids"]), as_levels(d["asks"])
    if not d["valid"]:
        return
    assert all(s > 0 for _, s in bids + asks), d
    assert all(a[0] > b[0] for a, b in itertools.pairwise(bids)), d
    assert all(a[0] < b[0] for a, b in itertools.pairwise(asks)), d


def assert_same(bs: crossbook.BookSet, venue: str, ref: RefPoly | RefKalshi, step: Any = None) -> None:
    assert set(bs.markets(venue)) == set(ref.books), step
    for market in ref.books:
        want_bids, want_asks, want_valid = ref.view(market)
        got = bs.book(venue, market)
        check_book_shape(got)
        ctx = {"market": market, "step": step, "got": got, "want_bids": want_bids, "want_asks": want_asks}
        assert got["valid"] is want_valid, ctx
        top = bs.top(venue, market)
        assert top["valid"] is want_valid, (ctx, top)
        if want_valid:
            assert as_levels(got["bids"]) == want_bids, ctx
            assert as_levels(got["asks"]) == want_asks, ctx
            want_top = (
                (want_bids[0] if want_bids else (None, None)),
                (want_asks[0] if want_asks else (None, None)),
            )
            got_top = (
                tuple(None if x is None else Decimal(x) for x in (top["bid"], top["bid_size"])),
                tuple(None if x is None else Decimal(x) for x in (top["ask"], top["ask_size"])),
            )
            assert got_top == want_top, (ctx, top)
        elif venue == "polymarket":
            # A tick-size change clears the book until the next snapshot.
            assert got["bids"] == [] and got["asks"] == [], ctx


def encode(obj: Any, pretty: bool) -> bytes:
    return json.dumps(obj, indent=2).encode() if pretty else orjson.dumps(obj)


def ref_tops(ref: RefPoly | RefKalshi) -> dict[str, Any]:
    """What a subscriber sees per market: best bid, best ask (with sizes) and validity."""
    out = {}
    for market in ref.books:
        bids, asks, valid = ref.view(market)
        out[market] = (bids[:1], asks[:1], True) if valid else (None, None, False)
    return out


def check_side_channels(bs: crossbook.BookSet, venue: str, ref: RefPoly | RefKalshi,
                        before: dict[str, Any], touched: set[str], recv_ns: int) -> None:
    """take_changed(), last_update_ns(), top()['ts'] and depth= after one frame."""
    changed = {m for v, m in bs.take_changed() if v in (venue, "poly" if venue == "polymarket" else venue)}
    after = ref_tops(ref)
    must = {m for m, top in after.items() if m in before and before[m] != top}
    assert must <= changed, ("take_changed() missed a top/validity change", must - changed, before, after)
    assert changed <= touched, ("take_changed() names markets the frame did not touch", changed - touched)
    for m in touched:
        assert bs.last_update_ns(venue, m) == recv_ns, m
        assert bs.top(venue, m)["ts"] == recv_ns // 1_000_000, m
    for m in ref.books:
        full, short = bs.book(venue, m), bs.book(venue, m, depth=2)
        assert short["bids"] == full["bids"][:2] and short["asks"] == full["asks"][:2], (m, full, short)


def poly_touched(frame: Any) -> set[str]:
    out = set()
    for ev in frame if isinstance(frame, list) else [frame]:
        for c in ev.get("price_changes", [ev]):
            out.add(c["asset_id"])
    return out


# --------------------------------------------------------------------------- Polymarket strategy

POLY_ASSETS = [
    ("71321045679252212594626385532706912750332728571942532289631379312455583992563",
     "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"),
    ("52114319501245915516055106046884209969926127482827954674443846427813813222426",
     "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"),
    ("48331043336612883890938759509493159234755048973500640148014422747788308965732",
     "0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1"),
    ("115474063863764126958837769719736461272619491980773624567012766320777398670353",
     "0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1"),
]


def dec_str(draw: st.DrawFn, v: Decimal) -> str:
    """Minimal form ("0.5", "150"), sometimes with a trailing zero as some feeds send ("0.50", "150.0")."""
    s = format(v.normalize(), "f")
    if draw(st.integers(0, 3)) == 0:
        s += "0" if "." in s else ".0"
    return s


def poly_price(side: str) -> st.SearchStrategy[Decimal]:
    """Bids in (0, 0.5], asks in [0.51, 1): books never cross. Cents and mills."""
    cents = st.integers(1, 50) if side == "BUY" else st.integers(51, 99)
    mills = st.integers(1, 500) if side == "BUY" else st.integers(510, 999)
    return cents.map(lambda c: Decimal(c) / 100) | mills.map(lambda m: Decimal(m) / 1000)


# Shares: whole, 1-2 dp, and the 6 dp of on-chain token units.
POLY_SIZE = st.tuples(st.integers(1, 10**7), st.sampled_from([0, 0, 1, 2, 2, 6])).map(
    lambda t: Decimal(t[0]) / 10 ** t[1]
)


@st.composite
def poly_frames(draw: st.DrawFn) -> list[Any]:
    """A list of frames; each frame is one event dict or a list of them."""
    ref = RefPoly()
    frames: list[Any] = []
    ts = 1_703_875_200_000
    for _ in range(draw(st.integers(1, 25))):
        events: list[dict[str, Any]] = []
        for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
            ts += draw(st.integers(0, 500))
            seen = [a for a in POLY_ASSETS if a[0] in ref.books]
            kinds = ["book"] + (["batched", "batched", "batched", "legacy", "tick"] if seen else [])
            kind = draw(st.sampled_from(kinds))
            if kind == "book":
                asset_id, market = draw(st.sampled_from(POLY_ASSETS))
                sides = {}
                for side in ("BUY", "SELL"):
                    prices = draw(st.lists(poly_price(side), max_size=8, unique_by=lambda p: p))
                    levels = [{"price": dec_str(draw, p), "size": dec_str(draw, draw(POLY_SIZE))}
                              for p in prices]
                    sides[side] = draw(st.permutations(levels)) if draw(st.booleans()) else levels
                ev: dict[str, Any] = {
                    "event_type": "book", "market": market, "asset_id": asset_id,
                    "bids": sides["BUY"], "asks": sides["SELL"], "timestamp": str(ts),
                    "hash": draw(st.text("0123456789abcdef", min_size=40, max_size=40)),
                }
            elif kind == "tick":
                asset_id, market = draw(st.sampled_from(seen))
                ev = {"event_type": "tick_size_change", "asset_id": asset_id, "market": market,
                      "old_tick_size": "0.01", "new_tick_size": "0.001", "timestamp": str(ts)}
            else:
                changes = []
                for _ in range(1 if kind == "legacy" else draw(st.integers(1, 4))):
                    # Now and then a change for an asset with no book yet: served, but never valid.
                    pool = POLY_ASSETS if draw(st.integers(0, 15)) == 0 else seen
                    asset_id, market = draw(st.sampled_from(pool))
                    side = draw(st.sampled_from(["BUY", "SELL"]))
                    book = ref.books.get(asset_id, RefBook())
                    existing = sorted(book.bids if side == "BUY" else book.asks)
                    if existing and draw(st.integers(0, 2)) == 0:
                        price = draw(st.sampled_from(existing))
                    else:
                        price = draw(poly_price(side))
                    size = Decimal(0) if draw(st.integers(0, 3)) == 0 else draw(POLY_SIZE)
                    ref.set_level(asset_id, side, price, size)
                    bb = max(book.bids, default=None)
                    ba = min(book.asks, default=None)
                    changes.append({
                        "asset_id": asset_id, "price": dec_str(draw, price),
                        "size": "0" if size == 0 else dec_str(draw, size), "side": side,
                        "hash": draw(st.text("0123456789abcdef", min_size=40, max_size=40)),
                        "best_bid": "0" if bb is None else format(bb.normalize(), "f"),
                        "best_ask": "1" if ba is None else format(ba.normalize(), "f"),
                    })
                if kind == "legacy":
                    c = changes[0]
                    ev = {"asset_id": c["asset_id"], "event_type": "price_change", "hash": c["hash"],
                          "market": market, "price": c["price"], "side": c["side"], "size": c["size"],
                          "timestamp": str(ts)}
                else:
                    ev = {"event_type": "price_change", "market": market, "price_changes": changes,
                          "timestamp": str(ts)}
                events.append(ev)
                continue  # levels already applied to ``ref`` one change at a time
            ref.event(ev)
            events.append(ev)
        frames.append(events if len(events) > 1 or draw(st.integers(0, 4)) == 0 else events[0])
    return frames


@SETTINGS
@given(frames=poly_frames(), pretty=st.booleans())
def test_polymarket_matches_reference(frames: list[Any], pretty: bool) -> None:
    bs = crossbook.BookSet()
    ref = RefPoly()
    for i, frame in enumerate(frames):
        before = ref_tops(ref)
        recv_ns = T0_NS + i * 1_500_000
        n = bs.apply("polymarket", encode(frame, pretty and i % 2 == 0), recv_ns)
        assert n == (len(frame) if isinstance(frame, list) else 1)
        ref.apply(frame)
        assert_same(bs, "polymarket", ref, step=i)
        check_side_channels(bs, "polymarket", ref, before, poly_touched(frame), recv_ns)
    assert bs.markets("polymarket") == list(ref.books)  # first-seen order


# --------------------------------------------------------------------------- Kalshi strategy

KALSHI_TICKERS = ["KXBTC-25MAR15-B100000", "FED-23DEC-T3.00", "KXNBA-26JAN05-LAL"]


def k_price(yes_ask: bool) -> st.SearchStrategy[Decimal]:
    """Bids in [0.01, 0.49] (cents or deci-cents); YES-priced NO levels in [0.51, 0.99]."""
    v = st.integers(1, 49).map(lambda c: Decimal(c) / 100) | st.integers(10, 490).map(
        lambda m: Decimal(m) / 1000
    )
    return v.map(lambda p: ONE - p) if yes_ask else v


def k_count(v: Decimal) -> str:
    return f"{v:.2f}"


@st.composite
def kalshi_msgs(draw: st.DrawFn, use_yes_price: bool, shared_sid: bool) -> list[dict[str, Any]]:
    ref = RefKalshi(use_yes_price)
    msgs: list[dict[str, Any]] = []
    tickers = KALSHI_TICKERS if not shared_sid else KALSHI_TICKERS[:2]
    sid_of = {t: (7 if shared_sid else 10 + i) for i, t in enumerate(tickers)}
    next_seq: dict[int, int] = {}
    for _ in range(draw(st.integers(1, 30))):
        seen = [t for t in tickers if t in ref.books]
        # Snapshots come first for each market; later ~1 in 6 messages is a fresh snapshot.
        unseen = [t for t in tickers if t not in ref.books]
        snap = not seen or draw(st.integers(0, 5)) == 0
        if not shared_sid and unseen and draw(st.integers(0, 15)) == 0:
            snap = False  # a delta for a market whose snapshot never came: served, but never valid
            ticker = draw(st.sampled_from(unseen))
        elif snap:
            ticker = draw(st.sampled_from(unseen if (unseen and shared_sid) else tickers))
        else:
            ticker = draw(st.sampled_from(seen))
        sid = sid_of[ticker]
        base: dict[str, Any] = {"market_ticker": ticker, "market_id": "9b0f6b43-5b68-4f9f-9f02-9a2d1b8ac1a1"}
        if snap:
            # A snapshot continues the sid's sequence, or (own sid) restarts it at 1.
            restart = not shared_sid and (sid not in next_seq or draw(st.booleans()))
            seq = 1 if restart else next_seq.get(sid, 1)
            body = dict(base)
            for key, yes_ask in (("yes_dollars_fp", False), ("no_dollars_fp", use_yes_price)):
                prices = draw(st.lists(k_price(yes_ask), max_size=6, unique_by=lambda p: p))
                if prices or draw(st.integers(0, 5)) == 0:  # a side key is absent when empty (mostly)
                    body[key] = [[f"{p:.4f}", k_count(Decimal(draw(st.integers(1, 500_000))) / 100)]
                                 for p in sorted(prices)]
            msg = {"type": "orderbook_snapshot", "sid": sid, "seq": seq, "msg": body}
        else:
            seq = next_seq.get(sid, draw(st.integers(1, 5)))
            if not shared_sid and draw(st.integers(0, 11)) == 0:
                seq += draw(st.integers(1, 3))  # lost messages
            side = draw(st.sampled_from(["yes", "no"]))
            book = ref.books.get(ticker, RefBook())
            levels = book.bids if side == "yes" else book.asks
            if levels and draw(st.booleans()):
                price = draw(st.sampled_from(sorted(levels)))
                size = levels[price]
                cents = draw(st.integers(1, max(1, int(size * 100))))
                delta = -size if draw(st.booleans()) else -min(size, Decimal(cents) / 100)
                if not book.valid:  # stale view of an invalid book: keep deltas positive
                    delta = -delta
            else:
                price = draw(k_price(use_yes_price and side == "no"))
                delta = Decimal(draw(st.integers(1, 100_000))) / 100
            body = dict(base, price_dollars=f"{price:.4f}", delta_fp=k_count(delta), side=side,
                        ts="2025-03-01T18:26:53.361842Z", ts_ms=1740853613361)
            msg = {"type": "orderbook_delta", "sid": sid, "seq": seq, "msg": body}
        next_seq[sid] = seq + 1
        ref.apply(msg)
        msgs.append(msg)
    return msgs


@SETTINGS
@given(data=st.data(), use_yes_price=st.booleans(), pretty=st.booleans())
def test_kalshi_matches_reference(data: st.DataObject, use_yes_price: bool, pretty: bool) -> None:
    msgs = data.draw(kalshi_msgs(use_yes_price, shared_sid=False))
    bs = crossbook.BookSet(kalshi_use_yes_price=use_yes_price)
    ref = RefKalshi(use_yes_price)
    for i, msg in enumerate(msgs):
        before = ref_tops(ref)
        recv_ns = T0_NS + i * 1_500_000
        assert bs.apply("kalshi", encode(msg, pretty and i % 3 == 0), recv_ns) == 1
        gap = ref.apply(msg)
        assert_same(bs, "kalshi", ref, step=(i, msg))
        ticker = msg["msg"]["market_ticker"]
        check_side_channels(bs, "kalshi", ref, before, {ticker}, recv_ns)
        resync = set(bs.take_resync())
        assert resync <= {(msg["sid"], ticker)}, (msg, resync)
        if gap and before.get(ticker, (None, None, False))[2]:
            assert (msg["sid"], ticker) in resync, ("a gap must ask for a snapshot", msg, resync)
    assert bs.markets("kalshi") == list(ref.books)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), use_yes_price=st.booleans())
def test_kalshi_seq_is_per_sid_across_markets(data: st.DataObject, use_yes_price: bool) -> None:
    """One subscription (one sid) carrying several markets: interleaved messages are gap-free."""
    msgs = data.draw(kalshi_msgs(use_yes_price, shared_sid=True))
    bs = crossbook.BookSet(kalshi_use_yes_price=use_yes_price)
    ref = RefKalshi(use_yes_price)
    for i, msg in enumerate(msgs):
        bs.apply("kalshi", orjson.dumps(msg), 1_000 + i)
        ref.apply(msg)
        assert_same(bs, "kalshi", ref, step=(i, msg))


def test_kalshi_gap_invalidates_until_snapshot() -> None:
    """Deterministic anchor for the property above, with the spec's own example payloads."""
    bs = crossbook.BookSet()
    snap = {"type": "orderbook_snapshot", "sid": 2, "seq": 2, "msg": {
        "market_ticker": "FED-23DEC-T3.00", "yes_dollars_fp": [["0.0800", "300.00"], ["0.2200", "333.00"]],
        "no_dollars_fp": [["0.5400", "20.00"], ["0.5600", "146.00"]]}}
    bs.apply("kalshi", orjson.dumps(snap))
    book = bs.book("kalshi", "FED-23DEC-T3.00")
    assert book["valid"]
    assert as_levels(book["bids"]) == [(Decimal("0.22"), 333), (Decimal("0.08"), 300)]
    assert as_levels(book["asks"]) == [(Decimal("0.44"), 146), (Decimal("0.46"), 20)]
    delta = {"type": "orderbook_delta", "sid": 2, "seq": 4, "msg": {
        "market_ticker": "FED-23DEC-T3.00", "price_dollars": "0.2200", "delta_fp": "-33.00", "side": "yes"}}
    bs.apply("kalshi", orjson.dumps(delta))  # seq 3 was lost
    assert not bs.book("kalshi", "FED-23DEC-T3.00")["valid"]
    assert not bs.top("kalshi", "FED-23DEC-T3.00")["valid"]
    bs.apply("kalshi", orjson.dumps({**delta, "seq": 5}))  # in order again, but still no snapshot
    assert not bs.book("kalshi", "FED-23DEC-T3.00")["valid"]
    bs.apply("kalshi", orjson.dumps({**snap, "seq": 6}))
    assert bs.book("kalshi", "FED-23DEC-T3.00")["valid"]


# --------------------------------------------------------------------------- malformed input


def seeded_bookset() -> crossbook.BookSet:
    bs = crossbook.BookSet()
    a, m = POLY_ASSETS[0]
    bs.apply("polymarket", orjson.dumps([
        {"event_type": "book", "market": m, "asset_id": a, "timestamp": "1", "hash": "0",
         "bids": [{"price": "0.48", "size": "30"}, {"price": "0.49", "size": "20"}],
         "asks": [{"price": "0.52", "size": "25"}, {"price": "0.51", "size": "10.5"}]},
        {"event_type": "book", "market": m, "asset_id": POLY_ASSETS[1][0], "timestamp": "1", "hash": "0",
         "bids": [{"price": "0.4", "size": "1"}], "asks": [{"price": "0.6", "size": "2"}]},
    ]))
    bs.apply("kalshi", orjson.dumps(VALID_KALSHI[0]))
    return bs


VALID_POLY: list[Any] = [
    {"event_type": "price_change", "market": POLY_ASSETS[0][1], "timestamp": "1703875201000",
     "price_changes": [
         {"asset_id": POLY_ASSETS[0][0], "price": "0.5", "size": "150.0", "side": "BUY", "hash": "0xhash001",
          "best_bid": "0.5", "best_ask": "0.51"},
         {"asset_id": POLY_ASSETS[1][0], "price": "0.6", "size": "0", "side": "SELL", "hash": "0xhash002",
          "best_bid": "0.4", "best_ask": "1"}]},
    {"asset_id": POLY_ASSETS[0][0], "event_type": "price_change", "hash": "bf32", "market": POLY_ASSETS[0][1],
     "price": "0.514", "side": "SELL", "size": "21574.08", "timestamp": "1723967931411"},
    [{"event_type": "book", "market": POLY_ASSETS[2][1], "asset_id": POLY_ASSETS[2][0], "timestamp": "2",
      "hash": "1", "bids": [{"price": "0.50", "size": "200.0"}], "asks": [{"price": "0.51", "size": "1"}]},
     {"event_type": "tick_size_change", "asset_id": POLY_ASSETS[1][0], "market": POLY_ASSETS[1][1],
      "old_tick_size": "0.01", "new_tick_size": "0.001", "timestamp": "3"}],
]
VALID_KALSHI: list[Any] = [
    {"type": "orderbook_snapshot", "sid": 1, "seq": 1, "msg": {
        "market_ticker": "KXBTC-25MAR15-B100000", "market_id": "9b0f6b43-5b68-4f9f-9f02-9a2d1b8ac1a1",
        "yes_dollars_fp": [["0.3500", "200.00"], ["0.4200", "13.00"]],
        "no_dollars_fp": [["0.5400", "400.00"], ["0.5600", "17.00"]]}},
    {"type": "orderbook_delta", "sid": 1, "seq": 2, "msg": {
        "market_ticker": "KXBTC-25MAR15-B100000", "price_dollars": "0.4200", "delta_fp": "-13.00",
        "side": "yes", "ts": "2025-03-01T18:26:53.361842Z", "ts_ms": 1740853613361}},
    {"type": "orderbook_delta", "sid": 1, "seq": 2, "msg": {
        "market_ticker": "KXBTC-25MAR15-B100000", "price_dollars": "0.4100", "delta_fp": "50.00",
        "side": "no", "ts_ms": 1740853613361}},
]

WEIRD_VALUES: list[Any] = [
    None, True, 0, -1, 1.5, 1e308, 10**30, "", " ", "abc", "-0.5", "-1", "1e3", "NaN", "inf", "0x10",
    "1.2.3", " 0.5", "0.5 ", "+0.5", ".5", "5.", "0.1234567890123", "9" * 40, "0." + "0" * 40 + "1",
    "１", "\u0000", "\u00e9", [], {}, ["0.5", "1"], {"price": "0.5"},
]


def mutate_json(draw: st.DrawFn, obj: Any) -> Any:
    """Replace one value, drop one key, or add one key somewhere inside ``obj``."""
    paths: list[tuple[Any, Any]] = []

    def walk(o: Any) -> None:
        if isinstance(o, dict):
            for k, v in o.items():
                paths.append((o, k))
                walk(v)
        elif isinstance(o, list):
            for i, v in enumerate(o):
                paths.append((o, i))
                walk(v)

    obj = json.loads(json.dumps(obj))
    walk(obj)
    container, key = draw(st.sampled_from(paths))
    action = draw(st.sampled_from(["replace", "replace", "replace", "drop", "add"]))
    if action == "replace":
        container[key] = draw(st.sampled_from(WEIRD_VALUES))
    elif action == "drop":
        del container[key]
    elif isinstance(container, dict):
        container[draw(st.sampled_from(["extra", "event_type", "type", "seq", "side"]))] = draw(
            st.sampled_from(WEIRD_VALUES))
    else:
        container.append(draw(st.sampled_from(WEIRD_VALUES)))
    return obj


def mutate_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not b:
            break
        i = draw(st.integers(0, len(b) - 1))
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "dup"]))
        if op == "flip":
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "delete":
            del b[i]
        elif op == "insert":
            b[i:i] = draw(st.binary(min_size=1, max_size=4) | st.sampled_from([b'"', b",", b"}", b"]", b"-", b"0"]))
        elif op == "truncate":
            del b[i:]
        else:
            b[i:i] = b[i:i + draw(st.integers(1, 16))]
    return bytes(b)


@st.composite
def hostile_frames(draw: st.DrawFn) -> tuple[str, bytes]:
    venue = draw(st.sampled_from(["polymarket", "kalshi"]))
    valid = VALID_POLY if venue == "polymarket" else VALID_KALSHI
    kind = draw(st.sampled_from(["garbage", "json", "json", "bytes", "bytes"]))
    if kind == "garbage":
        data = draw(st.binary(max_size=200) | st.text(max_size=60).map(str.encode)
                    | st.sampled_from([b"", b"PONG", b"PING", b"null", b"[]", b"{}", b"[[]]", b"[null]",
                                       b'"book"', b"1", b"[{}]", b"\xff\xfe", b"{" * 300, b"[" * 300]))
    elif kind == "json":
        data = json.dumps(mutate_json(draw, draw(st.sampled_from(valid)))).encode()  # ints > 64 bit
    else:
        data = mutate_bytes(draw, orjson.dumps(draw(st.sampled_from(valid))))
    return venue, data


@settings(max_examples=800, deadline=None)
@given(case=hostile_frames())
def test_hostile_frames_rejected_cleanly_or_accepted(case: tuple[str, bytes]) -> None:
    venue, data = case
    bs = seeded_bookset()
    before = bs.books()
    malformed = bs.stats()["malformed"]
    try:
        n = bs.apply(venue, data, 5)
    except FrameError:
        assert bs.books() == before, "a rejected frame must not change any book"
        assert bs.stats()["malformed"] == malformed + 1
    except BaseException as e:  # PanicException derives from BaseException
        pytest.fail(f"{venue} {data!r}: raised {type(e).__name__}: {e} (want FrameError or accept)")
    else:
        assert isinstance(n, int) and n >= 0
    for d in bs.books():  # whatever happened, every served book still makes sense
        check_book_shape(d)


def test_rejected_array_frame_is_atomic() -> None:
    """An array whose second event is malformed applies nothing, not even the first event."""
    bs = seeded_bookset()
    before = bs.books()
    good = VALID_POLY[0]
    bad = {**VALID_POLY[1], "price": "abc"}
    with pytest.raises(FrameError):
        bs.apply("polymarket", orjson.dumps([good, bad]))
    assert bs.books() == before
    with pytest.raises(ValueError):  # FrameError is a ValueError for callers who don't know our names
        bs.apply("kalshi", b'{"type": "orderbook_delta", "sid": 1, "seq": 2, "msg": {"market_ticker": ')
    assert bs.books() == before


def test_pong_and_unknown_events_change_nothing() -> None:
    bs = seeded_bookset()
    before = bs.books()
    assert bs.apply("polymarket", b"PONG") == 0
    assert bs.apply("polymarket", orjson.dumps({"event_type": "last_trade_price_v9", "asset_id": "1"})) == 0
    assert bs.books() == before


def test_deeply_nested_frame_does_not_crash_the_process() -> None:
    """Nesting bombs must be refused, not overflow the native stack (run in a child: a crash is fatal)."""
    code = (
        "import crossbook\n"
        "from crossbook.errors import FrameError\n"
        "bs = crossbook.BookSet()\n"
        "for venue in ('polymarket', 'kalshi'):\n"
        "    for bomb in (b'[' * 200_000, b'{\"a\":' * 200_000, b'[' * 200_000 + b']' * 200_000):\n"
        "        try:\n"
        "            bs.apply(venue, bomb)\n"
        "        except FrameError:\n"
        "            pass\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stderr[-2000:])


def test_invalidate_one_or_all_until_next_snapshot() -> None:
    bs = seeded_bookset()
    a0, a1 = POLY_ASSETS[0][0], POLY_ASSETS[1][0]
    bs.invalidate("polymarket", a0, "feed stalled")
    d = bs.book("polymarket", a0)
    assert (d["valid"], d["reason"]) == (False, "feed stalled")
    assert not bs.top("polymarket", a0)["valid"]
    assert bs.book("polymarket", a1)["valid"] and bs.book("kalshi", "KXBTC-25MAR15-B100000")["valid"]
    bs.invalidate("polymarket", None, "reconnecting")
    assert not any(d["valid"] for d in bs.books() if d["venue"] == "polymarket")
    assert bs.book("kalshi", "KXBTC-25MAR15-B100000")["valid"]
    bs.apply("polymarket", orjson.dumps({"event_type": "book", "market": POLY_ASSETS[0][1], "asset_id": a0,
                                         "bids": [], "asks": [{"price": "0.7", "size": "1"}],
                                         "timestamp": "9", "hash": "h"}))
    d = bs.book("polymarket", a0)
    assert d["valid"] and d["reason"] is None and as_levels(d["asks"]) == [(Decimal("0.7"), 1)]
    assert not bs.book("polymarket", a1)["valid"]
    with pytest.raises(KeyError):
        bs.book("polymarket", "never-seen")
