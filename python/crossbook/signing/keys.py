"""Key handles. Key bytes cross into Rust once and live there in locked, non-dumpable memory.

:class:`PrivateKey` (secp256k1), :class:`HmacKey` (Polymarket API secret) and :class:`RsaKey`
(Kalshi API key) are opaque: their reprs never show key material and they cannot be pickled.
Pass a ``bytearray`` to have the Python-side copy wiped as soon as it has been copied.
"""

from __future__ import annotations

from crossbook._core import HmacKey, PrivateKey, RsaKey
from crossbook.signing.errors import SigningInputError

__all__ = ["HmacKey", "PrivateKey", "RsaKey", "as_private_key"]


def as_private_key(key: PrivateKey | str | bytes | bytearray) -> PrivateKey:
    """``key`` itself if it is a :class:`PrivateKey`, else a new one (hex str or 32 raw bytes)."""
    if isinstance(key, PrivateKey):
        return key
    if isinstance(key, str | bytes | bytearray):
        return PrivateKey(key)
    raise SigningInputError(f"private_key: expected a PrivateKey, hex str or bytes, got {type(key).__name__}")
