"""Execution: intents → gate → sizing over both books → signer → venue REST; idempotency and unwind."""

from crossbook.execution.errors import (
    ExecutionError,
    IntentRefused,
    OrderStateUnknown,
    SubmitUncertain,
    VenueRejected,
    VenueUnavailable,
)
from crossbook.execution.executor import Executor
from crossbook.execution.models import (
    Fill,
    LegOrder,
    LimitIntent,
    OrderResult,
    PairIntent,
    PairMarkets,
    PairPlan,
    PairResult,
    RecoveredIntent,
    RouteIntent,
    RouteLeg,
    RouteResult,
    UnwindPolicy,
)
from crossbook.execution.signer import ExecutionSigner, LocalSigner, ServiceSigner
from crossbook.execution.store import ExecutionStore
from crossbook.execution.venues import KalshiTrader, PolymarketTrader, VenueTrader

__all__ = [
    "ExecutionError",
    "ExecutionSigner",
    "ExecutionStore",
    "Executor",
    "Fill",
    "IntentRefused",
    "KalshiTrader",
    "LegOrder",
    "LimitIntent",
    "LocalSigner",
    "OrderResult",
    "OrderStateUnknown",
    "PairIntent",
    "PairMarkets",
    "PairPlan",
    "PairResult",
    "PolymarketTrader",
    "RecoveredIntent",
    "RouteIntent",
    "RouteLeg",
    "RouteResult",
    "ServiceSigner",
    "SubmitUncertain",
    "UnwindPolicy",
    "VenueRejected",
    "VenueTrader",
    "VenueUnavailable",
]
