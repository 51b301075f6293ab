"""Kalshi API-key request signing: RSA-PSS (SHA-256, MGF1-SHA256, 32-byte salt) over
``timestamp_ms + METHOD + path``, path without its query string, base64 output.

Headers: ``KALSHI-ACCESS-KEY``, ``KALSHI-ACCESS-TIMESTAMP`` (ms), ``KALSHI-ACCESS-SIGNATURE``.
The WebSocket handshake signs ``timestamp + "GET" + "/trade-api/ws/v2"``.
"""

from __future__ import annotations

import base64
import binascii
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

KEY_HEADER = "KALSHI-ACCESS-KEY"
TIMESTAMP_HEADER = "KALSHI-ACCESS-TIMESTAMP"
SIGNATURE_HEADER = "KALSHI-ACCESS-SIGNATURE"
WS_PATH = "/trade-api/ws/v2"

_SALT_LENGTH = 32  # = SHA-256 digest length, what Kalshi verifies with


def _pss() -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=_SALT_LENGTH)


def signing_message(timestamp_ms: int | str, method: str, path: str) -> bytes:
    """The signed bytes: timestamp, upper-case method, path with the query string removed."""
    return f"{int(timestamp_ms)}{method.upper()}{path.split('?', 1)[0]}".encode()


def sign_request(private_key: rsa.RSAPrivateKey, timestamp_ms: int, method: str, path: str) -> str:
    """Base64 RSA-PSS signature for one request (randomized: differs on every call)."""
    signature = private_key.sign(signing_message(timestamp_ms, method, path), _pss(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def auth_headers(
    key_id: str, private_key: rsa.RSAPrivateKey, method: str, path: str, now_ms: int | None = None
) -> dict[str, str]:
    """The three Kalshi auth headers for a request (or the WS handshake: GET /trade-api/ws/v2)."""
    ts = int(time.time() * 1000) if now_ms is None else now_ms
    return {
        KEY_HEADER: key_id,
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: sign_request(private_key, ts, method, path),
    }


def verify_signature(
    public_key: rsa.RSAPublicKey, timestamp_ms: int | str, method: str, path: str, signature_b64: str
) -> bool:
    """True if ``signature_b64`` is a valid Kalshi signature of this request by ``public_key``."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, signing_message(timestamp_ms, method, path), _pss(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def load_private_key(data: bytes | str, password: bytes | None = None) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (PKCS#8 or PKCS#1), DER, or base64 of DER."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    stripped = raw.strip()
    if stripped.startswith(b"-----BEGIN"):
        key = serialization.load_pem_private_key(stripped, password=password)
    else:
        try:
            key = serialization.load_der_private_key(raw, password=password)
        except ValueError:
            key = serialization.load_der_private_key(base64.b64decode(stripped), password=password)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("Kalshi API keys are RSA keys; this private key is not RSA")
    return key


def load_public_key(data: bytes | str | rsa.RSAPublicKey) -> rsa.RSAPublicKey:
    """An RSA public key from a key object, PEM or DER."""
    if isinstance(data, rsa.RSAPublicKey):
        return data
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if raw.strip().startswith(b"-----BEGIN"):
        key = serialization.load_pem_public_key(raw.strip())
    else:
        key = serialization.load_der_public_key(raw)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("Kalshi API keys are RSA keys; this public key is not RSA")
    return key
