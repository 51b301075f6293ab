"""Polymarket CTF Exchange order signatures (EIP-712), computed in Rust (crossbook-keys).

Field names are the EIP-712 struct's. V2/V3: ``salt, maker, signer, tokenId, makerAmount,
takerAmount, side, signatureType, timestamp, metadata, builder`` (``metadata``/``builder`` default
to zero). V1: ``salt, maker, signer, taker, tokenId, makerAmount, takerAmount, expiration, nonce,
feeRateBps, side, signatureType`` (``taker``/``expiration``/``nonce``/``feeRateBps`` default to zero).
uint256 values are ints or decimal strings (never floats); ``side`` is 0/1 or ``"BUY"``/``"SELL"``;
``signatureType`` is 0..3 or ``"EOA"``, ``"POLY_PROXY"``, ``"POLY_GNOSIS_SAFE"``, ``"POLY_1271"``.
Other keys (``expiration`` in a V2 body, ``signature``) are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from crossbook import _core
from crossbook._core import PrivateKey
from crossbook.signing.keys import as_private_key

__all__ = ["SignedOrder", "order_hash", "polymarket_exchange", "sign_polymarket_order"]

_VERSIONS = {"1": "1", "2": "2", "3": "3", 1: "1", 2: "2", 3: "3"}


class SignedOrder(NamedTuple):
    """``hash``: the EIP-712 digest (= Polymarket order id); ``signature``: r‖s‖v. Both 0x lowercase hex."""

    hash: str
    signature: str


def _version(version: str | int) -> str:
    return _VERSIONS.get(version, str(version))


def sign_polymarket_order(
    order: Mapping[str, object],
    private_key: PrivateKey | str | bytes | bytearray,
    *,
    neg_risk: bool = False,
    chain_id: int = 137,
    version: str | int = "2",
    exchange: str | None = None,
) -> SignedOrder:
    """Sign one order. ``version`` picks the struct and domain version ("1", "2", "3");
    ``exchange`` overrides the verifying contract that ``chain_id``, ``neg_risk`` and ``version`` pick.

    Raises :class:`~crossbook.signing.errors.SigningInputError` (a ``ValueError``) for a malformed
    order, an unknown exchange, or a ``signer`` that is not the key's address (signature types 0-2).
    Pass a :class:`PrivateKey` on hot paths: a hex string is loaded into locked memory on every call.
    """
    key = as_private_key(private_key)
    h, sig = _core.sign_polymarket_order(
        order, key, version=_version(version), chain_id=chain_id, neg_risk=neg_risk, exchange=exchange
    )
    return SignedOrder(h, sig)


def order_hash(
    order: Mapping[str, object],
    *,
    neg_risk: bool = False,
    chain_id: int = 137,
    version: str | int = "2",
    exchange: str | None = None,
) -> str:
    """The order's EIP-712 digest (its Polymarket id), 0x lowercase hex, without signing."""
    digest = _core.polymarket_order_digest(
        order, version=_version(version), chain_id=chain_id, neg_risk=neg_risk, exchange=exchange
    )
    return "0x" + digest.hex()


def polymarket_exchange(chain_id: int = 137, neg_risk: bool = False, version: str | int = "2") -> str | None:
    """The CTF Exchange address (EIP-55) for that chain, market kind and version, or None if unknown."""
    return _core.polymarket_exchange(chain_id, neg_risk, _version(version))
