"""Pair-trade scenarios against the real venue simulators, the Rust books fed by the real feeds, the
breaker and gate, and a real (embedded) PostgreSQL. Duplicates are counted at the simulators."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import asyncpg  # type: ignore[import-untyped]
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from crossbook.book.service import MarketData
from crossbook.config import Config
from crossbook.execution import (
    ExecutionStore,
    Executor,
    IntentRefused,
    KalshiTrader,
    LimitIntent,
    LocalSigner,
    OrderResult,
    PairIntent,
    PairMarkets,
    PolymarketTrader,
    UnwindPolicy,
)
from crossbook.execution.models import LegOrder
from crossbook.safety import Breaker, Gate, PairLegs
from crossbook.safety.gate import MemoryCatalog, PairInfo
from crossbook.signing import ApiCreds, LocalHeaderSigner, PrivateKey
from crossbook.store.postgres import migrate
from crossbook.venues.kalshi.sim import KalshiSim
from crossbook.venues.polymarket.sim import PolymarketSim
from tests.conftest import eventually

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEY_ID = "exec-key"
WALLET_HEX = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # anvil's well-known key 0
API_KEY = "00000000-0000-0000-0000-00000000e8ec"
SEED = 2  # Polymarket YES around 0.65, Kalshi YES around 0.31: YES on Kalshi + NO on Polymarket has an edge


@dataclass
class Rig:
    poly: PolymarketSim
    kal: KalshiSim
    md: MarketData
    breaker: Breaker
    catalog: MemoryCatalog
    executor: Executor
    store: ExecutionStore
    pg_url: str
    pair_id: str


@pytest.fixture
async def rig(pg_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    seed = int(getattr(request, "param", SEED))  # parametrize("rig", [seed], indirect=True) picks other books
    await migrate(pg_url)
    conn = await asyncpg.connect(pg_url)
    poly = PolymarketSim(seed=seed, markets=1, tick_interval=0.05)
    kal = KalshiSim(seed=seed, markets=1, tick_interval=0.05, api_keys={KEY_ID: KEY.public_key()})
    pair_id = str(await conn.fetchval(
        "INSERT INTO market_pairs (poly_condition_id, kalshi_ticker, logic_status, polarity)"
        " VALUES ($1, $2, 'Verified', 'same') RETURNING internal_id", poly.conditions[poly.markets[0]], kal.markets[0],
    ))  # fmt: skip
    await conn.close()
    await poly.start()
    await kal.start()
    wallet = PrivateKey(WALLET_HEX)
    secret = base64.urlsafe_b64encode(os.urandom(32)).decode()
    poly.add_api_creds(API_KEY, secret, "pass-exec", address=wallet.address)
    cfg = Config()
    cfg.polymarket.ws_url, cfg.polymarket.assets = poly.ws_url, list(poly.markets)
    cfg.kalshi.ws_url, cfg.kalshi.markets = kal.ws_url, list(kal.markets)
    for v in (cfg.polymarket, cfg.kalshi):
        v.ping_interval_s, v.pong_timeout_s = 0.1, 0.8
    cfg.feed.reconnect_min_s, cfg.feed.reconnect_max_s = 0.05, 0.2
    header_signer = LocalHeaderSigner(KEY_ID, KEY)
    md = MarketData(cfg, header_signer, None)
    await md.start()
    yes_token = poly.markets[0]
    breaker = Breaker(md, stale_after_ms=1000)
    breaker.add_pair(PairLegs(pair_id, yes_token, kal.markets[0], condition_id=poly.conditions[yes_token]))
    catalog = MemoryCatalog({pair_id: PairInfo(pair_id, "Verified")})
    signer = LocalSigner(wallet, ApiCreds(API_KEY, secret, "pass-exec"), header_signer)
    store = await ExecutionStore.connect(pg_url)
    traders = {
        "polymarket": PolymarketTrader(poly.rest_url, signer, timeout=0.5),
        "kalshi": KalshiTrader(kal.rest_url + "/trade-api/v2", signer, timeout=0.5),
    }
    markets = {pair_id: PairMarkets(pair_id, yes_token, poly.no_token(yes_token), kal.markets[0])}
    executor = Executor(
        gate=Gate(breaker, catalog), books=md.books, traders=traders, markets=markets, store=store,  # type: ignore[arg-type]
        unwind=UnwindPolicy("flatten", Decimal("0.05")), resolve_timeout=3.0,
    )  # fmt: skip
    breaker.start()
    try:
        await eventually(lambda: breaker.evaluate(pair_id).enabled, timeout=10, what="pair enabled")
        yield Rig(poly, kal, md, breaker, catalog, executor, store, pg_url, pair_id)
    finally:
        await breaker.stop()
        for t in traders.values():
            await t.close()
        await store.close()
        await md.stop()
        await poly.stop()
        await kal.stop()


async def rows(url: str, sql: str, *args: object) -> list[dict[str, object]]:
    conn = await asyncpg.connect(url)
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def freeze_kalshi(r: Rig) -> None:
    """Stop the Kalshi book walking and wait until market data holds exactly the simulator's book."""
    r.kal.pause_updates()
    ticker = r.kal.markets[0]
    await eventually(lambda: [Decimal(str(p)) for p, _ in r.md.books.book("kalshi", ticker, 5)["asks"]]  # type: ignore[union-attr]
                     == [p for p, _ in r.kal.book(ticker)["asks"][:5]], what="Kalshi book in sync")  # fmt: skip


def no_duplicates(r: Rig) -> None:
    assert r.poly.stats["orders_duplicate"] == 0
    assert r.kal.stats["orders_duplicate"] == 0


async def test_both_legs_fill_and_are_recorded(rig: Rig) -> None:
    res = await rig.executor.pair_trade(PairIntent(rig.pair_id, Decimal(20), edge=Decimal("0.02")))
    assert res.status == "hedged", res.reasons
    assert [leg.filled for leg in res.legs] == [res.plan.size, res.plan.size]
    # The cheaper direction: YES on Kalshi, NO on Polymarket, and the fills kept the planned edge.
    assert {(leg.venue, leg.order.outcome) for leg in res.legs} == {("kalshi", "yes"), ("polymarket", "no")}
    paid = sum((leg.avg_price or Decimal(0)) * leg.filled + leg.fee for leg in res.legs)
    assert paid < res.plan.size * (1 - Decimal("0.02"))
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (1, 1)
    no_duplicates(rig)
    orders = await rows(rig.pg_url, "SELECT venue, status, filled, purpose FROM orders ORDER BY created_at")
    assert [(o["venue"], o["status"], o["purpose"]) for o in orders] == [
        ("polymarket", "filled", "entry"), ("kalshi", "filled", "hedge"),
    ]
    trades = await rows(rig.pg_url, "SELECT venue, size FROM trades")
    for venue in ("polymarket", "kalshi"):
        assert sum(Decimal(str(t["size"])) for t in trades if t["venue"] == venue) == res.plan.size
    actions = [a["action"] for a in await rows(rig.pg_url, "SELECT action FROM audit_log ORDER BY id")]
    assert actions[0] == "intent_started" and actions[-1] == "intent_finished"
    assert actions.count("order_submitting") == 2 and actions.count("order_filled") == 2


async def test_the_hedges_row_is_written_while_the_hedge_is_signed(rig: Rig) -> None:
    # Write-ahead for every order after the first: its signing (or body) is begun, then its 'submitting' row is
    # written meanwhile, and it is sent after both (the first order's row goes with the intent's).
    events: list[str] = []
    store = rig.executor.store
    assert store is not None
    submitting = store.order_submitting

    async def row(order: LegOrder) -> None:
        events.append(f"row {order.leg}")
        await submitting(order)
        events.append(f"row {order.leg} written")

    store.order_submitting = row  # type: ignore[method-assign]
    for trader in rig.executor.traders.values():
        begin = trader.begin_prepare
        trader.begin_prepare = lambda o, _b=begin: events.append(f"signing {o.leg}") or _b(o)  # type: ignore[method-assign]
    res = await rig.executor.pair_trade(PairIntent(rig.pair_id, Decimal(20), edge=Decimal("0.02")))
    assert res.status == "hedged", res.reasons
    assert events == ["signing leg1", "signing leg2", "row leg2", "row leg2 written"], events
    orders = await rows(rig.pg_url, "SELECT leg, status FROM orders ORDER BY created_at")
    assert [(o["leg"], o["status"]) for o in orders] == [("leg1", "filled"), ("leg2", "filled")]
    no_duplicates(rig)


async def test_a_slow_record_of_the_first_leg_does_not_hold_up_the_hedge(rig: Rig) -> None:
    # The first leg's result is written in the background while the hedge goes out (legging risk is time);
    # the intent ends only after it landed, before the fills are recorded.
    store = rig.executor.store
    assert store is not None
    order_result = store.order_result
    seen: list[str] = []

    async def slow(result: OrderResult) -> None:
        if result.order.leg == "leg1":
            await asyncio.sleep(0.3)
            seen.append(f"leg1 recorded, hedges accepted {rig.kal.orders_accepted + rig.poly.orders_accepted - 1}")
        await order_result(result)

    store.order_result = slow  # type: ignore[method-assign]
    res = await rig.executor.pair_trade(PairIntent(rig.pair_id, Decimal(20), edge=Decimal("0.02")))
    assert res.status == "hedged", res.reasons
    assert seen == ["leg1 recorded, hedges accepted 1"]  # the hedge was at its venue before the record
    orders = await rows(rig.pg_url, "SELECT leg, status FROM orders ORDER BY created_at")
    assert [(o["leg"], o["status"]) for o in orders] == [("leg1", "filled"), ("leg2", "filled")]
    trades = await rows(rig.pg_url, "SELECT count(*) AS n FROM trades")
    assert trades[0]["n"] >= 2
    no_duplicates(rig)


async def test_second_leg_rejected_unwinds_the_first(rig: Rig) -> None:
    rig.kal.reject_next("market paused (fault)")
    res = await rig.executor.pair_trade(PairIntent(rig.pair_id, Decimal(20), edge=Decimal("0.02")))
    assert res.status == "unwound", res.reasons
    first, second = res.legs
    assert first.venue == "polymarket" and first.filled == res.plan.size
    assert second.status == "rejected" and "market paused" in second.reason
    (unwind,) = res.unwinds
    assert (unwind.venue, unwind.order.side, unwind.order.outcome) == ("polymarket", "sell", "no")
    assert unwind.filled == first.filled
    # Limit = best NO bid − band (0.05), and the fills came at book prices no worse than it.
    assert unwind.avg_price is not None and unwind.avg_price >= unwind.order.price
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (2, 0)
    no_duplicates(rig)
    purposes = await rows(rig.pg_url, "SELECT purpose, status FROM orders ORDER BY created_at")
    assert [(p["purpose"], p["status"]) for p in purposes] == [
        ("entry", "filled"), ("hedge", "rejected"), ("unwind", "filled"),
    ]


@pytest.mark.parametrize("venue", ["polymarket", "kalshi"])
async def test_accept_then_timeout_is_resolved_by_lookup_never_resent(rig: Rig, venue: str) -> None:
    sim = rig.poly if venue == "polymarket" else rig.kal
    if venue == "polymarket":
        # Leg 1 is held for the client's whole timeout and then looked up: freeze the hedge venue's book
        # meanwhile, so this test is about the lookup and not about the book moving between the legs
        # (test_faults covers that).
        await freeze_kalshi(rig)
    sim.accept_then_timeout_next()
    res = await rig.executor.pair_trade(PairIntent(rig.pair_id, Decimal(20), edge=Decimal("0.02")))
    assert res.status == "hedged", res.reasons
    timed_out = next(leg for leg in res.legs if leg.venue == venue)
    assert timed_out.resolved_by == "lookup" and timed_out.filled == res.plan.size
    assert sim.stats["replies_held"] == 1
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (1, 1)  # exactly one order each, ever
    no_duplicates(rig)
    orders = await rows(rig.pg_url, "SELECT venue, status, resolved_by FROM orders WHERE venue = $1", venue)
    assert [(o["status"], o["resolved_by"]) for o in orders] == [("filled", "lookup")]


async def test_breaker_trips_between_the_legs_second_leg_not_sent(rig: Rig) -> None:
    async def trip(result: OrderResult) -> None:
        if result.order.leg == "leg1":
            rig.breaker.set_halted(rig.pair_id, True)

    rig.executor.after_leg = trip
    res = await rig.executor.pair_trade(PairIntent(rig.pair_id, Decimal(20), edge=Decimal("0.02")))
    assert res.status == "unwound", res.reasons
    assert len(res.legs) == 1 and res.legs[0].venue == "polymarket"
    assert any("gate (leg 2)" in r and "pair halted" in r for r in res.reasons), res.reasons
    assert res.unwinds[0].filled == res.legs[0].filled
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (2, 0)
    no_duplicates(rig)


async def test_partial_second_leg_unwinds_only_the_naked_part(rig: Rig) -> None:
    rig.kal.partial_fill_next("0.5")
    res = await rig.executor.pair_trade(PairIntent(rig.pair_id, Decimal(20), edge=Decimal("0.02"), tif="FAK"))
    assert res.status == "unwound", res.reasons
    first, second = res.legs
    assert second.status == "partial" and second.filled == first.filled / 2
    assert res.unwinds[0].order.size == first.filled - second.filled == res.unwinds[0].filled


async def test_refusals_name_the_step(rig: Rig) -> None:
    rig.catalog.pairs[rig.pair_id].logic_status = "Unverified"
    with pytest.raises(IntentRefused) as refused:
        await rig.executor.pair_trade(PairIntent(rig.pair_id, Decimal(20)))
    assert refused.value.step == "gate" and "not proven identical" in str(refused.value)
    rig.catalog.pairs[rig.pair_id].logic_status = "Verified"
    with pytest.raises(IntentRefused) as refused:
        await rig.executor.pair_trade(PairIntent(rig.pair_id, Decimal(20), edge=Decimal("0.9")))
    assert refused.value.step == "sizing" and "edge of 0.9" in str(refused.value)
    with pytest.raises(IntentRefused) as refused:
        await rig.executor.place(LimitIntent(str(uuid.uuid4()), "kalshi", "buy", "yes", Decimal("0.5"), Decimal(5)))
    assert refused.value.step == "pair"
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (0, 0)


async def test_single_limit_order_and_sim_refusals(rig: Rig) -> None:
    top = rig.md.books.top("kalshi", rig.kal.markets[0])
    ask = Decimal(str(top["ask"]))
    res = await rig.executor.place(LimitIntent(rig.pair_id, "kalshi", "buy", "yes", ask, Decimal(3), tif="FAK"))
    assert res.status in ("filled", "partial") and res.filled > 0 and res.fee > 0
    assert rig.kal.orders_accepted == 1
    # Off-tick Polymarket price: the venue (sim) refuses; nothing booked.
    res = await rig.executor.place(
        LimitIntent(rig.pair_id, "polymarket", "buy", "yes", Decimal("0.555"), Decimal(10), tif="FAK")
    )
    assert res.status == "rejected" and "tick" in res.reason
    assert rig.poly.orders_accepted == 0
