"""Polymarket CLOB auth headers: L1 (ClobAuth EIP-712) and L2 (HMAC-SHA256), signed in Rust."""

from __future__ import annotations

import time

from crossbook import _core
from crossbook._core import HmacKey, PrivateKey
from crossbook.signing.errors import SigningInputError
from crossbook.signing.keys import as_private_key

__all__ = ["ApiCreds", "clob_auth_signature", "l1_headers", "l2_headers"]


class ApiCreds:
    """A Polymarket API key: the secret lives in Rust (:class:`HmacKey`); repr hides it and the passphrase."""

    __slots__ = ("_passphrase", "api_key", "secret")

    def __init__(self, api_key: str, secret: str | HmacKey, passphrase: str) -> None:
        self.api_key = api_key
        self.secret = secret if isinstance(secret, HmacKey) else HmacKey(secret)
        self._passphrase = passphrase

    @property
    def passphrase(self) -> str:
        return self._passphrase

    def __repr__(self) -> str:
        return f"ApiCreds(api_key={self.api_key!r}, secret=<hidden>, passphrase=<hidden>)"


def clob_auth_signature(
    private_key: PrivateKey | str | bytes | bytearray, timestamp: int | str, nonce: int = 0, chain_id: int = 137
) -> str:
    """``POLY_SIGNATURE`` for L1: the ClobAuth EIP-712 signature over the key's own address."""
    key = as_private_key(private_key)
    return _core.clob_auth_signature(key, str(timestamp), nonce, chain_id)


def l1_headers(
    private_key: PrivateKey | str | bytes | bytearray,
    *,
    timestamp: int | None = None,
    nonce: int = 0,
    chain_id: int = 137,
) -> dict[str, str]:
    """Headers for ``POST /auth/api-key`` and ``GET /auth/derive-api-key`` (timestamp in seconds)."""
    key = as_private_key(private_key)
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "POLY_ADDRESS": key.address,
        "POLY_SIGNATURE": _core.clob_auth_signature(key, str(ts), nonce, chain_id),
        "POLY_TIMESTAMP": str(ts),
        "POLY_NONCE": str(nonce),
    }


def l2_headers(
    creds: ApiCreds,
    address: str,
    method: str,
    request_path: str,
    body: str | bytes | None = None,
    *,
    timestamp: int | None = None,
) -> dict[str, str]:
    """Headers for trading calls. ``body`` must be byte-identical to the HTTP body sent."""
    if not isinstance(body, str | bytes | type(None)):
        raise SigningInputError("body: pass the exact serialized request body (str or bytes), not an object")
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "POLY_ADDRESS": address,
        "POLY_SIGNATURE": creds.secret.l2_signature(str(ts), method, request_path, body or None),
        "POLY_TIMESTAMP": str(ts),
        "POLY_API_KEY": creds.api_key,
        "POLY_PASSPHRASE": creds.passphrase,
    }
