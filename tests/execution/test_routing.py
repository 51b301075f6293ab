"""Single-order routing: one buy/sell goes where the price after fees is better, split across both
venues by depth; the walk on fixed books, then a routed order against the simulators."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal as D

import pytest

from crossbook.execution import IntentRefused, PairMarkets, RouteIntent
from crossbook.execution.sizing import kalshi_fee, plan_route
from tests.conftest import eventually
from tests.execution.test_scenarios import Rig, rig, rows

__all__ = ["rig"]
PM = PairMarkets("p", "YES", "NO", "KX")


class Books:
    def __init__(self, **books: Mapping[str, object]) -> None:
        self.books = books

    def book(self, venue: str, market: str, depth: int | None = None) -> Mapping[str, object]:
        return self.books[venue]


def yes_book(bids: list[tuple[str, str]], asks: list[tuple[str, str]], valid: bool = True) -> dict[str, object]:
    return {"valid": valid, "reason": None if valid else "gap", "bids": bids, "asks": asks}


def test_buy_takes_the_cheaper_after_fees_first_and_splits_by_depth() -> None:
    books = Books(
        polymarket=yes_book([("0.60", "100")], [("0.62", "30"), ("0.64", "500")]),
        kalshi=yes_book([("0.59", "100")], [("0.61", "20"), ("0.63", "500")]),
    )
    # Kalshi 0.61 costs 0.61 + 0.07 × 0.61 × 0.39 ≈ 0.6267 after its fee: Polymarket's 0.62 goes first.
    legs = plan_route(books, PM, "buy", "yes", D(60), D("0.63"))
    got = {leg.venue: (leg.size, leg.limit) for leg in legs}
    assert got == {"polymarket": (D(30), D("0.62")), "kalshi": (D(30), D("0.63"))}
    assert legs[0].venue == "polymarket"  # the better venue is sent first
    k = next(leg for leg in legs if leg.venue == "kalshi")
    assert k.cost == D("0.61") * 20 + D("0.63") * 10 and k.fee == kalshi_fee(D(20), D("0.61")) + kalshi_fee(
        D(10), D("0.63"))
    # A limit below every Polymarket ask: all of it on Kalshi, as deep as the limit allows.
    legs = plan_route(books, PM, "buy", "yes", D(60), D("0.615"))
    assert [(leg.venue, leg.size) for leg in legs] == [("kalshi", D(20))]


def test_sell_no_walks_the_bids_and_respects_venue_size_rules() -> None:
    # NO bids are 1 − YES asks: Polymarket NO bid 0.40 (30), Kalshi NO bid 0.39 (20.5 → whole contracts).
    books = Books(
        polymarket=yes_book([("0.55", "10")], [("0.60", "3"), ("0.70", "100")]),
        kalshi=yes_book([("0.50", "10")], [("0.61", "20.5")]),
    )
    legs = plan_route(books, PM, "sell", "no", D(30), D("0.35"))
    got = {leg.venue: leg.size for leg in legs}
    # Polymarket's best NO bid 0.40 has only 3 (< its minimum of 5 shares with the 0.30 level excluded by the
    # limit): that share stays unfilled rather than break the venue's minimum; Kalshi takes 20 whole contracts.
    assert got == {"kalshi": D(20)}
    with pytest.raises(IntentRefused) as refused:
        plan_route(Books(polymarket=yes_book([], [], False), kalshi=yes_book([], [], False)), PM, "buy", "yes",
                   D(5), D("0.5"))  # fmt: skip
    assert refused.value.step == "book"


def oracle(rig: Rig, size: D, limit: D) -> dict[str, D]:
    """An independent greedy walk over the simulators' true YES asks (what the split must be)."""
    levels = [(p, q, "polymarket") for p, q in rig.poly.book(rig.poly.markets[0])["asks"] if p <= limit]
    levels += [(p, q, "kalshi") for p, q in rig.kal.book(rig.kal.markets[0])["asks"] if p <= limit]
    levels.sort(key=lambda lv: lv[0] + (D("0.07") * lv[0] * (1 - lv[0]) if lv[2] == "kalshi" else 0))
    out = {"polymarket": D(0), "kalshi": D(0)}
    for _, q, venue in levels:
        take = min(q, size - sum(out.values()))
        out[venue] += take
    out["kalshi"] = out["kalshi"].to_integral_value(rounding="ROUND_FLOOR")
    return {v: s for v, s in out.items() if s > 0}


@pytest.mark.parametrize("rig", [52], indirect=True)  # seed 52: both venues' YES asks within 0.02
async def test_routed_buy_splits_across_both_venues(rig: Rig) -> None:
    rig.poly.pause_updates()
    rig.kal.pause_updates()

    def synced() -> bool:
        for venue, market, sim in (("polymarket", rig.poly.markets[0], rig.poly), ("kalshi", rig.kal.markets[0],
                                                                                   rig.kal)):  # fmt: skip
            top = rig.md.books.top(venue, market)
            if D(str(top["ask"])) != sim.book(market)["asks"][0][0]:
                return False
        return True

    await eventually(synced, timeout=5, what="books in sync with the paused simulators")
    poly_top = rig.poly.book(rig.poly.markets[0])["asks"][0]
    kal_top = rig.kal.book(rig.kal.markets[0])["asks"][0]
    limit = max(poly_top[0], kal_top[0]) + D("0.01")
    size = (min(poly_top[1], kal_top[1]) + 10).to_integral_value()
    want = oracle(rig, size, limit)
    assert set(want) == {"polymarket", "kalshi"}, want  # the books of seed 52 do split

    res = await rig.executor.route(RouteIntent(rig.pair_id, "buy", "yes", size, limit))
    assert res.status == "filled", res.reasons
    assert {r.venue: r.filled for r in res.orders} == want
    for r in res.orders:
        assert r.avg_price is not None and r.avg_price <= limit
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (1, 1)
    assert rig.poly.stats["orders_duplicate"] == rig.kal.stats["orders_duplicate"] == 0
    intents = await rows(rig.pg_url, "SELECT kind, status FROM execution_intents")
    assert intents == [{"kind": "route", "status": "filled"}]
    orders = await rows(rig.pg_url, "SELECT venue, leg, status FROM orders ORDER BY created_at")
    assert [o["leg"] for o in orders] == ["route1", "route2"] and {o["status"] for o in orders} == {"filled"}
    rig.poly.resume_updates()
    rig.kal.resume_updates()
