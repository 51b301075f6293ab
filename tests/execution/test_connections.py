"""The venue REST connections: kept alive and warm (orders never open one), and a POST whose kept-alive
connection drops is resolved by lookup, never sent again. TCP connections are counted at the simulators."""

from __future__ import annotations

from decimal import Decimal

from crossbook.execution import LimitIntent, PolymarketTrader
from crossbook.execution.venues import SPARE_CONNECTIONS
from tests.conftest import eventually
from tests.execution.test_scenarios import Rig, rig

__all__ = ["rig"]


def best_ask(r: Rig, venue: str) -> Decimal:
    market = r.poly.markets[0] if venue == "polymarket" else r.kal.markets[0]
    top = r.md.books.top(venue, market)
    return Decimal(str(top["ask"]))


async def test_orders_go_over_the_warm_connections(rig: Rig) -> None:
    traders = rig.executor.traders
    assert [await t.warm() for t in traders.values()] == [SPARE_CONNECTIONS, SPARE_CONNECTIONS]
    opened = {v: s.stats["http_connections"] for v, s in (("polymarket", rig.poly), ("kalshi", rig.kal))}
    assert opened == {"polymarket": SPARE_CONNECTIONS, "kalshi": SPARE_CONNECTIONS}
    sent = 0
    for _ in range(3):
        for venue, outcome, size in (("polymarket", "yes", Decimal(5)), ("kalshi", "yes", Decimal(1))):
            res = await rig.executor.place(LimitIntent(rig.pair_id, venue, "buy", outcome, best_ask(rig, venue),  # type: ignore[arg-type]
                                                       size, tif="FAK"))  # fmt: skip
            assert res.status in ("filled", "partial", "rejected"), res.reason  # sent and answered either way
            sent += 1
    # Six orders (and their fill lookups) and not one new TCP connection at either venue.
    assert rig.poly.stats["http_connections"] == opened["polymarket"]
    assert rig.kal.stats["http_connections"] == opened["kalshi"]
    assert rig.poly.stats["http_requests"] + rig.kal.stats["http_requests"] >= 2 * SPARE_CONNECTIONS + sent


async def test_a_post_on_a_dropped_kept_alive_connection_is_never_resent(rig: Rig) -> None:
    trader = rig.executor.traders["polymarket"]
    assert isinstance(trader, PolymarketTrader)
    await trader.warm()
    warmed = trader.http.warmed
    # The connection carrying the order dies before the venue looked at it. The HTTP client never retries a
    # request whose kept-alive connection was closed under it; a POST must reach the executor as uncertain,
    # be looked up, and never be sent again.
    rig.poly.disconnect_next("before_accept")
    res = await rig.executor.place(LimitIntent(rig.pair_id, "polymarket", "buy", "yes", best_ask(rig, "polymarket"),
                                               Decimal(5), tif="FAK"))  # fmt: skip
    assert res.status == "not_found" and res.resolved_by == "lookup" and "not resent" in res.reason
    assert rig.poly.stats["disconnects_mid_order"] == 1
    assert rig.poly.orders_accepted == 0 and rig.poly.stats["orders_duplicate"] == 0  # a resend would be booked
    # The lost connection is replaced in the background, and the next order goes out normally.
    await eventually(lambda: trader.http.warmed > warmed, what="a spare connection reopened")
    res = await rig.executor.place(LimitIntent(rig.pair_id, "polymarket", "buy", "yes", best_ask(rig, "polymarket"),
                                               Decimal(5), tif="FAK"))  # fmt: skip
    assert res.status in ("filled", "partial", "rejected") and res.resolved_by == "reply"
    assert rig.poly.stats["orders_duplicate"] == 0
