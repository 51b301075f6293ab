"""Sizing by walking the live books (``BookSet.book``), fees included.

An outcome's asks: YES asks are the book's asks; NO asks are ``1 - YES bid`` (Kalshi books are printed
as the YES book; a Polymarket NO token mirrors its YES token). A pair trade walks the YES asks of one
venue and the NO asks of the other together, level by level, while one more share of each still
costs less than ``1 - edge`` after fees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Protocol

from crossbook.execution.errors import IntentRefused
from crossbook.execution.models import (
    ONE,
    ZERO,
    LegPlan,
    Outcome,
    PairMarkets,
    PairPlan,
    RouteLeg,
    Side,
    Venue,
    other,
)

KALSHI_TAKER_RATE = Decimal("0.07")
CENT = Decimal("0.01")


class BookSource(Protocol):
    """What sizing needs from market data (``crossbook.BookSet`` fits)."""

    def book(self, venue: str, market: str, depth: int | None = None) -> Mapping[str, object]: ...


class CappedBooks:
    """A view of the books without the levels a leg may not take: asks above ``limit`` and bids below
    ``1 - limit`` (a NO ask is ``1 - YES bid``), at most ``depth`` levels a side (None: as asked)."""

    def __init__(self, books: BookSource, limit: Decimal | None, depth: int | None = None) -> None:
        self.books = books
        self.limit = limit
        self.depth = depth

    def book(self, venue: str, market: str, depth: int | None = None) -> Mapping[str, object]:
        if self.depth is not None:
            depth = self.depth if depth is None else min(depth, self.depth)
        b = self.books.book(venue, market, depth)
        if self.limit is None:
            return b
        cap, floor = self.limit, ONE - self.limit
        asks = [lv for lv in _seq(b.get("asks")) if Decimal(str(lv[0])) <= cap]
        bids = [lv for lv in _seq(b.get("bids")) if Decimal(str(lv[0])) >= floor]
        return {**b, "asks": asks, "bids": bids}


def _seq(raw: object) -> list[list[object]]:
    return list(raw) if isinstance(raw, list) else []


def kalshi_fee(contracts: Decimal, price: Decimal) -> Decimal:
    """Kalshi's taker fee for one fill: ceil(0.07 × C × P × (1 − P)) to the cent."""
    return (KALSHI_TAKER_RATE * contracts * price * (ONE - price) / CENT).to_integral_value(ROUND_CEILING) * CENT


def polymarket_fee(contracts: Decimal, price: Decimal, fee_rate_bps: int = 0) -> Decimal:
    """Polymarket taker fee: ``bps × min(p, 1 − p) × size`` (0 bps on most markets)."""
    return Decimal(fee_rate_bps) / 10_000 * min(price, ONE - price) * contracts


def fee(venue: Venue, contracts: Decimal, price: Decimal, poly_fee_bps: int = 0) -> Decimal:
    return kalshi_fee(contracts, price) if venue == "kalshi" else polymarket_fee(contracts, price, poly_fee_bps)


def _levels(raw: object) -> list[tuple[Decimal, Decimal]]:
    if not isinstance(raw, Sequence):
        return []
    return [(Decimal(str(p)), Decimal(str(s))) for p, s in raw]


def _valid_book(books: BookSource, venue: Venue, market: str, depth: int) -> Mapping[str, object]:
    try:
        book = books.book(venue, market, depth)
    except KeyError:
        raise IntentRefused("book", [f"no {venue} book for {market} yet"]) from None
    if not book.get("valid"):
        raise IntentRefused("book", [f"{venue} book for {market} is invalid: {book.get('reason') or 'no snapshot'}"])
    return book


def asks(
    books: BookSource, venue: Venue, market: str, outcome: Outcome, depth: int = 50
) -> list[tuple[Decimal, Decimal]]:
    """Asks of ``outcome`` on that venue market, best (lowest) first; IntentRefused if the book is invalid."""
    book = _valid_book(books, venue, market, depth)
    if outcome == "yes":
        return _levels(book.get("asks"))
    return [(ONE - p, s) for p, s in _levels(book.get("bids"))]


def bids(
    books: BookSource, venue: Venue, market: str, outcome: Outcome, depth: int = 50
) -> list[tuple[Decimal, Decimal]]:
    """Bids of ``outcome``, best (highest) first."""
    book = _valid_book(books, venue, market, depth)
    if outcome == "yes":
        return _levels(book.get("bids"))
    return [(ONE - p, s) for p, s in _levels(book.get("asks"))]


def plan_pair(
    books: BookSource, markets: PairMarkets, yes_venue: Venue, max_size: Decimal, edge: Decimal, poly_fee_bps: int = 0
) -> PairPlan | None:
    """The largest whole-share size (≤ ``max_size``) whose every share keeps the edge, or None."""
    no_venue = other(yes_venue)
    yes_market, yes_outcome = markets.instrument(yes_venue, "yes")
    no_market, no_outcome = markets.instrument(no_venue, "no")
    a = asks(books, yes_venue, markets.book_market(yes_venue), yes_outcome)
    b = asks(books, no_venue, markets.book_market(no_venue), no_outcome)
    per_share_cap = ONE - edge
    size = ZERO
    i = j = 0
    a_left = a[0][1] if a else ZERO
    b_left = b[0][1] if b else ZERO
    walked_a: list[tuple[Decimal, Decimal]] = []
    walked_b: list[tuple[Decimal, Decimal]] = []
    while i < len(a) and j < len(b) and size < max_size:
        pa, pb = a[i][0], b[j][0]
        marginal = pa + pb + fee_rate(yes_venue, pa, poly_fee_bps) + fee_rate(no_venue, pb, poly_fee_bps)
        if marginal >= per_share_cap:
            break
        q = min(a_left, b_left, max_size - size)
        walked_a.append((pa, q))
        walked_b.append((pb, q))
        size += q
        a_left -= q
        b_left -= q
        if a_left <= 0:
            i += 1
            a_left = a[i][1] if i < len(a) else ZERO
        if b_left <= 0:
            j += 1
            b_left = b[j][1] if j < len(b) else ZERO
    size = size.to_integral_value(ROUND_FLOOR)
    # Per-fill fee rounding (Kalshi rounds each fill up to the cent) can eat a thin edge: shrink until whole.
    while size >= max(ONE, markets.poly_min_size):
        legs = (
            _leg(yes_venue, yes_market, yes_outcome, walked_a, size, poly_fee_bps),
            _leg(no_venue, no_market, no_outcome, walked_b, size, poly_fee_bps),
        )
        total = sum((leg.cost + leg.fee for leg in legs), ZERO)
        if total < size * per_share_cap:
            return PairPlan(markets.pair_id, size, legs, total, ONE - total / size)
        size -= 1
    return None


def plan_at_top(
    markets: PairMarkets, yes_venue: Venue, size: Decimal, yes_ask: Decimal, no_ask: Decimal, edge: Decimal,
    poly_fee_bps: int = 0,
) -> PairPlan | None:  # fmt: skip
    """The plan when both best asks hold the whole ``size`` (what :func:`plan_pair` finds on such books,
    without reading depth): every share at the best ask of each leg, fees per fill as the venues charge
    them. None if the fees eat the edge at that size (then :func:`plan_pair` may find a smaller one)."""
    if size < ONE or size < markets.poly_min_size or size != size.to_integral_value(ROUND_FLOOR):
        return None
    # What _leg makes of one level holding the whole size, and the sum plan_pair takes, step for step (the same
    # Decimal operations in the same order, so the same digits): written out, as this runs on the order path.
    no_venue = other(yes_venue)
    yes_cost, yes_fee = ZERO + yes_ask * size, ZERO + fee(yes_venue, size, yes_ask, poly_fee_bps)
    no_cost, no_fee = ZERO + no_ask * size, ZERO + fee(no_venue, size, no_ask, poly_fee_bps)
    total = ZERO + (yes_cost + yes_fee) + (no_cost + no_fee)
    if total < size * (ONE - edge):
        yes_market, yes_outcome = markets.instrument(yes_venue, "yes")
        no_market, no_outcome = markets.instrument(no_venue, "no")
        legs = (LegPlan(yes_venue, yes_market, yes_outcome, yes_ask, yes_cost, yes_fee),
                LegPlan(no_venue, no_market, no_outcome, no_ask, no_cost, no_fee))  # fmt: skip
        return PairPlan(markets.pair_id, size, legs, total, ONE - total / size)
    return None


def fee_rate(venue: Venue, price: Decimal, poly_fee_bps: int) -> Decimal:
    """The marginal taker fee per share at ``price`` (what a walk compares per share; fees are rounded per
    fill later): Kalshi 0.07·P·(1−P), Polymarket ``poly_fee_bps``·min(P, 1−P)."""
    if venue == "kalshi":
        return KALSHI_TAKER_RATE * price * (ONE - price)
    if not poly_fee_bps:
        return ZERO  # Polymarket's default: no taker fee
    return Decimal(poly_fee_bps) / 10_000 * min(price, ONE - price)


def _leg(
    venue: Venue, market: str, outcome: Outcome, walked: list[tuple[Decimal, Decimal]], size: Decimal, bps: int
) -> LegPlan:
    left, cost, fees, limit = size, ZERO, ZERO, ZERO
    for price, q in walked:
        if left <= 0:
            break
        take = min(q, left)
        cost += price * take
        fees += fee(venue, take, price, bps)
        limit = price
        left -= take
    return LegPlan(venue, market, outcome, limit, cost, fees)


def plan_route(
    books: BookSource, markets: PairMarkets, side: Side, outcome: Outcome, max_size: Decimal, limit: Decimal,
    poly_fee_bps: int = 0, venues: tuple[Venue, ...] = ("polymarket", "kalshi"),
) -> tuple[RouteLeg, ...]:  # fmt: skip
    """Split one order across the venues by depth: take levels in order of price after fees (cheapest for a
    buy, richest for a sell) while they are within ``limit``, up to ``max_size``. Kalshi gets whole
    contracts, Polymarket 2-decimal shares and at least its minimum size (else its share goes unfilled
    rather than below the venue's minimum). A venue whose book is invalid is left out; none valid →
    IntentRefused at ``book``."""
    levels: list[tuple[Decimal, Decimal, Decimal, Venue]] = []  # (price after fees, price, qty, venue)
    invalid: list[str] = []
    for venue in venues:
        _, v_outcome = markets.instrument(venue, outcome)
        try:
            walk = (asks if side == "buy" else bids)(books, venue, markets.book_market(venue), v_outcome)
        except IntentRefused as refused:
            invalid.extend(refused.reasons)
            continue
        for price, qty in walk:
            if (price > limit) if side == "buy" else (price < limit):
                break
            rate = fee_rate(venue, price, poly_fee_bps)
            levels.append((price + rate if side == "buy" else price - rate, price, qty, venue))
    if invalid and len(invalid) == len(venues):
        raise IntentRefused("book", invalid)
    levels.sort(key=lambda lv: lv[0], reverse=side == "sell")
    taken: dict[Venue, list[tuple[Decimal, Decimal]]] = {}
    left = max_size
    for _, price, qty, venue in levels:
        if left <= 0:
            break
        q = min(qty, left)
        taken.setdefault(venue, []).append((price, q))
        left -= q
    out: list[RouteLeg] = []
    for venue, walked in taken.items():
        total = sum((q for _, q in walked), ZERO)
        size = total.to_integral_value(ROUND_FLOOR) if venue == "kalshi" else total.quantize(CENT, ROUND_FLOOR)
        if venue == "polymarket" and size < markets.poly_min_size:
            continue
        if size <= 0:
            continue
        market, v_outcome = markets.instrument(venue, outcome)
        leg = _leg(venue, market, v_outcome, walked, size, poly_fee_bps)
        out.append(RouteLeg(venue, market, v_outcome, size, leg.limit, leg.cost, leg.fee))
    # Best venue first: it is sent first.
    out.sort(key=lambda leg: (leg.cost + leg.fee) / leg.size, reverse=side == "sell")
    return tuple(out)
