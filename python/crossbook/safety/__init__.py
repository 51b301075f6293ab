"""Safety: the breaker (per-pair execute state), the slippage guard, and the gate that joins them."""

from crossbook.safety.breaker import Breaker, PairLegs, PairState
from crossbook.safety.gate import Gate, GateDecision, Intent

__all__ = ["Breaker", "Gate", "GateDecision", "Intent", "PairLegs", "PairState"]
