"""Polymarket CTF Exchange order signatures (EIP-712), computed in Rust (crossbook-keys).

Field names are the EIP-712 struct's. V2/V3: ``salt, maker, signer, tokenId, makerAmount,
takerAmount, side, signatureType, timestamp, metadata, builder`` (``metadata``/``builder`` default
to zero). V1: ``salt, maker, signer, taker, tokenId, makerAmount, takerAmount, expiration, nonce,
feeRateBps, side, signatureType`` (``taker``/``expiration``/``nonce``/``feeRateBps`` default to zero).
uint256 values are ints or decimal strings (never floats); ``side`` is 0/1 or ``"BUY"``/``"SELL"``;
``signatureType`` is 0..3 or ``"EOA"``, ``"POLY_PROXY"``, ``"POLY_GNOSIS_SAFE"``, ``"POLY_1271"``.
Other keys (``expiration`` in a V2 body, ``signature``) are ignored.

:func:`polymarket_order_body` is the one place the ``POST /order`` body is built, in the daemon and in the
signer service alike (the L2 signature covers its exact bytes); :func:`prepare_polymarket_order` signs an
order, builds its body and signs the L2 headers over it in one go.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import orjson

from crossbook import _core
from crossbook._core import PrivateKey
from crossbook.signing.errors import SigningInputError
from crossbook.signing.keys import as_private_key
from crossbook.signing.polymarket_auth import ApiCreds, l2_headers

__all__ = [
    "ORDER_TYPES",
    "PreparedOrder",
    "SignedOrder",
    "order_hash",
    "polymarket_exchange",
    "polymarket_order_body",
    "prepare_polymarket_order",
    "sign_polymarket_order",
]

ORDER_TYPES = frozenset({"FOK", "FAK", "GTC", "GTD"})
ZERO_BYTES32 = "0x" + "00" * 32
# The V2 order on the wire, in this order; then "expiration" (not signed in V2) and "signature".
_BODY_FIELDS = ("salt", "maker", "signer", "tokenId", "makerAmount", "takerAmount", "side", "signatureType",
                "timestamp", "metadata", "builder")  # fmt: skip
_SIDES = {"BUY": "BUY", "SELL": "SELL", "0": "BUY", "1": "SELL"}
_SIGNATURE_TYPES = {"EOA": 0, "POLY_PROXY": 1, "POLY_GNOSIS_SAFE": 2, "POLY_1271": 3}

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


class PreparedOrder(NamedTuple):
    """An order ready to send: its hash and signature, the exact ``POST`` body, the L2 headers over it."""

    hash: str
    signature: str
    body: bytes
    headers: dict[str, str]


def _uint(value: object, name: str) -> int:
    text = str(value)
    if isinstance(value, bool) or not text.isdigit():
        raise SigningInputError(f"{name}: expected a non-negative integer (int or decimal string)")
    return int(text)


def polymarket_order_body(
    order: Mapping[str, object],
    signature: str,
    owner: str,
    order_type: str,
    *,
    defer_exec: bool = False,
    post_only: bool = False,
) -> bytes:
    """The CLOB's ``POST /order`` body for a signed V2 order, byte for byte the same whether the order's
    values are typed (ints, ``"BUY"``) or all strings (as the signer receives them): ``salt`` and
    ``signatureType`` are JSON numbers, ``side`` is ``"BUY"``/``"SELL"``, the rest strings, in the V2
    field order, then ``expiration`` (``order["expiration"]`` or ``"0"``) and ``signature``. ``owner`` is
    the API key."""
    if order_type not in ORDER_TYPES:
        raise SigningInputError(f"order_type: {order_type!r} is not one of {sorted(ORDER_TYPES)}")
    wire: dict[str, object] = {}
    for name in _BODY_FIELDS:
        value = order.get(name)
        if value is None:
            if name not in ("metadata", "builder"):
                raise SigningInputError(f"{name}: missing from the order")
            value = ZERO_BYTES32
        if name == "salt":
            value = _uint(value, name)
        elif name == "side":
            side = _SIDES.get(str(value).upper())
            if side is None:
                raise SigningInputError("side: expected BUY/SELL or 0/1")
            value = side
        elif name == "signatureType":
            text = str(value)
            value = _SIGNATURE_TYPES[text] if text in _SIGNATURE_TYPES else _uint(value, name)
        else:
            value = str(value)
        wire[name] = value
    wire["expiration"] = str(order.get("expiration") or "0")
    wire["signature"] = signature
    return orjson.dumps(
        {"order": wire, "owner": owner, "orderType": order_type, "deferExec": defer_exec, "postOnly": post_only}
    )


def prepare_polymarket_order(
    order: Mapping[str, object],
    private_key: PrivateKey | str | bytes | bytearray,
    creds: ApiCreds,
    address: str,
    order_type: str,
    *,
    path: str = "/order",
    timestamp: int | None = None,
    defer_exec: bool = False,
    post_only: bool = False,
    neg_risk: bool = False,
    chain_id: int = 137,
    exchange: str | None = None,
) -> PreparedOrder:
    """Sign a V2 order with ``private_key``, build its ``POST`` body (:func:`polymarket_order_body`, owner
    ``creds.api_key``) and sign the L2 headers over that body for ``address`` (the API key's address)."""
    if order_type not in ORDER_TYPES:  # before signing: nothing is signed for a body that cannot be built
        raise SigningInputError(f"order_type: {order_type!r} is not one of {sorted(ORDER_TYPES)}")
    signed = sign_polymarket_order(order, private_key, neg_risk=neg_risk, chain_id=chain_id, exchange=exchange)
    body = polymarket_order_body(order, signed.signature, creds.api_key, order_type, defer_exec=defer_exec,
                                 post_only=post_only)  # fmt: skip
    headers = l2_headers(creds, address, "POST", path, body, timestamp=timestamp)
    return PreparedOrder(signed.hash, signed.signature, body, headers)
