"""On-demand Kalshi markets open more Kalshi connections next to the configured one, through the
daemon's own wiring (``start_hub`` over ``MarketData``, real simulators, real users): every
connection's orderbook sid is 1, yet no sequence gap is seen, no snapshot is asked, and dropping
one connection leaves the other connection's book valid."""

from __future__ import annotations

import asyncio
from typing import Any

from crossbook.venues.kalshi.feed import KalshiConnection
from tests.conftest import eventually
from tests.hub.test_dynamic_upstream import Node, node_factory, user  # noqa: F401 (the fixture)


async def test_on_demand_kalshi_connections_share_the_books_without_false_gaps(node_factory: Any) -> None:  # noqa: F811
    node: Node = await node_factory(kalshi__max_markets_per_connection=1)
    pinned, extra = node.kal.markets[0], node.kal.markets[1]
    integrity: list[str] = []
    node.md.add_integrity_listener(integrity.append)
    u, ack = await user(node, [f"kalshi:{extra}"])
    assert ack["topics"] == [f"kalshi:{extra}"], ack
    await eventually(lambda: u.data(f"kalshi:{extra}"), timeout=10, what="the on-demand market streams")
    conns = [c for c in node.md.connections if isinstance(c, KalshiConnection)]
    assert len(conns) == 2 and {c.markets() for c in conns} == {(pinned,), (extra,)}
    sids = sorted(s["sid"] for s in node.kal.subscriptions() if s["channel"] == "orderbook_delta")
    assert sids == [1, 1]  # the collision this is about
    frames = node.md.books.stats()["frames"]
    await asyncio.sleep(1.0)
    assert node.md.books.stats()["frames"] - frames > 20
    assert node.md.books.stats()["gaps"] == 0
    assert [c.snapshot_requests for c in conns] == [0, 0]
    assert integrity == []
    assert node.md.freshness("kalshi", pinned).fresh and node.md.freshness("kalshi", extra).fresh

    # the on-demand connection drops and comes back: the pinned market's book is not touched
    on_demand = next(c for c in conns if c.markets() == (extra,))
    on_demand.kick("test: reconnect")
    await eventually(lambda: on_demand.stats.connects == 2 and node.md.books.top("kalshi", extra)["valid"],
                     timeout=10, what="the on-demand connection back with a fresh book")
    await asyncio.sleep(0.5)
    assert node.md.books.stats()["gaps"] == 0
    assert integrity == [f"{on_demand.name} disconnected"]
    assert [c.snapshot_requests for c in conns] == [0, 0]
    assert node.md.freshness("kalshi", pinned).fresh
    await u.close()
