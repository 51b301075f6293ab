"""The Signer gRPC service: policy checks, idempotency by request id, audit records in replies."""

from __future__ import annotations

import asyncio
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
    PrivateKey,
    RsaKey,
    SigningInputError,
    kalshi_headers,
    l1_headers,
    l2_headers,
    sign_eip1559,
    sign_polymarket_order,
)
from crossbook_signer import __version__
from crossbook_signer.policy import Policy, PolicyRefusal, check_order, order_notional, parse_amount
from crossbook_signer.sessions import Session, create_session

log = logging.getLogger("crossbook.signer")

SERVICE_NAME = "crossbook.signer.v1.Signer"
RULE_METADATA = "x-crossbook-rule"
MAX_REMEMBERED = 200_000
M = TypeVar("M", bound=Message)


class NotFound(SignerError, LookupError):
    pass


@dataclass
class Keys:
    wallets: dict[str, PrivateKey] = field(default_factory=dict)
    polymarket_api: dict[str, tuple[ApiCreds, str]] = field(default_factory=dict)
    kalshi: tuple[str, RsaKey] | None = None


@dataclass
class _Outcome:
    fingerprint: bytes
    reply: Message | None = None
    code: grpc.StatusCode | None = None
    message: str = ""
    rule: str = ""


@dataclass
class Hardening:
    landlock_abi: int = 0
    non_dumpable: bool = False
    keys_locked: bool = False


_INT_FIELDS = ("side", "signatureType")


def _order_dict(order: Any) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in order.items():
        out[k] = int(v) if k in _INT_FIELDS and v.isdigit() else v
    return out


class SignerService:
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

    # --- idempotency ---------------------------------------------------------------------------

    async def _once(
        self,
        name: str,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
        fn: Callable[[Any], M | Awaitable[M]],
    ) -> M:
        rid: str = request.request_id
        if not rid:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request_id is required (a unique id per request)")
        fp = hashlib.sha256(name.encode() + b"\0" + request.SerializeToString(deterministic=True)).digest()
        while rid in self._inflight:
            await asyncio.shield(self._inflight[rid])
        done = self._done.get(rid)
        if done is None:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._inflight[rid] = fut
            try:
                done = await self._compute(name, rid, fp, request, fn)
            except SignerError as exc:  # not remembered: a retry with the same id may succeed
                await context.abort(grpc.StatusCode.INTERNAL, str(exc))
                raise AssertionError("unreachable") from None
            finally:
                del self._inflight[rid]
                fut.set_result(None)
            replayed = False
        elif done.fingerprint != fp:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"request_id {rid!r} was already used for a different request; use a new id",
            )
            raise AssertionError("unreachable")
        else:
            replayed = True
            log.info("replay request_id=%s method=%s", rid, name)
        if done.code is not None:
            if done.rule:
                context.set_trailing_metadata(((RULE_METADATA, done.rule),))
            await context.abort(done.code, done.message)
        assert done.reply is not None
        if not replayed:
            return done.reply  # type: ignore[return-value]
        reply = type(done.reply)()
        reply.CopyFrom(done.reply)
        audit = getattr(reply, "audit", None)
        if audit is not None:
            audit.replayed = True
        return reply  # type: ignore[return-value]

    async def _compute(
        self, name: str, rid: str, fp: bytes, request: Any, fn: Callable[[Any], M | Awaitable[M]]
    ) -> _Outcome:
        try:
            result = fn(request)
            reply = await result if isinstance(result, Awaitable) else result
            outcome = _Outcome(fp, reply=reply)
            log.info("signed request_id=%s method=%s", rid, name)
        except PolicyRefusal as exc:
            outcome = _Outcome(fp, code=grpc.StatusCode.PERMISSION_DENIED, message=str(exc), rule=exc.rule)
            log.warning("refused request_id=%s method=%s rule=%s", rid, name, exc.rule)
        except NotFound as exc:
            outcome = _Outcome(fp, code=grpc.StatusCode.NOT_FOUND, message=str(exc))
            log.warning("refused request_id=%s method=%s: not found", rid, name)
        except (SigningInputError, ValueError) as exc:
            # Messages from crossbook.signing name the field and never carry key material.
            outcome = _Outcome(fp, code=grpc.StatusCode.INVALID_ARGUMENT, message=str(exc))
            log.warning("refused request_id=%s method=%s: invalid input", rid, name)
        except SignerError:
            raise
        except Exception as exc:  # not remembered: a retry with the same id may succeed
            log.error("error request_id=%s method=%s: %s", rid, name, type(exc).__name__)
            raise SignerError(f"internal signer error ({type(exc).__name__}); retry with the same request_id") from None
        self._done[rid] = outcome
        if len(self._done) > MAX_REMEMBERED:
            self._done.popitem(last=False)
        return outcome

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

    # --- RPCs ----------------------------------------------------------------------------------

    async def SignPolymarketOrder(
        self, request: pb.SignPolymarketOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.SignPolymarketOrderReply:
        return await self._once("SignPolymarketOrder", request, context, self._sign_order)

    def _sign_order(self, r: pb.SignPolymarketOrderRequest) -> pb.SignPolymarketOrderReply:
        order = _order_dict(r.order)
        kwargs: dict[str, Any] = {
            "version": r.version or "2",
            "chain_id": r.chain_id or 137,
            "neg_risk": r.neg_risk,
            "exchange": r.exchange or None,
        }
        which = r.key.WhichOneof("key")
        if which == "session_id":
            session = self._session(r.key.session_id)
            notional = order_notional(r.order)
            check_order(session.policy, session.usage, str(r.order.get("tokenId", "")), notional, time.time())
            signed = sign_polymarket_order(order, session.key, **kwargs)
            session.usage.spent += notional
            session.usage.seq += 1
            audit = self._audit(r.request_id, f"session:{session.sid}", str(notional), str(session.usage.spent))
            return pb.SignPolymarketOrderReply(
                hash=signed.hash, signature=signed.signature, audit=audit, session_blob=session.blob()
            )
        if which == "wallet":
            signed = sign_polymarket_order(order, self._wallet(r.key.wallet), **kwargs)
            notional_s = str(order_notional(r.order)) if r.order.get("side") else ""
            audit = self._audit(r.request_id, f"wallet:{r.key.wallet}", notional_s)
            return pb.SignPolymarketOrderReply(hash=signed.hash, signature=signed.signature, audit=audit)
        raise SigningInputError("key: set wallet or session_id")

    async def PolymarketL1Headers(
        self, request: pb.PolymarketL1HeadersRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.HeadersReply:
        def run(r: pb.PolymarketL1HeadersRequest) -> pb.HeadersReply:
            headers = l1_headers(
                self._wallet(r.wallet), timestamp=r.timestamp or None, nonce=r.nonce, chain_id=r.chain_id or 137
            )
            return pb.HeadersReply(headers=headers, audit=self._audit(r.request_id, f"wallet:{r.wallet}"))

        return await self._once("PolymarketL1Headers", request, context, run)

    async def PolymarketL2Headers(
        self, request: pb.PolymarketL2HeadersRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.HeadersReply:
        def run(r: pb.PolymarketL2HeadersRequest) -> pb.HeadersReply:
            account = self.keys.polymarket_api.get(r.account)
            if account is None:
                raise NotFound(f"no Polymarket API account named {r.account!r} is loaded in the signer")
            creds, address = account
            headers = l2_headers(creds, address, r.method, r.path, r.body or None, timestamp=r.timestamp or None)
            return pb.HeadersReply(headers=headers, audit=self._audit(r.request_id, f"polymarket_api:{r.account}"))

        return await self._once("PolymarketL2Headers", request, context, run)

    async def KalshiHeaders(
        self, request: pb.KalshiHeadersRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.HeadersReply:
        def run(r: pb.KalshiHeadersRequest) -> pb.HeadersReply:
            if self.keys.kalshi is None:
                raise NotFound("no Kalshi key is loaded in the signer ([kalshi] key_id and private_key)")
            key_id, key = self.keys.kalshi
            headers = kalshi_headers(key_id, key, r.method, r.path, now_ms=r.timestamp_ms or None)
            return pb.HeadersReply(headers=headers, audit=self._audit(r.request_id, f"kalshi:{key_id}"))

        return await self._once("KalshiHeaders", request, context, run)

    async def SignTransaction(
        self, request: pb.SignTransactionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.SignTransactionReply:
        def run(r: pb.SignTransactionRequest) -> pb.SignTransactionReply:
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

        return await self._once("SignTransaction", request, context, run)

    async def AuthorizeSession(
        self, request: pb.AuthorizeSessionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.SessionReply:
        async def run(r: pb.AuthorizeSessionRequest) -> pb.SessionReply:
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
            session = await asyncio.to_thread(
                create_session, self.kms, self.kms_key_id, r.user, r.smart_account, policy
            )
            self.sessions[session.sid] = session
            log.info("session authorized sid=%s user=%s address=%s", session.sid, r.user, session.key.address)
            return self._session_reply(r.request_id, session)

        return await self._once("AuthorizeSession", request, context, run)

    async def RevokeSession(
        self, request: pb.RevokeSessionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.SessionReply:
        def run(r: pb.RevokeSessionRequest) -> pb.SessionReply:
            session = self._session(r.session_id)
            session.usage.revoked = True
            session.usage.seq += 1
            log.info("session revoked sid=%s", session.sid)
            return self._session_reply(r.request_id, session)

        return await self._once("RevokeSession", request, context, run)

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

    async def Health(self, request: pb.HealthRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.HealthReply:
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

    async def ProbeOpen(
        self, request: pb.ProbeOpenRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ProbeOpenReply:
        if not self.test_mode:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "ProbeOpen exists only in test mode")
        try:
            with open(request.path, "rb"):  # noqa: ASYNC230 (test-mode probe; must run on the serving thread)
                return pb.ProbeOpenReply(opened=True)
        except OSError as exc:
            return pb.ProbeOpenReply(opened=False, error=f"{type(exc).__name__}: [Errno {exc.errno}] {exc.strerror}")


_METHODS: dict[str, tuple[type[Message], type[Message]]] = {
    "SignPolymarketOrder": (pb.SignPolymarketOrderRequest, pb.SignPolymarketOrderReply),
    "PolymarketL1Headers": (pb.PolymarketL1HeadersRequest, pb.HeadersReply),
    "PolymarketL2Headers": (pb.PolymarketL2HeadersRequest, pb.HeadersReply),
    "KalshiHeaders": (pb.KalshiHeadersRequest, pb.HeadersReply),
    "SignTransaction": (pb.SignTransactionRequest, pb.SignTransactionReply),
    "AuthorizeSession": (pb.AuthorizeSessionRequest, pb.SessionReply),
    "RevokeSession": (pb.RevokeSessionRequest, pb.SessionReply),
    "Health": (pb.HealthRequest, pb.HealthReply),
    "ProbeOpen": (pb.ProbeOpenRequest, pb.ProbeOpenReply),
}


def generic_handler(service: SignerService) -> grpc.GenericRpcHandler:
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(service, name), request_deserializer=req.FromString, response_serializer=rep.SerializeToString
        )
        for name, (req, rep) in _METHODS.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)
