"""Session keys: made inside the signer, persisted only as KMS-sealed blobs handed to the daemon.

Blob (ASCII): base64 of JSON ``{"v": 1, "sid", "edk", "kn", "kct", "sn", "sct"}``: ``edk`` is the
session's data key encrypted by KMS with context (crossbook-signer, <sid>, session); ``kct`` the
session's secp256k1 key and ``sct`` its state (owner, policy, amount signed, revoked, seq), both
AES-256-GCM under that data key. The key is sealed once (its bytes never leave Rust afterwards);
the state is re-sealed after every change, without a KMS call, and returned in the reply.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crossbook.signing import PrivateKey
from crossbook_signer.envelope import EnvelopeError, aes_open, context, decrypt_data_key, new_data_key
from crossbook_signer.policy import Policy, Usage
from crossbook_signer.wipe import wipe, wipe_bytes


@dataclass
class Session:
    sid: str
    user: str
    smart_account: str
    key: PrivateKey
    policy: Policy
    usage: Usage
    _edk: bytes
    _key_nonce: bytes
    _key_ct: bytes
    _aead: AESGCM
    _fixed: tuple[str, str] | None = field(default=None, repr=False)  # JSON of what never changes

    def __repr__(self) -> str:
        return (
            f"Session(sid={self.sid!r}, user={self.user!r}, address={self.key.address}, revoked={self.usage.revoked})"
        )

    def blob(self) -> bytes:
        # Runs on every order signed with the session: the parts that never change (owner, policy,
        # the sealed key) are serialized once; the JSON is the same as json.dumps of the full dicts.
        if self._fixed is None:
            state_head = json.dumps(
                {"user": self.user, "smart_account": self.smart_account, "policy": self.policy.to_json()}
            )[:-1]
            doc_head = json.dumps(
                {
                    "v": 1,
                    "sid": self.sid,
                    "edk": _b64(self._edk),
                    "kn": _b64(self._key_nonce),
                    "kct": _b64(self._key_ct),
                }
            )[:-1]
            self._fixed = (state_head, doc_head)
        state_head, doc_head = self._fixed
        state = f"{state_head}, {_json_tail(self.usage)}}}"
        nonce = os.urandom(12)
        sct = self._aead.encrypt(nonce, state.encode(), _aad(self.sid, "state"))
        doc = f'{doc_head}, "sn": "{_b64(nonce)}", "sct": "{_b64(sct)}"}}'
        return base64.b64encode(doc.encode())


def _json_tail(usage: Usage) -> str:
    return f'"spent": {json.dumps(str(usage.spent))}, "revoked": {json.dumps(usage.revoked)}, "seq": {int(usage.seq)}'


def _aad(sid: str, part: str) -> bytes:
    return f"crossbook-signer/session/{sid}/{part}".encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def create_session(kms: Any, key_id: str, user: str, smart_account: str, policy: Policy) -> Session:
    """Blocking (one KMS GenerateDataKey): run it off the event loop."""
    sid = uuid.uuid4().hex
    dk, edk = new_data_key(kms, key_id, context(sid, "session"))
    try:
        aead = AESGCM(dk)
        while True:
            raw = os.urandom(32)
            secret = bytearray(raw)
            wipe_bytes(raw)
            nonce = os.urandom(12)
            key_ct = aead.encrypt(nonce, secret, _aad(sid, "key"))
            try:
                key = PrivateKey(secret)  # copies into locked memory and wipes `secret`
                break
            except ValueError:  # 0 or >= n: probability ~2**-128
                wipe(secret)
    finally:
        wipe(dk)
    return Session(sid, user, smart_account, key, policy, Usage(), edk, nonce, key_ct, aead)


def load_session(kms: Any, blob: str | bytes) -> Session:
    """Re-open a blob from :meth:`Session.blob` (blocking: one KMS Decrypt)."""
    try:
        doc = json.loads(base64.b64decode(blob, validate=True))
        sid = str(doc["sid"])
        edk, kn, kct, sn, sct = (base64.b64decode(doc[k]) for k in ("edk", "kn", "kct", "sn", "sct"))
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise EnvelopeError("session blob: not a crossbook session blob") from None
    what = f"session {sid}"
    dk = decrypt_data_key(kms, edk, context(sid, "session"), what)
    try:
        aead = AESGCM(dk)
        secret = aes_open(dk, kn, kct, _aad(sid, "key"), what)
        state_raw = aes_open(dk, sn, sct, _aad(sid, "state"), what)
    finally:
        wipe(dk)
    key = PrivateKey(secret)
    state = json.loads(bytes(state_raw))
    usage = Usage(spent=Decimal(state["spent"]), revoked=bool(state["revoked"]), seq=int(state["seq"]))
    policy = Policy.from_json(state["policy"])
    return Session(sid, state["user"], state["smart_account"], key, policy, usage, edk, kn, kct, aead)
