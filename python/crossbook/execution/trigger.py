"""Edge trigger: a standing pair intent armed on a pair, fired by the book changes of either leg.

An :class:`EdgeIntent` says "buy YES on one venue and NO on the other when one share of each costs
less than ``1 - edge`` after both venues' fees, up to ``size`` shares, no leg above ``limit``". The
:class:`EdgeTrigger` subscribes to the market-data change dispatcher (``MarketData.add_change_consumer``:
the one reader of ``BookSet.take_changed``, already feeding Redis and the hub), so it runs once per
burst of frames that moved a top of book or a book's validity, never per level.

The hot path is ordered cheapest first, because almost every change shows no edge:

1. top of book of both legs (``BookSet.top``: two small dicts, four Decimal parses) against
   ``1 - edge`` with the fee *rate* the sizing walk uses for its first share — a necessary condition
   for any size, so a miss here is exact, not a heuristic;
2. the breaker (fresh, valid, not halted, undisputed): a stale or tripped pair never fires;
3. sizing: when both best levels hold the whole ``size`` (the common case for a modest size) the top
   of book is the plan (``plan_at_top``: fees per fill, no depth read); otherwise full sizing over both
   books (``plan_pair``) within ``limit``, over at most ``depth`` levels;
4. begin ``Executor.start_pair_trade`` with that plan at once (the gate, then the first leg's signing
   request leaves in the same stretch), and finish it in a task the trigger owns.

Compiled first look: over a ``crossbook.BookSet`` each armed intent has an ``EdgeWatch`` (Rust,
``crossbook_book::edge``) that makes steps 1 and 3's top-of-book case in one call, in exact integers
(property-tested against this module's Python path). It runs from ``MarketData``'s frame listener right
after each frame of an armed leg is applied (:meth:`EdgeTrigger.on_frame`), a loop turn before the batched
dispatch. No edge: done, in a few µs. An edge the top of book holds whole, on books fresh by their frames
or their connections' heartbeats, while the breaker's last transition said "enabled", the pair is Verified
and the kill switch is off: the first leg's signing request leaves at once (made by the check itself and
written by ``Executor.send_first_leg``; else ``Executor.begin_first_leg``), and the plan, the breaker and
the gate (steps 2–4, the same Python code) run while the signer signs; nothing reaches a venue unless they
all agree, else the signature is dropped and the compiled look stays off until the breaker's next
"enabled". When they agree, ``Executor.start_pair_trade(sent=...)`` may take the signer's reply and write
the order's POST in that same turn, before anything else is built (docs/execution.md, "the direct send").
Any other edge (depth, a smaller size, a stale leg) waits for the change dispatch and takes the Python path
below, gate first.

The executor takes the trigger's plan instead of sizing again: it checks the plan against the intent
(direction, size, edge, no leg above ``limit``), then every leg passes the gate when its task runs, and
each order goes out at its planned limit. A frame landing between the trigger and the executor cannot
make it pay more: the FOK/FAK limit price is the plan's (≤ ``limit``), so a moved book fills it no
worse or not at all.

Firing policy: once per arming. While an intent is in flight the pair is not looked at again. When it
finishes, ``rearm`` decides: ``"manual"`` (default) leaves the pair spent until :meth:`EdgeTrigger.arm`
is called again; ``"after_close"`` re-arms once the finished intent was clean (hedged, no fill, or
unwound) **and** a later book change shows the edge closed, so one persisting edge that our orders did
not consume fires once, not on every tick. An ``exposed`` result or an unexpected error never re-arms
by itself: a person looks first. A refusal before any order left (``IntentRefused``: the gate or
sizing said no in the executor) keeps the pair armed; the next change tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Literal, Protocol

from crossbook._core import BookSet, EdgeWatch, FirstLegRequest
from crossbook.aio import cancel_and_wait
from crossbook.execution.errors import IntentRefused
from crossbook.execution.executor import Executor, SentFirstLeg
from crossbook.execution.models import (
    ONE,
    LegOrder,
    Outcome,
    PairIntent,
    PairMarkets,
    PairPlan,
    PairResult,
    TimeInForce,
    Venue,
)
from crossbook.execution.models import other as other_venue
from crossbook.execution.sizing import BookSource, CappedBooks, fee_rate, plan_at_top, plan_pair
from crossbook.safety.breaker import PairState

log = logging.getLogger("crossbook.execution.trigger")

RearmPolicy = Literal["manual", "after_close"]
TriggerState = Literal["armed", "in_flight", "cooling", "spent"]
_CLEAN = ("hedged", "no_fill", "unwound")


class TopSource(BookSource, Protocol):
    """What the trigger reads (``crossbook.BookSet`` fits): the top of book and, on an edge, depth."""

    def top(self, venue: str, market: str) -> Mapping[str, object]: ...


class ChangeFeed(Protocol):
    """Where book changes come from (``crossbook.book.service.MarketData`` fits)."""

    def add_change_consumer(self, fn: Callable[[list[tuple[str, str]]], object]) -> None: ...


@dataclass(frozen=True)
class EdgeIntent:
    """A standing pair intent. ``size`` (S) is the most to buy of each leg; ``limit`` (L) the most
    either leg may pay per share (None: only the edge bounds it); ``yes_venue`` fixes the direction
    (None: whichever has the edge, the larger one if both)."""

    pair_id: str
    size: Decimal
    edge: Decimal = Decimal("0.01")
    limit: Decimal | None = None
    yes_venue: Venue | None = None
    tif: TimeInForce = "FOK"

    def __post_init__(self) -> None:
        for name in ("size", "edge"):
            if not isinstance(getattr(self, name), Decimal):
                raise TypeError(f"EdgeIntent.{name} must be a Decimal (money is never a float)")
        if self.size <= 0:
            raise ValueError(f"EdgeIntent.size {self.size} must be above 0")
        if not Decimal(0) <= self.edge < ONE:
            raise ValueError(f"EdgeIntent.edge {self.edge} must be within [0, 1)")
        if self.limit is not None and (not isinstance(self.limit, Decimal) or not Decimal(0) < self.limit < ONE):
            raise ValueError(f"EdgeIntent.limit {self.limit!r} must be a Decimal strictly between 0 and 1")


@dataclass
class Firing:
    """One fire of a trigger: what was sent and what came of it (``result`` None while in flight)."""

    pair_id: str
    intent: PairIntent
    detected_ns: int  # time.monotonic_ns() when the change that showed the edge was looked at
    plan: PairPlan | None = None  # the sizing the executor trades along
    result: PairResult | None = None
    refused: str = ""  # IntentRefused text: nothing was sent
    error: str = ""  # anything else: the intent may be partly done; see the executor's records
    finished_ns: int = 0


@dataclass(frozen=True)
class _Edge:
    cost: Decimal  # per share, fee rates included
    yes_venue: Venue
    depth: Decimal  # shares both best levels hold
    yes_ask: Decimal
    no_ask: Decimal


@dataclass
class _Armed:
    intent: EdgeIntent
    markets: PairMarkets
    legs: tuple[tuple[Venue, str], tuple[Venue, str]]  # (venue, book market) of both legs
    directions: tuple[Venue, ...]
    # Per direction: (YES venue, NO venue, the outcome each leg buys in its own book's terms), fixed at arming.
    sides: tuple[tuple[Venue, Venue, Outcome, Outcome], ...] = ()
    state: TriggerState = "armed"
    task: asyncio.Task[None] | None = None
    last_refusal: str = ""
    fires: int = 0
    disarmed: bool = False
    # The compiled first look (``crossbook._core.EdgeWatch``) over a ``BookSet``; None: the Python path only.
    watch: EdgeWatch | None = None


class EdgeTrigger:
    """Standing edge intents over live books, fired through one :class:`Executor`."""

    def __init__(
        self,
        executor: Executor,
        *,
        books: TopSource | None = None,
        rearm: RearmPolicy = "manual",
        depth: int = 10,
        on_fire: Callable[[Firing], None] | None = None,
        on_done: Callable[[Firing], None] | None = None,
        history: int = 100,
        keep_warm_s: float | None = None,
    ) -> None:
        if rearm not in ("manual", "after_close"):
            raise ValueError(f"rearm must be 'manual' or 'after_close', not {rearm!r}")
        self.executor = executor
        # The executor's books are the feeds' BookSet in the daemon; the trigger reads the same one.
        self.books: TopSource = books if books is not None else executor.books  # type: ignore[assignment]
        self.rearm = rearm
        self.depth = depth
        self.on_fire = on_fire
        self.on_done = on_done
        self.firings: deque[Firing] = deque(maxlen=history)
        self._armed: dict[str, _Armed] = {}
        self._by_leg: dict[tuple[str, str], list[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        # Between edges the breaker, sizing and order code never runs, and a tick after a quiet spell finds
        # it cold (several times slower measured here). ``keep_warm_s`` runs that path dry (no fire, no
        # signature, nothing sent: ``_dry_run``) this often.
        self.keep_warm_s = keep_warm_s
        self._warmer: asyncio.Task[None] | None = None
        self._feed: ChangeFeed | None = None
        self._bookset = self.books if isinstance(self.books, BookSet) else None
        self._breaker = executor.gate.breaker
        self._breaker.add_listener(self._on_breaker)

    # -- arming ------------------------------------------------------------------------------------
    def attach(self, feed: ChangeFeed) -> None:
        """Subscribe to the feeds' change dispatcher (the same one Redis and the hub read)."""
        feed.add_change_consumer(self.on_changes)
        self._feed = feed
        add_frame_listener = getattr(feed, "add_frame_listener", None)
        if add_frame_listener is not None:
            add_frame_listener(self.on_frame)

    def arm(self, intent: EdgeIntent) -> None:
        """Arm (or re-arm) ``intent`` on its pair. Refused while an intent of that pair is in flight.
        If the books already show the edge, it fires at the next book change of either leg (or at
        once, from inside a running event loop)."""
        pm = self.executor.markets.get(intent.pair_id)
        if pm is None:
            raise IntentRefused("pair", [f"unknown pair {intent.pair_id}: not in the execution catalog"])
        cur = self._armed.get(intent.pair_id)
        if cur is not None and cur.state == "in_flight":
            raise IntentRefused("trigger", [f"pair {intent.pair_id} has an intent in flight; arm it after it ends"])
        legs: tuple[tuple[Venue, str], tuple[Venue, str]] = (
            ("polymarket", pm.book_market("polymarket")), ("kalshi", pm.book_market("kalshi")),
        )  # fmt: skip
        directions: tuple[Venue, ...] = (intent.yes_venue,) if intent.yes_venue else ("polymarket", "kalshi")
        sides = tuple((v, other_venue(v), pm.instrument(v, "yes")[1], pm.instrument(other_venue(v), "no")[1])
                      for v in directions)  # fmt: skip
        watch = self._watch(intent, pm, legs, sides)
        self._armed[intent.pair_id] = _Armed(intent, pm, legs, directions, sides, fires=cur.fires if cur else 0,
                                             watch=watch)  # fmt: skip
        for leg in legs:
            ids = self._by_leg.setdefault(leg, [])
            if intent.pair_id not in ids:
                ids.append(intent.pair_id)
        self._stopping = False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self.keep_warm_s and self._warmer is None:
            self._warmer = loop.create_task(self._keep_warm(self.keep_warm_s), name="edge-trigger-warmer")
        self.evaluate(intent.pair_id)

    def disarm(self, pair_id: str) -> None:
        """Stop watching ``pair_id``. An intent already in flight finishes (orders are never abandoned)."""
        a = self._armed.pop(pair_id, None)
        if a is None:
            return
        a.disarmed = True
        for leg in a.legs:
            ids = self._by_leg.get(leg, [])
            if pair_id in ids:
                ids.remove(pair_id)

    def _watch(
        self, intent: EdgeIntent, pm: PairMarkets, legs: tuple[tuple[Venue, str], tuple[Venue, str]],
        sides: tuple[tuple[Venue, Venue, Outcome, Outcome], ...],
    ) -> EdgeWatch | None:  # fmt: skip
        """The compiled first look for ``intent`` when the books are a ``BookSet`` (None otherwise, or for
        numbers finer than 10^-6: the Python path then does everything)."""
        if self._bookset is None:
            return None
        link = getattr(self._feed, "link", None)
        try:
            watch = EdgeWatch(
                legs, [(yv, yo, nv, no) for yv, nv, yo, no in sides],
                edge=_plain(intent.edge), limit=None if intent.limit is None else _plain(intent.limit),
                size=_plain(intent.size), min_size=_plain(max(ONE, pm.poly_min_size)),
                poly_fee_bps=self.executor.poly_fee_bps, stale_ms=self._breaker.stale_after_ms,
                links=(link(*legs[0]), link(*legs[1])) if link is not None else None,
            )  # fmt: skip
        except ValueError as exc:
            log.info("pair %s: the compiled edge check does not take this intent (%s); the Python path does",
                     intent.pair_id, exc)  # fmt: skip
            return None
        try:
            watch.enabled = self._breaker.evaluate(intent.pair_id).enabled
        except KeyError:
            watch.enabled = False
        # The first leg's signing request made in the fire itself, when the first venue's signer takes a frame
        # made that way (the signer service's fast path): written before any Python runs for the order.
        template = self.executor.first_leg_template(intent.pair_id, intent.tif)
        if template is not None:
            try:
                watch.set_first_leg(**template)  # type: ignore[arg-type]
            except ValueError as exc:
                log.info("pair %s: the compiled check does not make this first leg (%s); the executor does",
                         intent.pair_id, exc)  # fmt: skip
        return watch

    def _on_breaker(self, st: PairState) -> None:
        """A breaker transition: the compiled path fires only while the breaker's last word was "enabled"
        (and after a refusal, not until the next one). The full path reads the breaker itself."""
        a = self._armed.get(st.pair_id)
        if a is not None and a.watch is not None:
            a.watch.enabled = st.enabled

    def state(self, pair_id: str) -> TriggerState | None:
        a = self._armed.get(pair_id)
        return None if a is None else a.state

    def armed(self) -> dict[str, tuple[EdgeIntent, TriggerState, int]]:
        """Every watched pair: its standing intent, state and how often it fired since armed."""
        return {pid: (a.intent, a.state, a.fires) for pid, a in self._armed.items()}

    def last_firing(self, pair_id: str) -> Firing | None:
        return next((f for f in reversed(self.firings) if f.pair_id == pair_id), None)

    def busy(self) -> bool:
        """An intent is in flight (the daemon's managed GC waits for a quiet moment meanwhile)."""
        return any(not t.done() for t in self._tasks)

    # -- the hot path ------------------------------------------------------------------------------
    def on_changes(self, changed: list[tuple[str, str]]) -> None:
        """Change consumer: look at every armed pair with a leg among ``changed`` (each pair once)."""
        by_leg = self._by_leg
        if not by_leg:
            return
        seen: set[str] | None = None
        for key in changed:
            ids = by_leg.get(key)
            if not ids:
                continue
            for pid in ids:
                if seen is None:
                    seen = {pid}
                elif pid in seen:
                    continue
                else:
                    seen.add(pid)
                try:
                    self.evaluate(pid)
                except Exception:  # one pair's failure must not starve the others in this batch
                    log.exception("pair %s: trigger evaluation failed", pid)

    def on_frame(self, venue: str, markets: tuple[str, ...]) -> None:
        """Frame listener (``MarketData.add_frame_listener``): right after a frame is applied, before the
        batched dispatch, the compiled check of every armed pair on those books fires an edge the top of book
        holds; anything else waits for :meth:`on_changes` (which runs when a top of book moved)."""
        by_leg = self._by_leg
        if not by_leg or self._bookset is None or self._stopping:
            return
        for market in markets:
            for pid in by_leg.get((venue, market), ()):
                a = self._armed.get(pid)
                if a is None or a.state != "armed" or a.watch is None:
                    continue
                now = time.monotonic_ns()
                hit = a.watch.check(self._bookset, self._breaker.clock())
                if hit:  # a fire; None (no edge) and False (the full path's) wait for on_changes
                    try:
                        self._fire_at_top(a, now, hit, fall_back=False)
                    except Exception:
                        log.exception("pair %s: trigger evaluation failed", pid)

    def evaluate(self, pair_id: str) -> bool:
        """Check one pair now; True if it fired. Synchronous: nothing awaits between the look at the
        books, the gate and the first leg's signing request (``Executor.start_pair_trade``); the rest of
        the intent runs in the task created here."""
        a = self._armed.get(pair_id)
        if a is None or self._stopping:
            return False
        if a.state == "in_flight" or a.state == "spent":
            return False
        now = time.monotonic_ns()
        watch = a.watch
        if watch is not None and a.state == "armed" and self._bookset is not None:
            hit = watch.check(self._bookset, self._breaker.clock())
            if hit is None:
                return False  # no edge: exactly what the top check below would say
            if hit is not False:
                return self._fire_at_top(a, now, hit)
        return self._full(a, now)

    def _full(self, a: _Armed, now: int) -> bool:
        """The Python path: the top check, the breaker, sizing (at the top or over depth), then the gate
        before the first leg's signing request."""
        directions = self._top_edge(a)
        if a.state == "cooling":
            if not directions:
                a.state = "armed"  # the edge closed after the last fire: the next opening may fire
                log.info("pair %s: edge closed, trigger re-armed", a.intent.pair_id)
            return False
        if not directions:
            return False
        self.executor.prime()  # the signer wakes while the checks below run
        try:
            state = self._breaker.evaluate(a.intent.pair_id)
        except KeyError:  # the breaker does not watch this pair: nothing vouches for its data
            return False
        if not state.enabled:
            return False  # stale, invalid, halted, disputed or unwatched: no data is better than stale data
        whole = a.intent.size.to_integral_value(ROUND_FLOOR)
        best = directions[0]
        plan = None
        if best.depth >= a.intent.size:
            # Both best levels hold the whole size: the walk would stay on them (within the limit, checked at
            # the top), so the top of book is the plan; no depth is read.
            plan = plan_at_top(a.markets, best.yes_venue, whole, best.yes_ask, best.no_ask, a.intent.edge,
                               self.executor.poly_fee_bps)  # fmt: skip
        if plan is None:
            plan = self._size(a, tuple(e.yes_venue for e in directions))
            if plan is None:
                return False
        return self._launch(a, now, plan, state, None)

    def _fire_at_top(
        self, a: _Armed, now: int, hit: tuple[int, str, str, int, FirstLegRequest | None],
        fall_back: bool = True,
    ) -> bool:  # fmt: skip
        """The compiled check fired: both best levels hold the size, the plan at the top keeps the edge and
        both books are fresh. The first leg's signing request leaves first; the plan, the breaker and the
        gate are read while the signer signs, and nothing reaches a venue unless they all agree (else the
        signature is dropped). ``fall_back``: when the compiled path cannot go on (kill switch, pair not
        Verified, a disagreeing plan), hand the pair to the Python path now; False (the frame listener):
        leave it to the change dispatch that follows, so one book change is judged once."""
        direction, yes_ask, no_ask, shares, made = hit
        ex = self.executor
        if ex.kill_switch is not None or not ex.gate.verified(a.intent.pair_id):
            # the gate will refuse: the full path records it, and nothing is signed
            return self._full(a, now) if fall_back else False
        # The signing request made by the check itself leaves first (None: the fast path is down; the executor
        # then makes and sends the request below, as without a first leg set).
        sent = None if made is None else ex.send_first_leg(made.frame, made.call_id)
        yes_venue, no_venue, yes_outcome, no_outcome = a.sides[direction]
        ya, na, size = Decimal(yes_ask), Decimal(no_ask), Decimal(shares)
        if yes_venue == ex.first_venue:
            leg: tuple[Venue, Outcome, Decimal] = (yes_venue, yes_outcome, ya)
        else:
            leg = (no_venue, no_outcome, na)
        first = asked = None
        if sent is not None and made is not None:  # written: the order is made after the checks (or after its send)
            asked = SentFirstLeg(sent, made, (*leg, size))
        else:
            try:
                first = ex.begin_first_leg(a.intent.pair_id, a.intent.tif, *leg, size)
            except IntentRefused:
                return self._full(a, now) if fall_back else False
        # -- the signer is signing; everything below runs meanwhile --
        plan = plan_at_top(a.markets, yes_venue, size, ya, na, a.intent.edge, ex.poly_fee_bps)
        try:
            state: PairState | None = self._breaker.evaluate(a.intent.pair_id)
        except KeyError:
            state = None
        if plan is None or state is None or not state.enabled:
            if first is not None:
                first[1].close()  # never sent: the signature is dropped
            if asked is not None:
                ex.forget_first_leg(asked)
            assert a.watch is not None
            a.watch.enabled = False  # until the breaker's next "enabled" (or a fire by the full path)
            if plan is None:  # the compiled check and plan_at_top must agree: a bug, not a market event
                log.error("pair %s: the compiled edge check fired on %s but plan_at_top refused it; "
                          "the Python path decides for this arming", a.intent.pair_id, hit)  # fmt: skip
                return self._full(a, now) if fall_back else False
            return False
        return self._launch(a, now, plan, state, first, asked)

    def _launch(
        self, a: _Armed, now: int, plan: PairPlan, state: PairState,
        first: tuple[LegOrder, Coroutine[Any, Any, None]] | None, sent: SentFirstLeg | None = None,
    ) -> bool:  # fmt: skip
        pair_id = a.intent.pair_id
        intent = _pair_intent(a.intent, plan)
        firing = Firing(pair_id, intent, now, plan)
        a.fires += 1
        self.firings.append(firing)
        try:
            # Begun here, in this stretch: the gate passes on the breaker state just read and the first
            # leg's signing request leaves now (or has left: ``first``); the task created below does the rest.
            run = self.executor.start_pair_trade(intent, plan, state, first=first, sent=sent)
        except IntentRefused as refused:  # nothing was sent: the pair stays armed
            if (first is not None or sent is not None) and a.watch is not None:
                a.watch.enabled = False  # no more signatures asked ahead of a gate that refuses
            firing.refused, firing.finished_ns = str(refused), time.monotonic_ns()
            self._refused(a, firing.refused)
            if self.on_fire is not None:
                self.on_fire(firing)
            if self.on_done is not None:
                self.on_done(firing)
            return True
        if first is None and sent is None and a.watch is not None:
            a.watch.enabled = True  # the gate passed: the compiled path may fire again
        a.state = "in_flight"
        a.task = asyncio.get_running_loop().create_task(self._run(a, firing, run), name=f"edge-trigger:{pair_id}")
        self._tasks.add(a.task)  # owned here until done (a disarmed pair's task too)
        a.task.add_done_callback(self._tasks.discard)
        if self.on_fire is not None:
            self.on_fire(firing)
        return True

    def _top_edge(self, a: _Armed) -> list[_Edge]:
        """The directions whose best YES ask + best NO ask + fee rates is below ``1 - edge``, both within
        the limit, cheapest first, each with the shares both best levels hold; empty if none. A missing
        or invalid book is no edge."""
        books = self.books
        tops: dict[Venue, Mapping[str, object]] = {}
        for venue, market in a.legs:
            try:
                t = books.top(venue, market)
            except KeyError:
                return []
            if not t.get("valid"):
                return []
            tops[venue] = t
        intent = a.intent
        cap = ONE - intent.edge
        limit = intent.limit
        bps = self.executor.poly_fee_bps  # fee rates as the sizing walk compares them per share
        found: list[_Edge] = []
        for yes_venue, no_venue, yes_outcome, no_outcome in a.sides:
            ya = _ask(tops[yes_venue], yes_outcome)
            na = _ask(tops[no_venue], no_outcome)
            if ya is None or na is None:
                continue
            if limit is not None and (ya > limit or na > limit):
                continue
            cost = ya + na + fee_rate(yes_venue, ya, bps) + fee_rate(no_venue, na, bps)
            if cost < cap:
                depth = min(_ask_size(tops[yes_venue], yes_outcome), _ask_size(tops[no_venue], no_outcome))
                found.append(_Edge(cost, yes_venue, depth, ya, na))
        if len(found) > 1:
            found.sort(key=lambda e: e.cost)
        return found

    def _size(self, a: _Armed, directions: tuple[Venue, ...]) -> PairPlan | None:
        """Full sizing, only in the directions the top of book showed an edge in (a direction without
        one at the top has none deeper: the walk would stop at its first share)."""
        view = CappedBooks(self.books, a.intent.limit, self.depth)
        plans: list[PairPlan] = []
        for v in directions:
            try:
                p = plan_pair(view, a.markets, v, a.intent.size, a.intent.edge, self.executor.poly_fee_bps)
            except IntentRefused:
                continue  # a book went invalid between the top check and here
            if p is not None:
                plans.append(p)
        return max(plans, key=lambda p: (p.edge * p.size, p.size)) if plans else None

    # -- the fired intent --------------------------------------------------------------------------
    def _refused(self, a: _Armed, text: str) -> None:
        """Log a refusal once until its reasons change."""
        if text != a.last_refusal:
            log.warning("pair %s: edge seen but the executor refused: %s", a.intent.pair_id, text)
            a.last_refusal = text

    async def _run(self, a: _Armed, firing: Firing, run: Coroutine[Any, Any, PairResult]) -> None:
        try:
            firing.result = await run
        except IntentRefused as refused:
            firing.refused = str(refused)
        except Exception as exc:  # the pair may be half traded: never re-armed by itself
            firing.error = f"{type(exc).__name__}: {exc}"
            log.exception("pair %s: fired intent failed", a.intent.pair_id)
        finally:
            firing.finished_ns = time.monotonic_ns()
            a.task = None
        if a.disarmed:
            a.state = "spent"
        elif firing.refused:
            self._refused(a, firing.refused)  # nothing left: the pair stays armed
            a.state = "armed"
        elif firing.result is not None and firing.result.status in _CLEAN and self.rearm == "after_close":
            a.state = "cooling"
        else:
            a.state = "spent"
            if firing.result is not None:
                log.info("pair %s: trigger fired (%s); arm again to trade it again", a.intent.pair_id,
                         firing.result.status)  # fmt: skip
        if self.on_done is not None:
            self.on_done(firing)
        if a.state == "cooling":
            self.evaluate(a.intent.pair_id)  # the edge may already be gone

    def in_flight(self) -> list[asyncio.Task[None]]:
        return [t for t in self._tasks if not t.done()]

    async def _keep_warm(self, every_s: float) -> None:
        tick = 0
        while not self._stopping:
            await asyncio.sleep(every_s)
            tick += 1
            for a in list(self._armed.values()):
                if a.state != "armed":
                    continue
                try:
                    self._dry_run(a, depth=tick % 10 == 0)
                except Exception:  # a dry run must never take the trigger down
                    log.debug("warm-up of %s failed", a.intent.pair_id, exc_info=True)

    def _dry_run(self, a: _Armed, depth: bool = False) -> None:
        """The fire path without firing: top check, breaker, a plan at the top and the executor's
        synchronous start (gate, leg orders, the signing request built but not sent); with ``depth`` the
        sizing walk too. Every result is dropped: only the caches matter here."""
        if a.watch is not None and self._bookset is not None:
            a.watch.check(self._bookset, self._breaker.clock())
        self._top_edge(a)
        state = self.executor.gate.breaker.evaluate(a.intent.pair_id)
        whole = a.intent.size.to_integral_value(ROUND_FLOOR)
        price = a.markets.poly_tick  # any price: this plan is never sent
        plan = plan_at_top(a.markets, a.directions[0], whole, price, price, a.intent.edge, self.executor.poly_fee_bps)
        if plan is not None:
            self.executor.warm_pair_trade(_pair_intent(a.intent, plan), plan, state)
        if depth:
            self._size(a, a.directions)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop firing; wait (bounded) for intents in flight. They are never cancelled: a pair trade
        cut between its legs would leave exactly the naked exposure the executor exists to avoid."""
        self._stopping = True
        await cancel_and_wait(self._warmer)
        self._warmer = None
        tasks = self.in_flight()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for t in pending:
                log.error("trigger intent %s still in flight after %.1fs; leaving it to the executor's records",
                          t.get_name(), timeout)  # fmt: skip


def _pair_intent(standing: EdgeIntent, plan: PairPlan) -> PairIntent:
    """The pair intent a fire of ``standing`` trades: the plan's size, in the plan's direction."""
    return PairIntent(standing.pair_id, plan.size, standing.edge, plan.legs[0].venue, standing.tif, standing.limit)


def _ask_size(top: Mapping[str, object], outcome: Outcome) -> Decimal:
    raw = top.get("ask_size") if outcome == "yes" else top.get("bid_size")
    return Decimal(raw) if isinstance(raw, str) and raw else Decimal(0)


def _ask(top: Mapping[str, object], outcome: Outcome) -> Decimal | None:
    """Best ask of ``outcome`` from a YES top of book: the YES ask, or 1 − the YES bid for NO."""
    raw = top.get("ask") if outcome == "yes" else top.get("bid")
    if not isinstance(raw, str) or not raw:
        return None
    p = Decimal(raw)
    return p if outcome == "yes" else ONE - p


__all__ = ["EdgeIntent", "EdgeTrigger", "Firing", "RearmPolicy", "TriggerState"]


def _plain(d: Decimal) -> str:
    """A Decimal as a plain decimal string (never an exponent), for the compiled check."""
    return format(d, "f")
