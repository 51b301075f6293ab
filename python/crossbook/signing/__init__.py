"""Everything that needs a signature asks through these interfaces (DESIGN.md §4, Signer).

The pure helpers here sign in-process with keys held in locked Rust memory (crossbook-keys); the
signer service (``crossbook-signer``) uses the same Rust code behind a Unix socket.
"""

from typing import TYPE_CHECKING, Any

from crossbook.signing.errors import SigningInputError
from crossbook.signing.headers import HeaderSigner, LocalHeaderSigner
from crossbook.signing.kalshi import kalshi_headers, kalshi_sign, kalshi_verify
from crossbook.signing.keys import HmacKey, PrivateKey, RsaKey, as_private_key
from crossbook.signing.orders import (
    PreparedOrder,
    SignedOrder,
    order_hash,
    polymarket_exchange,
    polymarket_order_body,
    prepare_polymarket_order,
    sign_polymarket_order,
)
from crossbook.signing.polymarket_auth import ApiCreds, clob_auth_signature, l1_headers, l2_headers
from crossbook.signing.tx import SignedTx, sign_eip1559

if TYPE_CHECKING:
    from crossbook.signing.client import SignerClient, SignerPolicyError, SignerTimeout, SignerUnavailable

_CLIENT_NAMES = ("SignerClient", "SignerPolicyError", "SignerTimeout", "SignerUnavailable")


def __getattr__(name: str) -> Any:
    """The signer client (and grpc with it) is imported on first use only."""
    if name in _CLIENT_NAMES:
        from crossbook.signing import client

        return getattr(client, name)
    raise AttributeError(f"module 'crossbook.signing' has no attribute {name!r}")


__all__ = [
    "ApiCreds",
    "HeaderSigner",
    "HmacKey",
    "LocalHeaderSigner",
    "PreparedOrder",
    "PrivateKey",
    "RsaKey",
    "SignedOrder",
    "SignedTx",
    "SignerClient",
    "SignerPolicyError",
    "SignerTimeout",
    "SignerUnavailable",
    "SigningInputError",
    "as_private_key",
    "clob_auth_signature",
    "kalshi_headers",
    "kalshi_sign",
    "kalshi_verify",
    "l1_headers",
    "l2_headers",
    "order_hash",
    "polymarket_exchange",
    "polymarket_order_body",
    "prepare_polymarket_order",
    "sign_eip1559",
    "sign_polymarket_order",
]
