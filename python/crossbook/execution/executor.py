"""The executor: intent → gate → sizing over both books → signer → venue REST → records; unwind on a
broken pair. A refusal names its step (:class:`IntentRefused`); an order's timeout is resolved by asking
the venue, never by resending.

Pair trades send their legs one after the other (the first on ``first_venue``), re-checking the gate
before the second: a pair whose breaker trips between the legs never gets its second leg, and the
filled first leg is flattened under the :class:`UnwindPolicy`. Unwinds skip the pair's gate (a tripped
pair must still be able to shed risk) but need a valid book on the leg being unwound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from crossbook.aio import retrieve
from crossbook.errors import PolicyViolation, SignerError
from crossbook.execution.errors import (
    ExecutionError,
    IntentRefused,
    SubmitUncertain,
    VenueRejected,
    VenueUnavailable,
)
from crossbook.execution.models import (
    ONE,
    ZERO,
    LegOrder,
    LegPlan,
    LimitIntent,
    OrderResult,
    Outcome,
    PairIntent,
    PairMarkets,
    PairPlan,
    PairResult,
    Purpose,
    RecoveredIntent,
    RouteIntent,
    RouteResult,
    TimeInForce,
    UnwindPolicy,
    Venue,
    new_id,
)
from crossbook.execution.sizing import BookSource, CappedBooks, asks, bids, plan_pair, plan_route
from crossbook.execution.store import ExecutionStore
from crossbook.execution.venues import PRESIGNED_MAX_AGE_S, VenueTrader, apply_prepared
from crossbook.safety.breaker import PairState
from crossbook.safety.gate import Gate, GateDecision
from crossbook.safety.gate import Intent as GateIntent

if TYPE_CHECKING:
    from crossbook._core import FirstLegRequest

log = logging.getLogger("crossbook.execution")

LegHook = Callable[[OrderResult], Awaitable[None] | None]


class Executor:
    def __init__(
        self,
        *,
        gate: Gate,
        books: BookSource,
        traders: Mapping[Venue, VenueTrader],
        markets: Mapping[str, PairMarkets],
        store: ExecutionStore | None = None,
        unwind: UnwindPolicy | None = None,
        first_venue: Venue = "polymarket",
        resolve_timeout: float = 5.0,
        resolve_interval: float = 0.1,
        poly_fee_bps: int = 0,
        hedge_slippage: Decimal = Decimal("0.02"),
        after_leg: LegHook | None = None,
        user_ref: str = "",
    ) -> None:
        self.gate = gate
        self.books = books
        self.traders = traders
        self.markets = markets
        self.store = store
        self.unwind_policy = unwind or UnwindPolicy()
        self.first_venue = first_venue
        self.resolve_timeout = resolve_timeout
        self.resolve_interval = resolve_interval
        self.poly_fee_bps = poly_fee_bps
        self.hedge_slippage = hedge_slippage
        self.after_leg = after_leg
        self.user_ref = user_ref
        self.kill_switch: str | None = None  # engaged: the reason every new intent is refused with

    # -- per-user kill switch ----------------------------------------------------------------------
    async def kill(self, reason: str, *, by: str = "") -> dict[str, list[str]]:
        """Engage the kill switch: refuse every new intent with ``reason`` and cancel the user's open orders
        on both venues (Polymarket cancel-all; Kalshi: its order group, then any resting order left).
        Returns the venue order ids cancelled per venue; a venue that cannot be reached is reported in the
        log and left to its own cancel-on-disconnect."""
        self.kill_switch = reason
        if self.store is not None:
            await self.store.set_kill(self.user_ref, reason, by)
        cancelled: dict[str, list[str]] = {}
        for venue, trader in self.traders.items():
            try:
                cancelled[venue] = await trader.cancel_all()
            except (VenueUnavailable, SubmitUncertain) as exc:
                log.error("kill switch: cancelling %s orders failed: %s", venue, exc)
                cancelled[venue] = []
            if self.store is not None:
                await self.store.mark_cancelled(self.user_ref, venue, cancelled[venue], f"kill switch: {reason}")
        log.warning("kill switch engaged for %r: %s; cancelled %s", self.user_ref, reason, cancelled)
        return cancelled

    async def release(self, *, by: str = "") -> None:
        self.kill_switch = None
        if self.store is not None:
            await self.store.set_kill(self.user_ref, None, by)

    def _check_kill(self) -> None:
        if self.kill_switch is not None:
            raise IntentRefused("kill switch", [f"trading is stopped for {self.user_ref or 'this user'}: "
                                                f"{self.kill_switch}"])  # fmt: skip

    # -- single orders -----------------------------------------------------------------------------
    async def place(self, intent: LimitIntent) -> OrderResult:
        """One limit order on one venue (``intent.outcome`` as on that venue)."""
        self._check_kill()
        pm = self._pair(intent.pair_id)
        self._check_gate("gate", intent.pair_id, intent.venue, intent.side, intent.outcome, intent.price,
                         intent.size, intent.reduce_only)  # fmt: skip
        intent_id = new_id()
        market = self._order_market(pm, intent.venue, intent.outcome)
        order = LegOrder(intent.venue, market, intent.side, intent.outcome, intent.price, intent.size, intent.tif,
                         "entry", "single", intent_id, intent.pair_id, user_ref=self.user_ref)  # fmt: skip
        if self.store is not None:
            await self.store.intent_started(intent_id, "limit", intent.pair_id, _spec(intent),
                                            legs=[_planned(order)], user_ref=self.user_ref)  # fmt: skip
        result = await self._execute(order)
        await self._record_fills([result])
        if self.store is not None:
            await self.store.intent_finished(intent_id, result.status, {"filled": str(result.filled),
                                                                        "reason": result.reason})  # fmt: skip
        if result.status == "refused":
            raise IntentRefused(result.refused_at, [result.reason])
        return result

    # -- one order routed across both venues ---------------------------------------------------------
    async def route(self, intent: RouteIntent) -> RouteResult:
        """Buy/sell one outcome where it is cheaper after fees, split across both venues by depth.
        Each venue's part passes the gate first; the better venue's order is sent first."""
        self._check_kill()
        pm = self._pair(intent.pair_id)
        if intent.size <= 0 or not ZERO < intent.limit < ONE:
            raise IntentRefused("intent", [f"size {intent.size} must be > 0 and limit {intent.limit} within (0, 1)"])
        legs = plan_route(self.books, pm, intent.side, intent.outcome, intent.size, intent.limit, self.poly_fee_bps)
        if not legs:
            raise IntentRefused("sizing", [f"no depth to {intent.side} {intent.outcome} at {intent.limit} or better "
                                           "on either venue (after the venues' size rules)"])  # fmt: skip
        for leg in legs:
            self._check_gate("gate", intent.pair_id, leg.venue, intent.side, leg.outcome, leg.limit, leg.size)
        intent_id = new_id()
        orders = [LegOrder(leg.venue, leg.market, intent.side, leg.outcome, leg.limit, leg.size, intent.tif,
                           "entry", f"route{i + 1}", intent_id, intent.pair_id, user_ref=self.user_ref)
                  for i, leg in enumerate(legs)]  # fmt: skip
        if self.store is not None:
            await self.store.intent_started(intent_id, "route", intent.pair_id, _spec(intent),
                                            legs=[_planned(o) for o in orders], user_ref=self.user_ref)  # fmt: skip
        res = RouteResult(intent_id, legs)
        for order in orders:
            r = await self._execute(order)
            res.orders.append(r)
            if r.filled < order.size:
                res.reasons.append(f"{order.venue}: {r.status}, filled {r.filled} of {order.size}"
                                   + (f" ({r.reason})" if r.reason else ""))  # fmt: skip
        await self._record_fills(res.orders)
        if self.store is not None:
            await self.store.intent_finished(intent_id, res.status, {
                "filled": str(res.filled), "reasons": res.reasons, "legs": [_brief(r) for r in res.orders],
            })  # fmt: skip
        return res

    # -- pair trades --------------------------------------------------------------------------------
    def plan(self, intent: PairIntent) -> PairPlan:
        """Size the pair trade on the live books (no orders), no leg above ``intent.limit``. IntentRefused at
        ``gate``/``book``/``sizing``."""
        pm = self._pair(intent.pair_id)
        state = self.gate.breaker.evaluate(intent.pair_id)
        if not state.enabled:
            raise IntentRefused("gate", state.reasons)
        directions: tuple[Venue, ...] = (intent.yes_venue,) if intent.yes_venue else ("polymarket", "kalshi")
        books = self.books if intent.limit is None else CappedBooks(self.books, intent.limit)
        plans = [p for v in directions if (p := plan_pair(books, pm, v, intent.size, intent.edge,
                                                           self.poly_fee_bps)) is not None]  # fmt: skip
        if not plans:
            quotes = []
            for v in directions:
                o: Venue = "kalshi" if v == "polymarket" else "polymarket"
                ya = asks(self.books, v, pm.book_market(v), pm.instrument(v, "yes")[1])
                na = asks(self.books, o, pm.book_market(o), pm.instrument(o, "no")[1])
                if ya and na:
                    quotes.append(f"YES on {v} {ya[0][0]} + NO on {o} {na[0][0]} = {ya[0][0] + na[0][0]} before fees")
            raise IntentRefused("sizing", [f"no size keeps an edge of {intent.edge} after fees", *quotes])
        return max(plans, key=lambda p: (p.edge * p.size, p.size))

    async def pair_trade(self, intent: PairIntent, plan: PairPlan | None = None) -> PairResult:
        """Trade the pair: sized here on the live books, or along ``plan`` when the caller sized it already
        (the edge trigger, on the same books a moment earlier). A given plan must fit the intent (pair,
        direction, size, no leg above ``intent.limit``: IntentRefused at ``plan``); either way every leg
        passes the gate now, and each order is sent at its planned limit (FOK/FAK at that price: a book that
        moved since the plan can fill it no worse, or not at all)."""
        self._check_kill()
        self._pair(intent.pair_id)
        if plan is None:
            plan = self.plan(intent)
        return await self.start_pair_trade(intent, plan)

    def start_pair_trade(
        self, intent: PairIntent, plan: PairPlan, state: PairState | None = None,
        first: tuple[LegOrder, Coroutine[Any, Any, None]] | None = None, sent: SentFirstLeg | None = None,
    ) -> Coroutine[Any, Any, PairResult]:  # fmt: skip
        """:meth:`pair_trade` along ``plan``, begun synchronously: the kill switch, the plan and the gate (both
        legs) are checked here (IntentRefused at once), the first leg is built and its signing request
        leaves for the signer before this returns; the returned coroutine does the rest (records, the send,
        the second leg, any unwind). The signer signs while the caller returns to the loop and the records
        are written; nothing is sent to a venue before all of that is done. ``state``: the breaker's
        reading of this pair taken in the same synchronous stretch (the trigger's), so it is not read twice.
        ``first``: the first leg already begun by :meth:`begin_first_leg`; it must be the order the plan
        makes (IntentRefused at ``plan`` otherwise), and any refusal here drops its signature.

        ``sent`` (instead of ``first``): the first leg's signing request was written already, made by the
        edge trigger's compiled check (:meth:`send_first_leg`); it must be for the plan's first leg (refused
        at ``plan`` otherwise, its signature dropped). Without a store (no record has to be written before the
        send), once the gate has passed, the signer's reply is waited for here (spinning, when it runs on
        CPUs of its own) and the order's POST is written before this returns, when it needs no wait (a rate
        token, an idle connection): nothing else is built ahead of it; the returned coroutine reads the
        venue's answer and does the rest as ever."""
        try:
            self._check_kill()
            pm = self._pair(intent.pair_id)
            _check_plan(intent, plan)
            # Both legs against one reading of the breaker (the second is checked again before it is sent).
            decision = self._gate_legs(intent.pair_id, plan, state)
            if not decision:
                raise IntentRefused("gate", decision.reasons)
            first_leg, second = sorted(plan.legs, key=lambda lp: lp.venue != self.first_venue)
            if sent is not None and (first_leg.venue, first_leg.outcome, first_leg.limit, plan.size) != sent.leg:
                venue, outcome, price, size = sent.leg
                raise IntentRefused("plan", [
                    f"the first leg asked of the signer ({venue} {outcome} {size} @ {price}) is not the plan's "
                    f"({first_leg.venue} {first_leg.outcome} {plan.size} @ {first_leg.limit})"])  # fmt: skip
        except BaseException:
            if first is not None:
                first[1].close()  # never sent: its signature is dropped
            if sent is not None:
                self.forget_first_leg(sent)
            raise
        if sent is not None:
            return self._start_sent(intent, plan, pm, first_leg, second, sent)
        intent_id = first[0].intent_id if first is not None else new_id()
        leg_order = self._leg_orders(intent, pm, intent_id, first[0].client_order_id if first is not None else new_id())
        if first is None:
            order1 = leg_order(first_leg, plan.size, "leg1", first_leg.limit)
            signing = self.traders[order1.venue].begin_prepare(order1)
        else:
            # The order begun must be the one leg_order makes from the plan (field for field, as LegOrder
            # compares, but for what signing adds), checked without making it.
            order1, signing = first
            if ((order1.venue, order1.market, order1.side, order1.outcome, order1.price, order1.size, order1.tif,
                 order1.purpose, order1.leg, order1.intent_id, order1.pair_id, order1.client_order_id,
                 order1.user_ref)
                    != (first_leg.venue, self._order_market(pm, first_leg.venue, first_leg.outcome), "buy",
                        first_leg.outcome, first_leg.limit, plan.size, intent.tif, "entry", "leg1", intent_id,
                        intent.pair_id, order1.client_order_id, self.user_ref)):  # fmt: skip
                signing.close()
                planned = leg_order(first_leg, plan.size, "leg1", first_leg.limit)
                raise IntentRefused("plan", [f"the first leg begun ({_planned(order1)}) is not the plan's "
                                             f"({_planned(planned)})"])  # fmt: skip
        return self._pair_trade(intent, plan, pm, first_leg, second, order1, leg_order, signing)

    def _start_sent(
        self, intent: PairIntent, plan: PairPlan, pm: PairMarkets, first: LegPlan, second: LegPlan,
        sent: SentFirstLeg,
    ) -> Coroutine[Any, Any, PairResult]:  # fmt: skip
        """:meth:`start_pair_trade` past its checks, for a first leg whose signing request was written already."""
        trader = self.traders[first.venue]
        posted = None
        ready = None
        if self.store is None:  # no record before the send: the reply, and the POST, now if they can be
            take = getattr(trader, "take_first_leg", None)
            ready = None if take is None else take(sent.handle)
            post_now = getattr(trader, "post_now", None)
            if ready is not None and post_now is not None:
                posted = post_now(ready.body, ready.headers)
        # -- the order is at its venue, or on its way: the records of it below are made meanwhile --
        leg_order = self._leg_orders(intent, pm, new_id(), sent.request.client_order_id)
        order1 = leg_order(first, plan.size, "leg1", first.limit)
        if ready is not None:
            apply_prepared(order1, ready)
            signing: Coroutine[Any, Any, None] = _done()
        else:  # its reply comes later: waited for as any first leg's (not spinning again if that was tried)
            made = sent.request
            digest = made.order_hash() if self.store is not None else None
            signing = trader.begin_prepare(order1, (sent.handle, made.order(), digest),  # type: ignore[call-arg]
                                           spun=self.store is None)  # fmt: skip
        return self._pair_trade(intent, plan, pm, first, second, order1, leg_order, signing, posted)

    def _leg_orders(
        self, intent: PairIntent, pm: PairMarkets, intent_id: str, leg1_cid: str
    ) -> Callable[[LegPlan, Decimal, str, Decimal], LegOrder]:
        """What makes a pair intent's orders: leg 1 and leg 2 under client order ids fixed now (stored with the
        intent before the first order leaves: a restarted executor asks the venues about exactly these), any
        other (completion, unwind) under a new one."""
        cids = {"leg1": leg1_cid, "leg2": new_id()}

        def leg_order(lp: LegPlan, size: Decimal, name: str, limit: Decimal) -> LegOrder:
            market = self._order_market(pm, lp.venue, lp.outcome)
            purpose: Purpose = "entry" if name == "leg1" else "hedge"
            return LegOrder(lp.venue, market, "buy", lp.outcome, limit, size, intent.tif, purpose, name, intent_id,
                            intent.pair_id, cids.get(name) or new_id(), user_ref=self.user_ref)  # fmt: skip

        return leg_order

    def forget_first_leg(self, sent: SentFirstLeg) -> None:
        """A first leg's signing request written by :meth:`send_first_leg` for an order that will not be sent:
        its reply is discarded when it comes."""
        forget = getattr(self.traders.get(self.first_venue), "forget_first_leg", None)
        if forget is not None:
            forget(sent.handle)

    def begin_first_leg(
        self, pair_id: str, tif: TimeInForce, venue: Venue, outcome: Outcome, price: Decimal, size: Decimal,
    ) -> tuple[LegOrder, Coroutine[Any, Any, None]]:  # fmt: skip
        """A pair trade's first leg with its signing request sent now, before the plan is checked and before
        the gate: the edge trigger's compiled path, so the signer signs while those run. Only for
        :meth:`start_pair_trade` (``first=``), which checks this order against the plan and the gate before
        anything reaches a venue, and drops the signature otherwise. An engaged kill switch refuses here:
        it asks for no signature at all. (A request ``EdgeWatch`` made and :meth:`send_first_leg` wrote goes
        to :meth:`start_pair_trade` as ``sent`` instead.)"""
        self._check_kill()
        pm = self._pair(pair_id)
        order = LegOrder(venue, self._order_market(pm, venue, outcome), "buy", outcome, price, size, tif, "entry",
                         "leg1", new_id(), pair_id, new_id(), user_ref=self.user_ref)  # fmt: skip
        return order, self.traders[venue].begin_prepare(order)

    def first_leg_template(self, pair_id: str, tif: TimeInForce) -> dict[str, object] | None:
        """The arguments of ``EdgeWatch.set_first_leg`` that make the first leg's signing request for ``pair_id``
        exactly as :meth:`begin_first_leg` would (its tokens, the first venue's signer frame), or None when
        the first venue's trader cannot take a request made that way."""
        trader = self.traders.get(self.first_venue)
        template = getattr(trader, "first_leg_template", None)
        made = None if template is None else template(tif)
        if made is None:
            return None
        pm = self._pair(pair_id)
        yes, no = (self._order_market(pm, self.first_venue, o) for o in ("yes", "no"))
        return {"venue": self.first_venue, "tokens": (yes, no), **made}

    def send_first_leg(self, frame: bytes, call_id: int) -> object | None:
        """Write a first leg's signing request made by ``EdgeWatch`` (from :meth:`first_leg_template`) now;
        the handle :class:`SentFirstLeg` carries to :meth:`start_pair_trade` (``sent``), or None (nothing
        written)."""
        send = getattr(self.traders.get(self.first_venue), "send_first_leg", None)
        return None if send is None else send(frame, call_id)

    def prime(self) -> None:
        """An edge was seen: a pair trade may start within a few hundred µs. The first venue's trader warns
        its signer (a signer on CPUs of its own keeps them running instead of halting)."""
        prime = getattr(self.traders.get(self.first_venue), "prime", None)
        if prime is not None:
            prime()

    def warm_pair_trade(self, intent: PairIntent, plan: PairPlan, state: PairState | None = None) -> None:
        """Run :meth:`start_pair_trade`'s synchronous path dry: the plan check, the gate, both leg orders and
        the first leg's order struct and signing request, built and dropped (nothing is signed or sent, no
        record is written, the kill switch is not consulted). Between edges this code never runs; a tick
        after a quiet spell finds it cold, several times slower (the edge trigger's ``keep_warm_s``)."""
        pm = self._pair(intent.pair_id)
        _check_plan(intent, plan)
        self._gate_legs(intent.pair_id, plan, state)
        for lp in sorted(plan.legs, key=lambda lp: lp.venue != self.first_venue):
            order = LegOrder(lp.venue, self._order_market(pm, lp.venue, lp.outcome), "buy", lp.outcome, lp.limit,
                             plan.size, intent.tif, "entry", "warm", new_id(), intent.pair_id, new_id(),
                             user_ref=self.user_ref)  # fmt: skip
            self.traders[lp.venue].warm_prepare(order)

    def _gate_legs(self, pair_id: str, plan: PairPlan, state: PairState | None) -> GateDecision:
        return self.gate.check_all(pair_id, [GateIntent(lp.venue, "buy", lp.outcome, lp.limit, plan.size)
                                             for lp in plan.legs], state)  # fmt: skip

    async def _pair_trade(
        self, intent: PairIntent, plan: PairPlan, pm: PairMarkets, first: LegPlan, second: LegPlan, order1: LegOrder,
        leg_order: Callable[[LegPlan, Decimal, str, Decimal], LegOrder], signing: Coroutine[Any, Any, None],
        posted: object | None = None,
    ) -> PairResult:  # fmt: skip
        intent_id = order1.intent_id
        if self.store is not None:
            try:
                await self.store.intent_started(intent_id, "pair", intent.pair_id, {
                    **_spec(intent), "plan_size": str(plan.size), "plan_edge": str(plan.edge),
                }, legs=[_planned(order1), {**_planned(leg_order(second, plan.size, "leg2", second.limit)),
                                            "size": f"<= leg1 filled ({plan.size})"}],
                    user_ref=self.user_ref, first=order1)  # fmt: skip
            except BaseException:
                signing.close()  # never sent: its signature is dropped
                raise
        res = PairResult(intent_id, "no_fill", plan)

        # The hedge leg's headers, signed while the first leg is at its venue when they do not cover the body
        # (Kalshi): the hedge then waits for no signer once the first leg's fill is known.
        presign = getattr(self.traders[second.venue], "presign_order", None)
        presigned: list[asyncio.Task[tuple[dict[str, str], float]]] = []
        start_presign = (lambda: presigned.append(presign())) if presign is not None else None
        later: list[asyncio.Future[None]] = []  # the first leg's result record, written while the hedge goes
        try:
            r1 = await self._execute(order1, signing, recorded=self.store is not None, before_send=start_presign,
                                     later=later, posted=posted)  # fmt: skip
            return await self._after_first_leg(intent, plan, pm, second, r1, res, leg_order, presigned, later)
        finally:
            for task in presigned:
                if not task.done():
                    task.cancel()
                task.add_done_callback(retrieve)
            if later:  # a record is never abandoned, even by a failing intent (its own error is not raised here)
                await asyncio.wait(later)
                for record in later:
                    record.add_done_callback(retrieve)

    async def _after_first_leg(
        self, intent: PairIntent, plan: PairPlan, pm: PairMarkets, second: LegPlan, r1: OrderResult, res: PairResult,
        leg_order: Callable[[LegPlan, Decimal, str, Decimal], LegOrder],
        presigned: list[asyncio.Task[tuple[dict[str, str], float]]], later: list[asyncio.Future[None]],
    ) -> PairResult:  # fmt: skip
        intent_id = res.intent_id
        res.legs.append(r1)
        if r1.status == "refused":
            if self.store is not None:
                await self.store.intent_finished(intent_id, "refused", {"step": r1.refused_at, "reason": r1.reason})
            raise IntentRefused(f"{r1.refused_at} (leg 1, {r1.venue})", [r1.reason])
        await self._hook(r1)
        if r1.status == "unknown":
            res.status = "exposed"
            res.reasons.append(f"leg 1 ({r1.venue}) state unknown: {r1.reason}; second leg not sent")
        elif r1.filled > 0:
            hedged = ZERO
            try:
                self._check_gate("gate (leg 2)", intent.pair_id, second.venue, "buy", second.outcome, second.limit,
                                 r1.filled)  # fmt: skip
            except IntentRefused as refused:
                res.reasons.append(f"second leg not sent: {refused}")
            else:
                order2 = leg_order(second, r1.filled, "leg2", self._hedge_limit(pm, second, r1))
                order2.headers = await _fresh_headers(presigned)
                r2 = await self._execute(order2)
                res.legs.append(r2)
                await self._hook(r2)
                hedged = r2.filled
                if r2.filled < r1.filled:
                    res.reasons.append(f"leg 2 ({r2.venue}) {r2.status}: filled {r2.filled} of {r1.filled}"
                                       + (f" ({r2.reason})" if r2.reason else ""))  # fmt: skip
            naked = r1.filled - hedged
            if naked > 0 and self.unwind_policy.mode == "complete":
                c = await self._complete(pm, second, r1, naked, res, leg_order)
                if c is not None:
                    naked -= c.filled
            if naked <= 0:
                res.status = "hedged"
            else:
                u = await self._unwind(pm, r1, naked, res)
                res.status = "unwound" if u is not None and u.filled >= naked else "exposed"
        else:
            res.reasons.append(f"leg 1 ({r1.venue}) {r1.status}" + (f": {r1.reason}" if r1.reason else ""))
        for record in later:
            await record  # the first leg's result is in the store before its fills are
        await self._record_fills(res.legs + res.unwinds)
        if self.store is not None:
            await self.store.intent_finished(intent_id, res.status, {
                "reasons": res.reasons, "legs": [_brief(r) for r in res.legs],
                "unwinds": [_brief(r) for r in res.unwinds],
            })  # fmt: skip
        log.info("pair intent %s on %s: %s %s", intent_id, intent.pair_id, res.status, "; ".join(res.reasons))
        return res

    def _hedge_limit(self, pm: PairMarkets, plan: LegPlan, first: OrderResult) -> Decimal:
        """The second leg may pay up to ``hedge_slippage`` over its plan (the book moves while the first leg
        is in flight), but never so much that the pair costs 1 or more per share before its own fee."""
        tick = pm.tick(plan.venue)
        paid = (first.avg_price or first.order.price) + first.fee / first.filled
        cap = ((ONE - paid) / tick).to_integral_value(ROUND_FLOOR) * tick - tick
        return max(tick, min(plan.limit + self.hedge_slippage, cap))

    async def _complete(
        self, pm: PairMarkets, plan: LegPlan, first: OrderResult, qty: Decimal, res: PairResult | RecoveredIntent,
        leg_order: Callable[[LegPlan, Decimal, str, Decimal], LegOrder],
    ) -> OrderResult | None:  # fmt: skip
        """Complete the pair: buy the missing ``qty`` of the other leg at up to its best ask + band (FAK),
        never so high that the pair costs 1 or more per share. It opens exposure on that venue, so it
        passes the gate like a leg; refused or unfilled, the rest is flattened."""
        venue, outcome = plan.venue, plan.outcome
        try:
            best = asks(self.books, venue, pm.book_market(venue), outcome)
        except IntentRefused as refused:
            res.reasons.append(f"completing {qty} {outcome} on {venue} not sent: {refused}")
            return None
        if not best:
            res.reasons.append(f"completing {qty} {outcome} on {venue} not sent: no asks")
            return None
        tick = pm.tick(venue)
        paid = (first.avg_price or first.order.price) + first.fee / first.filled
        cap = ((ONE - paid) / tick).to_integral_value(ROUND_FLOOR) * tick - tick
        limit = min(((best[0][0] + self.unwind_policy.band) / tick).to_integral_value(ROUND_FLOOR) * tick, cap)
        if limit < tick or limit < best[0][0]:
            res.reasons.append(f"completing {qty} {outcome} on {venue} not sent: best ask {best[0][0]} would make "
                               f"the pair cost 1 or more (paid {paid:.4f})")  # fmt: skip
            return None
        try:
            self._check_gate("gate (complete)", pm.pair_id, venue, "buy", outcome, limit, qty)
        except IntentRefused as refused:
            res.reasons.append(f"completing not sent: {refused}")
            return None
        order = leg_order(plan, qty, "complete", limit)
        order.tif = "FAK"
        c = await self._execute(order)
        (res.legs if isinstance(res, PairResult) else res.orders).append(c)
        res.reasons.append(f"completed {c.filled} of {qty} {outcome} on {venue} (limit {limit}, {c.status})")
        return c

    async def _unwind(
        self, pm: PairMarkets, filled: OrderResult, qty: Decimal, res: PairResult | RecoveredIntent
    ) -> OrderResult | None:
        """Flatten ``qty`` of a filled buy: sell it back on its venue, no lower than best bid − band."""
        policy = self.unwind_policy
        venue, outcome = filled.venue, filled.order.outcome
        if policy.mode == "none":
            res.reasons.append(f"unwind policy 'none': {qty} {outcome} on {venue} left open")
            return None
        try:
            best = bids(self.books, venue, pm.book_market(venue), outcome)
        except IntentRefused as refused:
            res.reasons.append(f"unwind of {qty} {outcome} on {venue} not sent: {refused}")
            return None
        if not best:
            res.reasons.append(f"unwind of {qty} {outcome} on {venue} not sent: no bids")
            return None
        tick = pm.tick(venue)
        floor = max(tick, best[0][0] - policy.band)
        limit = (floor / tick).to_integral_value(ROUND_CEILING) * tick
        market = filled.order.market
        order = LegOrder(venue, market, "sell", outcome, limit, qty, "FAK", "unwind", "unwind", filled.order.intent_id,
                         filled.order.pair_id, user_ref=filled.order.user_ref)  # fmt: skip
        u = await self._execute(order)
        res.unwinds.append(u)
        res.reasons.append(f"unwound {u.filled} of {qty} {outcome} on {venue} (limit {limit}, {u.status})")
        return u

    # -- restart: reconcile what a dead executor left ---------------------------------------------
    async def recover(self) -> list[RecoveredIntent]:
        """Reconcile every intent the store holds as unfinished (the executor died mid-intent).

        Each order row still ``submitting``/``unknown`` is resolved by asking its venue (lookup by order
        hash / client order id, never a resend); fills are fetched and recorded once; then a pair whose
        entry leg filled more than its hedge is unwound under the policy, as a live run would have. A
        planned leg without an order row was never sent (rows are written before sending) and is not
        sent now: the market has moved on since the plan."""
        if self.store is None:
            return []
        self.kill_switch = await self.store.kill_reason(self.user_ref)  # engaged before the restart: still
        out: list[RecoveredIntent] = []
        for intent in await self.store.open_intents():
            out.append(await self._recover_one(intent))
        return out

    async def _recover_one(self, intent: Mapping[str, object]) -> RecoveredIntent:
        assert self.store is not None
        intent_id, kind, pair_id = str(intent["id"]), str(intent["kind"]), str(intent["pair_ref"])
        rec = RecoveredIntent(intent_id, kind, pair_id, "no_fill")
        await self.store.mark_recovered(intent_id)
        for row in await self.store.intent_orders(intent_id):
            order = _order_from_row(row)
            if row["status"] in ("submitting", "unknown", "open"):  # open: it may have filled since
                result = await self._resolve(order)
                await self.store.order_result(result)
                rec.reasons.append(f"{order.leg} ({order.venue}) was in flight: venue says {result.status}, "
                                   f"filled {result.filled}")  # fmt: skip
            else:
                result = _result_from_row(order, row)
            (rec.unwinds if order.purpose == "unwind" else rec.orders).append(result)
        await self._record_fills(rec.orders + rec.unwinds)
        sent = {r.order.client_order_id for r in rec.orders + rec.unwinds}
        for leg in intent.get("legs") or []:  # type: ignore[attr-defined]
            if isinstance(leg, dict) and leg.get("client_order_id") not in sent:
                rec.reasons.append(f"{leg.get('leg')} ({leg.get('venue')}) was never sent; not sent now")
        if kind == "limit":
            rec.status = rec.orders[0].status if rec.orders else "not_sent"
        elif kind == "route":
            planned = sum((r.order.size for r in rec.orders), ZERO)
            got = sum((r.filled for r in rec.orders), ZERO)
            rec.status = "no_fill" if got <= 0 else ("filled" if got >= planned else "partial")
        else:
            entry = sum((r.filled for r in rec.orders if r.order.purpose == "entry"), ZERO)
            hedge = sum((r.filled for r in rec.orders if r.order.purpose == "hedge"), ZERO)
            unwound = sum((r.filled for r in rec.unwinds), ZERO)
            naked = entry - hedge - unwound
            unknown = [r for r in rec.orders + rec.unwinds if r.status == "unknown"]
            if unknown:
                rec.status = "exposed"
                rec.reasons.append(f"{len(unknown)} order(s) still unknown at the venue; reconcile again")
            elif entry == 0:
                rec.status = "no_fill"
            elif naked <= 0:
                rec.status = "unwound" if unwound else "hedged"
            else:
                pm = self.markets.get(pair_id)
                first = next(r for r in rec.orders if r.order.purpose == "entry" and r.filled > 0)
                if pm is None:
                    rec.status = "exposed"
                    rec.reasons.append(f"pair {pair_id} is not in the execution catalog: {naked} left open")
                else:
                    leg2 = next((leg for leg in intent.get("legs") or []  # type: ignore[attr-defined]
                                 if isinstance(leg, dict) and leg.get("leg") == "leg2"), None)  # fmt: skip
                    if leg2 is not None and self.unwind_policy.mode == "complete":
                        naked -= await self._recover_complete(pm, leg2, first, naked, rec)
                    u = await self._unwind(pm, first, naked, rec) if naked > 0 else None
                    if u is not None:
                        await self._record_fills([u])
                    done = naked <= 0 or (u is not None and u.filled >= naked)
                    rec.status = ("hedged" if naked <= 0 else "unwound") if done else "exposed"
        await self.store.intent_finished(intent_id, rec.status, {
            "recovered": True, "reasons": rec.reasons, "legs": [_brief(r) for r in rec.orders],
            "unwinds": [_brief(r) for r in rec.unwinds],
        })  # fmt: skip
        log.warning("recovered intent %s on %s: %s; %s", intent_id, pair_id, rec.status, "; ".join(rec.reasons))
        return rec

    async def refresh_open(self) -> list[OrderResult]:
        """Ask the venues about this user's resting orders and record what changed (fills, cancels): the
        store and positions follow orders that filled or were cancelled after their submit answered."""
        if self.store is None:
            return []
        changed: list[OrderResult] = []
        for row in await self.store.open_orders(self.user_ref):
            order = _order_from_row(row)
            try:
                found = await self.traders[order.venue].lookup(order)
            except VenueUnavailable as exc:
                log.warning("refresh of %s order %s failed: %s", order.venue, order.client_order_id, exc)
                continue
            if found is None or (found.status == "open" and found.filled == Decimal(row["filled"])):
                continue
            await self.store.order_result(found)
            await self._record_fills([found])
            changed.append(found)
        return changed

    async def _recover_complete(
        self, pm: PairMarkets, planned: Mapping[str, Any], first: OrderResult, naked: Decimal, rec: RecoveredIntent
    ) -> Decimal:
        """Under the ``complete`` policy a restart finishes the pair as the live run would have: the planned
        second leg (a new order, new client id: the planned one was never sent) within the band."""
        lp = LegPlan(planned["venue"], str(planned["market"]), planned["outcome"], Decimal(str(planned["limit"])),
                     ZERO, ZERO)  # fmt: skip

        def order_for(plan: LegPlan, size: Decimal, name: str, limit: Decimal) -> LegOrder:
            return LegOrder(plan.venue, plan.market, "buy", plan.outcome, limit, size, "FAK", "hedge", name,
                            rec.intent_id, rec.pair_id, user_ref=first.order.user_ref)  # fmt: skip

        c = await self._complete(pm, lp, first, naked, rec, order_for)
        if c is None:
            return ZERO
        await self._record_fills([c])
        return c.filled

    # -- one order, idempotently ---------------------------------------------------------------------
    async def _execute(
        self, order: LegOrder, prepared: Coroutine[Any, Any, None] | None = None, recorded: bool = False,
        before_send: Callable[[], object] | None = None, later: list[asyncio.Future[None]] | None = None,
        posted: object | None = None,
    ) -> OrderResult:  # fmt: skip
        """Prepare (or finish the preparation ``prepared`` begun earlier), record, send, resolve. ``recorded``:
        the order's row was written already (with its intent, while it was signed: ``intent_started(first=)``),
        under the id it had then; the signed order must carry that id, else it is not sent. Otherwise, with a
        store, the row is written while the order is prepared (its signing begun first), and sent after both.
        ``before_send``: run once the request is on the wire (the next loop turn after the send began).
        ``later``: the result's record is written in the background and its future added here (the caller
        awaits it before the fills are recorded): the first leg's result no longer holds up the hedge.
        ``posted``: the order's POST was written already (the trader's ``post_now``): its answer is read."""
        trader = self.traders[order.venue]
        if self.store is not None and not recorded:
            if prepared is None:
                prepared = trader.begin_prepare(order)  # signing starts; the row is written meanwhile
            try:
                await self.store.order_submitting(order)
            except BaseException:
                prepared.close()  # never sent: its signature is dropped
                raise
            recorded = True
        planned_id = order.venue_order_id
        try:
            await (prepared if prepared is not None else trader.prepare(order))
            if recorded and order.venue_order_id != planned_id and planned_id is not None:
                raise ExecutionError(f"the signed order's id {order.venue_order_id} is not the one recorded before "
                                     f"signing ({planned_id}); not sent")  # fmt: skip
        except (PolicyViolation, SignerError, ExecutionError) as exc:
            # Refused before anything left: the signer's session policy (or the signer being down), or an
            # order the venue format cannot express. Recorded, never sent.
            step = "order" if isinstance(exc, ExecutionError) else "signer"
            rule = getattr(exc, "rule", "")
            reason = f"signer refused it under session rule {rule!r}: {exc}" if rule else str(exc)
            result = OrderResult(order, "refused", reason=reason, resolved_by="none", refused_at=step)
            if self.store is not None:
                await self.store.order_refused(result)
            log.warning("%s order %s refused at %s: %s", order.venue, order.client_order_id, step, reason)
            return result
        if before_send is not None:
            asyncio.get_running_loop().call_soon(before_send)
        try:
            if posted is None:
                result = await trader.submit(order)
            else:
                result = await trader.submit(order, posted)  # type: ignore[call-arg]
        except VenueRejected as exc:
            result = OrderResult(order, "rejected", reason=str(exc))
        except VenueUnavailable as exc:  # a 429 beyond the retry budget: the venue took nothing
            result = OrderResult(order, "rejected", reason=str(exc))
        except SubmitUncertain as exc:
            log.warning("%s order %s: %s", order.venue, order.client_order_id, exc)
            result = await self._resolve(order)
        if self.store is not None:
            if later is not None:
                later.append(asyncio.ensure_future(self.store.order_result(result)))
            else:
                await self.store.order_result(result)
        return result

    async def _resolve(self, order: LegOrder) -> OrderResult:
        """Ask the venue what became of an order whose submit went unanswered. Never resends."""
        trader = self.traders[order.venue]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.resolve_timeout
        answered = False
        while True:
            try:
                found = await trader.lookup(order)
                answered = True
            except VenueUnavailable as exc:
                log.warning("lookup of %s order %s failed: %s", order.venue, order.client_order_id, exc)
                found = None
            if found is not None:
                return found
            if loop.time() >= deadline:
                break
            await asyncio.sleep(self.resolve_interval)
        if answered:
            return OrderResult(order, "not_found", reason=f"{order.venue} has no such order after "
                               f"{self.resolve_timeout:.1f}s of lookups; not resent", resolved_by="lookup")  # fmt: skip
        return OrderResult(order, "unknown", reason=f"{order.venue} could not be asked about the order; reconcile "
                           "before trading this market again", resolved_by="none")  # fmt: skip

    async def _record_fills(self, results: list[OrderResult]) -> None:
        for r in results:
            if r.filled > 0 and not r.fills:
                try:
                    r.fills = await self.traders[r.venue].fills(r.order)
                except VenueUnavailable as exc:
                    log.warning("fills of %s order %s not fetched yet: %s", r.venue, r.order.client_order_id, exc)
            if self.store is not None and r.fills:
                await self.store.record_fills(r)

    # -- helpers -------------------------------------------------------------------------------------
    def _pair(self, pair_id: str) -> PairMarkets:
        pm = self.markets.get(pair_id)
        if pm is None:
            raise IntentRefused("pair", [f"unknown pair {pair_id}: not in the execution catalog"])
        return pm

    @staticmethod
    def _order_market(pm: PairMarkets, venue: Venue, outcome: Outcome) -> str:
        if venue == "polymarket":
            return pm.poly_yes_token if outcome == "yes" else pm.poly_no_token
        return pm.kalshi_ticker

    def _check_gate(
        self, step: str, pair_id: str, venue: Venue, side: str, outcome: Outcome, price: Decimal, size: Decimal,
        reduce_only: bool = False,
    ) -> None:  # fmt: skip
        decision = self.gate.check(pair_id, GateIntent(venue, side, outcome, price, size, reduce_only))  # type: ignore[arg-type]
        if not decision:
            raise IntentRefused(step, decision.reasons)

    async def _hook(self, result: OrderResult) -> None:
        if self.after_leg is not None:
            maybe = self.after_leg(result)
            if maybe is not None:
                await maybe


class SentFirstLeg(NamedTuple):
    """A pair trade's first leg whose signing request the edge trigger wrote (:meth:`Executor.send_first_leg`):
    what that returned, the request (``EdgeWatch``'s), and the (venue, outcome, price, size) it is for."""

    handle: object
    request: FirstLegRequest
    leg: tuple[Venue, Outcome, Decimal, Decimal]


async def _done() -> None:
    """The preparation of an order whose signer reply is applied already."""


def _check_plan(intent: PairIntent, plan: PairPlan) -> None:
    """A plan made elsewhere must be one this intent allows."""
    yes, no = plan.legs
    reasons: list[str] = []
    if plan.pair_id != intent.pair_id:
        reasons.append(f"plan is for pair {plan.pair_id}, intent for {intent.pair_id}")
    if not ZERO < plan.size <= intent.size:
        reasons.append(f"plan size {plan.size} is not within (0, {intent.size}]")
    if yes.venue == no.venue or (intent.yes_venue is not None and yes.venue != intent.yes_venue):
        reasons.append(f"plan buys YES on {yes.venue} and NO on {no.venue}; the intent says YES on "
                       f"{intent.yes_venue or 'either venue'}, NO on the other")  # fmt: skip
    if plan.edge < intent.edge:
        reasons.append(f"plan edge {plan.edge:.4f} is below the intent's {intent.edge}")
    if intent.limit is not None:
        reasons += [f"{lp.venue} leg limit {lp.limit} is above the intent's limit {intent.limit}"
                    for lp in plan.legs if lp.limit > intent.limit]  # fmt: skip
    if reasons:
        raise IntentRefused("plan", reasons)


def _order_from_row(row: Mapping[str, Any]) -> LegOrder:
    return LegOrder(
        row["venue"], row["market"], row["side"], row["outcome"], Decimal(row["price"]), Decimal(row["size"]),
        row["time_in_force"], row["purpose"], row["leg"], str(row["intent_id"] or ""), row["pair_ref"],
        row["client_order_id"], row["venue_order_id"], user_ref=row["user_ref"],
    )  # fmt: skip


def _result_from_row(order: LegOrder, row: Mapping[str, Any]) -> OrderResult:
    avg = row["avg_price"]
    return OrderResult(order, row["status"], Decimal(row["filled"]), None if avg is None else Decimal(avg),
                       Decimal(row["fee"]), row["reason"] or "", row["resolved_by"] or "reply")  # fmt: skip


async def _fresh_headers(presigned: list[asyncio.Task[tuple[dict[str, str], float]]]) -> dict[str, str]:
    """The presigned headers for the hedge leg (waited for if still being signed), or {} when there are none,
    they failed, or they are older than PRESIGNED_MAX_AGE_S (then the order is signed at its send)."""
    if not presigned:
        return {}
    try:
        headers, signed_at = await presigned[0]
    except Exception as exc:  # the hedge is signed at its send instead: never lost to an early signature
        log.warning("the hedge leg's presigned headers failed (%s); signing at the send", exc)
        return {}
    return headers if time.monotonic() - signed_at <= PRESIGNED_MAX_AGE_S else {}


def _planned(o: LegOrder) -> dict[str, str]:
    return {"leg": o.leg, "venue": o.venue, "market": o.market, "side": o.side, "outcome": o.outcome,
            "limit": str(o.price), "size": str(o.size), "tif": o.tif, "client_order_id": o.client_order_id}  # fmt: skip


def _spec(intent: LimitIntent | PairIntent | RouteIntent) -> dict[str, str]:
    return {k: str(v) for k, v in vars(intent).items()}


def _brief(r: OrderResult) -> dict[str, str]:
    o = r.order
    return {"venue": o.venue, "client_order_id": o.client_order_id, "side": o.side, "outcome": o.outcome,
            "status": r.status, "filled": str(r.filled), "avg_price": str(r.avg_price),
            "by": r.resolved_by}  # fmt: skip
