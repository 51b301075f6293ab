"""Average-cost positions and PnL, in Decimal."""

from __future__ import annotations

from decimal import Decimal as D

from crossbook.execution.cli import position_doc
from crossbook.execution.positions import Position


def test_buy_then_partial_sell_realizes_at_average_cost() -> None:
    p = Position("u", "kalshi", "T", "yes")
    p.apply("buy", D("0.40"), D(10), D("0.17"))
    p.apply("buy", D("0.50"), D(10))
    assert (p.quantity, p.cost, p.avg_price) == (D(20), D("9.00"), D("0.45"))
    p.apply("sell", D("0.60"), D(5), D("0.05"))
    assert p.quantity == D(15) and p.cost == D("6.75")
    assert p.realized_pnl == D(5) * (D("0.60") - D("0.45")) - D("0.17") - D("0.05")
    assert p.unrealized(D("0.55")) == D(15) * D("0.55") - D("6.75")
    assert p.unrealized(None) is None


def test_sell_through_zero_opens_a_short_and_flat_has_no_residue() -> None:
    p = Position("u", "polymarket", "tok", "no")
    p.apply("buy", D("0.30"), D(3))
    p.apply("sell", D("0.35"), D(5))
    assert p.quantity == D(-2) and p.cost == D("-0.70") and p.realized_pnl == D("0.15")
    p.apply("buy", D("0.33"), D(2))
    assert p.quantity == 0 and p.cost == 0 and p.realized_pnl == D("0.15") + D("0.04")
    assert p.unrealized(None) == 0


def test_no_outcome_marks_at_one_minus_the_yes_mid() -> None:
    p = Position("u", "polymarket", "no-token", "no", quantity=D(10), cost=D("3.50"))
    doc = position_doc(p, D("0.62"))  # a NO outcome on a YES book mid of 0.62
    assert doc["mark"] == "0.38" and doc["unrealized_pnl"] == "0.3"
    doc = position_doc(p, None)
    assert doc["mark"] is None and doc["unrealized_pnl"] is None and doc["total_pnl"] is None
