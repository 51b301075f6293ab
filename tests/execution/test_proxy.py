"""Order traffic through the user's proxy: a real HTTP CONNECT-capable proxy (pproxy, a subprocess) in
front of the simulators. With it up, orders fill; with it gone, an order is refused as unreachable —
not sent directly, and certainly not sent twice."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from crossbook.execution import KalshiTrader, LimitIntent, PolymarketTrader
from tests.conftest import eventually
from tests.execution.test_scenarios import Rig, rig
from tests.hub.conftest import ProxyProc

__all__ = ["rig"]


@pytest.fixture
def http_proxy() -> Iterator[ProxyProc]:
    p = ProxyProc("http").start()
    try:
        yield p
    finally:
        p.kill()


async def test_orders_go_through_the_users_proxy(rig: Rig, http_proxy: ProxyProc) -> None:
    ex = rig.executor
    old = dict(ex.traders)
    for t in old.values():
        await t.close()
    poly, kal = old["polymarket"], old["kalshi"]
    assert isinstance(poly, PolymarketTrader) and isinstance(kal, KalshiTrader)
    ex.traders = {  # type: ignore[assignment]
        "polymarket": PolymarketTrader(rig.poly.rest_url, poly.signer, timeout=2.0, proxy=http_proxy.url),
        "kalshi": KalshiTrader(rig.kal.rest_url + "/trade-api/v2", kal.signer, timeout=2.0, proxy=http_proxy.url),
    }
    try:
        # The proxy's start blocked this loop (feeds included) for a moment: let the breaker see fresh books.
        await eventually(lambda: rig.breaker.evaluate(rig.pair_id).enabled, timeout=10, what="pair enabled")
        ask = Decimal(str(rig.md.books.top("kalshi", rig.kal.markets[0])["ask"])) + Decimal("0.03")
        res = await ex.place(LimitIntent(rig.pair_id, "kalshi", "buy", "yes", ask, Decimal(2)))
        assert res.status == "filled" and rig.kal.orders_accepted == 1
        http_proxy.kill()
        res = await ex.place(LimitIntent(rig.pair_id, "kalshi", "buy", "yes", ask, Decimal(2)))
        assert res.status == "rejected" and "unreachable" in res.reason and "via proxy http://127.0.0.1" in res.reason
        assert rig.kal.orders_accepted == 1 and rig.kal.stats["orders_duplicate"] == 0
    finally:
        for t in ex.traders.values():
            await t.close()
