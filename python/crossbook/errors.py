"""One exception tree for crossbook.

Every class also subclasses the builtin a caller would naturally catch (ValueError for bad input,
ConnectionError for dead dependencies, ...), so ``except ValueError`` keeps working for people who
do not know our names.
"""

from __future__ import annotations


class CrossbookError(Exception):
    """Base of every error crossbook raises on purpose."""


class ConfigError(CrossbookError, ValueError):
    """The configuration is missing something or holds a value we cannot use."""


class FeedError(CrossbookError, ConnectionError):
    """An upstream market-data connection failed or misbehaved."""


class FrameError(CrossbookError, ValueError):
    """A venue frame could not be parsed or carried impossible values; it was not applied."""


class BookIntegrityError(CrossbookError, ValueError):
    """A book cannot be trusted (sequence gap, negative size, no snapshot yet)."""


class StoreError(CrossbookError, ConnectionError):
    """Redis or PostgreSQL refused or could not be reached."""


class SignerError(CrossbookError, RuntimeError):
    """The signer could not produce a signature."""


class PolicyViolation(CrossbookError, PermissionError):
    """A request broke a rule of the session policy; the message names the rule."""


class ChainError(CrossbookError, RuntimeError):
    """A chain RPC call or transaction failed."""
