"""Venue faults mid-intent against the simulators: a connection dropped with the order (after the venue
booked it, or before it saw it) and a book that moves between the two legs. Duplicates are counted at
the simulators; none is ever allowed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from crossbook.execution import OrderResult, PairIntent
from tests.conftest import eventually
from tests.execution.test_scenarios import Rig, freeze_kalshi, rig, rows

__all__ = ["rig"]


def no_duplicates(r: Rig) -> None:
    assert r.poly.stats["orders_duplicate"] == r.kal.stats["orders_duplicate"] == 0


@pytest.mark.parametrize("venue", ["polymarket", "kalshi"])
async def test_disconnect_after_accept_is_resolved_by_lookup(rig: Rig, venue: str) -> None:
    sim = rig.poly if venue == "polymarket" else rig.kal
    if venue == "polymarket":
        await freeze_kalshi(rig)  # the hedge waits for leg 1's lookup: its book must not walk meanwhile
    sim.disconnect_next("after_accept")
    res = await rig.executor.pair_trade(PairIntent(rig.pair_id, Decimal(20), edge=Decimal("0.02")))
    assert res.status == "hedged", res.reasons
    dropped = next(leg for leg in res.legs if leg.venue == venue)
    assert dropped.resolved_by == "lookup" and dropped.filled == res.plan.size
    assert sim.stats["disconnects_mid_order"] == 1
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (1, 1)
    no_duplicates(rig)


async def test_disconnect_before_accept_never_resends_and_unwinds(rig: Rig) -> None:
    rig.kal.disconnect_next("before_accept")  # leg 2's connection dies before the venue saw the order
    res = await rig.executor.pair_trade(PairIntent(rig.pair_id, Decimal(20), edge=Decimal("0.02")))
    assert res.status == "unwound", res.reasons
    first, second = res.legs
    assert second.venue == "kalshi" and second.status == "not_found" and "not resent" in second.reason
    assert res.unwinds[0].filled == first.filled
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (2, 0)  # the hedge was never sent twice
    no_duplicates(rig)
    orders = await rows(rig.pg_url, "SELECT venue, status, resolved_by FROM orders ORDER BY created_at")
    assert [(o["venue"], o["status"]) for o in orders] == [
        ("polymarket", "filled"), ("kalshi", "not_found"), ("polymarket", "filled"),
    ]


async def paused_in_sync(r: Rig) -> None:
    """Freeze both books and wait until market data holds exactly the simulators' books."""
    r.poly.pause_updates()
    r.kal.pause_updates()

    def synced() -> bool:
        for venue, market, sim in (("polymarket", r.poly.markets[0], r.poly), ("kalshi", r.kal.markets[0], r.kal)):
            book = r.md.books.book(venue, market, 5)
            truth = sim.book(market)
            if [Decimal(str(p)) for p, _ in book["asks"]] != [p for p, _ in truth["asks"][:5]]:  # type: ignore[union-attr]
                return False
        return True

    await eventually(synced, timeout=5, what="books in sync with the paused simulators")


async def test_book_moves_a_tick_between_the_legs_hedge_pays_it(rig: Rig) -> None:
    await paused_in_sync(rig)

    async def move(result: OrderResult) -> None:
        if result.order.leg == "leg1":
            assert rig.kal.shift_book(rig.kal.markets[0], +1) > 0  # Kalshi YES one tick dearer

    rig.executor.after_leg = move
    res = await rig.executor.pair_trade(PairIntent(rig.pair_id, Decimal(20), edge=Decimal("0.03")))
    assert res.status == "hedged", res.reasons
    second = res.legs[1]
    planned = next(lp for lp in res.plan.legs if lp.venue == "kalshi")
    assert second.avg_price == planned.cost / res.plan.size + Decimal("0.01")  # the walk, one tick up
    no_duplicates(rig)


async def test_book_runs_away_between_the_legs_hedge_killed_first_leg_unwound(rig: Rig) -> None:
    await paused_in_sync(rig)

    async def move(result: OrderResult) -> None:
        if result.order.leg == "leg1":
            rig.kal.shift_book(rig.kal.markets[0], +10)  # 0.10 dearer: beyond the hedge's slippage

    rig.executor.after_leg = move
    res = await rig.executor.pair_trade(PairIntent(rig.pair_id, Decimal(20), edge=Decimal("0.02")))
    assert res.status == "unwound", res.reasons
    first, second = res.legs
    assert second.venue == "kalshi" and second.filled == 0 and second.status == "rejected"
    assert "insufficient resting volume" in second.reason
    assert res.unwinds[0].filled == first.filled
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (2, 0)
    no_duplicates(rig)
