"""crossbook: trade the same event on Polymarket and Kalshi at once, safely and fast."""

from __future__ import annotations

from crossbook._core import BookSet
from crossbook.errors import (
    BookIntegrityError,
    ConfigError,
    CrossbookError,
    FeedError,
    FrameError,
)

__all__ = [
    "BookIntegrityError",
    "BookSet",
    "ConfigError",
    "CrossbookError",
    "FeedError",
    "FrameError",
]
__version__ = "0.1.0"
