"""Cancel-on-disconnect with what each venue offers, the per-user kill switch, and rate limits per
venue and key — against the simulators, with the executor's real REST clients and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from crossbook.execution import Executor, IntentRefused, KalshiTrader, LimitIntent, PairIntent
from crossbook.execution.liveness import OrderSafety
from tests.conftest import eventually
from tests.execution.test_scenarios import Rig, rig, rows

__all__ = ["rig"]


def resting_buy(r: Rig, venue: str) -> LimitIntent:
    """A GTC buy of YES well under the best bid: it rests (the sims do not cross resting orders later)."""
    market = r.poly.markets[0] if venue == "polymarket" else r.kal.markets[0]
    bid = Decimal(str(r.md.books.top(venue, market)["bid"]))
    return LimitIntent(r.pair_id, venue, "buy", "yes", max(Decimal("0.01"), bid - Decimal("0.10")), Decimal(10),
                       tif="GTC")  # type: ignore[arg-type]  # fmt: skip


async def test_polymarket_cancels_open_orders_when_heartbeats_stop(rig: Rig) -> None:
    rig.poly.heartbeat_timeout_s = 0.6
    safety = OrderSafety(rig.executor, heartbeat_interval=0.1)
    await safety.start()
    try:
        res = await rig.executor.place(resting_buy(rig, "polymarket"))
        assert res.status == "open"
        await asyncio.sleep(1.2)  # two timeouts' worth: heartbeats keep the order alive
        assert [o["status"] for o in rig.poly.open_orders()] == ["LIVE"] and safety.heartbeats_sent >= 5
        safety.stop_heartbeats()  # the executor "dies": no cancel is sent, the venue does it
        await eventually(lambda: not rig.poly.open_orders(), timeout=3, what="heartbeat expiry cancels")
        assert rig.poly.stats["heartbeat_cancels"] == 1
        assert rig.poly.orders[res.order.venue_order_id or ""]["status"] == "CANCELED"
        # The store learns it by asking the venue about the user's resting orders.
        (changed,) = await rig.executor.refresh_open()
        assert changed.status == "cancelled" and changed.order.client_order_id == res.order.client_order_id
        assert await rig.executor.refresh_open() == []
        (row,) = await rows(rig.pg_url, "SELECT status FROM orders")
        assert row["status"] == "cancelled"
    finally:
        await safety.stop(cancel_open=False)


async def test_kalshi_orders_join_the_group_and_cancel_on_pause_then_kill_switch(rig: Rig) -> None:
    safety = OrderSafety(rig.executor, heartbeat_interval=0.2)
    await safety.start()
    try:
        kal = rig.executor.traders["kalshi"]
        assert isinstance(kal, KalshiTrader) and kal.order_group_id in rig.kal.order_groups
        res = await rig.executor.place(resting_buy(rig, "kalshi"))
        assert res.status == "open"
        (o,) = rig.kal.open_orders()
        assert o["order_group_id"] == kal.order_group_id and o["cancel_order_on_pause"] is True
        assert rig.kal.pause_trading() == 1 and not rig.kal.open_orders()  # the exchange pauses: cancelled
        rig.kal.resume_trading()

        # Kill switch: open orders on both venues are cancelled; new intents are refused with the reason.
        k = await rig.executor.place(resting_buy(rig, "kalshi"))
        p = await rig.executor.place(resting_buy(rig, "polymarket"))
        assert (k.status, p.status) == ("open", "open")
        cancelled = await rig.executor.kill("operator: runaway fills", by="test")
        assert k.order.venue_order_id in cancelled["kalshi"]
        assert cancelled["polymarket"] == [p.order.venue_order_id]
        assert not rig.kal.open_orders() and not rig.poly.open_orders()
        assert rig.kal.stats["order_groups_deleted"] == 1  # the group took the Kalshi order with it
        sent = (rig.poly.orders_accepted, rig.kal.orders_accepted)
        with pytest.raises(IntentRefused) as refused:
            await rig.executor.pair_trade(PairIntent(rig.pair_id, Decimal(20), edge=Decimal("0.02")))
        assert refused.value.step == "kill switch" and "runaway fills" in str(refused.value)
        assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == sent
        statuses = await rows(rig.pg_url, "SELECT client_order_id FROM orders WHERE status = 'cancelled'")
        # The one the pause cancelled is learned here too: the group listed it and the venue had cancelled it.
        want = {res.order.client_order_id, k.order.client_order_id, p.order.client_order_id}
        assert {s["client_order_id"] for s in statuses} == want

        # A restarted executor for the same user finds the switch engaged, until it is released.
        again = Executor(gate=rig.executor.gate, books=rig.executor.books, traders=rig.executor.traders,
                         markets=rig.executor.markets, store=rig.store)  # fmt: skip
        await again.recover()
        with pytest.raises(IntentRefused):
            await again.place(resting_buy(rig, "kalshi"))
        await again.release(by="test")
        await again.recover()
        assert again.kill_switch is None
        actions = [a["action"] for a in await rows(rig.pg_url, "SELECT action FROM audit_log ORDER BY id")]
        assert "kill_switch_engaged" in actions and "kill_switch_released" in actions
    finally:
        await safety.stop()


@pytest.mark.parametrize("client_side", [True, False])
async def test_rate_limits_per_key_never_duplicate(rig: Rig, client_side: bool) -> None:
    rig.kal.write_rate = (4.0, 2.0)  # the venue: 4 writes/s per key, bursts of 2
    kal = rig.executor.traders["kalshi"]
    assert isinstance(kal, KalshiTrader)
    if client_side:  # our bucket a little under the venue's (arrival jitter): no 429 ever reaches us
        from crossbook.execution.venues import TokenBucket

        kal.http.writes = TokenBucket(3.5, 1.0)
    kal.http.max_429_retries = 8
    top = rig.md.books.top("kalshi", rig.kal.markets[0])
    intent = LimitIntent(rig.pair_id, "kalshi", "buy", "yes", Decimal(str(top["ask"])) + Decimal("0.05"), Decimal(1))
    started = time.monotonic()
    results = await asyncio.gather(*(rig.executor.place(intent) for _ in range(8)))
    elapsed = time.monotonic() - started
    assert all(r.status == "filled" for r in results), [r.reason for r in results]
    assert rig.kal.orders_accepted == 8 and rig.kal.stats["orders_duplicate"] == 0
    assert elapsed >= 1.2  # 8 writes at 4/s after a burst of 2
    if client_side:
        assert rig.kal.stats["rate_limited"] == 0 and kal.http.retried_429 == 0
    else:
        assert rig.kal.stats["rate_limited"] > 0 and kal.http.retried_429 == rig.kal.stats["rate_limited"]
