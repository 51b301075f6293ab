"""The Signer gRPC service: policy checks, idempotency by request id, audit records in replies.

PreparePolymarketOrder, the order path, runs compiled (``crossbook._core.PolymarketOrderRequest``):
both transports hand :meth:`SignerService.prepare_order_raw` the request's bytes and send the reply
bytes it returns, with no protobuf objects on the way; key lookups, session policy and idempotency
stay here, the same code as for every other method."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar, cast

import grpc
import grpc.aio
from google.protobuf.message import Message

from crossbook._core import PolymarketOrderRequest
from crossbook._proto import signer_pb2 as pb
from crossbook.errors import SignerError
from crossbook.signing import (
    ApiCreds,
    HmacKey,
    PrivateKey,
    RsaKey,
    SigningInputError,
    kalshi_headers,
    l1_headers,
    l2_headers,
    prepare_polymarket_order,
    sign_eip1559,
    sign_polymarket_order,
)
from crossbook.signing.fastframe import HEADER, METHODS
from crossbook_signer import __version__
from crossbook_signer.policy import Policy, PolicyRefusal, check_order, order_notional, parse_amount
from crossbook_signer.sessions import Session, create_session

log = logging.getLogger("crossbook.signer")

SERVICE_NAME = "crossbook.signer.v1.Signer"
RULE_METADATA = "x-crossbook-rule"
MAX_REMEMBERED = 200_000
PREPARE = "PreparePolymarketOrder"


class NotFound(SignerError, LookupError):
    pass


@dataclass
class Keys:
    wallets: dict[str, PrivateKey] = field(default_factory=dict)
    polymarket_api: dict[str, tuple[ApiCreds, str]] = field(default_factory=dict)
    kalshi: tuple[str, RsaKey] | None = None


# A remembered outcome: (fingerprint, serialized reply or b"", status code number (0 = OK), message,
# rule). A plain tuple of bytes/str/int on purpose: the garbage collector stops tracking it, so the
# MAX_REMEMBERED entries cost no GC time. Kept as reply messages (GC-tracked objects), 100k of them
# made full collections pause the signer for 70-80 ms.
_Outcome = tuple[bytes, bytes, int, str, str]
_STATUS = {c.value[0]: c for c in grpc.StatusCode}
_REPLY_TYPES = {m.name: m.reply for m in METHODS.values()}


class Refusal(Exception):
    """A request the signer answers with an error: the status both transports send (gRPC: status code +
    trailing metadata ``x-crossbook-rule``; fast path: a ``CallError`` frame). Never carries key material."""

    def __init__(self, code: grpc.StatusCode, message: str, rule: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.rule = rule


@dataclass
class Hardening:
    landlock_abi: int = 0
    non_dumpable: bool = False
    keys_locked: bool = False


_INT_FIELDS = ("side", "signatureType")
_WARM_ORDER = {
    "salt": "1",
    "tokenId": "1",
    "makerAmount": "1000000",
    "takerAmount": "2000000",
    "side": "0",
    "signatureType": "0",
    "timestamp": "1700000000",
}

_T = TypeVar("_T")
_Reply = Message | bytes  # a reply message, or its serialization (the compiled path's)
Handler = Callable[[Any], _Reply | Awaitable[_Reply]]
# A method both transports hand the request's bytes, answering the reply's bytes (or an awaitable of them).
RawHandler = Callable[[bytes], bytes | Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class _Method:
    fn: Handler
    is_async: bool  # the handler awaits (a KMS call); otherwise it finishes without yielding
    idempotent: bool = True  # remembered by request id (every method but Health and ProbeOpen)


class _Signed(NamedTuple):
    """What signing under a key adds to an order reply: the audit's key, notional and cumulative strings,
    and the session's new sealed state (b"" for a wallet). ``notional`` None: a wallet signature, whose
    audit shows the order's own notional (:func:`_wallet_notional`; informative, no policy applies)."""

    key: str
    notional: str | None
    cumulative: str
    session_blob: bytes


def _wallet_notional(order: Any) -> str:
    return str(order_notional(order)) if order.get("side") else ""


def _serialized(reply: _Reply) -> bytes:
    return reply if isinstance(reply, bytes) else reply.SerializeToString()


async def _bytes_of(pending: Awaitable[_Reply]) -> bytes:
    return _serialized(await pending)


async def _message_of(reply_type: type[Message], pending: Awaitable[bytes]) -> Message:
    return reply_type.FromString(await pending)


def _require_id(rid: str) -> None:
    if not rid:
        raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "request_id is required (a unique id per request)")


def _order_dict(order: Any) -> dict[str, object]:
    out: dict[str, object] = dict(order)  # one C-level copy of the protobuf map (its .items() is slow)
    for k in _INT_FIELDS:
        v = out.get(k)
        if isinstance(v, str) and v.isdigit():
            out[k] = int(v)
    return out


def _log_soon(level: int, msg: str, *args: object) -> None:
    """Log once the current loop turn is over, so the reply is written first: a formatted log line
    costs ~8 µs, a third of a signature. Outside a loop (tests calling directly) log at once."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        log.log(level, msg, *args)
        return
    loop.call_soon(log.log, level, msg, *args)


class SignerService:
    """The request handling of the signer, independent of the transport: :meth:`call` is the one entry
    the gRPC servicer (:func:`generic_handler`) and the fast path (:mod:`crossbook_signer.fast`) use for a
    request message; a method in :attr:`raw_methods` (PreparePolymarketOrder: :meth:`prepare_order_raw`)
    is handed the request's bytes by both instead, and answers the reply's bytes. Either way the same
    idempotency, refusals and log (:meth:`_run`)."""

    def __init__(
        self,
        keys: Keys,
        sessions: dict[str, Session],
        kms: Any,
        kms_key_id: str,
        hardening: Hardening,
        test_mode: bool = False,
    ) -> None:
        self.keys = keys
        self.sessions = sessions
        self.kms = kms
        self.kms_key_id = kms_key_id
        self.hardening = hardening
        self.test_mode = test_mode
        self._done: OrderedDict[str, _Outcome] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self._warm_key: PrivateKey | None = None
        self._warm_creds: ApiCreds | None = None
        self.calls = 0  # requests handled; the keep-warm timer skips a tick that saw one
        self.methods: dict[str, _Method] = {
            "SignPolymarketOrder": _Method(self._sign_order, False),
            "PreparePolymarketOrder": _Method(self._prepare_order, False),
            "PolymarketL1Headers": _Method(self._l1_headers, False),
            "PolymarketL2Headers": _Method(self._l2_headers, False),
            "KalshiHeaders": _Method(self._kalshi_headers, False),
            "SignTransaction": _Method(self._sign_transaction, False),
            "AuthorizeSession": _Method(self._authorize_session, True),
            "RevokeSession": _Method(self._revoke_session, False),
            "Health": _Method(self._health, False, idempotent=False),
            "ProbeOpen": _Method(self._probe_open, False, idempotent=False),
        }
        self.raw_methods: dict[str, RawHandler] = {PREPARE: self.prepare_order_raw}

    # --- the one entry point -------------------------------------------------------------------

    def call(self, name: str, request: Any) -> Message | Awaitable[Message]:
        """Handle one request: the reply, or an awaitable of it when the handler must wait (a KMS call,
        or a concurrent request with the same id in flight). Raises :class:`Refusal`.

        A synchronous handler with no duplicate in flight runs to completion here, without yielding to
        the loop, so nothing can interleave between the idempotency lookup and the signature (the fast
        path relies on this to answer in the same loop turn, without a task). A method of
        :attr:`raw_methods` is served by it: the message is serialized for it and its reply parsed."""
        raw = self.raw_methods.get(name)
        if raw is not None:
            result = raw(request.SerializeToString())
            reply_type = _REPLY_TYPES[name]
            return reply_type.FromString(result) if isinstance(result, bytes) else _message_of(reply_type, result)
        method = self.methods[name]
        self.calls += 1
        if not method.idempotent:
            return cast("Message", method.fn(request))  # Health, ProbeOpen
        rid: str = request.request_id
        _require_id(rid)
        fp = hashlib.sha256(name.encode() + b"\0" + request.SerializeToString(deterministic=True)).digest()
        # A message handler answers messages (only a raw method answers bytes).
        return cast("Message | Awaitable[Message]", self._run(name, rid, fp, request, method.fn, method.is_async))

    def prepare_order_raw(self, payload: bytes) -> bytes | Awaitable[bytes]:
        """PreparePolymarketOrder from the request's bytes to the reply's bytes, both transports' entry:
        what :meth:`call` does (request id, fingerprint, idempotency, refusals, log) around the compiled
        order step (:meth:`_prepare_compiled`). A payload that is not a request message is refused
        (INVALID_ARGUMENT, naming the problem) and not remembered: it has no request id.

        The fingerprint is the same as for a message through :meth:`call`: ``PolymarketOrderRequest``
        reproduces ``SerializeToString(deterministic=True)`` byte for byte, so a request first sent on one
        transport and retried on the other is recognized."""
        try:
            req = PolymarketOrderRequest(payload)
        except ValueError as exc:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"{PREPARE}: {exc}") from None
        self.calls += 1
        rid = req.request_id
        _require_id(rid)
        result = self._run(PREPARE, rid, req.fingerprint, req, self._prepare_compiled, False)
        if isinstance(result, bytes):
            return result
        if isinstance(result, Message):  # a replay
            return result.SerializeToString()
        return _bytes_of(result)

    def prepare_wallet_frame(
        self, payload: bytes, kind: int, call_id: int
    ) -> tuple[bytes, PolymarketOrderRequest] | None:
        """The fast path's common case of PreparePolymarketOrder in one step, its reply as a whole frame
        (``kind``, ``call_id``): a request for a loaded wallet and API account, its id neither remembered nor
        in flight, that signs. None for anything else (a session key, a replay, a refusal, values only
        Python's rules judge): :meth:`prepare_order_raw` then answers it, the same way, and remembers it. The
        same signature, body, headers and audit as that path (:meth:`_prepare_compiled` with a wallet). The
        caller writes the frame, then calls :meth:`remember_wallet_frame` in the same loop turn."""
        try:
            req = PolymarketOrderRequest(payload)
            rid = req.request_id
            if (not rid or req.key_kind != "wallet" or req.needs_python_rules or rid in self._done
                    or rid in self._inflight):  # fmt: skip
                return None
            account = self.keys.polymarket_api.get(req.account)
            key = self.keys.wallets.get(req.key_name)
            if account is None or key is None:
                return None
            creds, address = account
            req.sign(key, creds.secret, creds.api_key, creds.passphrase, address)
            return req.wallet_reply_frame(kind, call_id, f"wallet:{req.key_name}"), req
        except Exception:  # refused (nothing signed for a wallet has a side effect): the general path says why
            return None

    def remember_wallet_frame(self, req: PolymarketOrderRequest, frame: bytes) -> None:
        """After :meth:`prepare_wallet_frame`'s frame is written: what :meth:`_run` does after a signature
        (the reply remembered under the request id with its fingerprint, the log line)."""
        self.calls += 1
        rid = req.request_id
        self._remember(rid, (req.fingerprint, frame[HEADER.size :], 0, "", ""))
        _log_soon(logging.INFO, "signed request_id=%s method=%s", rid, PREPARE)

    def _run(
        self, name: str, rid: str, fp: bytes, request: Any, fn: Handler, is_async: bool
    ) -> _Reply | Awaitable[_Reply]:
        """One idempotent request, remembered under its id with its fingerprint (see :meth:`call`)."""
        if is_async or rid in self._inflight:
            return self._call_async(name, rid, fp, request, fn)
        done = self._done.get(rid)
        if done is not None:
            return self._replay(name, rid, fp, done)
        try:
            result = fn(request)
            assert isinstance(result, Message | bytes), f"{name} is marked synchronous"
        except Exception as exc:  # a remembered refusal, or re-raised as INTERNAL
            raise self._refused(name, rid, fp, exc) from None
        self._remember(rid, (fp, _serialized(result), 0, "", ""))
        _log_soon(logging.INFO, "signed request_id=%s method=%s", rid, name)
        return result

    async def _call_async(self, name: str, rid: str, fp: bytes, request: Any, fn: Handler) -> _Reply:
        while rid in self._inflight:
            await asyncio.shield(self._inflight[rid])
        done = self._done.get(rid)
        if done is not None:
            return self._replay(name, rid, fp, done)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight[rid] = fut
        try:
            try:
                result = fn(request)
                reply = await result if isinstance(result, Awaitable) else result
            except Exception as exc:  # as in _run()
                raise self._refused(name, rid, fp, exc) from None
            self._remember(rid, (fp, _serialized(reply), 0, "", ""))
            log.info("signed request_id=%s method=%s", rid, name)
            return reply
        finally:
            del self._inflight[rid]
            fut.set_result(None)

    def _refused(self, name: str, rid: str, fp: bytes, exc: Exception) -> Refusal:
        """The refusal for a handler that raised. Policy, not-found and input refusals are remembered
        (the same id is refused again, the same way); an unexpected error is not, so a retry with the
        same id may succeed."""
        if isinstance(exc, PolicyRefusal):
            _log_soon(logging.WARNING, "refused request_id=%s method=%s rule=%s", rid, name, exc.rule)
            return self._remember_refusal(rid, fp, grpc.StatusCode.PERMISSION_DENIED, str(exc), exc.rule)
        if isinstance(exc, NotFound):
            _log_soon(logging.WARNING, "refused request_id=%s method=%s: not found", rid, name)
            return self._remember_refusal(rid, fp, grpc.StatusCode.NOT_FOUND, str(exc))
        if isinstance(exc, SigningInputError | ValueError):
            # Messages from crossbook.signing name the field and never carry key material.
            _log_soon(logging.WARNING, "refused request_id=%s method=%s: invalid input", rid, name)
            return self._remember_refusal(rid, fp, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if isinstance(exc, SignerError):
            return Refusal(grpc.StatusCode.INTERNAL, str(exc))
        log.error("error request_id=%s method=%s: %s", rid, name, type(exc).__name__)
        return Refusal(
            grpc.StatusCode.INTERNAL, f"internal signer error ({type(exc).__name__}); retry with the same request_id"
        )

    def _remember_refusal(self, rid: str, fp: bytes, code: grpc.StatusCode, message: str, rule: str = "") -> Refusal:
        self._remember(rid, (fp, b"", code.value[0], message, rule))
        return Refusal(code, message, rule)

    def _remember(self, rid: str, outcome: _Outcome) -> None:
        self._done[rid] = outcome
        if len(self._done) > MAX_REMEMBERED:
            self._done.popitem(last=False)

    def _replay(self, name: str, rid: str, fp: bytes, done: _Outcome) -> Message:
        """The answer to a repeated request id: the first reply (marked ``replayed``) or refusal."""
        fingerprint, reply_bytes, code, message, rule = done
        if fingerprint != fp:
            raise Refusal(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"request_id {rid!r} was already used for a different request; use a new id",
            )
        _log_soon(logging.INFO, "replay request_id=%s method=%s", rid, name)
        if code:
            raise Refusal(_STATUS[code], message, rule)
        reply = _REPLY_TYPES[name].FromString(reply_bytes)
        audit = getattr(reply, "audit", None)
        if audit is not None:
            audit.replayed = True
        return reply

    # --- keeping warm ---------------------------------------------------------------------------

    def warm(self) -> None:
        """Run the order path once with a throwaway key, throwaway API credentials and a fixed order
        (nothing remembered, nothing logged, no real key touched), so code, caches and the CPU are warm
        when a real order comes: the whole compiled PreparePolymarketOrder path (request decode,
        fingerprint, signature, body, L2 HMAC, reply) and the SignPolymarketOrder reply."""
        if self._warm_key is None or self._warm_creds is None:
            self._warm_key = PrivateKey(bytearray(os.urandom(32)))
            self._warm_creds = ApiCreds("warm", HmacKey(base64.urlsafe_b64encode(os.urandom(32)).decode()), "warm")
        key, creds = self._warm_key, self._warm_creds
        order = {**_WARM_ORDER, "maker": key.address, "signer": key.address}
        payload = pb.PreparePolymarketOrderRequest(
            request_id="warm", key=pb.KeyRef(wallet="warm"), order=order, account="warm", order_type="FOK"
        ).SerializeToString()
        req = PolymarketOrderRequest(payload)
        req.fingerprint  # noqa: B018  # computed on access
        req.sign(key, creds.secret, creds.api_key, creds.passphrase, key.address)
        reply = pb.PreparePolymarketOrderReply.FromString(req.reply("wallet:warm"))
        pb.SignPolymarketOrderReply(hash=reply.hash, signature=reply.signature).SerializeToString()

    # --- helpers -------------------------------------------------------------------------------

    def _audit(self, rid: str, key: str, notional: str = "", cumulative: str = "") -> pb.Audit:
        return pb.Audit(
            request_id=rid,
            decision="signed",
            key=key,
            notional=notional,
            cumulative=cumulative,
            signed_at_ms=time.time_ns() // 1_000_000,
        )

    def _wallet(self, name: str) -> PrivateKey:
        key = self.keys.wallets.get(name)
        if key is None:
            raise NotFound(f"no wallet named {name!r} is loaded in the signer")
        return key

    def _session(self, sid: str) -> Session:
        session = self.sessions.get(sid)
        if session is None:
            raise NotFound(f"no session {sid!r} in the signer (never authorized, or its blob was not loaded)")
        return session

    # --- request handlers (one per method; called only through call()) -------------------------

    def _sign_under_key(
        self, which: str | None, name: str, order: Callable[[], Any], sign: Callable[[PrivateKey], _T]
    ) -> tuple[_T, _Signed]:
        """Sign with the key an order request names (``which``: its ``KeyRef`` oneof, ``name`` its value;
        ``order()`` gives the order map). The one place every order signature passes, message or compiled:
        a session's policy is checked before signing and its spend recorded after; the reply fields it adds
        come back."""
        if which == "session_id":
            session = self._session(name)
            o = order()
            notional = order_notional(o)
            check_order(session.policy, session.usage, str(o.get("tokenId", "")), notional, time.time())
            out = sign(session.key)
            session.usage.spent += notional
            session.usage.seq += 1
            return out, _Signed(f"session:{session.sid}", str(notional), str(session.usage.spent), session.blob())
        if which == "wallet":
            return sign(self._wallet(name)), _Signed(f"wallet:{name}", None, "", b"")
        raise SigningInputError("key: set wallet or session_id")

    def _order_audit(self, r: pb.SignPolymarketOrderRequest | pb.PreparePolymarketOrderRequest, s: _Signed) -> pb.Audit:
        notional = _wallet_notional(r.order) if s.notional is None else s.notional
        return self._audit(r.request_id, s.key, notional, s.cumulative)

    def _key_of(self, r: pb.SignPolymarketOrderRequest | pb.PreparePolymarketOrderRequest) -> tuple[str | None, str]:
        which = r.key.WhichOneof("key")
        return which, getattr(r.key, which) if which else ""

    def _sign_order(self, r: pb.SignPolymarketOrderRequest) -> pb.SignPolymarketOrderReply:
        order = _order_dict(r.order)
        kwargs: dict[str, Any] = {
            "version": r.version or "2",
            "chain_id": r.chain_id or 137,
            "neg_risk": r.neg_risk,
            "exchange": r.exchange or None,
        }
        signed, s = self._sign_under_key(
            *self._key_of(r), lambda: r.order, lambda key: sign_polymarket_order(order, key, **kwargs)
        )
        audit = self._order_audit(r, s)
        return pb.SignPolymarketOrderReply(
            hash=signed.hash, signature=signed.signature, audit=audit, session_blob=s.session_blob
        )

    def _prepare_compiled(self, req: PolymarketOrderRequest) -> bytes:
        """PreparePolymarketOrder on the compiled order step: :meth:`_prepare_order` check for check (the
        same lookups in the same order, the same policy through :meth:`_sign_under_key`), the hash,
        signature, body and headers byte for byte, the reply serialized in Rust. A request whose order
        needs Python's own reading of Unicode digits or big numbers (``needs_python_rules``, never a real
        order) is handed to :meth:`_prepare_order` whole."""
        account = self.keys.polymarket_api.get(req.account)
        if account is None:
            raise NotFound(f"no Polymarket API account named {req.account!r} is loaded in the signer")
        if req.needs_python_rules:  # the same message, re-read by protobuf; the reply serialized as Rust does
            reply = self._prepare_order(pb.PreparePolymarketOrderRequest.FromString(req.canonical()))
            return reply.SerializeToString(deterministic=True)
        creds, address = account

        def sign(key: PrivateKey) -> None:
            req.sign(key, creds.secret, creds.api_key, creds.passphrase, address)

        _, s = self._sign_under_key(req.key_kind, req.key_name, req.order, sign)
        return req.reply(s.key, s.notional, s.cumulative, s.session_blob)

    def _prepare_order(self, r: pb.PreparePolymarketOrderRequest) -> pb.PreparePolymarketOrderReply:
        """Sign the order (the same key rules and session policy as :meth:`_sign_order`), build its POST body
        and sign the L2 headers over it: what the daemon sends, in one call. The reference for
        :meth:`_prepare_compiled`, which serves the method, and its fallback."""
        account = self.keys.polymarket_api.get(r.account)
        if account is None:
            raise NotFound(f"no Polymarket API account named {r.account!r} is loaded in the signer")
        creds, address = account
        order = _order_dict(r.order)
        kwargs: dict[str, Any] = {
            "path": r.path or "/order",
            "timestamp": r.timestamp or None,
            "defer_exec": r.defer_exec,
            "post_only": r.post_only,
            "chain_id": r.chain_id or 137,
            "neg_risk": r.neg_risk,
            "exchange": r.exchange or None,
        }
        ready, s = self._sign_under_key(
            *self._key_of(r),
            lambda: r.order,
            lambda key: prepare_polymarket_order(order, key, creds, address, r.order_type, **kwargs),
        )
        audit = self._order_audit(r, s)
        return pb.PreparePolymarketOrderReply(
            hash=ready.hash,
            signature=ready.signature,
            body=ready.body,
            headers=ready.headers,
            audit=audit,
            session_blob=s.session_blob,
        )

    def _l1_headers(self, r: pb.PolymarketL1HeadersRequest) -> pb.HeadersReply:
        headers = l1_headers(
            self._wallet(r.wallet), timestamp=r.timestamp or None, nonce=r.nonce, chain_id=r.chain_id or 137
        )
        return pb.HeadersReply(headers=headers, audit=self._audit(r.request_id, f"wallet:{r.wallet}"))

    def _l2_headers(self, r: pb.PolymarketL2HeadersRequest) -> pb.HeadersReply:
        account = self.keys.polymarket_api.get(r.account)
        if account is None:
            raise NotFound(f"no Polymarket API account named {r.account!r} is loaded in the signer")
        creds, address = account
        headers = l2_headers(creds, address, r.method, r.path, r.body or None, timestamp=r.timestamp or None)
        return pb.HeadersReply(headers=headers, audit=self._audit(r.request_id, f"polymarket_api:{r.account}"))

    def _kalshi_headers(self, r: pb.KalshiHeadersRequest) -> pb.HeadersReply:
        if self.keys.kalshi is None:
            raise NotFound("no Kalshi key is loaded in the signer ([kalshi] key_id and private_key)")
        key_id, key = self.keys.kalshi
        headers = kalshi_headers(key_id, key, r.method, r.path, now_ms=r.timestamp_ms or None)
        return pb.HeadersReply(headers=headers, audit=self._audit(r.request_id, f"kalshi:{key_id}"))

    def _sign_transaction(self, r: pb.SignTransactionRequest) -> pb.SignTransactionReply:
        def wei(value: str, what: str) -> int:
            if not value.isdigit():
                raise SigningInputError(f"{what}: expected a non-negative integer in wei (decimal)")
            return int(value)

        tx: dict[str, object] = {
            "chainId": r.chain_id,
            "nonce": r.nonce,
            "gas": r.gas,
            "maxPriorityFeePerGas": wei(r.max_priority_fee_per_gas, "max_priority_fee_per_gas"),
            "maxFeePerGas": wei(r.max_fee_per_gas, "max_fee_per_gas"),
            "to": r.to or None,
            "value": wei(r.value or "0", "value"),
            "data": bytes(r.data),
        }
        signed = sign_eip1559(self._wallet(r.wallet), tx)
        return pb.SignTransactionReply(
            raw=signed.raw, hash=signed.hash, audit=self._audit(r.request_id, f"wallet:{r.wallet}")
        )

    async def _authorize_session(self, r: pb.AuthorizeSessionRequest) -> pb.SessionReply:
        if not self.kms_key_id:
            raise SignerError("sessions need [kms] key_id in the signer config")
        if r.expires_at <= time.time():
            raise SigningInputError("expires_at: must be in the future (unix seconds)")
        if not r.allowed_token_ids:
            raise SigningInputError("allowed_token_ids: name at least one market (token id)")
        policy = Policy(
            expires_at=r.expires_at,
            max_order_notional=parse_amount(r.max_order_notional, "max_order_notional"),
            max_total_notional=parse_amount(r.max_total_notional, "max_total_notional"),
            allowed_token_ids=frozenset(r.allowed_token_ids),
        )
        session = await asyncio.to_thread(create_session, self.kms, self.kms_key_id, r.user, r.smart_account, policy)
        self.sessions[session.sid] = session
        log.info("session authorized sid=%s user=%s address=%s", session.sid, r.user, session.key.address)
        return self._session_reply(r.request_id, session)

    def _revoke_session(self, r: pb.RevokeSessionRequest) -> pb.SessionReply:
        session = self._session(r.session_id)
        session.usage.revoked = True
        session.usage.seq += 1
        log.info("session revoked sid=%s", session.sid)
        return self._session_reply(r.request_id, session)

    def _session_reply(self, rid: str, s: Session) -> pb.SessionReply:
        return pb.SessionReply(
            session_id=s.sid,
            address=s.key.address,
            expires_at=s.policy.expires_at,
            revoked=s.usage.revoked,
            cumulative=str(s.usage.spent),
            session_blob=s.blob(),
            audit=self._audit(rid, f"session:{s.sid}", cumulative=str(s.usage.spent)),
        )

    def _health(self, request: pb.HealthRequest) -> pb.HealthReply:
        h = self.hardening
        return pb.HealthReply(
            status="ok",
            version=__version__,
            landlock=h.landlock_abi > 0,
            landlock_abi=h.landlock_abi,
            non_dumpable=h.non_dumpable,
            keys_locked=h.keys_locked,
            sessions=len(self.sessions),
            wallets=sorted(self.keys.wallets),
            pid=os.getpid(),
        )

    def _probe_open(self, request: pb.ProbeOpenRequest) -> pb.ProbeOpenReply:
        if not self.test_mode:
            raise Refusal(grpc.StatusCode.UNIMPLEMENTED, "ProbeOpen exists only in test mode")
        try:
            with open(request.path, "rb"):  # test-mode probe; must run on the serving thread (Landlock)
                return pb.ProbeOpenReply(opened=True)
        except OSError as exc:
            return pb.ProbeOpenReply(opened=False, error=f"{type(exc).__name__}: [Errno {exc.errno}] {exc.strerror}")


GrpcHandler = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


def _grpc_method(service: SignerService, name: str) -> GrpcHandler:
    raw = service.raw_methods.get(name)

    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Message | bytes:
        # A raw method gets the request's bytes and answers bytes, exactly as on the fast path.
        try:
            result = raw(request) if raw is not None else service.call(name, request)
            return await result if isinstance(result, Awaitable) else result
        except Refusal as exc:
            if exc.rule:
                context.set_trailing_metadata(((RULE_METADATA, exc.rule),))
            await context.abort(exc.code, exc.message)
            raise AssertionError("unreachable") from None

    return handle


def generic_handler(service: SignerService) -> grpc.GenericRpcHandler:
    # One table of methods and message types for both transports (crossbook.signing.fastframe); a raw
    # method (SignerService.raw_methods) is handed the request bytes unparsed and returns reply bytes.
    handlers = {
        m.name: grpc.unary_unary_rpc_method_handler(
            _grpc_method(service, m.name),
            request_deserializer=None if m.name in service.raw_methods else m.request.FromString,
            response_serializer=None if m.name in service.raw_methods else m.reply.SerializeToString,
        )
        for m in METHODS.values()
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)
