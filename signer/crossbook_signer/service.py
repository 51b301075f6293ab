"""The Signer gRPC service: policy checks, idempotency by request id, audit records in replies."""

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
from typing import Any, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

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
from crossbook.signing.fastframe import METHODS
from crossbook_signer import __version__
from crossbook_signer.policy import Policy, PolicyRefusal, check_order, order_notional, parse_amount
from crossbook_signer.sessions import Session, create_session

log = logging.getLogger("crossbook.signer")

SERVICE_NAME = "crossbook.signer.v1.Signer"
RULE_METADATA = "x-crossbook-rule"
MAX_REMEMBERED = 200_000


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
Handler = Callable[[Any], Message | Awaitable[Message]]


@dataclass(frozen=True, slots=True)
class _Method:
    fn: Handler
    is_async: bool  # the handler awaits (a KMS call); otherwise it finishes without yielding
    idempotent: bool = True  # remembered by request id (every method but Health and ProbeOpen)


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
    the gRPC servicer (:func:`generic_handler`) and the fast path (:mod:`crossbook_signer.fast`) use."""

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

    # --- the one entry point -------------------------------------------------------------------

    def call(self, name: str, request: Any) -> Message | Awaitable[Message]:
        """Handle one request: the reply, or an awaitable of it when the handler must wait (a KMS call,
        or a concurrent request with the same id in flight). Raises :class:`Refusal`.

        A synchronous handler with no duplicate in flight runs to completion here, without yielding to
        the loop, so nothing can interleave between the idempotency lookup and the signature (the fast
        path relies on this to answer in the same loop turn, without a task)."""
        method = self.methods[name]
        self.calls += 1
        if not method.idempotent:
            return method.fn(request)
        rid: str = request.request_id
        if not rid:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "request_id is required (a unique id per request)")
        fp = hashlib.sha256(name.encode() + b"\0" + request.SerializeToString(deterministic=True)).digest()
        if method.is_async or rid in self._inflight:
            return self._call_async(name, rid, fp, request, method.fn)
        done = self._done.get(rid)
        if done is not None:
            return self._replay(name, rid, fp, done)
        try:
            result = method.fn(request)
            assert isinstance(result, Message), f"{name} is marked synchronous"
        except Exception as exc:  # a remembered refusal, or re-raised as INTERNAL
            raise self._refused(name, rid, fp, exc) from None
        self._remember(rid, (fp, result.SerializeToString(), 0, "", ""))
        _log_soon(logging.INFO, "signed request_id=%s method=%s", rid, name)
        return result

    async def _call_async(self, name: str, rid: str, fp: bytes, request: Any, fn: Handler) -> Message:
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
            except Exception as exc:  # as in call()
                raise self._refused(name, rid, fp, exc) from None
            self._remember(rid, (fp, reply.SerializeToString(), 0, "", ""))
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
        when a real order comes: the whole PreparePolymarketOrder path (request parse, fingerprint,
        signature, body, L2 HMAC, reply) and the SignPolymarketOrder reply."""
        if self._warm_key is None or self._warm_creds is None:
            self._warm_key = PrivateKey(bytearray(os.urandom(32)))
            self._warm_creds = ApiCreds("warm", HmacKey(base64.urlsafe_b64encode(os.urandom(32)).decode()), "warm")
        key, creds = self._warm_key, self._warm_creds
        order = {**_WARM_ORDER, "maker": key.address, "signer": key.address}
        req = pb.PreparePolymarketOrderRequest(
            request_id="warm", key=pb.KeyRef(wallet="warm"), order=order, account="warm", order_type="FOK"
        )
        request = pb.PreparePolymarketOrderRequest.FromString(req.SerializeToString())
        hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
        ready = prepare_polymarket_order(_order_dict(request.order), key, creds, key.address, request.order_type)
        pb.SignPolymarketOrderReply(hash=ready.hash, signature=ready.signature).SerializeToString()
        audit = self._audit("warm", "wallet:warm", "1")
        pb.PreparePolymarketOrderReply(
            hash=ready.hash, signature=ready.signature, body=ready.body, headers=ready.headers, audit=audit
        ).SerializeToString()

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
        self, r: pb.SignPolymarketOrderRequest | pb.PreparePolymarketOrderRequest, sign: Callable[[PrivateKey], _T]
    ) -> tuple[_T, pb.Audit, dict[str, bytes]]:
        """Sign with the key an order request names. The one place every order signature passes: a session's
        policy is checked before signing and its spend recorded after; the reply fields it adds come back."""
        which = r.key.WhichOneof("key")
        if which == "session_id":
            session = self._session(r.key.session_id)
            notional = order_notional(r.order)
            check_order(session.policy, session.usage, str(r.order.get("tokenId", "")), notional, time.time())
            out = sign(session.key)
            session.usage.spent += notional
            session.usage.seq += 1
            audit = self._audit(r.request_id, f"session:{session.sid}", str(notional), str(session.usage.spent))
            return out, audit, {"session_blob": session.blob()}
        if which == "wallet":
            out = sign(self._wallet(r.key.wallet))
            notional_s = str(order_notional(r.order)) if r.order.get("side") else ""
            return out, self._audit(r.request_id, f"wallet:{r.key.wallet}", notional_s), {}
        raise SigningInputError("key: set wallet or session_id")

    def _sign_order(self, r: pb.SignPolymarketOrderRequest) -> pb.SignPolymarketOrderReply:
        order = _order_dict(r.order)
        kwargs: dict[str, Any] = {
            "version": r.version or "2",
            "chain_id": r.chain_id or 137,
            "neg_risk": r.neg_risk,
            "exchange": r.exchange or None,
        }
        signed, audit, extra = self._sign_under_key(r, lambda key: sign_polymarket_order(order, key, **kwargs))
        return pb.SignPolymarketOrderReply(hash=signed.hash, signature=signed.signature, audit=audit, **extra)

    def _prepare_order(self, r: pb.PreparePolymarketOrderRequest) -> pb.PreparePolymarketOrderReply:
        """Sign the order (the same key rules and session policy as :meth:`_sign_order`), build its POST body
        and sign the L2 headers over it: what the daemon sends, in one call."""
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
        ready, audit, extra = self._sign_under_key(
            r, lambda key: prepare_polymarket_order(order, key, creds, address, r.order_type, **kwargs)
        )
        return pb.PreparePolymarketOrderReply(
            hash=ready.hash, signature=ready.signature, body=ready.body, headers=ready.headers, audit=audit, **extra
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


GrpcHandler = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Message]]


def _grpc_method(service: SignerService, name: str) -> GrpcHandler:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        try:
            result = service.call(name, request)
            return await result if isinstance(result, Awaitable) else result
        except Refusal as exc:
            if exc.rule:
                context.set_trailing_metadata(((RULE_METADATA, exc.rule),))
            await context.abort(exc.code, exc.message)
            raise AssertionError("unreachable") from None

    return handle


def generic_handler(service: SignerService) -> grpc.GenericRpcHandler:
    # One table of methods and message types for both transports (crossbook.signing.fastframe).
    handlers = {
        m.name: grpc.unary_unary_rpc_method_handler(
            _grpc_method(service, m.name),
            request_deserializer=m.request.FromString,
            response_serializer=m.reply.SerializeToString,
        )
        for m in METHODS.values()
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)
