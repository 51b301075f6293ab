"""Polygon EIP-1559 (type 2) transactions, encoded and signed in Rust."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from crossbook import _core
from crossbook._core import PrivateKey
from crossbook.signing.keys import as_private_key

__all__ = ["SignedTx", "sign_eip1559"]


class SignedTx(NamedTuple):
    """``raw``: the bytes for ``eth_sendRawTransaction``; ``hash``: 0x lowercase transaction hash."""

    raw: bytes
    hash: str


def sign_eip1559(private_key: PrivateKey | str | bytes | bytearray, tx: Mapping[str, object]) -> SignedTx:
    """Keys: ``chainId, nonce, maxPriorityFeePerGas, maxFeePerGas, gas`` (required), ``to`` (absent or
    None: contract creation), ``value``, ``data`` (hex str or bytes), ``accessList``. Fees in wei as ints."""
    raw, h = _core.sign_eip1559(as_private_key(private_key), tx)
    return SignedTx(raw, h)
