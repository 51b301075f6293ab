"""Positions and PnL per user and instrument (venue, market, outcome), in Decimal.

Average-cost basis: buying adds to the quantity and its cost; selling against a long closes at the
average cost and realizes the difference (and symmetrically for a short). Fees are charged to
realized PnL when paid, so ``realized + unrealized`` is the whole PnL after fees. Unrealized PnL is
``quantity × mark − cost`` with the mark the live mid of the outcome's book (a NO outcome's mid is
``1 − YES mid``); with no valid book the mark is unknown and so is the unrealized PnL.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from crossbook.execution.models import ONE, ZERO, Outcome, Side

TWO = Decimal(2)


@dataclass
class Position:
    user_ref: str
    venue: str
    market: str
    outcome: Outcome
    pair_ref: str = ""
    quantity: Decimal = ZERO
    cost: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    bought: Decimal = ZERO
    sold: Decimal = ZERO

    @property
    def avg_price(self) -> Decimal | None:
        return self.cost / self.quantity if self.quantity else None

    def unrealized(self, mark: Decimal | None) -> Decimal | None:
        if mark is None:
            return None if self.quantity else ZERO
        return self.quantity * mark - self.cost

    def apply(self, side: Side, price: Decimal, size: Decimal, fee: Decimal = ZERO) -> None:
        """One fill of ``size`` at ``price`` (per share, on this outcome) paying ``fee``."""
        if size <= 0:
            raise ValueError(f"fill size {size} must be positive")
        signed = size if side == "buy" else -size
        if side == "buy":
            self.bought += size
        else:
            self.sold += size
        self.fees += fee
        self.realized_pnl -= fee
        if self.quantity and (self.quantity > 0) != (signed > 0):
            # Reducing: close up to the open quantity at the average cost.
            avg = self.cost / self.quantity
            closing = min(abs(signed), abs(self.quantity))
            direction = ONE if self.quantity > 0 else -ONE
            self.realized_pnl += direction * closing * (price - avg)
            self.quantity -= direction * closing
            self.cost -= direction * closing * avg
            signed += direction * closing  # what is left opens the other way
            if self.quantity == 0:
                self.cost = ZERO  # no rounding residue on a flat position
        if signed:
            self.quantity += signed
            self.cost += signed * price


def mid_of(bid: object, ask: object) -> Decimal | None:
    if bid in (None, "") or ask in (None, ""):
        return None
    return (Decimal(str(bid)) + Decimal(str(ask))) / TWO


def outcome_mark(yes_mid: Decimal | None, outcome: Outcome) -> Decimal | None:
    if yes_mid is None:
        return None
    return yes_mid if outcome == "yes" else ONE - yes_mid
