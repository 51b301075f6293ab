"""The edge trigger against the real venue simulators, the real feeds into the Rust books, the breaker,
gate and executor. The sims never tick on their own here: every book change is a frame the test
writes (with the sims' own message builders), so "this frame opens an edge" is exact."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from crossbook.book.service import MarketData
from crossbook.config import Config
from crossbook.execution import (
    Executor,
    IntentRefused,
    KalshiTrader,
    LocalSigner,
    PairIntent,
    PairMarkets,
    PolymarketTrader,
    ServiceSigner,
    UnwindPolicy,
    VenueTrader,
)
from crossbook.execution.models import Venue
from crossbook.execution.trigger import EdgeIntent, EdgeTrigger, Firing
from crossbook.safety import Breaker, Gate, PairLegs
from crossbook.safety.gate import MemoryCatalog, PairInfo
from crossbook.signing import ApiCreds, LocalHeaderSigner, PrivateKey
from crossbook.signing.client import CLIENT_CALL_IDS, SignerClient
from crossbook.venues.kalshi.sim import KalshiSim
from crossbook.venues.polymarket.sim import PolymarketSim
from crossbook.venues.simcore import LadderBook
from tests.conftest import eventually
from tests.signer.conftest import ANVIL_ADDR, Signer
from tests.signer.conftest import API_KEY as SIGNER_API_KEY
from tests.signer.conftest import API_PASSPHRASE as SIGNER_API_PASSPHRASE
from tests.signer.conftest import API_SECRET as SIGNER_API_SECRET

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEY_ID = "trigger-key"
WALLET_HEX = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # anvil's well-known key 0
API_KEY = "00000000-0000-0000-0000-0000000071c6"
CENT = 100  # sim price units per cent
SHARE = 100  # sim size units per share
# Quiet books (bids, asks; 100 then 200 deep): Polymarket YES 0.38 / 0.52, Kalshi YES 0.48 / 0.52. YES on
# Polymarket + NO on Kalshi costs 0.52 + 0.52, the other way 0.52 + 0.62: no edge either way.
POLY_QUIET = ({3800: 100 * SHARE, 3700: 200 * SHARE}, {5200: 100 * SHARE, 5300: 200 * SHARE})
KALSHI_QUIET = ({4800: 100 * SHARE, 4700: 200 * SHARE}, {5200: 100 * SHARE, 5300: 200 * SHARE})
INTENT_SIZE = Decimal(20)


@dataclass
class Rig:
    poly: PolymarketSim
    kal: KalshiSim
    md: MarketData
    breaker: Breaker
    executor: Executor
    trigger: EdgeTrigger
    pair_id: str
    fired: list[Firing]
    done: list[Firing]

    def intent(self, **kw: object) -> EdgeIntent:
        args: dict[str, object] = {"pair_id": self.pair_id, "size": INTENT_SIZE, "edge": Decimal("0.02"),
                                   "limit": Decimal("0.60")}  # fmt: skip
        args.update(kw)
        return EdgeIntent(**args)  # type: ignore[arg-type]


def _quiet(book: LadderBook, levels: tuple[dict[int, int], dict[int, int]]) -> None:
    book.tick, book.fair = CENT, (max(levels[0]) + min(levels[1])) // 2 // CENT * CENT
    book.bids, book.asks = dict(levels[0]), dict(levels[1])
    book.pending.clear()


def poly_level(sim: PolymarketSim, side: str, price: int, size: int) -> None:
    """Write one ``price_change`` frame (the sim's own builder: hash, best bid/ask) for the YES token."""
    m = sim._by_asset[sim.markets[0]]
    change = m.book._set(side, price, size)  # type: ignore[arg-type]
    msg = {"event_type": "price_change", "market": m.condition_id, "timestamp": str(1),
           "price_changes": sim._entries(m, m.yes_id, [change])}  # fmt: skip
    for session, sub in sim._subs.items():
        if m.yes_id in sub.assets:
            sim.deliver(session, "price_change", msg)


def kalshi_level(sim: KalshiSim, side: str, price: int, size: int) -> None:
    """Write one ``orderbook_delta`` frame (next seq of each subscription) for the pair's ticker."""
    m = sim._markets[sim.markets[0]]
    change = m.book._set(side, price, size)  # type: ignore[arg-type]
    for session, conn in sim._conns.items():
        for sub in conn.subs.values():
            if m.ticker in sub.markets and sub.channel == "orderbook_delta":
                sim.deliver(session, "orderbook_delta", sim._delta_frame(sub, m, change, 1))


def poly_ask(r: Rig) -> Decimal | None:
    ask = r.md.books.top("polymarket", r.poly.markets[0])["ask"]
    return None if ask is None else Decimal(ask)


def kalshi_bid(r: Rig) -> Decimal | None:
    bid = r.md.books.top("kalshi", r.kal.markets[0])["bid"]
    return None if bid is None else Decimal(bid)


def spy_signing(rig: Rig) -> list[object]:
    """Every order the Polymarket signer is asked to sign (begin_prepare_polymarket_order), as it is asked."""
    signs: list[object] = []
    signer = rig.executor.traders["polymarket"].signer  # type: ignore[attr-defined]
    begin = signer.begin_prepare_polymarket_order
    signer.begin_prepare_polymarket_order = lambda order, **kw: signs.append(order) or begin(order, **kw)
    return signs


async def settle() -> None:
    """Let the change dispatcher and any task it started run (several loop turns, no timing claim)."""
    for _ in range(5):
        await asyncio.sleep(0.01)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    poly = PolymarketSim(seed=3, markets=1, tick_interval=3600)
    kal = KalshiSim(seed=3, markets=1, tick_interval=3600, api_keys={KEY_ID: KEY.public_key()})
    _quiet(poly._by_asset[poly.markets[0]].book, POLY_QUIET)
    _quiet(kal._markets[kal.markets[0]].book, KALSHI_QUIET)
    await poly.start()
    await kal.start()
    wallet = PrivateKey(WALLET_HEX)
    secret = base64.urlsafe_b64encode(os.urandom(32)).decode()
    poly.add_api_creds(API_KEY, secret, "pass-trigger", address=wallet.address)
    cfg = Config()
    cfg.polymarket.ws_url, cfg.polymarket.assets = poly.ws_url, list(poly.markets)
    cfg.kalshi.ws_url, cfg.kalshi.markets = kal.ws_url, list(kal.markets)
    for v in (cfg.polymarket, cfg.kalshi):
        v.ping_interval_s, v.pong_timeout_s = 0.1, 30.0
    header_signer = LocalHeaderSigner(KEY_ID, KEY)
    md = MarketData(cfg, header_signer, None)
    yes_token = poly.markets[0]
    pair_id = "pair-trigger"
    breaker = Breaker(md, stale_after_ms=400)
    breaker.add_pair(PairLegs(pair_id, yes_token, kal.markets[0], condition_id=poly.conditions[yes_token]))
    signer = LocalSigner(wallet, ApiCreds(API_KEY, secret, "pass-trigger"), header_signer)
    traders: dict[Venue, VenueTrader] = {
        "polymarket": PolymarketTrader(poly.rest_url, signer, timeout=2.0),
        "kalshi": KalshiTrader(kal.rest_url + "/trade-api/v2", signer, timeout=2.0),
    }
    markets = {pair_id: PairMarkets(pair_id, yes_token, poly.no_token(yes_token), kal.markets[0])}
    executor = Executor(
        gate=Gate(breaker, MemoryCatalog({pair_id: PairInfo(pair_id, "Verified")})), books=md.books,
        traders=traders, markets=markets,
    )  # fmt: skip
    fired: list[Firing] = []
    done: list[Firing] = []
    # keep_warm_s: the dry runs of the breaker and sizing path go on throughout every test and never fire.
    trigger = EdgeTrigger(executor, rearm="manual", on_fire=fired.append, on_done=done.append, keep_warm_s=0.005)
    trigger.attach(md)
    await md.start()
    breaker.start()
    try:
        await eventually(lambda: breaker.evaluate(pair_id).enabled, timeout=10, what="pair enabled")
        yield Rig(poly, kal, md, breaker, executor, trigger, pair_id, fired, done)
    finally:
        await trigger.stop()
        await breaker.stop()
        for t in traders.values():
            await t.close()
        await md.stop()
        await poly.stop()
        await kal.stop()


async def test_a_frame_that_opens_an_edge_fires_exactly_one_pair_trade(rig: Rig) -> None:
    rig.trigger.arm(rig.intent())
    await settle()
    assert rig.fired == []  # armed on quiet books: nothing to do
    # One Polymarket frame: YES ask 0.40 × 50. YES there 0.40 + NO on Kalshi 0.52 + Kalshi's fee < 0.98.
    poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
    # Two more frames while the intent is (or may be) in flight: the edge is still on our books.
    poly_level(rig.poly, "ask", 41 * CENT, 10 * SHARE)
    kalshi_level(rig.kal, "bid", 4900, 5 * SHARE)
    await eventually(lambda: rig.done, timeout=10, what="the fired intent to finish")
    await settle()
    (firing,) = rig.fired
    assert firing.result is not None and firing.result.status == "hedged", firing
    assert firing.intent.size == INTENT_SIZE and firing.intent.yes_venue == "polymarket"
    poly, kal = firing.result.legs
    assert (poly.venue, poly.order.outcome, poly.filled) == ("polymarket", "yes", INTENT_SIZE)
    assert poly.avg_price == Decimal("0.40")
    # NO at 0.52 from the quiet book, part at 0.51 if the 0.49 YES bid frame reached the venue first.
    assert (kal.venue, kal.order.outcome, kal.filled) == ("kalshi", "no", INTENT_SIZE)
    assert kal.avg_price is not None and Decimal("0.51") <= kal.avg_price <= Decimal("0.52")
    # Both legs arrived at the venues, once each.
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (1, 1)
    assert rig.poly.stats["orders_duplicate"] == rig.kal.stats["orders_duplicate"] == 0
    # Manual re-arm: the edge is still on the books, yet a new frame does not fire it again.
    assert rig.trigger.state(rig.pair_id) == "spent"
    poly_level(rig.poly, "ask", 39 * CENT, 10 * SHARE)
    await eventually(lambda: poly_ask(rig) == Decimal("0.39"), what="the 0.39 ask on our book")
    await settle()
    assert len(rig.fired) == 1 and (rig.poly.orders_accepted, rig.kal.orders_accepted) == (1, 1)


async def test_frames_without_an_edge_fire_nothing(rig: Rig) -> None:
    rig.trigger.arm(rig.intent())
    # Tighter: YES 0.50 on Polymarket + NO 0.51 on Kalshi.
    poly_level(rig.poly, "ask", 50 * CENT, 50 * SHARE)
    kalshi_level(rig.kal, "bid", 49 * CENT, 50 * SHARE)
    # An edge before fees only: 0.49 + NO 0.50 = 0.99 < 1, but Kalshi's fee (0.0175) leaves no 0.02 edge.
    kalshi_level(rig.kal, "bid", 50 * CENT, 50 * SHARE)
    poly_level(rig.poly, "ask", 49 * CENT, 50 * SHARE)
    await eventually(lambda: poly_ask(rig) == Decimal("0.49") and kalshi_bid(rig) == Decimal("0.50"),
                     what="every frame applied")  # fmt: skip
    await settle()
    # An edge beyond the limit: YES 0.40 + NO 0.50 has the edge, but NO 0.50 is above L = 0.45.
    rig.trigger.arm(rig.intent(limit=Decimal("0.45")))
    poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
    await eventually(lambda: poly_ask(rig) == Decimal("0.4"), what="the 0.40 ask on our book")
    await settle()
    assert rig.fired == [] and rig.trigger.state(rig.pair_id) == "armed"
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (0, 0)


async def test_a_halted_pair_never_fires(rig: Rig) -> None:
    rig.trigger.arm(rig.intent())
    rig.breaker.set_halted(rig.pair_id, True)
    poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
    await eventually(lambda: poly_ask(rig) == Decimal("0.4"), what="the 0.40 ask on our book")
    await settle()
    assert rig.fired == [] and (rig.poly.orders_accepted, rig.kal.orders_accepted) == (0, 0)


async def test_a_stale_leg_never_fires(rig: Rig) -> None:
    rig.trigger.arm(rig.intent())
    rig.kal.stall_heartbeats(30)  # Kalshi goes quiet: no frames, no pongs (the link looks alive)
    await eventually(lambda: not rig.breaker.evaluate(rig.pair_id).enabled, timeout=5, what="Kalshi leg stale")
    assert any("Kalshi book stale" in r for r in rig.breaker.evaluate(rig.pair_id).reasons)
    poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
    await eventually(lambda: poly_ask(rig) == Decimal("0.4"), what="the 0.40 ask on our book")
    await settle()
    assert rig.fired == [] and (rig.poly.orders_accepted, rig.kal.orders_accepted) == (0, 0)


async def test_after_close_rearms_only_once_the_edge_closed(rig: Rig) -> None:
    rig.trigger.rearm = "after_close"
    rig.trigger.arm(rig.intent())
    poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
    await eventually(lambda: rig.done, timeout=10, what="the first intent to finish")
    await settle()
    assert rig.trigger.state(rig.pair_id) == "cooling"
    # The edge persists on our books (the venue's consumed liquidity is not announced here): no new fire.
    poly_level(rig.poly, "ask", 39 * CENT, 5 * SHARE)
    await eventually(lambda: poly_ask(rig) == Decimal("0.39"), what="the 0.39 ask on our book")
    await settle()
    assert len(rig.fired) == 1
    # The edge closes (both cheap asks gone) → re-armed; it opens again → the second fire.
    poly_level(rig.poly, "ask", 39 * CENT, 0)
    poly_level(rig.poly, "ask", 40 * CENT, 0)
    await eventually(lambda: rig.trigger.state(rig.pair_id) == "armed", what="re-armed after the edge closed")
    poly_level(rig.poly, "ask", 42 * CENT, 50 * SHARE)
    await eventually(lambda: len(rig.done) == 2, timeout=10, what="the second intent to finish")
    assert [f.result.status for f in rig.done if f.result] == ["hedged", "hedged"]
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (2, 2)


async def test_intent_validation_and_unknown_pair(rig: Rig) -> None:
    with pytest.raises(TypeError):
        EdgeIntent(rig.pair_id, 20.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        EdgeIntent(rig.pair_id, Decimal(20), limit=Decimal("1.2"))
    with pytest.raises(PermissionError, match="unknown pair"):
        rig.trigger.arm(EdgeIntent("nope", Decimal(20)))


async def test_an_exposed_result_is_never_rearmed_by_itself(rig: Rig) -> None:
    rig.trigger.rearm = "after_close"
    rig.executor.unwind_policy = UnwindPolicy("none")  # a rejected hedge leaves the first leg open
    rig.kal.reject_next("market paused (fault)")
    rig.trigger.arm(rig.intent())
    poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
    await eventually(lambda: rig.done, timeout=10, what="the intent to finish")
    (firing,) = rig.done
    assert firing.result is not None and firing.result.status == "exposed", firing
    assert rig.trigger.state(rig.pair_id) == "spent"
    # The edge closes and opens again: a person must look first, so nothing fires.
    poly_level(rig.poly, "ask", 40 * CENT, 0)
    poly_level(rig.poly, "ask", 42 * CENT, 50 * SHARE)
    await eventually(lambda: poly_ask(rig) == Decimal("0.42"), what="the 0.42 ask on our book")
    await settle()
    assert len(rig.fired) == 1 and (rig.poly.orders_accepted, rig.kal.orders_accepted) == (1, 0)


async def test_a_size_beyond_the_best_levels_is_sized_over_the_books(rig: Rig) -> None:
    # 60 wanted; the best levels hold 50 (Polymarket 0.40) and 100 (Kalshi NO 0.52); the next Polymarket
    # ask (0.52) has no edge left, so the trigger's walk stops at 50 and that is what the executor sends.
    rig.trigger.arm(rig.intent(size=Decimal(60)))
    poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
    await eventually(lambda: rig.done, timeout=10, what="the intent to finish")
    (firing,) = rig.done
    assert firing.intent.size == 50 and firing.result is not None and firing.result.status == "hedged"
    assert [leg.filled for leg in firing.result.legs] == [50, 50]


async def test_a_pair_the_breaker_does_not_watch_never_fires_and_spoils_nothing(rig: Rig) -> None:
    pm = rig.executor.markets[rig.pair_id]
    markets = dict(rig.executor.markets)
    markets["pair-unwatched"] = PairMarkets("pair-unwatched", pm.poly_yes_token, pm.poly_no_token, pm.kalshi_ticker)
    rig.executor.markets = markets
    rig.trigger.arm(rig.intent(pair_id="pair-unwatched"))
    rig.trigger.arm(rig.intent())
    poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
    await eventually(lambda: rig.done, timeout=10, what="the watched pair's intent to finish")
    await settle()
    assert [f.pair_id for f in rig.fired] == [rig.pair_id]
    assert rig.trigger.state("pair-unwatched") == "armed"
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (1, 1)


async def test_the_executor_trades_the_triggers_plan_without_sizing_again(rig: Rig) -> None:
    walks: list[object] = []
    plan_pair = rig.executor.plan
    rig.executor.plan = lambda intent: walks.append(intent) or plan_pair(intent)  # type: ignore[method-assign]
    rig.trigger.arm(rig.intent())
    poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
    await eventually(lambda: rig.done, timeout=10, what="the fired intent to finish")
    (firing,) = rig.done
    assert firing.plan is not None and firing.result is not None and firing.result.plan is firing.plan
    assert walks == []  # the executor did not walk the books a second time
    assert firing.intent.limit == Decimal("0.60") and firing.plan.size == INTENT_SIZE
    yes, no = firing.plan.legs
    assert (yes.venue, yes.limit, no.venue, no.limit) == ("polymarket", Decimal("0.40"), "kalshi", Decimal("0.52"))
    # The first leg went out at its planned limit (the hedge may add the executor's hedge slippage).
    first = firing.result.legs[0]
    assert (first.venue, first.order.price) == ("polymarket", yes.limit)
    assert firing.result.status == "hedged"


async def test_a_given_plan_still_passes_the_limit_and_the_gate(rig: Rig) -> None:
    poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
    await eventually(lambda: poly_ask(rig) == Decimal("0.40"), what="the 0.40 ask on our book")
    intent = PairIntent(rig.pair_id, INTENT_SIZE, Decimal("0.02"), "polymarket", limit=Decimal("0.60"))
    plan = rig.executor.plan(intent)
    assert max(lp.limit for lp in plan.legs) <= Decimal("0.60")
    # A plan above the intent's limit, or bigger than the intent, is refused before anything is sent.
    for bad, why in (
        (PairIntent(rig.pair_id, INTENT_SIZE, Decimal("0.02"), "polymarket", limit=Decimal("0.45")), "limit 0.52"),
        (PairIntent(rig.pair_id, Decimal(10), Decimal("0.02"), "polymarket", limit=Decimal("0.60")), "plan size"),
        (PairIntent(rig.pair_id, INTENT_SIZE, Decimal("0.02"), "kalshi", limit=Decimal("0.60")), "YES on kalshi"),
    ):
        with pytest.raises(IntentRefused) as refused:
            await rig.executor.pair_trade(bad, plan=plan)
        assert refused.value.step == "plan" and why in str(refused.value)
    # The gate is checked when the plan is traded, not when it was made: a halted pair sends nothing.
    rig.breaker.set_halted(rig.pair_id, True)
    with pytest.raises(IntentRefused) as refused:
        await rig.executor.pair_trade(intent, plan=plan)
    assert refused.value.step == "gate" and "halted" in str(refused.value)
    rig.breaker.set_halted(rig.pair_id, False)
    # The book moves away after the plan was made: the orders go out at the plan's limits (never higher),
    # so the first leg is killed (FOK) rather than paying more; nothing is filled, nothing else sent.
    poly_level(rig.poly, "ask", 40 * CENT, 0)
    await eventually(lambda: poly_ask(rig) == Decimal("0.52"), what="the 0.40 ask gone from our book")
    res = await rig.executor.pair_trade(intent, plan=plan)
    assert res.status == "no_fill" and [leg.order.price for leg in res.legs] == [Decimal("0.40")]
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (0, 0)
    assert rig.poly.stats["orders_killed"] == 1


async def test_the_first_legs_signing_request_leaves_in_the_turn_that_saw_the_edge(rig: Rig) -> None:
    # The trigger begins the intent synchronously (Executor.start_pair_trade): gate, first leg, and the
    # signing request, all before evaluate() returns; the task only finishes what was begun.
    begun: list[str] = []
    signer = rig.executor.traders["polymarket"].signer  # type: ignore[attr-defined]
    begin = signer.begin_prepare_polymarket_order

    def spy(order: object, **kw: object) -> object:
        begun.append(str(kw["request_id"]))
        return begin(order, **kw)

    signer.begin_prepare_polymarket_order = spy
    at_fire: list[int] = []
    rig.trigger.on_fire = lambda f: at_fire.append(len(begun))  # on_fire runs at the end of evaluate()
    rig.trigger.arm(rig.intent())
    poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
    await eventually(lambda: rig.done, timeout=10, what="the fired intent to finish")
    assert at_fire == [1], "the signing request was not begun inside the trigger's evaluation"
    (firing,) = rig.done
    assert firing.result is not None and firing.result.status == "hedged", firing
    assert begun == [firing.result.legs[0].order.client_order_id]
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (1, 1)


async def test_a_gate_refusal_signs_nothing_and_keeps_the_pair_armed(rig: Rig) -> None:
    signs = spy_signing(rig)
    rig.executor.gate.catalog.pairs[rig.pair_id].logic_status = "Unverified"  # type: ignore[attr-defined]
    rig.trigger.arm(rig.intent())
    poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
    await eventually(lambda: rig.done, timeout=10, what="the refusal to be reported")
    (firing,) = rig.done
    assert "gate" in firing.refused and "Unverified" in firing.refused and firing.result is None
    assert signs == [] and rig.trigger.state(rig.pair_id) == "armed"
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (0, 0)


async def test_keep_warm_dry_runs_the_order_path_and_never_signs_or_sends(rig: Rig) -> None:
    warmed: list[str] = []
    warm = rig.executor.warm_pair_trade

    def spy(intent: PairIntent, *a: object, **kw: object) -> None:
        warmed.append(intent.pair_id)
        warm(intent, *a, **kw)  # type: ignore[arg-type]

    rig.executor.warm_pair_trade = spy  # type: ignore[method-assign]
    signer = rig.executor.traders["polymarket"].signer  # type: ignore[attr-defined]
    signed: list[object] = []
    for name in ("prepare_polymarket_order", "begin_prepare_polymarket_order"):
        orig = getattr(signer, name)
        setattr(signer, name, lambda *a, _o=orig, **kw: signed.append(a) or _o(*a, **kw))
    await rig.executor.kill("test: the dry run ignores the kill switch and still sends nothing")
    rig.trigger.arm(rig.intent())
    await eventually(lambda: len(warmed) >= 5, timeout=5, what="several dry runs")
    assert rig.fired == [] and signed == []
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (0, 0)


async def test_a_signing_request_that_cannot_be_made_is_a_signer_refusal(rig: Rig, tmp_path: Path) -> None:
    # A signing request refused before it leaves (here: a ServiceSigner naming neither a wallet nor a
    # session) is the same refusal whether the order was begun in the trigger's turn or prepared later.
    rig.executor.traders["polymarket"].signer = ServiceSigner(  # type: ignore[attr-defined]
        SignerClient(str(tmp_path / "no-signer.sock")), address=PrivateKey(WALLET_HEX).address, api_key=API_KEY
    )
    poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
    await eventually(lambda: poly_ask(rig) == Decimal("0.40"), what="the 0.40 ask on our book")
    intent = PairIntent(rig.pair_id, INTENT_SIZE, Decimal("0.02"), "polymarket", limit=Decimal("0.60"))
    with pytest.raises(IntentRefused) as refused:
        await rig.executor.pair_trade(intent)
    assert refused.value.step.startswith("signer") and "wallet= or session_id=" in str(refused.value)
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (0, 0)


async def test_trigger_requests_need_the_daemon_and_a_valid_config(tmp_path: Path) -> None:
    from typing import cast

    from crossbook.config import load_config
    from crossbook.errors import ConfigError
    from crossbook.execution.cli import run_request

    for op in ("arm", "disarm", "armed"):  # outside the daemon there is no trigger to hold the intent
        with pytest.raises(IntentRefused, match="needs the running daemon"):
            await run_request(cast(Executor, None), {}, {"op": op, "pair": "p", "size": "1"})
    path = tmp_path / "c.toml"
    path.write_text('[execution]\ntrigger_rearm = "sometimes"\n')
    with pytest.raises(ConfigError, match="trigger_rearm"):
        load_config(path, env={})
    path.write_text("[execution]\ntrigger_keep_warm_ms = -1\n")
    with pytest.raises(ConfigError, match="trigger_keep_warm_ms"):
        load_config(path, env={})


async def test_the_compiled_check_signs_the_first_leg_before_the_gate_which_still_decides(rig: Rig) -> None:
    # The edge at the top of book holds the whole size: the compiled check (EdgeWatch) fires, the first leg's
    # signing request leaves at once, and the plan, the breaker and the gate are read while it is signed.
    steps: list[str] = []
    begin_first, check_all = rig.executor.begin_first_leg, rig.executor.gate.check_all
    rig.executor.begin_first_leg = lambda *a, **kw: steps.append("first leg signing") or begin_first(*a, **kw)  # type: ignore[method-assign]
    rig.executor.gate.check_all = lambda *a, **kw: steps.append("gate") or check_all(*a, **kw)  # type: ignore[method-assign]
    rig.trigger.arm(rig.intent())
    assert rig.trigger._armed[rig.pair_id].watch is not None
    poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
    await eventually(lambda: rig.done, timeout=10, what="the fired intent to finish")
    assert steps[:2] == ["first leg signing", "gate"], steps
    (firing,) = rig.done
    assert firing.result is not None and firing.result.status == "hedged", firing
    leg1 = firing.result.legs[0].order
    assert (leg1.venue, leg1.price, leg1.size, leg1.leg) == ("polymarket", Decimal("0.40"), INTENT_SIZE, "leg1")
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (1, 1)


async def test_a_signature_asked_ahead_of_a_breaker_that_says_no_is_dropped(rig: Rig) -> None:
    signs = spy_signing(rig)
    rig.trigger.arm(rig.intent())
    watch = rig.trigger._armed[rig.pair_id].watch
    assert watch is not None and watch.enabled
    # A halt reaches the compiled check through the breaker's transition...
    rig.breaker.set_halted(rig.pair_id, True)
    await eventually(lambda: not watch.enabled, what="the halt to switch the compiled check off")
    # ...but a frame may land before the transition is published: the breaker read after the signing
    # request still refuses, the signature is dropped and nothing reaches a venue.
    watch.enabled = True
    poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
    await eventually(lambda: signs, what="the first leg's signing request")
    await eventually(lambda: not watch.enabled, what="the compiled check off after the refusal")
    await settle()
    assert rig.done == [] and rig.trigger.state(rig.pair_id) == "armed" and len(signs) == 1
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (0, 0)
    # Resumed: the breaker's transition switches the compiled check back on, and the next frame fires.
    rig.breaker.set_halted(rig.pair_id, False)
    await eventually(lambda: watch.enabled, what="the resume to switch the compiled check on")
    poly_level(rig.poly, "ask", 39 * CENT, 50 * SHARE)
    await eventually(lambda: rig.done, timeout=10, what="the fired intent to finish")
    (firing,) = rig.done
    assert firing.result is not None and firing.result.status == "hedged", firing
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (1, 1)


async def test_the_frame_that_opens_the_edge_fires_before_the_batched_change_dispatch(rig: Rig) -> None:
    # MarketData's frame listener runs the compiled check right after the frame is applied; the change
    # dispatch (Redis, the hub, the trigger's own on_changes) comes in a later loop turn and fires nothing more.
    steps: list[str] = []
    dispatch, begin_first = rig.md.dispatch_changes, rig.executor.begin_first_leg
    rig.md.dispatch_changes = lambda: steps.append("dispatch") or dispatch()  # type: ignore[method-assign]
    rig.executor.begin_first_leg = lambda *a, **kw: steps.append("first leg") or begin_first(*a, **kw)  # type: ignore[method-assign]
    rig.trigger.arm(rig.intent())
    await settle()
    steps.clear()
    poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
    await eventually(lambda: rig.done, timeout=10, what="the fired intent to finish")
    assert steps[0] == "first leg" and "dispatch" in steps and steps.count("first leg") == 1, steps
    (firing,) = rig.fired
    assert firing.result is not None and firing.result.status == "hedged", firing
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (1, 1)


async def test_the_hedge_legs_kalshi_headers_are_signed_while_the_first_leg_is_at_its_venue(rig: Rig) -> None:
    # Kalshi's signature covers the timestamp, method and path, not the body: the executor has the hedge's
    # headers signed once the first leg's request is on the wire, and the hedge waits for no signer.
    events: list[str] = []
    signer = rig.executor.traders["kalshi"].signer  # type: ignore[attr-defined]
    sign = signer.kalshi_headers

    async def spy(method: str, path: str) -> dict[str, str]:
        events.append(f"kalshi headers {method} {path}")
        return await sign(method, path)

    signer.kalshi_headers = spy
    rig.executor.after_leg = lambda r: events.append(f"{r.venue} leg done")  # type: ignore[func-returns-value]
    rig.trigger.arm(rig.intent())
    poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
    await eventually(lambda: rig.done, timeout=10, what="the fired intent to finish")
    (firing,) = rig.done
    assert firing.result is not None and firing.result.status == "hedged", firing
    post = "kalshi headers POST /trade-api/v2/portfolio/orders"
    assert events[:3] == [post, "polymarket leg done", "kalshi leg done"], events  # signed once, before leg 1 ended
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (1, 1)  # the venue took them


async def test_stale_presigned_headers_are_not_used(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    import crossbook.execution.executor as executor_module

    monkeypatch.setattr(executor_module, "PRESIGNED_MAX_AGE_S", -1.0)  # every presigned header is too old
    signed: list[str] = []
    signer = rig.executor.traders["kalshi"].signer  # type: ignore[attr-defined]
    sign = signer.kalshi_headers

    async def spy(method: str, path: str) -> dict[str, str]:
        signed.append(path)
        return await sign(method, path)

    signer.kalshi_headers = spy
    rig.trigger.arm(rig.intent())
    poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
    await eventually(lambda: rig.done, timeout=10, what="the fired intent to finish")
    (firing,) = rig.done
    assert firing.result is not None and firing.result.status == "hedged", firing
    orders = [p for p in signed if p.endswith("/portfolio/orders")]  # (then the fills' lookup, signed too)
    assert orders == ["/trade-api/v2/portfolio/orders"] * 2  # presigned, dropped, signed again at the send
    assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (1, 1)


async def test_with_the_signer_service_the_compiled_check_makes_the_first_legs_signing_request(
    rig: Rig, signer_env: Signer
) -> None:
    # The signer service in its own process (wallet key and L2 API account KMS-sealed): the compiled check makes
    # the first leg's PreparePolymarketOrder frame in the fire, the trigger writes it before any Python builds the
    # order, and the signer signs exactly the order the executor then checks against the plan and sends.
    signer_env.write_config(header_keys=True)
    await asyncio.to_thread(signer_env.start)  # its wait loop blocks: keep the feeds (this loop) running
    rig.poly.add_api_creds(SIGNER_API_KEY, SIGNER_API_SECRET, SIGNER_API_PASSPHRASE, address=ANVIL_ADDR)
    client = SignerClient(signer_env.socket, timeout=3.0)
    try:
        await client.health()  # the fast path is up
        trader = rig.executor.traders["polymarket"]
        trader.signer = ServiceSigner(client, address=ANVIL_ADDR, api_key="main", wallet="main")  # type: ignore[attr-defined]
        written: list[tuple[int, object]] = []
        send = client.send_prepare_frame

        def spy(frame: bytes, call_id: int) -> object:
            sent = send(frame, call_id)
            written.append((call_id, sent))
            return sent

        client.send_prepare_frame = spy  # type: ignore[method-assign]
        rig.trigger.arm(rig.intent())
        watch = rig.trigger._armed[rig.pair_id].watch
        assert watch is not None and watch.first_leg
        poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
        await eventually(lambda: rig.done, timeout=10, what="the fired intent to finish")
        (firing,) = rig.done
        assert firing.result is not None and firing.result.status == "hedged", firing
        leg1 = firing.result.legs[0].order
        assert (leg1.venue, leg1.outcome, leg1.price, leg1.size) == ("polymarket", "yes", Decimal("0.40"), INTENT_SIZE)
        ((call_id, sent),) = written
        assert call_id > CLIENT_CALL_IDS and sent is not None  # written by the trigger, under a high-half call id
        # the order the signer signed (its hash) is the one the venue holds, and the signer saw it once
        assert leg1.venue_order_id is not None and leg1.venue_order_id in rig.poly.orders
        assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (1, 1)
        assert rig.poly.stats["orders_duplicate"] == 0
        assert await signer_env.logged(f"request_id={leg1.client_order_id} method=PreparePolymarketOrder") == 1

        # The fast path down at the fire: nothing is written by the trigger, the executor sends the same kind
        # of request its own way (here gRPC), and the trade goes through as before.
        rig.trigger.disarm(rig.pair_id)
        client._open_fast = lambda method: None  # type: ignore[method-assign]
        rig.done.clear()
        rig.trigger.arm(rig.intent())
        poly_level(rig.poly, "ask", 39 * CENT, 50 * SHARE)
        await eventually(lambda: rig.done, timeout=10, what="the second intent to finish")
        (firing,) = rig.done
        assert firing.result is not None and firing.result.status == "hedged", firing
        assert [sent for _, sent in written[1:]] == [None]
        assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (2, 2)
    finally:
        await client.close()


async def test_a_first_leg_begun_that_is_not_the_plans_order_is_refused_and_nothing_is_sent(rig: Rig) -> None:
    # start_pair_trade checks the order begun ahead of the gate against the one the plan makes, field for field:
    # a different price (a bug between the compiled check and the plan) is refused at "plan", its signature
    # dropped, and nothing reaches a venue.
    begin_first = rig.executor.begin_first_leg

    def off_by_a_cent(pair_id: str, tif: Any, venue: Any, outcome: Any, price: Decimal, size: Decimal,
                      sent: object = None) -> Any:  # fmt: skip
        return begin_first(pair_id, tif, venue, outcome, price + Decimal("0.01"), size)

    rig.executor.begin_first_leg = off_by_a_cent  # type: ignore[method-assign]
    rig.trigger.arm(rig.intent())
    poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
    await eventually(lambda: rig.fired, timeout=10, what="the refused firing")
    await settle()
    firing = rig.fired[0]
    assert "is not the plan's" in firing.refused, firing
    assert "'limit': '0.41'" in firing.refused and "'limit': '0.4'" in firing.refused  # begun, then planned
    # nothing sent for it; the compiled path is off for this arming and the Python path (which makes the plan's
    # own order) may fire on a later book change: any order at the venues is one of those firings'
    later = [f for f in rig.fired[1:] if not f.refused]
    await eventually(lambda: all(f in rig.done for f in later), timeout=10, what="later firings to finish")
    assert rig.poly.orders_accepted == rig.kal.orders_accepted == len(later)
    assert all(f.result is not None and f.result.legs[0].order.price == Decimal("0.40") for f in later)


async def test_a_request_made_by_the_check_that_is_not_the_plans_order_is_refused_before_its_reply_is_used(
    rig: Rig, signer_env: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The signer service's route: the check's own request is written first, and start_pair_trade holds it to the
    # plan's first leg before the reply is waited for or anything is sent. A different price (a bug between the
    # compiled check and the plan) is refused at "plan", the reply forgotten, and nothing reaches a venue.
    import crossbook.execution.trigger as trigger_module

    signer_env.write_config(header_keys=True)
    await asyncio.to_thread(signer_env.start)
    rig.poly.add_api_creds(SIGNER_API_KEY, SIGNER_API_SECRET, SIGNER_API_PASSPHRASE, address=ANVIL_ADDR)
    client = SignerClient(signer_env.socket, timeout=3.0)
    try:
        await client.health()
        trader = rig.executor.traders["polymarket"]
        trader.signer = ServiceSigner(client, address=ANVIL_ADDR, api_key="main", wallet="main")  # type: ignore[attr-defined]
        forgotten: list[object] = []
        forget, take = client.forget, client.take_prepared_reply
        client.forget = lambda sent: forgotten.append(sent) or forget(sent)  # type: ignore[method-assign,func-returns-value]
        client.take_prepared_reply = lambda *a: pytest.fail("the reply was waited for")  # type: ignore[method-assign]
        real = trigger_module.SentFirstLeg

        def off_by_a_cent(handle: object, request: Any, leg: Any) -> Any:
            venue, outcome, price, size = leg
            return real(handle, request, (venue, outcome, price + Decimal("0.01"), size))

        monkeypatch.setattr(trigger_module, "SentFirstLeg", off_by_a_cent)
        rig.trigger.arm(rig.intent())
        poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
        await eventually(lambda: rig.fired, timeout=10, what="the refused firing")
        await settle()
        firing = rig.fired[0]
        assert "is not the plan's" in firing.refused and "(polymarket yes 20 @ 0.41)" in firing.refused
        assert "(polymarket yes 20 @ 0.4)" in firing.refused
        assert len(forgotten) == 1  # its reply dropped: nothing was sent with it (the orders below are all later)
        # later firings (the Python path, which makes the plan's own order) are the only orders at the venues
        client.take_prepared_reply = take  # type: ignore[method-assign]
        later = [f for f in rig.fired[1:] if not f.refused]
        await eventually(lambda: all(f in rig.done for f in later), timeout=10, what="later firings to finish")
        assert rig.poly.orders_accepted == rig.kal.orders_accepted == len(later)
    finally:
        await client.close()


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs 2 CPUs this process may use")
async def test_with_the_signer_on_cpus_of_its_own_the_order_path_waits_for_its_reply_spinning(
    rig: Rig, signer_env: Signer
) -> None:
    # A signer pinned to CPUs this process may not use (as a deployment pins it): once the gate has passed, the
    # executor waits for the first leg's signature by reading the signer's socket itself
    # (SignerClient.take_prepared_reply, via the trader's ServiceSigner.take_reply) and writes the order's POST
    # in that same turn, before the order's records and the intent's task are made.
    signer_env.write_config(header_keys=True)
    await asyncio.to_thread(signer_env.start)
    assert signer_env.proc is not None
    mine = os.sched_getaffinity(0)
    rig.poly.add_api_creds(SIGNER_API_KEY, SIGNER_API_SECRET, SIGNER_API_PASSPHRASE, address=ANVIL_ADDR)
    client = SignerClient(signer_env.socket, timeout=3.0)
    try:
        ours, theirs = sorted(mine)[:2]  # two CPUs we may use (not necessarily 0 and 1 under a cpuset)
        os.sched_setaffinity(signer_env.proc.pid, {theirs})
        os.sched_setaffinity(0, {ours})
        await client.health()  # connected now: the client sees the signer's CPUs are not ours
        assert client.signer_on_other_cpus
        trader = rig.executor.traders["polymarket"]
        trader.signer = ServiceSigner(client, address=ANVIL_ADDR, api_key="main", wallet="main")  # type: ignore[attr-defined]
        await trader.warm()  # connections open to the venue, as the daemon keeps them
        takes: list[bool] = []
        spins: list[bool] = []
        take, spin = client.take_prepared_reply, client.spin_for_reply

        def spy_take(sent: Any, max_s: float) -> Any:
            reply = take(sent, max_s)
            takes.append(reply is not None)
            return reply

        def spy_spin(fut: asyncio.Future[object], max_s: float) -> bool:
            spins.append(spin(fut, max_s))
            return spins[-1]

        client.take_prepared_reply = spy_take  # type: ignore[method-assign]
        client.spin_for_reply = spy_spin  # type: ignore[method-assign]
        pool = trader.http.pool  # type: ignore[attr-defined]
        posted: list[int] = []
        start = rig.executor.start_pair_trade

        def spy_start(*a: Any, **kw: Any) -> Any:
            before = pool.stats.requests
            run = start(*a, **kw)
            posted.append(pool.stats.requests - before)  # POSTs written before start_pair_trade returned
            return run

        rig.executor.start_pair_trade = spy_start  # type: ignore[method-assign]
        rig.trigger.arm(rig.intent())
        poly_level(rig.poly, "ask", 40 * CENT, 50 * SHARE)
        await eventually(lambda: rig.done, timeout=10, what="the fired intent to finish")
        (firing,) = rig.done
        assert firing.result is not None and firing.result.status == "hedged", firing
        # The reply was waited for once, spinning, in the fire's own turn once the gate had passed. Read by the
        # spin, the first leg's POST was written before start_pair_trade returned (nothing else built first) and
        # the loop never waited for the reply again; past the spin's bound, the loop waits for it, not spinning.
        assert len(takes) == 1 and spins == [], (takes, spins)
        assert posted == [1 if takes[0] else 0], (takes, posted)
        leg1 = firing.result.legs[0].order
        assert leg1.venue_order_id is not None and leg1.venue_order_id in rig.poly.orders
        assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (1, 1)
        assert rig.poly.stats["orders_duplicate"] == 0

        # No rate token at the fire (the user's write budget spent): nothing is written in the fire's turn; the
        # reply taken there is applied to the order and the task sends it once its token comes. Once.
        from crossbook.execution.venues import TokenBucket

        rig.trigger.disarm(rig.pair_id)
        rig.done.clear()
        takes.clear()
        posted.clear()
        bucket = trader.http.writes = TokenBucket(1.0, 1.0)  # type: ignore[attr-defined]
        assert bucket.try_take()  # the one token of the burst: the next comes in a second
        rig.trigger.arm(rig.intent())
        poly_level(rig.poly, "ask", 39 * CENT, 50 * SHARE)
        await eventually(lambda: rig.done, timeout=10, what="the second intent to finish")
        (firing,) = rig.done
        assert firing.result is not None and firing.result.status == "hedged", firing
        assert len(takes) == 1 and posted == [0] and spins == [], (takes, posted, spins)
        assert bucket.waited_s > 0  # the task waited for its token
        leg1 = firing.result.legs[0].order
        assert leg1.venue_order_id in rig.poly.orders
        assert (rig.poly.orders_accepted, rig.kal.orders_accepted) == (2, 2)
        assert rig.poly.stats["orders_duplicate"] == 0
    finally:
        os.sched_setaffinity(0, mine)
        await client.close()
