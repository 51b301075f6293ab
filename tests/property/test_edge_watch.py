"""``crossbook._core.EdgeWatch`` (the edge trigger's compiled first look) decides exactly as the trigger's
Python path: the top check (``EdgeTrigger._top_edge``) and the plan at the top of book (``plan_at_top``),
on random books in a real ``BookSet``, both polarities, with and without a Polymarket fee and a limit."""

from __future__ import annotations

import time
from decimal import ROUND_FLOOR, Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossbook import BookSet
from crossbook._core import EdgeWatch
from crossbook.execution.models import PairMarkets
from crossbook.execution.sizing import plan_at_top
from crossbook.execution.trigger import EdgeIntent, EdgeTrigger
from tests.unit.test_bookset import ksnap, pbook

PID, ASSET, NO_ASSET, TICKER = "p1", "A1", "A2", "K1"


def _trigger(books: BookSet, bps: int, polarity: str, enabled: bool = True) -> EdgeTrigger:
    """A trigger over ``books`` with the executor parts the top check and arming read (nothing fires:
    no event loop runs here, so arming never evaluates)."""
    breaker = SimpleNamespace(add_listener=lambda fn: None, stale_after_ms=500, clock=time.time_ns,
                              evaluate=lambda pid: SimpleNamespace(enabled=enabled))  # fmt: skip
    markets = {PID: PairMarkets(PID, ASSET, NO_ASSET, TICKER, polarity=polarity)}  # type: ignore[arg-type]
    ex: Any = SimpleNamespace(markets=markets, gate=SimpleNamespace(breaker=breaker), poly_fee_bps=bps,
                              books=books)  # fmt: skip
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
    else:
        assert got is want


def test_freshness_and_the_switch_send_an_edge_to_the_full_path() -> None:
    # YES 0.40 on Polymarket + NO 0.52 on Kalshi + its fee rate: an edge of 0.06 for 20 shares at the top
    old = time.time_ns() - 2_000_000_000
    books = _books((38, 10, 40, 50), (48, 30, 40, 30), old)
    trig = _trigger(books, 0, "same")
    trig.arm(EdgeIntent(PID, Decimal(20), Decimal("0.02"), Decimal("0.60")))
    watch = trig._armed[PID].watch
    assert watch is not None
    now = time.time_ns()
    assert watch.check(books, old) == (0, "0.4", "0.52", 20)
    assert watch.check(books, now) is False  # both books 2 s old, no link to vouch for them
    # a connected link's recent heartbeat makes a quiet book fresh, as the breaker reads it
    alive = SimpleNamespace(connected=True, last_heartbeat_ns=now)
    live = EdgeWatch([("polymarket", ASSET), ("kalshi", TICKER)], [("polymarket", "yes", "kalshi", "no")],
                     edge="0.02", limit="0.60", size="20", min_size="5", poly_fee_bps=0, stale_ms=500,
                     links=(alive, alive))  # fmt: skip
    assert live.check(books, now) == (0, "0.4", "0.52", 20)
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
