"""Execution errors, placed in the crossbook.errors tree (each also subclasses the natural builtin)."""

from __future__ import annotations

from crossbook.errors import CrossbookError


class ExecutionError(CrossbookError, RuntimeError):
    """An intent could not be carried out; the message says what happened and what to do."""


class IntentRefused(ExecutionError, PermissionError):
    """Refused before any order was sent at that step. ``step`` names the step (``gate``, ``book``,
    ``sizing``, ``gate (leg 2)``, ...) and ``reasons`` say why, in a trader's words."""

    def __init__(self, step: str, reasons: tuple[str, ...] | list[str]) -> None:
        self.step = step
        self.reasons = tuple(reasons)
        super().__init__(f"refused at {step}: " + "; ".join(self.reasons))


class VenueRejected(ExecutionError, ValueError):
    """The venue answered and refused the order (nothing was booked)."""

    def __init__(self, venue: str, status: int, message: str) -> None:
        self.venue = venue
        self.status = status
        super().__init__(f"{venue} refused the order (HTTP {status}): {message}")


class VenueUnavailable(ExecutionError, ConnectionError):
    """The venue could not be reached or kept failing (e.g. 429 beyond the retry budget, 5xx)."""


class SubmitUncertain(ExecutionError, TimeoutError):
    """A submit timed out or its connection broke after the request may have reached the venue.
    Never resend: resolve by asking the venue for the order (the executor does)."""


class OrderStateUnknown(ExecutionError, TimeoutError):
    """An order's fate could not be learned from the venue in time; the order row stays ``unknown``
    and the intent must be reconciled (``crossbook orders`` shows it) before trading that market again."""
