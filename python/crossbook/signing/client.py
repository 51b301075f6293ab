"""Client of the signer service (``crossbook-signer``) over its Unix socket (gRPC).

Every call carries a request id (generated if not given). The signer answers a repeated id with its
first reply (same signature, counted once against session limits) for as long as that signer process
lives, so retrying with the same id after an error is safe. Errors:

- :class:`SignerPolicyError` (a ``PolicyViolation``/``PermissionError``): a session rule refused;
  ``.rule`` names it (``expired``, ``revoked``, ``market_not_allowed``, ``max_order_notional``,
  ``max_total_notional``).
- :class:`SignerUnavailable` (also a ``ConnectionError``): no signer at the socket, it died, or it
  refused our uid. :class:`SignerTimeout` (also a ``TimeoutError``): no reply within the timeout.
- :class:`~crossbook.signing.errors.SigningInputError`: malformed input; :class:`SignerError`: the rest.

The channel is rebuilt after a connection failure, so the next call reaches a restarted signer
without waiting for gRPC's reconnect backoff. :meth:`SignerClient.kalshi_headers` is the synchronous
:class:`~crossbook.signing.headers.HeaderSigner` method (a short blocking call, used when a feed
connects); async code should prefer :meth:`SignerClient.kalshi_headers_async`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from crossbook._proto import signer_pb2 as pb
from crossbook.errors import PolicyViolation, SignerError
from crossbook.signing.errors import SigningInputError
from crossbook.signing.tx import SignedTx

__all__ = [
    "SessionInfo",
    "SignedOrderReply",
    "SignerClient",
    "SignerPolicyError",
    "SignerTimeout",
    "SignerUnavailable",
]

SERVICE = "crossbook.signer.v1.Signer"
RULE_METADATA = "x-crossbook-rule"
R = TypeVar("R", bound=Message)

_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.enable_retries", 0),
    ("grpc.use_local_subchannel_pool", 1),  # a rebuilt channel dials at once, not after a shared backoff
]


class SignerPolicyError(PolicyViolation):
    """The signer's session policy refused the request; ``rule`` names the rule."""

    def __init__(self, message: str, rule: str) -> None:
        super().__init__(message)
        self.rule = rule


class SignerUnavailable(SignerError, ConnectionError):
    """The signer could not be reached (not running, died mid-request, or refused our uid)."""


class SignerTimeout(SignerError, TimeoutError):
    """The signer did not answer in time; retry with the same request id."""


class SignedOrderReply(NamedTuple):
    hash: str
    signature: str
    audit: dict[str, Any]
    session_blob: bytes


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    address: str
    expires_at: int
    revoked: bool
    cumulative: Decimal
    session_blob: bytes
    audit: dict[str, Any]

    def __repr__(self) -> str:
        return (
            f"SessionInfo(session_id={self.session_id!r}, address={self.address!r}, "
            f"expires_at={self.expires_at}, revoked={self.revoked}, cumulative={self.cumulative})"
        )


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _audit(a: pb.Audit) -> dict[str, Any]:
    return {
        "request_id": a.request_id,
        "decision": a.decision,
        "key": a.key,
        "notional": a.notional,
        "cumulative": a.cumulative,
        "signed_at_ms": a.signed_at_ms,
        "replayed": a.replayed,
    }


def _key_ref(wallet: str | None, session_id: str | None) -> pb.KeyRef:
    if (wallet is None) == (session_id is None):
        raise SigningInputError("pass exactly one of wallet= or session_id=")
    return pb.KeyRef(wallet=wallet) if wallet is not None else pb.KeyRef(session_id=session_id)


def _str_map(order: Mapping[str, object]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in order.items():
        if isinstance(v, bool) or isinstance(v, float | Decimal):
            raise SigningInputError(f"{k}: pass an int or a decimal string, not {type(v).__name__}")
        if v is None:
            continue
        out[k] = str(v)
    return out


class SignerClient:
    """Async client; one per process. ``timeout`` bounds every call (seconds); ``retry_for`` > 0
    retries a call that found no signer (same request id) for that long before raising."""

    def __init__(self, socket_path: str, *, timeout: float = 2.0, retry_for: float = 0.0) -> None:
        self.socket_path = socket_path
        self.target = f"unix:{socket_path}"
        self.timeout = timeout
        self.retry_for = retry_for
        self._channel: grpc.aio.Channel | None = None
        self._sync_channel: grpc.Channel | None = None

    def __repr__(self) -> str:
        return f"SignerClient({self.target!r}, timeout={self.timeout})"

    # --- plumbing ------------------------------------------------------------------------------

    def _chan(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.target, options=_CHANNEL_OPTIONS)
        return self._channel

    async def _reset(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close(grace=None)

    async def close(self) -> None:
        await self._reset()
        if self._sync_channel is not None:
            self._sync_channel.close()
            self._sync_channel = None

    async def __aenter__(self) -> SignerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method: str, request: Message, reply_type: type[R], timeout: float | None = None) -> R:
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        while True:
            call: grpc.aio.UnaryUnaryMultiCallable[Message, R] = self._chan().unary_unary(
                f"/{SERVICE}/{method}",
                request_serializer=_serialize,
                response_deserializer=reply_type.FromString,
            )
            try:
                reply: R = await call(request, timeout=timeout or self.timeout)
                return reply
            except grpc.aio.AioRpcError as exc:
                err = await self._error(method, request, exc)
                if isinstance(err, SignerUnavailable) and time.monotonic() + delay < deadline:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.5)
                    continue
                raise err from None

    async def _error(self, method: str, request: Message, exc: grpc.aio.AioRpcError) -> Exception:
        return await self._map_error(
            method, getattr(request, "request_id", ""), exc.code(), exc.details() or "", exc.trailing_metadata()
        )

    async def _map_error(self, method: str, rid: str, code: grpc.StatusCode, details: str, trailing: Any) -> Exception:
        where = f"{method} (request_id={rid})"
        if code == grpc.StatusCode.PERMISSION_DENIED:
            rule = ""
            for key, value in trailing or ():
                if key == RULE_METADATA:
                    rule = value if isinstance(value, str) else value.decode()
            return SignerPolicyError(f"signer refused {where}: {details}", rule)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return SigningInputError(f"signer refused {where}: {details}")
        if code == grpc.StatusCode.UNAVAILABLE:
            await self._reset()
            return SignerUnavailable(
                f"signer at {self.target} unavailable for {where}: {details}. It may have stopped or refused this "
                "process's uid (allowed_uids); retrying with the same request_id is safe"
            )
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return SignerTimeout(
                f"signer at {self.target} did not answer {where} in time; retry with the same request_id"
            )
        return SignerError(f"signer failed {where}: {code.name}: {details}")

    @staticmethod
    def _rid(request_id: str | None) -> str:
        return request_id or uuid.uuid4().hex

    # --- API -----------------------------------------------------------------------------------

    async def sign_polymarket_order(
        self,
        order: Mapping[str, object],
        *,
        wallet: str | None = None,
        session_id: str | None = None,
        neg_risk: bool = False,
        chain_id: int = 137,
        version: str | int = "2",
        exchange: str | None = None,
        request_id: str | None = None,
    ) -> SignedOrderReply:
        req = pb.SignPolymarketOrderRequest(
            request_id=self._rid(request_id),
            key=_key_ref(wallet, session_id),
            order=_str_map(order),
            version=str(version),
            chain_id=chain_id,
            neg_risk=neg_risk,
            exchange=exchange or "",
        )
        r = await self._call("SignPolymarketOrder", req, pb.SignPolymarketOrderReply)
        return SignedOrderReply(r.hash, r.signature, _audit(r.audit), r.session_blob)

    async def l1_headers(
        self,
        wallet: str,
        *,
        timestamp: int | None = None,
        nonce: int = 0,
        chain_id: int = 137,
        request_id: str | None = None,
    ) -> dict[str, str]:
        req = pb.PolymarketL1HeadersRequest(
            request_id=self._rid(request_id), wallet=wallet, timestamp=timestamp or 0, nonce=nonce, chain_id=chain_id
        )
        return dict((await self._call("PolymarketL1Headers", req, pb.HeadersReply)).headers)

    async def l2_headers(
        self,
        account: str,
        method: str,
        path: str,
        body: str | bytes | None = None,
        *,
        timestamp: int | None = None,
        request_id: str | None = None,
    ) -> dict[str, str]:
        raw = body.encode() if isinstance(body, str) else (body or b"")
        req = pb.PolymarketL2HeadersRequest(
            request_id=self._rid(request_id),
            account=account,
            method=method,
            path=path,
            body=raw,
            timestamp=timestamp or 0,
        )
        return dict((await self._call("PolymarketL2Headers", req, pb.HeadersReply)).headers)

    async def kalshi_headers_async(
        self, method: str, path: str, *, timestamp_ms: int | None = None, request_id: str | None = None
    ) -> dict[str, str]:
        req = pb.KalshiHeadersRequest(
            request_id=self._rid(request_id), method=method, path=path, timestamp_ms=timestamp_ms or 0
        )
        return dict((await self._call("KalshiHeaders", req, pb.HeadersReply)).headers)

    def kalshi_headers(self, method: str, path: str) -> dict[str, str]:
        """:class:`HeaderSigner` (synchronous): blocks for at most ``timeout`` seconds."""
        if self._sync_channel is None:
            self._sync_channel = grpc.insecure_channel(self.target, options=_CHANNEL_OPTIONS)
        call: grpc.UnaryUnaryMultiCallable[Message, pb.HeadersReply] = self._sync_channel.unary_unary(
            f"/{SERVICE}/KalshiHeaders",
            request_serializer=_serialize,
            response_deserializer=pb.HeadersReply.FromString,
        )
        req = pb.KalshiHeadersRequest(request_id=self._rid(None), method=method, path=path)
        try:
            reply: pb.HeadersReply = call(req, timeout=self.timeout)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = (exc.details() if isinstance(exc, grpc.Call) else None) or ""
            if code == grpc.StatusCode.UNAVAILABLE:
                self._sync_channel.close()
                self._sync_channel = None
                raise SignerUnavailable(f"signer at {self.target} unavailable for KalshiHeaders: {details}") from None
            raise SignerError(f"signer failed KalshiHeaders: {code.name}: {details}") from None
        return dict(reply.headers)

    async def sign_transaction(self, wallet: str, tx: Mapping[str, Any], *, request_id: str | None = None) -> SignedTx:
        """``tx``: ``chainId, nonce, maxPriorityFeePerGas, maxFeePerGas, gas`` (ints), ``to``, ``value``, ``data``."""
        data = tx.get("data") or b""
        if isinstance(data, str):
            data = bytes.fromhex(data.removeprefix("0x"))
        req = pb.SignTransactionRequest(
            request_id=self._rid(request_id),
            wallet=wallet,
            chain_id=int(tx["chainId"]),
            nonce=int(tx["nonce"]),
            max_priority_fee_per_gas=str(int(tx["maxPriorityFeePerGas"])),
            max_fee_per_gas=str(int(tx["maxFeePerGas"])),
            gas=int(tx["gas"]),
            to=tx.get("to") or "",
            value=str(int(tx.get("value") or 0)),
            data=bytes(data),
        )
        r = await self._call("SignTransaction", req, pb.SignTransactionReply)
        return SignedTx(r.raw, r.hash)

    async def authorize_session(
        self,
        user: str,
        smart_account: str,
        *,
        expires_at: int,
        max_order_notional: Decimal,
        max_total_notional: Decimal,
        allowed_token_ids: Iterable[str | int],
        request_id: str | None = None,
    ) -> SessionInfo:
        req = pb.AuthorizeSessionRequest(
            request_id=self._rid(request_id),
            user=user,
            smart_account=smart_account,
            expires_at=expires_at,
            max_order_notional=str(max_order_notional),
            max_total_notional=str(max_total_notional),
            allowed_token_ids=[str(t) for t in allowed_token_ids],
        )
        return self._session(await self._call("AuthorizeSession", req, pb.SessionReply, timeout=max(self.timeout, 10)))

    async def revoke_session(self, session_id: str, *, request_id: str | None = None) -> SessionInfo:
        req = pb.RevokeSessionRequest(request_id=self._rid(request_id), session_id=session_id)
        return self._session(await self._call("RevokeSession", req, pb.SessionReply))

    @staticmethod
    def _session(r: pb.SessionReply) -> SessionInfo:
        return SessionInfo(
            r.session_id,
            r.address,
            r.expires_at,
            r.revoked,
            Decimal(r.cumulative or "0"),
            r.session_blob,
            _audit(r.audit),
        )

    async def health(self) -> dict[str, Any]:
        r = await self._call("Health", pb.HealthRequest(request_id=self._rid(None)), pb.HealthReply)
        return {
            "status": r.status,
            "version": r.version,
            "landlock": r.landlock,
            "landlock_abi": r.landlock_abi,
            "non_dumpable": r.non_dumpable,
            "keys_locked": r.keys_locked,
            "sessions": r.sessions,
            "wallets": list(r.wallets),
            "pid": r.pid,
        }

    async def probe_open(self, path: str) -> tuple[bool, str]:
        """Test mode only: ask the signer to open ``path`` (proves Landlock holds)."""
        r = await self._call("ProbeOpen", pb.ProbeOpenRequest(request_id=self._rid(None), path=path), pb.ProbeOpenReply)
        return r.opened, r.error
