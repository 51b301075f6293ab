"""The unwind policy ``complete``: a pair whose second leg failed is completed on the other venue within
the band (through the gate); what cannot be completed is flattened."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from crossbook.cli import main
from crossbook.execution import OrderResult, PairIntent, UnwindPolicy
from tests.execution.test_scenarios import Rig, rig, rows

__all__ = ["rig"]


async def test_rejected_second_leg_is_completed_within_the_band(
    rig: Rig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rig.executor.unwind_policy = UnwindPolicy("complete", Decimal("0.03"))
    rig.kal.reject_next("market paused (fault)")
    res = await rig.executor.pair_trade(PairIntent(rig.pair_id, Decimal(20), edge=Decimal("0.02")))
    assert res.status == "hedged", res.reasons
    first, rejected, completed = res.legs
    assert rejected.status == "rejected" and completed.order.leg == "complete"
    assert (completed.venue, completed.order.side, completed.order.outcome) == ("kalshi", "buy", "yes")
    assert completed.filled == first.filled and not res.unwinds
    assert completed.order.client_order_id != rejected.order.client_order_id  # a new order, not a resend
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (1, 1)
    assert rig.poly.stats["orders_duplicate"] == rig.kal.stats["orders_duplicate"] == 0
    orders = await rows(rig.pg_url, "SELECT leg, purpose, status FROM orders ORDER BY created_at")
    assert [(o["leg"], o["status"]) for o in orders] == [("leg1", "filled"), ("leg2", "rejected"),
                                                          ("complete", "filled")]  # fmt: skip
    pos = await rows(rig.pg_url, "SELECT venue, quantity FROM positions ORDER BY venue")
    assert [p["quantity"] for p in pos] == [first.filled, first.filled]

    # The operator's tables (text, not --json), read from PostgreSQL.
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'state_dir = "{tmp_path}"\n[postgres]\nurl = "{rig.pg_url}"\n')  # no daemon there: no marks
    assert await asyncio.to_thread(main, ["orders", "--config", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split()[:4] == ["created", "user", "venue", "leg"]
    assert "complete" in text and "rejected" in text and "market paused" in text
    assert await asyncio.to_thread(main, ["positions", "--config", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert "unrealized" in text and "marks: none" in text and len(text.splitlines()) == 4


async def test_completion_refused_by_the_gate_falls_back_to_flatten(rig: Rig) -> None:
    rig.executor.unwind_policy = UnwindPolicy("complete", Decimal("0.03"))

    async def trip(result: OrderResult) -> None:
        if result.order.leg == "leg1":
            rig.breaker.set_halted(rig.pair_id, True)

    rig.executor.after_leg = trip
    res = await rig.executor.pair_trade(PairIntent(rig.pair_id, Decimal(20), edge=Decimal("0.02")))
    assert res.status == "unwound", res.reasons
    assert any("completing not sent" in r and "gate (complete)" in r for r in res.reasons), res.reasons
    assert res.unwinds[0].filled == res.legs[0].filled
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (2, 0)
