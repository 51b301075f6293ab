"""The gate: every intent passes here first, and a refusal lists every reason in a trader's words.

Checks, all of them every time (a refusal names each rule that failed, not just the first):
  - the intent itself is sane (price strictly between 0 and 1, size above 0);
  - the pair exists and is **Verified** (a false "same market" leaves naked exposure);
  - the breaker: fresh, valid books on both legs; not halted; no open oracle dispute — except that a
    *reduce-only* intent may still pass during a dispute, under the slippage guard;
  - the slippage guard: while the market is disputed, an intent priced more than 0.1 % from the
    pair's last undisputed price is refused.

Prices are compared on one scale: the Polymarket YES price of the pair (a NO price p is 1 − p, and an
inverted Kalshi leg is flipped once more).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Protocol

from crossbook.safety.breaker import Breaker, PairState

ONE = Decimal(1)
DEFAULT_CAP = Decimal("0.001")  # 0.1 %


@dataclass(frozen=True)
class Intent:
    venue: Literal["polymarket", "kalshi"]
    side: Literal["buy", "sell"]
    outcome: Literal["yes", "no"]
    price: Decimal
    size: Decimal
    reduce_only: bool = False


@dataclass
class PairInfo:
    pair_id: str
    logic_status: str  # "Verified" | "Unverified"
    polarity: str = "same"  # "same" | "inverted" (Kalshi YES pays when Polymarket NO does)
    last_undisputed_price: Decimal | None = None


class PairCatalog(Protocol):
    def get(self, pair_id: str) -> PairInfo | None: ...
    def set_last_undisputed_price(self, pair_id: str, price: Decimal) -> None: ...


@dataclass
class MemoryCatalog:
    """In-process catalog; the PostgreSQL store implements the same two methods."""

    pairs: dict[str, PairInfo] = field(default_factory=dict)

    def get(self, pair_id: str) -> PairInfo | None:
        return self.pairs.get(pair_id)

    def set_last_undisputed_price(self, pair_id: str, price: Decimal) -> None:
        self.pairs[pair_id].last_undisputed_price = price


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    reasons: tuple[str, ...]

    def __bool__(self) -> bool:
        return self.allowed

    def __str__(self) -> str:
        return "allowed" if self.allowed else "refused: " + "; ".join(self.reasons)


def pct(x: Decimal) -> str:
    return f"{(x * 100).quantize(Decimal('0.01'))} %"


class Gate:
    def __init__(self, breaker: Breaker, catalog: PairCatalog, *, slippage_cap: Decimal = DEFAULT_CAP) -> None:
        self.breaker = breaker
        self.catalog = catalog
        self.slippage_cap = slippage_cap

    def yes_price(self, info: PairInfo, intent: Intent) -> Decimal:
        p = intent.price if intent.outcome == "yes" else ONE - intent.price
        if intent.venue == "kalshi" and info.polarity == "inverted":
            p = ONE - p
        return p

    def verified(self, pair_id: str) -> bool:
        """The pair's two contracts are proven identical (``logic_status`` Verified): the one rule of
        :meth:`check_all` that neither the breaker nor the order's own numbers decide."""
        info = self.catalog.get(pair_id)
        return info is not None and info.logic_status == "Verified"

    def check(self, pair_id: str, intent: Intent) -> GateDecision:
        return self.check_all(pair_id, (intent,))

    def check_all(self, pair_id: str, intents: Sequence[Intent], state: PairState | None = None) -> GateDecision:
        """Every rule for several intents on one pair at one instant (both legs of a pair trade): the
        breaker is read once, so the legs are judged on the same state and its reasons are listed once.
        A reason that concerns one intent names its venue when there are several. ``state``: the breaker's
        reading of this pair taken by the caller in the same synchronous stretch (nothing can have changed
        since: no loop turn in between), used instead of reading it again."""
        reasons: list[str] = []

        def add(r: str, intent: Intent) -> None:
            r = f"{intent.venue} leg: {r}" if len(intents) > 1 else r
            if r not in reasons:
                reasons.append(r)

        for intent in intents:
            if not isinstance(intent.price, Decimal) or not isinstance(intent.size, Decimal):
                return GateDecision(False, ("price and size must be Decimal (never float)",))
            if not Decimal(0) < intent.price < ONE:
                add(f"price {intent.price} is outside (0, 1)", intent)
            if intent.size <= 0:
                add(f"size {intent.size} must be above 0", intent)
        info = self.catalog.get(pair_id)
        if info is None:
            return GateDecision(False, (*reasons, f"unknown pair {pair_id}"))
        if info.logic_status != "Verified":
            reasons.append(f"pair {pair_id} is {info.logic_status}: its two contracts are not proven identical")
        try:
            if state is None or state.pair_id != pair_id:
                state = self.breaker.evaluate(pair_id)
        except KeyError:
            return GateDecision(False, (*reasons, f"pair {pair_id} is not watched by the breaker"))
        dispute = self.breaker.dispute_of(pair_id) if state.disputed else None
        for r in state.reasons:
            if r.startswith("UMA dispute") and all(i.reduce_only for i in intents):
                continue  # reduce-only may unwind during a dispute, under the slippage guard below
            if r not in reasons:
                reasons.append(r)
        if dispute is not None:
            ref = info.last_undisputed_price
            if ref is None or ref <= 0:
                reasons.append("market disputed and no last undisputed price on record")
            else:
                for intent in intents:
                    if not Decimal(0) < intent.price < ONE:
                        continue
                    p = self.yes_price(info, intent)
                    dev = abs(p - ref) / ref
                    if dev > self.slippage_cap:
                        add(f"price {p.quantize(Decimal('0.0001'))} is {pct(dev)} from last undisputed "
                            f"{ref.quantize(Decimal('0.0001'))}, cap {pct(self.slippage_cap)}", intent)  # fmt: skip
        return GateDecision(not reasons, tuple(reasons))


class TopSource(Protocol):
    def top(self, venue: str, market: str) -> Mapping[str, object]: ...


def refresh_reference_prices(breaker: Breaker, catalog: PairCatalog, books: TopSource) -> int:
    """Keep each pair's last undisputed price current: the Polymarket YES mid, taken only while the
    pair is fully enabled (fresh, valid, undisputed, not halted). Returns how many were updated."""
    n = 0
    for legs in breaker.pairs():
        if not breaker.evaluate(legs.pair_id).enabled:
            continue
        top = books.top("polymarket", legs.poly_asset)
        bid, ask = top.get("bid"), top.get("ask")
        if not (isinstance(bid, str) and isinstance(ask, str) and bid and ask):
            continue
        catalog.set_last_undisputed_price(legs.pair_id, (Decimal(bid) + Decimal(ask)) / 2)
        n += 1
    return n
