"""What a trader asks for (intents), what goes to a venue (leg orders) and what came back (results).

Prices and sizes are ``Decimal`` everywhere (never float). Prices are per share/contract in dollars,
on the outcome actually traded (a NO order's price is the NO price).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

Venue = Literal["polymarket", "kalshi"]
Side = Literal["buy", "sell"]
Outcome = Literal["yes", "no"]
TimeInForce = Literal["FOK", "FAK", "GTC"]
Purpose = Literal["entry", "hedge", "unwind"]
# "refused": stopped before it was sent (the signer's session policy, or the order could not be built).
OrderStatus = Literal["filled", "partial", "open", "cancelled", "rejected", "refused", "not_found", "unknown"]

ONE = Decimal(1)
ZERO = Decimal(0)


def new_id() -> str:
    """A random (version 4) UUID in its canonical text form: what ``str(uuid.uuid4())`` gives, in a
    third of its time (ids are made on the order path)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def other(venue: Venue) -> Venue:
    return "kalshi" if venue == "polymarket" else "polymarket"


def flip(outcome: Outcome) -> Outcome:
    return "no" if outcome == "yes" else "yes"


@dataclass(frozen=True)
class PairMarkets:
    """One verified pair's tradable instruments. ``polarity`` "inverted": Kalshi YES pays when
    Polymarket NO does. ``pair_id`` is what the gate and breaker know the pair by."""

    pair_id: str
    poly_yes_token: str
    poly_no_token: str
    kalshi_ticker: str
    polarity: Literal["same", "inverted"] = "same"
    poly_tick: Decimal = Decimal("0.01")
    kalshi_tick: Decimal = Decimal("0.01")
    poly_min_size: Decimal = Decimal(5)

    def instrument(self, venue: Venue, outcome: Outcome) -> tuple[str, Outcome]:
        """(venue market id, venue outcome) for the pair's ``outcome`` (in Polymarket terms) on ``venue``."""
        if venue == "polymarket":
            return (self.poly_yes_token if outcome == "yes" else self.poly_no_token), outcome
        return self.kalshi_ticker, (outcome if self.polarity == "same" else flip(outcome))

    def book_market(self, venue: Venue) -> str:
        """The book market data keeps for this venue: the YES token (its NO token mirrors it) or the ticker."""
        return self.poly_yes_token if venue == "polymarket" else self.kalshi_ticker

    def tick(self, venue: Venue) -> Decimal:
        return self.poly_tick if venue == "polymarket" else self.kalshi_tick


@dataclass(frozen=True)
class LimitIntent:
    """Buy or sell one outcome on one venue at a limit (``outcome`` as on that venue)."""

    pair_id: str
    venue: Venue
    side: Side
    outcome: Outcome
    price: Decimal
    size: Decimal
    tif: TimeInForce = "FAK"
    reduce_only: bool = False


@dataclass(frozen=True)
class PairIntent:
    """Buy YES on one venue and NO on the other (one share of each pays exactly 1) when the combined
    cost after both venues' fees is below ``1 - edge``. ``size`` is the most to buy of each;
    ``yes_venue`` fixes the direction (None: the cheaper one); ``limit`` the most either planned leg may
    pay per share (None: only the edge bounds it)."""

    pair_id: str
    size: Decimal
    edge: Decimal = Decimal("0.01")
    yes_venue: Venue | None = None
    tif: TimeInForce = "FOK"
    limit: Decimal | None = None


@dataclass(frozen=True)
class RouteIntent:
    """Buy or sell ``size`` of one outcome (in the pair's terms: Polymarket's YES/NO; an inverted Kalshi
    leg is flipped for it) on whichever venue is cheaper after fees, split across both by depth, no
    worse than ``limit`` per share before fees."""

    pair_id: str
    side: Side
    outcome: Outcome
    size: Decimal
    limit: Decimal
    tif: TimeInForce = "FAK"


@dataclass(frozen=True)
class RouteLeg:
    venue: Venue
    market: str
    outcome: Outcome  # as on that venue
    size: Decimal
    limit: Decimal  # worst price walked on that venue
    cost: Decimal
    fee: Decimal


@dataclass
class RouteResult:
    intent_id: str
    legs: tuple[RouteLeg, ...]
    orders: list[OrderResult] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def filled(self) -> Decimal:
        return sum((r.filled for r in self.orders), ZERO)

    @property
    def status(self) -> str:
        planned = sum((leg.size for leg in self.legs), ZERO)
        if self.filled <= 0:
            return "no_fill"
        return "filled" if self.filled >= planned else "partial"


@dataclass(frozen=True)
class UnwindPolicy:
    """What to do with a filled leg whose other leg did not (fully) fill. ``complete``: buy the missing
    part of the other leg at up to its best ask plus ``band`` (FAK, through the gate, never at a pair
    cost of 1 or more), then flatten what is still naked; ``flatten``: sell it back on its own venue, no
    lower than the best bid minus ``band`` (FAK); ``none``: leave it and report exposure."""

    mode: Literal["complete", "flatten", "none"] = "flatten"
    band: Decimal = Decimal("0.05")


@dataclass
class LegOrder:
    """One order as sent to a venue. ``client_order_id`` is ours and idempotent; ``venue_order_id``
    is known before sending on Polymarket (the order hash) and from the reply on Kalshi."""

    venue: Venue
    market: str
    side: Side
    outcome: Outcome
    price: Decimal
    size: Decimal
    tif: TimeInForce
    purpose: Purpose = "entry"
    leg: str = ""
    intent_id: str = ""
    pair_id: str = ""
    client_order_id: str = field(default_factory=new_id)
    venue_order_id: str | None = None
    payload: bytes = b""
    user_ref: str = ""
    # Request headers signed over ``payload`` when it was built (Polymarket L2), for its one send. Never in
    # reprs or comparisons: they carry the API passphrase.
    headers: dict[str, str] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Fill:
    venue_trade_id: str
    price: Decimal
    size: Decimal
    fee: Decimal
    executed_at_ms: int


@dataclass
class OrderResult:
    order: LegOrder
    status: OrderStatus
    filled: Decimal = ZERO
    avg_price: Decimal | None = None
    fee: Decimal = ZERO
    reason: str = ""
    resolved_by: Literal["reply", "lookup", "none"] = "reply"
    fills: list[Fill] = field(default_factory=list)
    refused_at: str = ""  # the step that refused it (``signer``, ``order``) when status is "refused"

    @property
    def venue(self) -> Venue:
        return self.order.venue


@dataclass(frozen=True)
class LegPlan:
    venue: Venue
    market: str
    outcome: Outcome  # as on that venue
    limit: Decimal  # worst price the walk reached
    cost: Decimal  # sum of price × size over the levels walked
    fee: Decimal


@dataclass(frozen=True)
class PairPlan:
    """The sized pair trade: ``size`` of each leg, the YES leg first in ``legs``; ``edge`` is
    ``1 - (cost + fees) / size`` per share."""

    pair_id: str
    size: Decimal
    legs: tuple[LegPlan, LegPlan]
    total_cost: Decimal
    edge: Decimal


PairStatus = Literal["hedged", "no_fill", "unwound", "exposed"]


@dataclass
class RecoveredIntent:
    """What a restarted executor made of an intent it found unfinished in the store."""

    intent_id: str
    kind: str
    pair_id: str
    status: str
    orders: list[OrderResult] = field(default_factory=list)
    unwinds: list[OrderResult] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


@dataclass
class PairResult:
    intent_id: str
    status: PairStatus
    plan: PairPlan
    legs: list[OrderResult] = field(default_factory=list)
    unwinds: list[OrderResult] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
