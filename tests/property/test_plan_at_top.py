"""``plan_at_top`` (the order path's plan when both best asks hold the size, written out step by step) gives
exactly what the general leg walk (``_leg``, as ``plan_pair`` sums it) makes of those two levels: the same
legs, totals and edge, digit for digit (records print them), and the same refusals."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from crossbook.execution.models import ONE, ZERO, PairMarkets, PairPlan, Venue, other
from crossbook.execution.sizing import _leg, plan_at_top


def reference(
    markets: PairMarkets, yes_venue: Venue, size: Decimal, yes_ask: Decimal, no_ask: Decimal, edge: Decimal, bps: int
) -> PairPlan | None:
    """plan_at_top as it was written before (the walk over one level per leg)."""
    no_venue = other(yes_venue)
    yes_market, yes_outcome = markets.instrument(yes_venue, "yes")
    no_market, no_outcome = markets.instrument(no_venue, "no")
    if size < max(ONE, markets.poly_min_size) or size != size.to_integral_value(ROUND_FLOOR):
        return None
    legs = (
        _leg(yes_venue, yes_market, yes_outcome, [(yes_ask, size)], size, bps),
        _leg(no_venue, no_market, no_outcome, [(no_ask, size)], size, bps),
    )
    total = sum((leg.cost + leg.fee for leg in legs), ZERO)
    if total < size * (ONE - edge):
        return PairPlan(markets.pair_id, size, legs, total, ONE - total / size)
    return None


prices = st.one_of(
    st.integers(1, 99).map(lambda c: Decimal(c) / 100),  # cents
    st.integers(1, 999).map(lambda m: Decimal(m) / 1000),  # mills
    st.sampled_from([Decimal("0.5"), Decimal("0.50"), Decimal("0.5000"), Decimal("0.99")]),  # other exponents
)
sizes = st.one_of(
    st.integers(0, 5000).map(Decimal),
    st.sampled_from([Decimal("20.0"), Decimal("5.5"), Decimal("0.5"), Decimal("1E+1"), Decimal("7.00")]),
)


@settings(max_examples=600, deadline=None)
@given(
    yes_venue=st.sampled_from(["polymarket", "kalshi"]),
    polarity=st.sampled_from(["same", "inverted"]),
    min_size=st.sampled_from([Decimal(0), Decimal(1), Decimal(5), Decimal("5.00"), Decimal(50)]),
    size=sizes,
    yes_ask=prices,
    no_ask=prices,
    edge=st.sampled_from([Decimal(0), Decimal("0.01"), Decimal("0.02"), Decimal("0.005"), Decimal("0.3")]),
    bps=st.sampled_from([0, 0, 1, 25, 100, 1000]),
)
def test_plan_at_top_is_the_walk_over_the_two_best_levels(
    yes_venue: Venue, polarity: str, min_size: Decimal, size: Decimal, yes_ask: Decimal, no_ask: Decimal,
    edge: Decimal, bps: int,
) -> None:  # fmt: skip
    markets = PairMarkets("p", "11" * 10, "22" * 10, "KX-T", polarity, poly_min_size=min_size)  # type: ignore[arg-type]
    got = plan_at_top(markets, yes_venue, size, yes_ask, no_ask, edge, bps)
    want = reference(markets, yes_venue, size, yes_ask, no_ask, edge, bps)
    assert got == want
    if got is not None and want is not None:  # equal numbers, and the same digits (records print them)
        assert str(got) == str(want)


def test_at_the_edge_exactly_there_is_no_plan() -> None:
    # 20 × 0.40 on Polymarket (no fee) + 20 × 0.58 on Kalshi + its fee ceil(0.07·20·0.58·0.42) = 0.35: 19.95,
    # which is exactly 20 × (1 − 0.0025): not below it, so no plan; a hair more edge room and there is one.
    markets = PairMarkets("p", "11" * 10, "22" * 10, "KX-T")
    args = (markets, "polymarket", Decimal(20), Decimal("0.40"), Decimal("0.58"))
    assert reference(*args, Decimal("0.0025"), 0) is None and plan_at_top(*args, Decimal("0.0025"), 0) is None
    plan = plan_at_top(*args, Decimal("0.0024"), 0)
    assert plan is not None and plan == reference(*args, Decimal("0.0024"), 0)
    assert plan.total_cost == Decimal("19.95") and plan.legs[1].fee == Decimal("0.35")
