"""Envelope encryption through KMS: a data key from ``GenerateDataKey`` (bound to an encryption
context) encrypts the secret with AES-256-GCM; ``Decrypt`` with the same context gives it back.

Blob: base64 of JSON ``{"v": 1, "edk": b64(KMS CiphertextBlob), "n": b64(nonce), "ct": b64(ct)}``;
the encryption context is also the AES-GCM associated data, so a blob cannot be moved to another slot.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crossbook.errors import SignerError
from crossbook_signer.wipe import wipe, wipe_bytes

SERVICE = "crossbook-signer"


class EnvelopeError(SignerError):
    """A blob could not be opened (wrong context, wrong key, damaged). Never carries plaintext."""


def context(name: str, purpose: str) -> dict[str, str]:
    """The encryption context a secret is bound to: (service, name, purpose)."""
    return {"service": SERVICE, "name": name, "purpose": purpose}


def _aad(ctx: dict[str, str]) -> bytes:
    return json.dumps(ctx, sort_keys=True, separators=(",", ":")).encode()


def new_data_key(kms: Any, key_id: str, ctx: dict[str, str]) -> tuple[bytearray, bytes]:
    """(plaintext data key as a bytearray the caller wipes, KMS ciphertext of it)."""
    reply = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=ctx)
    plain = reply["Plaintext"]
    dk = bytearray(plain)
    wipe_bytes(plain)
    return dk, bytes(reply["CiphertextBlob"])


def decrypt_data_key(kms: Any, edk: bytes, ctx: dict[str, str], what: str) -> bytearray:
    try:
        reply = kms.decrypt(CiphertextBlob=edk, EncryptionContext=ctx)
    except Exception as exc:  # botocore ClientError and connection errors
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        raise EnvelopeError(
            f"KMS refused to decrypt the data key of {what} ({code}): the blob was sealed for another "
            f"encryption context {ctx} or KMS key, or KMS is unreachable"
        ) from None
    plain = reply["Plaintext"]
    dk = bytearray(plain)
    wipe_bytes(plain)
    return dk


def aes_seal(dk: bytearray, plaintext: bytes | bytearray, aad: bytes) -> tuple[bytes, bytes]:
    nonce = os.urandom(12)
    return nonce, AESGCM(dk).encrypt(nonce, plaintext, aad)


def aes_open(dk: bytearray, nonce: bytes, ct: bytes, aad: bytes, what: str) -> bytearray:
    try:
        plain = AESGCM(dk).decrypt(nonce, ct, aad)
    except InvalidTag:
        raise EnvelopeError(f"{what}: authentication failed (damaged blob or wrong slot)") from None
    out = bytearray(plain)
    wipe_bytes(plain)
    return out


def seal(kms: Any, key_id: str, plaintext: bytes | bytearray, ctx: dict[str, str]) -> str:
    """Encrypt ``plaintext`` under a fresh data key; returns the blob (ASCII)."""
    dk, edk = new_data_key(kms, key_id, ctx)
    try:
        nonce, ct = aes_seal(dk, plaintext, _aad(ctx))
    finally:
        wipe(dk)
    doc = {"v": 1, "edk": _b64(edk), "n": _b64(nonce), "ct": _b64(ct)}
    return base64.b64encode(json.dumps(doc).encode()).decode()


def open_blob(kms: Any, blob: str | bytes, ctx: dict[str, str], what: str) -> bytearray:
    """Decrypt a blob made by :func:`seal` for ``ctx``; the caller wipes the returned bytearray."""
    try:
        doc = json.loads(base64.b64decode(blob, validate=True))
        edk, nonce, ct = (base64.b64decode(doc[k]) for k in ("edk", "n", "ct"))
        if doc.get("v") != 1:
            raise ValueError
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise EnvelopeError(f"{what}: not a crossbook envelope blob (base64 JSON with v, edk, n, ct)") from None
    dk = decrypt_data_key(kms, edk, ctx, what)
    try:
        return aes_open(dk, nonce, ct, _aad(ctx), what)
    finally:
        wipe(dk)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
