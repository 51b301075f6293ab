"""Kalshi request signatures (RSA-PSS, SHA-256, MGF1, 32-byte salt), signed in Rust."""

from __future__ import annotations

import time

from crossbook import _core
from crossbook._core import RsaKey

__all__ = ["kalshi_headers", "kalshi_sign", "kalshi_verify"]


def kalshi_sign(key: RsaKey, timestamp_ms: int | str, method: str, path: str) -> str:
    """Base64 signature of ``timestamp_ms + METHOD + path`` (query string dropped); random salt."""
    return _core.kalshi_sign(key, str(int(timestamp_ms)), method, path)


def kalshi_verify(public_key: str | bytes, timestamp_ms: int | str, method: str, path: str, signature_b64: str) -> bool:
    """True if ``signature_b64`` is a valid Kalshi signature of that request by ``public_key`` (PEM/DER)."""
    import base64
    import binascii

    try:
        sig = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    msg = f"{int(timestamp_ms)}{method.upper()}{path.split('?', 1)[0]}".encode()
    return _core.rsa_pss_verify(public_key, msg, sig)


def kalshi_headers(key_id: str, key: RsaKey, method: str, path: str, now_ms: int | None = None) -> dict[str, str]:
    """``KALSHI-ACCESS-KEY``, ``-TIMESTAMP`` (ms) and ``-SIGNATURE`` for one request."""
    ts = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return {
        "KALSHI-ACCESS-KEY": key_id,
        "KALSHI-ACCESS-TIMESTAMP": str(ts),
        "KALSHI-ACCESS-SIGNATURE": kalshi_sign(key, ts, method, path),
    }
