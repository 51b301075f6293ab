"""``crossbook._core.EdgeWatch`` (the edge trigger's compiled first look) decides exactly as the trigger's
Python path: the top check (``EdgeTrigger._top_edge``) and the plan at the top of book (``plan_at_top``),
on random books in a real ``BookSet``, both polarities, with and without a Polymarket fee and a limit.

With a first leg set (``set_first_leg``, from ``PolymarketTrader.first_leg_template`` over a real
``ServiceSigner``), a fire's signing request is byte for byte the frame the Python path makes for that
order: ``PolymarketTrader._struct`` of the first leg ``EdgeTrigger._fire_at_top`` picks, framed by the
signer client's ``prepare_order_frame``; the order map and hash it hands the executor are that struct's."""

from __future__ import annotations

import time
import uuid
from decimal import ROUND_FLOOR, Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from crossbook import BookSet
from crossbook._core import EdgeWatch, PolymarketOrderRequest
from crossbook._core import prepare_order_frame as python_path_frame
from crossbook.execution.models import LegOrder, PairMarkets
from crossbook.execution.signer import ServiceSigner
from crossbook.execution.sizing import plan_at_top
from crossbook.execution.trigger import EdgeIntent, EdgeTrigger
from crossbook.execution.venues import PolymarketTrader
from crossbook.signing.client import CLIENT_CALL_IDS, SignerClient
from crossbook.signing.fastframe import METHOD_IDS
from crossbook.signing.orders import order_hash
from tests.unit.test_bookset import ksnap, pbook

PID, TICKER = "p1", "K1"
ASSET, NO_ASSET = "71321045679252212594626385532706912750332728571942532289631379312455583992563", "1234567"
ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def _trigger(books: BookSet, bps: int, polarity: str, enabled: bool = True) -> EdgeTrigger:
    """A trigger over ``books`` with the executor parts the top check and arming read (nothing fires:
    no event loop runs here, so arming never evaluates)."""
    breaker = SimpleNamespace(add_listener=lambda fn: None, stale_after_ms=500, clock=time.time_ns,
                              evaluate=lambda pid: SimpleNamespace(enabled=enabled))  # fmt: skip
    markets = {PID: PairMarkets(PID, ASSET, NO_ASSET, TICKER, polarity=polarity)}  # type: ignore[arg-type]
    ex: Any = SimpleNamespace(markets=markets, gate=SimpleNamespace(breaker=breaker), poly_fee_bps=bps,
                              books=books, first_leg_template=lambda pair_id, tif: None)  # fmt: skip
    return EdgeTrigger(ex, books=books)


def _books(p: tuple[int, int, int, int], k: tuple[int, int, int, int], recv_ns: int) -> BookSet:
    """Polymarket YES bid/ask and Kalshi YES bid / NO bid (cents, whole-share sizes), one level each."""
    bs = BookSet()
    bs.apply("polymarket", pbook(ASSET, [(f"0.{p[0]:02d}", str(p[1]))], [(f"0.{p[2]:02d}", str(p[3]))]), recv_ns)
    bs.apply("kalshi", ksnap(TICKER, 1, 1, [[f"0.{k[0]:02d}00", f"{k[1]}.00"]], [[f"0.{k[2]:02d}00", f"{k[3]}.00"]]),
             recv_ns)  # fmt: skip
    return bs


def _expected(trig: EdgeTrigger) -> object:
    """What the Python path decides: None (no edge), False (the full path sizes it) or the fire."""
    a = trig._armed[PID]
    found = trig._top_edge(a)
    if not found:
        return None
    best = found[0]
    whole = a.intent.size.to_integral_value(ROUND_FLOOR)
    if best.depth < a.intent.size:
        return False
    plan = plan_at_top(a.markets, best.yes_venue, whole, best.yes_ask, best.no_ask, a.intent.edge,
                       trig.executor.poly_fee_bps)  # fmt: skip
    if plan is None:
        return False
    direction = next(i for i, side in enumerate(a.sides) if side[0] == best.yes_venue)
    return direction, best.yes_ask, best.no_ask, whole


price = st.integers(1, 98)
depth = st.integers(1, 60)


@settings(max_examples=400, deadline=None)
@given(
    pb=price, pbs=depth, pa=price, pas=depth, kyb=price, kys=depth, knb=price, kns=depth,
    size=st.sampled_from(["1", "5", "12", "20", "20.5", "45"]), edge=st.sampled_from(["0", "0.002", "0.01", "0.05"]),
    limit=st.sampled_from([None, "0.35", "0.6", "0.99"]), bps=st.sampled_from([0, 100, 1000]),
    polarity=st.sampled_from(["same", "inverted"]), yes_venue=st.sampled_from([None, "polymarket", "kalshi"]),
)  # fmt: skip
def test_the_compiled_check_decides_as_the_python_path(
    pb: int, pbs: int, pa: int, pas: int, kyb: int, kys: int, knb: int, kns: int, size: str, edge: str,
    limit: str | None, bps: int, polarity: str, yes_venue: str | None,
) -> None:  # fmt: skip
    if pb >= pa or kyb + knb >= 100:
        return  # a crossed book is not a book the feeds keep
    now = time.time_ns()
    books = _books((pb, pbs, pa, pas), (kyb, kys, knb, kns), now)
    trig = _trigger(books, bps, polarity)
    trig.arm(EdgeIntent(PID, Decimal(size), Decimal(edge), None if limit is None else Decimal(limit),
                        yes_venue))  # type: ignore[arg-type]  # fmt: skip
    watch = trig._armed[PID].watch
    assert watch is not None and watch.enabled
    got = watch.check(books, now)
    want = _expected(trig)
    if isinstance(want, tuple):
        assert isinstance(got, tuple), (got, want)
        assert (got[0], Decimal(got[1]), Decimal(got[2]), got[3]) == want
        assert got[4] is None  # no first leg set: no signing request made
    else:
        assert got is want
    # The same decision with the first leg's signing request made in the fire, under a wallet or a session.
    session = (pb + pa) % 2 == 1
    trader = _trader(session)
    template = trader.first_leg_template("FOK")
    assert template is not None
    watch.set_first_leg("polymarket", (ASSET, NO_ASSET), **template)  # type: ignore[arg-type]
    made = watch.check(books, now)
    if not isinstance(want, tuple):
        assert made is want
        return
    assert isinstance(made, tuple) and made[:4] == got[:4] and made[4] is not None
    _assert_python_path_frame(trig, made, trader, template)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), size=st.sampled_from(["1", "5", "12", "20"]), edge=st.sampled_from(["0", "0.002", "0.01"]),
       bps=st.sampled_from([0, 100]), polarity=st.sampled_from(["same", "inverted"]),
       yes_venue=st.sampled_from([None, "polymarket", "kalshi"]), session=st.booleans())  # fmt: skip
def test_a_fire_makes_the_python_path_signing_request(
    data: st.DataObject, size: str, edge: str, bps: int, polarity: str, yes_venue: str | None, session: bool
) -> None:
    # Books with an edge at the top in one direction or the other, deep enough for the size: mostly fires.
    pa = data.draw(st.integers(2, 90))
    pb = data.draw(st.integers(1, pa - 1))
    if data.draw(st.booleans()):  # YES on Polymarket + NO on Kalshi: Kalshi's YES bid above Polymarket's ask
        kyb = data.draw(st.integers(min(pa + 1, 97), 97))
        knb = data.draw(st.integers(1, 99 - kyb))
    else:  # YES on Kalshi + NO on Polymarket: Kalshi's NO bid + Polymarket's YES bid above 1
        knb = data.draw(st.integers(min(101 - pb, 98), 98))
        kyb = data.draw(st.integers(1, 99 - knb))
    deep = st.integers(20, 60)
    now = time.time_ns()
    books = _books((pb, data.draw(deep), pa, data.draw(deep)), (kyb, data.draw(deep), knb, data.draw(deep)), now)
    trig = _trigger(books, bps, polarity)
    trig.arm(EdgeIntent(PID, Decimal(size), Decimal(edge), None, yes_venue))  # type: ignore[arg-type]
    watch = trig._armed[PID].watch
    assert watch is not None
    want = _expected(trig)
    assume(isinstance(want, tuple))  # the fires are what this test is about (the test above covers the rest)
    trader = _trader(session)
    template = trader.first_leg_template("FOK")
    assert template is not None
    watch.set_first_leg("polymarket", (ASSET, NO_ASSET), **template)  # type: ignore[arg-type]
    made = watch.check(books, now)
    assert isinstance(made, tuple) and (made[0], Decimal(made[1]), Decimal(made[2]), made[3]) == want
    _assert_python_path_frame(trig, made, trader, template)
    again = watch.check(books, now)  # every fire is a new order: new client order id, new call id
    assert isinstance(again, tuple) and again[4] is not None and made[4] is not None
    assert again[4].call_id != made[4].call_id and again[4].client_order_id != made[4].client_order_id


def test_a_first_leg_is_a_polymarket_order_under_one_key() -> None:
    watch = EdgeWatch([("polymarket", ASSET), ("kalshi", TICKER)], [("polymarket", "yes", "kalshi", "no")],
                      edge="0.02", limit=None, size="20", min_size="5", poly_fee_bps=0, stale_ms=500)  # fmt: skip
    common: Any = {"method": 2, "address": ADDRESS, "account": "a", "order_type": "FOK"}
    with pytest.raises(ValueError, match="only a Polymarket order"):
        watch.set_first_leg("kalshi", (TICKER, TICKER), wallet="w", **common)
    with pytest.raises(ValueError, match="exactly one of wallet or session_id"):
        watch.set_first_leg("polymarket", (ASSET, NO_ASSET), **common)
    with pytest.raises(ValueError, match="exactly one of wallet or session_id"):
        watch.set_first_leg("polymarket", (ASSET, NO_ASSET), wallet="w", session_id="s", **common)
    assert not watch.first_leg
    watch.set_first_leg("polymarket", (ASSET, NO_ASSET), wallet="w", **common)
    assert watch.first_leg
    now = time.time_ns()
    books = _books((38, 10, 40, 50), (48, 30, 40, 30), now)
    fired = watch.check(books, now)
    assert isinstance(fired, tuple) and fired[4] is not None and fired[4].order()["tokenId"] == ASSET
    # What the signer would refuse as input is refused when set (the trigger then leaves the first leg to the
    # executor's path, which refuses such an order with the reason); the first leg set before stays.
    with pytest.raises(ValueError, match=r"tokens\[0\]"):
        watch.set_first_leg("polymarket", ("not-a-token", NO_ASSET), wallet="w", **common)
    with pytest.raises(ValueError, match="address"):
        watch.set_first_leg("polymarket", (ASSET, NO_ASSET), wallet="w", **{**common, "address": "0x12"})
    assert watch.first_leg
    watch.clear_first_leg()
    assert not watch.first_leg
    fired = watch.check(books, now)
    assert isinstance(fired, tuple) and fired[:4] == (0, "0.4", "0.52", 20) and fired[4] is None


def _trader(session: bool) -> PolymarketTrader:
    """A trader over a real signer client (never connected: only its frames are compared here)."""
    client = SignerClient("/nonexistent/signer.sock", fast=True)
    signer = ServiceSigner(client, address=ADDRESS, api_key="api-1", session_id="s" * 32 if session else None,
                           wallet=None if session else "main")  # fmt: skip
    return PolymarketTrader("http://127.0.0.1:9", signer)


def _assert_python_path_frame(trig: EdgeTrigger, made: Any, trader: PolymarketTrader, template: Any) -> None:
    direction, yes_ask, no_ask, shares, first = made
    frame, call_id, rid, ts_ms = first.frame, first.call_id, first.client_order_id, first.timestamp_ms
    order_map, digest = first.order(), first.order_hash()
    yes_venue, _, yes_outcome, no_outcome = trig._armed[PID].sides[direction]
    # the first leg as EdgeTrigger._fire_at_top picks it (Polymarket first)
    outcome, price = (yes_outcome, yes_ask) if yes_venue == "polymarket" else (no_outcome, no_ask)
    token = ASSET if outcome == "yes" else NO_ASSET
    order = LegOrder("polymarket", token, "buy", outcome, Decimal(price), Decimal(shares), "FOK", "entry", "leg1",
                     "intent", PID, rid)  # fmt: skip
    struct = trader._struct(order, ts_ms)
    # the order map and hash the executor records and checks, as the Python path makes them
    assert order_map == {k: str(v) for k, v in struct.items()} and digest == order_hash(struct)
    want = python_path_frame(METHOD_IDS["PreparePolymarketOrder"], call_id, rid, struct,
                             account="api-1", order_type="FOK", wallet=template["wallet"],
                             session_id=template["session_id"])  # fmt: skip
    assert want is not None and frame == want
    assert call_id > CLIENT_CALL_IDS  # the high half: never one of the client's own ids
    assert abs(ts_ms - time.time_ns() // 1_000_000) < 60_000
    req = PolymarketOrderRequest(frame[9:])
    assert req.request_id == rid and str(uuid.UUID(rid)) == rid and uuid.UUID(rid).version == 4
    assert req.order()["side"] == "BUY" and req.order()["tokenId"] == token


def test_freshness_and_the_switch_send_an_edge_to_the_full_path() -> None:
    # YES 0.40 on Polymarket + NO 0.52 on Kalshi + its fee rate: an edge of 0.06 for 20 shares at the top
    old = time.time_ns() - 2_000_000_000
    books = _books((38, 10, 40, 50), (48, 30, 40, 30), old)
    trig = _trigger(books, 0, "same")
    trig.arm(EdgeIntent(PID, Decimal(20), Decimal("0.02"), Decimal("0.60")))
    watch = trig._armed[PID].watch
    assert watch is not None
    now = time.time_ns()
    assert watch.check(books, old) == (0, "0.4", "0.52", 20, None)
    assert watch.check(books, now) is False  # both books 2 s old, no link to vouch for them
    # a connected link's recent heartbeat makes a quiet book fresh, as the breaker reads it
    alive = SimpleNamespace(connected=True, last_heartbeat_ns=now)
    live = EdgeWatch([("polymarket", ASSET), ("kalshi", TICKER)], [("polymarket", "yes", "kalshi", "no")],
                     edge="0.02", limit="0.60", size="20", min_size="5", poly_fee_bps=0, stale_ms=500,
                     links=(alive, alive))  # fmt: skip
    assert live.check(books, now) == (0, "0.4", "0.52", 20, None)
    alive.connected = False
    assert live.check(books, now) is False
    alive.connected = True
    live.enabled = False  # the breaker's last word was "disabled"
    assert live.check(books, now) is False
    live.enabled = True
    books.invalidate("kalshi", TICKER, "test")
    assert live.check(books, now) is None  # an invalid book is no edge


def test_amounts_finer_than_the_books_are_refused() -> None:
    with pytest.raises(ValueError, match="edge"):
        EdgeWatch([("polymarket", ASSET), ("kalshi", TICKER)], [("polymarket", "yes", "kalshi", "no")],
                  edge="0.0000001", limit=None, size="20", min_size="5", poly_fee_bps=0, stale_ms=500)  # fmt: skip
