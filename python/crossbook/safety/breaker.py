"""The breaker: per pair, is execution allowed right now, and if not, why (in words a trader reads).

A pair trips when either leg has had no fresh update or heartbeat for longer than the staleness
limit, when either book is invalid, when the pair is halted, or when its market's oracle request is
disputed. It re-arms by itself only when every one of those is clear again: fresh, valid data from
both legs and no open dispute. No data beats stale data.

The state is computed, never cached for decisions: :meth:`Breaker.evaluate` reads the books at the
moment it is asked. The background loop exists only to *publish* transitions (log, listeners, the
hub's topic) promptly: it wakes exactly when the next leg would turn stale, and at least every
``poll_s`` to notice invalid books and disputes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from crossbook.aio import join, wait_event

log = logging.getLogger("crossbook.breaker")

VENUE_LABEL = {"polymarket": "Polymarket", "kalshi": "Kalshi"}


class FreshnessView(Protocol):
    """What the breaker needs from market data (``crossbook.book.service.MarketData`` fits)."""

    def freshness(self, venue: str, market: str, now_ns: int | None = None) -> FreshnessLike: ...


class FreshnessLike(Protocol):
    @property
    def valid(self) -> bool: ...
    @property
    def connected(self) -> bool: ...
    @property
    def age_ms(self) -> float: ...
    @property
    def reason(self) -> str | None: ...


@dataclass(frozen=True)
class PairLegs:
    pair_id: str
    poly_asset: str  # the Polymarket outcome token the pair trades (YES side of the pair)
    kalshi_ticker: str
    condition_id: str = ""  # Polymarket condition id: what the UMA watcher keys disputes by


@dataclass(frozen=True)
class Dispute:
    request: str  # e.g. the question id / ancillary data hash, 0x-hex
    since_block: int


@dataclass(frozen=True)
class PairState:
    pair_id: str
    enabled: bool
    reasons: tuple[str, ...]
    at_ns: int
    disputed: bool = False
    stale: bool = False

    def describe(self) -> str:
        if self.enabled:
            return f"pair {self.pair_id}: execute enabled"
        return f"pair {self.pair_id}: execute disabled, because " + "; ".join(self.reasons)


@dataclass
class _PairRecord:
    legs: PairLegs
    halted: bool = False
    dispute: Dispute | None = None
    last: PairState | None = None
    transitions: list[PairState] = field(default_factory=list)


class Breaker:
    def __init__(
        self,
        md: FreshnessView,
        *,
        stale_after_ms: int = 500,
        poll_s: float = 0.02,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.md = md
        # MarketData's one-call test of a leg (the same rules as freshness(), no words), if md has one.
        self._fresh_within: Callable[[str, str, int, float], bool] | None = getattr(md, "fresh_within", None)
        self.stale_after_ms = stale_after_ms
        self.poll_s = poll_s
        self.clock = clock
        self._pairs: dict[str, _PairRecord] = {}
        self._listeners: list[Callable[[PairState], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    # -- configuration -------------------------------------------------------------------------
    def add_pair(self, legs: PairLegs, *, halted: bool = False) -> None:
        self._pairs[legs.pair_id] = _PairRecord(legs, halted=halted)
        self._wake.set()

    def pairs(self) -> list[PairLegs]:
        return [r.legs for r in self._pairs.values()]

    def add_listener(self, fn: Callable[[PairState], None]) -> None:
        """Called on every transition (enabled ↔ disabled, or a change of reasons)."""
        self._listeners.append(fn)

    def set_halted(self, pair_id: str, halted: bool) -> None:
        self._record(pair_id).halted = halted
        self._wake.set()

    def set_dispute(self, condition_id: str, dispute: Dispute | None) -> list[str]:
        """Open (or, with ``None``, settle) a dispute on every pair of that condition id."""
        hit = [r.legs.pair_id for r in self._pairs.values() if r.legs.condition_id == condition_id]
        for pid in hit:
            self._pairs[pid].dispute = dispute
        self._wake.set()
        return hit

    def dispute_of(self, pair_id: str) -> Dispute | None:
        return self._record(pair_id).dispute

    def _record(self, pair_id: str) -> _PairRecord:
        try:
            return self._pairs[pair_id]
        except KeyError:
            raise KeyError(f"unknown pair {pair_id!r}; known: {', '.join(sorted(self._pairs)) or 'none'}") from None

    # -- the decision --------------------------------------------------------------------------
    def evaluate(self, pair_id: str, now_ns: int | None = None) -> PairState:
        rec = self._record(pair_id)
        now = self.clock() if now_ns is None else now_ns
        # The common case first, read without words: both legs fresh (market data that can say so in one
        # call: MarketData.fresh_within, the same test as below), no halt, no dispute.
        fresh = self._fresh_within
        if (fresh is not None and not rec.halted and rec.dispute is None
                and fresh("polymarket", rec.legs.poly_asset, now, self.stale_after_ms)
                and fresh("kalshi", rec.legs.kalshi_ticker, now, self.stale_after_ms)):  # fmt: skip
            return PairState(pair_id, True, (), now, False, False)
        reasons: list[str] = []
        stale = False
        for venue, market in (("polymarket", rec.legs.poly_asset), ("kalshi", rec.legs.kalshi_ticker)):
            f = self.md.freshness(venue, market, now)
            label = VENUE_LABEL[venue]
            if not f.connected:
                reasons.append(f"{label} feed disconnected")
                stale = True
            elif not f.valid:
                reasons.append(f"{label} book invalid: {f.reason or 'no snapshot'}")
                stale = True
            elif f.age_ms > self.stale_after_ms:
                age = "no data yet" if f.age_ms == float("inf") else f"stale for {f.age_ms:.0f} ms"
                reasons.append(f"{label} book {age}")
                stale = True
        if rec.halted:
            reasons.append("pair halted")
        if rec.dispute is not None:
            reasons.append(f"UMA dispute on {rec.dispute.request}, since block {rec.dispute.since_block}")
        return PairState(pair_id, not reasons, tuple(reasons), now, rec.dispute is not None, stale)

    def states(self) -> list[PairState]:
        now = self.clock()
        return [self.evaluate(pid, now) for pid in self._pairs]

    def _next_deadline_ns(self, now: int) -> int:
        """When the earliest enabled pair would turn stale if nothing new arrives."""
        limit = self.stale_after_ms * 1_000_000
        soonest = now + int(self.poll_s * 1e9)
        for rec in self._pairs.values():
            if rec.last is None or not rec.last.enabled:
                continue
            for venue, market in (("polymarket", rec.legs.poly_asset), ("kalshi", rec.legs.kalshi_ticker)):
                f = self.md.freshness(venue, market, now)
                if f.age_ms != float("inf"):
                    soonest = min(soonest, now - int(f.age_ms * 1e6) + limit + 1)
        return soonest

    def check_all(self) -> list[PairState]:
        """Evaluate every pair; publish and return the ones whose state changed."""
        changed = []
        now = self.clock()
        for pid, rec in self._pairs.items():
            st = self.evaluate(pid, now)
            prev = rec.last
            rec.last = st
            if prev is not None and prev.enabled == st.enabled and prev.reasons == st.reasons:
                continue
            if prev is None and st.enabled:
                log.info("pair %s: execute enabled", pid)
            elif st.enabled:
                log.warning("pair %s: execute RE-ARMED (fresh, valid data from both legs; no dispute)", pid)
            elif prev is None or prev.enabled:
                log.warning("pair %s: execute DISABLED: %s", pid, "; ".join(st.reasons))
            else:
                log.info("pair %s: still disabled: %s", pid, "; ".join(st.reasons))
            rec.transitions.append(st)
            del rec.transitions[:-100]
            changed.append(st)
            for fn in self._listeners:
                try:
                    fn(st)
                except Exception:  # a listener's bug must not stop the breaker
                    log.exception("breaker listener failed")
        return changed

    def transitions(self, pair_id: str) -> list[PairState]:
        return list(self._record(pair_id).transitions)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="breaker")
        return self._task

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        await join(self._task)
        self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            self.check_all()
            now = self.clock()
            delay = max(0.0, (self._next_deadline_ns(now) - now) / 1e9)
            self._wake.clear()
            await wait_event(self._wake, delay)


def legs_of(pairs: Iterable[PairLegs]) -> list[tuple[str, str]]:
    """The (venue, market) subscriptions a set of pairs needs."""
    out: list[tuple[str, str]] = []
    for p in pairs:
        out += [("polymarket", p.poly_asset), ("kalshi", p.kalshi_ticker)]
    return out
