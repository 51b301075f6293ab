"""Session-key policy, checked inside the signer before every signature with a session key.

Rules (each refusal names one): ``revoked``, ``expired``, ``market_not_allowed``,
``max_order_notional``, ``max_total_notional``. Notional is the USDC side of the order in
6-decimal units: ``makerAmount`` for a BUY, ``takerAmount`` for a SELL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from crossbook.errors import PolicyViolation
from crossbook.signing import SigningInputError

USDC_UNIT = Decimal(10) ** 6


class PolicyRefusal(PolicyViolation):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"policy rule {rule!r} refused the request: {message}")
        self.rule = rule


def parse_amount(value: str, what: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise SigningInputError(f"{what}: {value!r} is not a decimal number") from None
    if not amount.is_finite() or amount < 0:
        raise SigningInputError(f"{what}: must be a finite, non-negative decimal (got {value!r})")
    return amount


def order_notional(order: Mapping[str, str]) -> Decimal:
    """USDC value of a Polymarket order (Decimal, exact)."""
    side = str(order.get("side", "")).upper()
    if side in ("0", "BUY"):
        raw = order.get("makerAmount", "")
    elif side in ("1", "SELL"):
        raw = order.get("takerAmount", "")
    else:
        raise SigningInputError("side: expected 0/1 or BUY/SELL")
    if not raw.isdigit():
        raise SigningInputError("makerAmount/takerAmount: expected a non-negative integer in 6-decimal units")
    return Decimal(int(raw)) / USDC_UNIT


@dataclass
class Policy:
    expires_at: int
    max_order_notional: Decimal
    max_total_notional: Decimal
    allowed_token_ids: frozenset[str]

    def to_json(self) -> dict[str, object]:
        return {
            "expires_at": self.expires_at,
            "max_order_notional": str(self.max_order_notional),
            "max_total_notional": str(self.max_total_notional),
            "allowed_token_ids": sorted(self.allowed_token_ids),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, object]) -> Policy:
        tokens = doc["allowed_token_ids"]
        assert isinstance(tokens, list)
        return cls(
            expires_at=int(str(doc["expires_at"])),
            max_order_notional=Decimal(str(doc["max_order_notional"])),
            max_total_notional=Decimal(str(doc["max_total_notional"])),
            allowed_token_ids=frozenset(str(t) for t in tokens),
        )


@dataclass
class Usage:
    spent: Decimal = Decimal(0)
    revoked: bool = False
    seq: int = 0
    extra: dict[str, object] = field(default_factory=dict)


def check_order(policy: Policy, usage: Usage, token_id: str, notional: Decimal, now: float) -> None:
    """Raise :class:`PolicyRefusal` naming the first rule the order breaks."""
    if usage.revoked:
        raise PolicyRefusal("revoked", "the session was revoked")
    if now >= policy.expires_at:
        raise PolicyRefusal("expired", f"the session expired at {policy.expires_at} (unix seconds)")
    if token_id not in policy.allowed_token_ids:
        raise PolicyRefusal("market_not_allowed", f"token {token_id} is not among the session's allowed markets")
    if notional > policy.max_order_notional:
        raise PolicyRefusal(
            "max_order_notional",
            f"order notional {notional} USDC exceeds the per-order limit {policy.max_order_notional}",
        )
    if usage.spent + notional > policy.max_total_notional:
        raise PolicyRefusal(
            "max_total_notional",
            f"{usage.spent} USDC already signed + {notional} exceeds the session limit {policy.max_total_notional}",
        )
