"""Client of the signer service (``crossbook-signer``) over its Unix sockets: the fast path and gRPC.

The signing calls (orders, L1/L2 and Kalshi headers, transactions, health) go over the signer's fast
path (``<socket>.fast``: the same protobuf messages, length-prefixed, no HTTP/2; docs/signer.md) when
it is there; everything else, and every call to a signer without a fast path, goes over gRPC (the
documented contract). Both reach the same request handling in the signer, so a request id means the
same thing on either transport.

Every call carries a request id (generated if not given). The signer answers a repeated id with its
first reply (same signature, counted once against session limits) for as long as that signer process
lives, so retrying with the same id after an error is safe. Errors:

- :class:`SignerPolicyError` (a ``PolicyViolation``/``PermissionError``): a session rule refused;
  ``.rule`` names it (``expired``, ``revoked``, ``market_not_allowed``, ``max_order_notional``,
  ``max_total_notional``).
- :class:`SignerUnavailable` (also a ``ConnectionError``): no signer at the socket, it died, or it
  refused our uid. :class:`SignerTimeout` (also a ``TimeoutError``): no reply within the timeout.
- :class:`~crossbook.signing.errors.SigningInputError`: malformed input; :class:`SignerError`: the rest.

The channel (and the fast-path connection) is rebuilt after a connection failure, so the next call
reaches a restarted signer without waiting for gRPC's reconnect backoff. A connection lost while a
call is in flight fails that call with :class:`SignerUnavailable`; it is never resent by itself
unless ``retry_for`` asks for it, and then with the same request id.

:meth:`SignerClient.kalshi_headers` is the synchronous :class:`~crossbook.signing.headers.HeaderSigner`
method (a short blocking gRPC call, used when a feed connects); async code should prefer
:meth:`SignerClient.kalshi_headers_async`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar, cast

import grpc
import grpc.aio
from google.protobuf.message import DecodeError, Message

from crossbook._core import decode_prepare_reply as _decode_prepare_reply
from crossbook._core import prepare_order_frame as _prepare_frame
from crossbook._proto import signer_pb2 as pb
from crossbook.aio import retrieve
from crossbook.errors import PolicyViolation, SignerError
from crossbook.signing.errors import SigningInputError
from crossbook.signing.fastframe import ERROR, METHOD_IDS, OK, FrameReader, FramingError, encode
from crossbook.signing.tx import SignedTx
from crossbook.unixsock import peer_credentials

log = logging.getLogger("crossbook.signing.client")

__all__ = [
    "PreparedOrderReply",
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


# Calls that take the fast path when the signer offers it (the hot path: everything that signs).
FAST_METHODS = frozenset(
    {
        "SignPolymarketOrder",
        "PreparePolymarketOrder",
        "PolymarketL1Headers",
        "PolymarketL2Headers",
        "KalshiHeaders",
        "SignTransaction",
        "Health",
    }
)
# After a signer answered over gRPC while its fast socket could not be reached (an older signer, or
# fast_path = false), try the fast socket again only this often.
FAST_RETRY_S = 1.0
# This client numbers its fast-path calls in the low half of the call id space; the high half is for frames
# made elsewhere (``crossbook._core.EdgeWatch``), written by :meth:`SignerClient.send_prepare_frame`.
CLIENT_CALL_IDS = 0x7FFFFFFF
_STATUS = {c.value[0]: c for c in grpc.StatusCode}


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


class PreparedOrderReply(NamedTuple):
    """A Polymarket order ready to send: hash, signature, the exact body and the L2 headers over it."""

    hash: str
    signature: str
    body: bytes
    headers: dict[str, str]
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


class _Lost(Exception):
    """The fast-path connection went away while a call waited (reason in words, no request content)."""


class _Expired(Exception):
    """A fast-path call's timer fired."""


class _FastConnection(asyncio.Protocol):
    """One connection to the signer's fast socket; calls on it overlap, matched by call id."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.pending: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        # Called with (kind, payload) in the turn the reply frame is read, before its future is resolved:
        # the order path's reply reaches its waiter one loop turn sooner (begin_prepare_polymarket_order).
        self.early: dict[int, Callable[[int, bytes], None]] = {}
        self.reader = FrameReader(self._frame)
        self.next_id = 0
        self.notice = ""  # the signer's last connection-level error (call id 0), for the error message
        self.own_cpus = False  # the signer may run only on CPUs this process may not (seen at connect)
        self.fd = -1  # the socket's descriptor, for read_until
        self.errors = 0  # error reply frames read (read_until stops at one)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        sock = self.transport.get_extra_info("socket")
        self.own_cpus = _on_other_cpus(sock)
        self.fd = sock.fileno() if sock is not None else -1

    def read_until(self, fut: asyncio.Future[Any], deadline_ns: int) -> bool:
        """Read this connection's socket directly, in a tight loop, until ``fut`` is done or the monotonic
        clock passes ``deadline_ns``; True if ``fut`` is done. What is read goes where the transport would
        put it (:meth:`data_received`), so the replies, their order and their framing are the same; the loop
        does not turn meanwhile. Stops at once, leaving the socket to the transport, at its end or an error
        (the transport then sees it and reports the loss as ever), and after an error reply frame (settled by
        its call's task, in a later turn)."""
        fd, errors = self.fd, self.errors
        while not fut.done() and self.errors == errors:
            if self.transport is None or fd < 0:
                return False
            try:
                data = os.read(fd, 65536)
            except (BlockingIOError, InterruptedError):
                if time.monotonic_ns() >= deadline_ns:
                    return False
                continue
            except OSError:
                return False
            if not data:
                return False
            self.data_received(data)
        return fut.done()

    def data_received(self, data: bytes) -> None:
        try:
            self.reader.feed(data)
        except FramingError as exc:
            self.fail(f"the signer sent a malformed frame ({exc})")
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        why = f": {self.notice}" if self.notice else ""
        self.fail(f"the signer closed the fast-path connection{why}")

    def fail(self, reason: str) -> None:
        pending, self.pending = self.pending, {}
        self.early.clear()
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(_Lost(reason))

    def _frame(self, kind: int, call_id: int, payload: bytes) -> None:
        if kind != OK:
            self.errors += 1
        early = self.early.pop(call_id, None)
        if early is not None:
            try:
                early(kind, payload)
            except Exception:  # the future below still carries the reply to the call's own task
                log.exception("signer fast path: early reply handler failed")
        fut = self.pending.pop(call_id, None)
        if fut is not None:
            if not fut.done():
                fut.set_result((kind, payload))
        elif call_id == 0 and kind == ERROR:
            try:
                self.notice = pb.CallError.FromString(payload).message
            except DecodeError:
                self.notice = "an unreadable error"


def _on_other_cpus(sock: socket.socket | None) -> bool:
    """True when the process at the other end of ``sock`` may run only on CPUs this process may not run
    on (both pinned, disjoint): then waiting for its reply by busy-polling costs that process nothing.
    False when they share a CPU (a poller would take the CPU the reply needs) or when it cannot be told
    (another PID namespace, no permission)."""
    if sock is None or not hasattr(os, "sched_getaffinity"):
        return False
    try:
        pid = peer_credentials(sock)[0]
        if pid <= 0 or pid == os.getpid():
            return False
        return not (os.sched_getaffinity(pid) & os.sched_getaffinity(0))
    except OSError:
        return False


_Sent = tuple[_FastConnection, int, "asyncio.Future[tuple[int, bytes]]"]


def _expire(fut: asyncio.Future[tuple[int, bytes]]) -> None:
    if not fut.done():
        fut.set_exception(_Expired())


def _prepared_reply(r: pb.PreparePolymarketOrderReply) -> PreparedOrderReply:
    return PreparedOrderReply(r.hash, r.signature, r.body, dict(r.headers), _audit(r.audit), r.session_blob)


def _rid_of(request: Message) -> str:
    return str(getattr(request, "request_id", ""))


def _early_reply(out: asyncio.Future[PreparedOrderReply], kind: int, payload: bytes) -> None:
    """A PreparePolymarketOrder reply frame, the moment it is read: an OK reply resolves ``out`` now. Any
    other outcome (an error, an unreadable reply) is left to the call's task, which reports it."""
    if out.done():
        return
    reply = _ok_prepare_reply(kind, payload)
    if reply is not None:
        out.set_result(reply)


def _ok_prepare_reply(kind: int, payload: bytes) -> PreparedOrderReply | None:
    """An OK PreparePolymarketOrder reply frame, read in one compiled call (the same reply protobuf makes of
    these bytes); None for any other kind or an unreadable payload (the call's task reports those)."""
    if kind != OK:
        return None
    try:
        return PreparedOrderReply(*_decode_prepare_reply(payload))
    except ValueError:
        return None


def _settle(out: asyncio.Future[PreparedOrderReply], task: asyncio.Task[PreparedOrderReply]) -> None:
    """The call's task ended: its outcome goes to ``out`` unless the early reply got there first."""
    if out.done():
        retrieve(task)
    elif task.cancelled():
        out.cancel()
    elif (exc := task.exception()) is not None:
        out.set_exception(exc)
    else:
        out.set_result(task.result())


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


_NOT_AN_AMOUNT = (bool, float, Decimal)
PREPARE = "PreparePolymarketOrder"


def _str_map(order: Mapping[str, object]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in order.items():
        t = type(v)
        if t is str:  # the usual case first: an order struct is mostly strings already
            out[k] = v  # type: ignore[assignment]
        elif t is int:  # exactly int: a bool is refused below
            out[k] = str(v)
        elif v is None:
            continue
        elif isinstance(v, _NOT_AN_AMOUNT):
            raise SigningInputError(f"{k}: pass an int or a decimal string, not {type(v).__name__}")
        else:
            out[k] = str(v)
    return out


class SignerClient:
    """Async client; one per process. ``timeout`` bounds every call (seconds); ``retry_for`` > 0
    retries a call that found no signer (same request id) for that long before raising.

    ``fast`` (default on) sends the signing calls over the signer's fast path at ``fast_socket``
    (default ``socket_path + ".fast"``) whenever it accepts a connection; ``fast=False`` keeps every
    call on gRPC."""

    def __init__(
        self,
        socket_path: str,
        *,
        timeout: float = 2.0,
        retry_for: float = 0.0,
        fast: bool = True,
        fast_socket: str | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.target = f"unix:{socket_path}"
        self.timeout = timeout
        self.retry_for = retry_for
        self.fast = fast
        self.fast_socket = fast_socket or socket_path + ".fast"
        self._channel: grpc.aio.Channel | None = None
        self._sync_channel: grpc.Channel | None = None
        self._fast_conn: _FastConnection | None = None
        self._fast_connecting: asyncio.Lock | None = None
        self._fast_retry_at = 0.0
        self._fast_unknown: set[str] = set()  # methods an older signer's fast path does not know

    def __repr__(self) -> str:
        return f"SignerClient({self.target!r}, timeout={self.timeout}, fast={self.fast})"

    @property
    def signer_on_other_cpus(self) -> bool:
        """True while the fast path is connected to a signer pinned to CPUs this process is not allowed on:
        waiting for its replies by busy-polling is then free for it (see ``crossbook.aio.poll_until_done``)."""
        conn = self._fast_conn
        return conn is not None and conn.transport is not None and conn.own_cpus

    def spin_for_reply(self, fut: asyncio.Future[Any], max_s: float) -> bool:
        """Wait for a fast-path reply that settles ``fut`` (:meth:`begin_prepare_polymarket_order`'s future) by
        reading the connection's socket in a tight loop, for at most ``max_s``, without returning to the event
        loop: the reply is handled the moment it lands, and the caller goes on in the same turn (its order is
        written before any other callback runs). True if ``fut`` is done. Only for a signer on CPUs of its own
        (:attr:`signer_on_other_cpus`; this CPU spins meanwhile, and nothing else on this loop runs): False
        at once otherwise, and when the fast path is not connected."""
        conn = self._fast_conn
        if fut.done():
            return True
        if conn is None or conn.transport is None or not conn.own_cpus or max_s <= 0 or isinstance(fut, asyncio.Task):
            return False  # (a call's task is only settled in a later turn: nothing to spin for)
        return conn.read_until(fut, time.monotonic_ns() + int(max_s * 1e9))

    def take_prepared_reply(self, sent: _Sent, max_s: float) -> PreparedOrderReply | None:
        """The reply to a PreparePolymarketOrder request written by :meth:`send_prepare_frame` (``sent``), read
        now: waited for as :meth:`spin_for_reply` waits (a signer on CPUs of its own only, for at most
        ``max_s``; no wait when it is read already). An OK reply is decoded and returned, and the call is
        over (nothing else waits for it). None otherwise (no reply yet, an error reply, an unreadable one, the
        connection lost): then hand ``sent`` to :meth:`begin_prepare_polymarket_order` as ever, which reports
        what it must."""
        conn, _call_id, fut = sent
        if not fut.done():
            if conn.transport is None or not conn.own_cpus or max_s <= 0:
                return None
            if not conn.read_until(fut, time.monotonic_ns() + int(max_s * 1e9)):
                return None
        if fut.cancelled() or fut.exception() is not None:
            return None
        return _ok_prepare_reply(*fut.result())

    @staticmethod
    def forget(sent: _Sent) -> None:
        """Drop a request written on the fast path whose reply nobody will use (an order refused after its
        signing request left): its reply, when it comes, is read and discarded."""
        conn, call_id, fut = sent
        conn.pending.pop(call_id, None)
        conn.early.pop(call_id, None)
        if not fut.done():
            fut.cancel()

    @property
    def fast_connected(self) -> bool:
        """True while a fast-path connection is open (what the next signing call will use)."""
        return self._fast_conn is not None and self._fast_conn.transport is not None

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
        conn, self._fast_conn = self._fast_conn, None
        if conn is not None and conn.transport is not None:
            conn.transport.close()
        await self._reset()
        if self._sync_channel is not None:
            self._sync_channel.close()
            self._sync_channel = None

    async def __aenter__(self) -> SignerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def prime(self, stay_awake_us: int = 1000) -> bool:
        """Ask the signer to keep its CPU running for the next ``stay_awake_us`` µs (a Health request with
        ``stay_awake_us``, written now, its reply dropped): sent as soon as an order is likely, so the order
        itself does not wake a halted CPU. Only to a signer on CPUs of its own (``signer_on_other_cpus``:
        one sharing ours would spin on the CPU our order needs) and only on a connected fast path. True if
        sent."""
        conn = self._open_fast("Health")
        if conn is None or not conn.own_cpus:
            return False
        assert conn.transport is not None
        call_id = conn.next_id = (conn.next_id + 1) & CLIENT_CALL_IDS or 1  # never registered: the reply is dropped
        conn.transport.write(encode(METHOD_IDS["Health"], call_id,
                                    pb.HealthRequest(stay_awake_us=stay_awake_us).SerializeToString()))  # fmt: skip
        return True

    def _open_fast(self, method: str) -> _FastConnection | None:
        """The fast-path connection ``method`` can be written on now, or None (not connected, closing, or a
        signer whose fast path does not know the method)."""
        conn = self._fast_conn
        if (self.fast and method in FAST_METHODS and method not in self._fast_unknown and conn is not None
                and conn.transport is not None and not conn.transport.is_closing()):  # fmt: skip
            return conn
        return None

    def _send_now(self, method: str, request: Message) -> _Sent | None:
        """Write ``request`` on the fast path now if it is connected (else None: the call will connect)."""
        conn = self._open_fast(method)
        return None if conn is None else self._fast_send(conn, method, request)

    async def _call(
        self, method: str, request: Message, reply_type: type[R], timeout: float | None = None,
        sent: _Sent | None = None,
    ) -> R:  # fmt: skip
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        while True:
            try:
                if sent is not None:  # written by begin(): wait for its reply (a retry sends again, same id)
                    first, sent = sent, None
                    reply = await self._fast_wait(first, method, _rid_of(request), reply_type,
                                                  timeout or self.timeout)  # fmt: skip
                    if reply is not None:
                        return reply
                return await self._call_once(method, request, reply_type, timeout or self.timeout)
            except SignerUnavailable:
                if time.monotonic() + delay < deadline:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.5)
                    continue
                raise

    async def _call_once(self, method: str, request: Message, reply_type: type[R], timeout: float) -> R:
        if self.fast and method in FAST_METHODS and method not in self._fast_unknown:
            conn = self._fast_conn
            if conn is None or conn.transport is None or conn.transport.is_closing():
                conn = await self._fast_connect(timeout)
            if conn is not None:
                reply = await self._fast_call(conn, method, request, reply_type, timeout)
                if reply is not None:
                    return reply
        reply = await self._grpc_call(method, request, reply_type, timeout)
        if self.fast and method in FAST_METHODS and self._fast_conn is None:
            # The signer is up but its fast socket is not: do not pay a failed connect on every call.
            self._fast_retry_at = time.monotonic() + FAST_RETRY_S
        return reply

    async def _grpc_call(self, method: str, request: Message, reply_type: type[R], timeout: float) -> R:
        call: grpc.aio.UnaryUnaryMultiCallable[Message, R] = self._chan().unary_unary(
            f"/{SERVICE}/{method}",
            request_serializer=_serialize,
            response_deserializer=reply_type.FromString,
        )
        try:
            reply: R = await call(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise await self._error(method, request, exc) from None
        return reply

    async def _fast_connect(self, timeout: float) -> _FastConnection | None:
        """A connection to the fast socket, or None when there is none to be had (then gRPC decides:
        it answers, or it says the signer is unavailable)."""
        if time.monotonic() < self._fast_retry_at:
            return None
        if self._fast_connecting is None:
            self._fast_connecting = asyncio.Lock()
        async with self._fast_connecting:  # one connect for concurrent first calls
            conn = self._fast_conn
            if conn is not None and conn.transport is not None and not conn.transport.is_closing():
                return conn
            self._fast_conn = None
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(timeout):
                    _tr, conn = await loop.create_unix_connection(_FastConnection, self.fast_socket)
            except (OSError, TimeoutError):  # absent, refused (no listener, or the socket's mode), slow
                return None
            self._fast_conn = conn
            return conn

    async def _fast_call(
        self, conn: _FastConnection, method: str, request: Message, reply_type: type[R], timeout: float
    ) -> R | None:
        """The reply over the fast path, or None if this signer's fast path does not know ``method``."""
        transport = conn.transport
        rid = getattr(request, "request_id", "")
        if transport is None or transport.is_closing():  # the signer hung up right after accepting
            raise SignerUnavailable(
                f"signer at {self.fast_socket} closed the fast-path connection before {method} (request_id={rid}) "
                "was sent. It may have stopped or refused this process's uid (allowed_uids); retrying with the "
                "same request_id is safe"
            )
        return await self._fast_wait(self._fast_send(conn, method, request), method, rid, reply_type, timeout)

    @staticmethod
    def _fast_send(conn: _FastConnection, method: str, request: Message) -> _Sent:
        """Write one request frame now; (connection, call id, future of the reply frame)."""
        sent = SignerClient._fast_write(conn, lambda cid: encode(METHOD_IDS[method], cid, request.SerializeToString()))
        assert sent is not None
        return sent

    @staticmethod
    def _fast_write(conn: _FastConnection, frame_for: Callable[[int], bytes | None]) -> _Sent | None:
        """Write the frame ``frame_for(call id)`` makes, registered for its reply; None (nothing written, no id
        used) when it makes none."""
        call_id = (conn.next_id + 1) & CLIENT_CALL_IDS or 1  # 0 is the signer's connection notice
        frame = frame_for(call_id)
        if frame is None:
            return None
        conn.next_id = call_id
        return SignerClient._write_registered(conn, call_id, frame)

    @staticmethod
    def _write_registered(conn: _FastConnection, call_id: int, frame: bytes) -> _Sent:
        fut: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        conn.pending[call_id] = fut
        assert conn.transport is not None
        conn.transport.write(frame)
        return conn, call_id, fut

    def prepare_frame_template(
        self, *, account: str, order_type: str, wallet: str | None = None, session_id: str | None = None
    ) -> dict[str, object] | None:
        """The arguments of ``EdgeWatch.set_first_leg`` that say how this client frames a PreparePolymarketOrder
        request (all but the venue, tokens and address), or None when it has no fast path to write one on."""
        if not self.fast:
            return None
        return {"method": METHOD_IDS[PREPARE], "account": account, "order_type": order_type, "wallet": wallet,
                "session_id": session_id}  # fmt: skip

    def send_prepare_frame(self, frame: bytes, call_id: int) -> _Sent | None:
        """Write a PreparePolymarketOrder frame made elsewhere (``EdgeWatch``'s fire: the message this client
        would make, under a call id from the high half of the id space, which this client never uses) on the
        fast path now, registered for its reply; None (nothing written) when the fast path is not connected.
        Hand what it returns to :meth:`begin_prepare_polymarket_order` (``sent=``) with the same request."""
        conn = self._open_fast(PREPARE)
        if conn is None or call_id <= CLIENT_CALL_IDS or call_id in conn.pending:
            return None
        return self._write_registered(conn, call_id, frame)

    async def _fast_wait(
        self, sent: _Sent, method: str, rid: str, reply_type: type[R], timeout: float
    ) -> R | None:
        """The reply to a request written on the fast path (``rid``: its request id, for the errors), or None
        if this signer's fast path does not know ``method``."""
        conn, call_id, fut = sent
        loop = asyncio.get_running_loop()
        timer = loop.call_later(timeout, _expire, fut)
        try:
            kind, payload = await fut
        except _Lost as exc:
            if self._fast_conn is conn:
                self._fast_conn = None
            raise SignerUnavailable(
                f"signer at {self.fast_socket} unavailable for {method} (request_id={rid}): {exc}. It may have "
                "stopped or refused this process's uid (allowed_uids); retrying with the same request_id is safe"
            ) from None
        except _Expired:
            raise SignerTimeout(
                f"signer at {self.fast_socket} did not answer {method} (request_id={rid}) within {timeout} s; "
                "retry with the same request_id"
            ) from None
        finally:
            timer.cancel()
            conn.pending.pop(call_id, None)
            conn.early.pop(call_id, None)
        try:
            if kind == OK:
                return reply_type.FromString(payload)
            err = pb.CallError.FromString(payload)
        except DecodeError:
            raise SignerError(f"signer sent an unreadable reply to {method} (request_id={rid})") from None
        code = _STATUS.get(err.code, grpc.StatusCode.UNKNOWN)
        if code == grpc.StatusCode.UNIMPLEMENTED and err.message.startswith("unknown fast-path method"):
            self._fast_unknown.add(method)  # an older signer: this method goes over gRPC from now on
            return None
        trailing = ((RULE_METADATA, err.rule),) if err.rule else ()
        raise await self._map_error(method, rid, code, err.message, trailing)

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

    async def prepare_polymarket_order(
        self,
        order: Mapping[str, object],
        *,
        account: str,
        order_type: str,
        wallet: str | None = None,
        session_id: str | None = None,
        path: str = "/order",
        defer_exec: bool = False,
        post_only: bool = False,
        neg_risk: bool = False,
        chain_id: int = 137,
        exchange: str | None = None,
        timestamp: int | None = None,
        request_id: str | None = None,
    ) -> PreparedOrderReply:
        """One call for a V2 order: signed as :meth:`sign_polymarket_order` signs it (same session policy),
        its exact ``POST`` body (owner: ``account``'s API key) and ``account``'s L2 headers over that body."""
        req = pb.PreparePolymarketOrderRequest(
            request_id=self._rid(request_id),
            key=_key_ref(wallet, session_id),
            order=_str_map(order),
            chain_id=chain_id,
            neg_risk=neg_risk,
            exchange=exchange or "",
            account=account,
            order_type=order_type,
            defer_exec=defer_exec,
            post_only=post_only,
            path=path,
            timestamp=timestamp or 0,
        )
        return await self._prepared(req, None, ())

    def begin_prepare_polymarket_order(
        self,
        order: Mapping[str, object],
        *,
        account: str,
        order_type: str,
        wallet: str | None = None,
        session_id: str | None = None,
        request_id: str | None = None,
        sent: _Sent | None = None,
    ) -> asyncio.Future[PreparedOrderReply]:
        """:meth:`prepare_polymarket_order`, started now and awaited later: when the fast path is connected
        the request is written before this returns, so the signer signs while the caller goes on (the
        executor runs its pre-trade checks meanwhile; nothing is sent to a venue before both are done).
        Otherwise the call starts at the next loop turn. The task gives what the ``await``-style call
        gives (same retries, same errors); a task nobody awaits just drops its signature. ``sent``: this
        request's frame, written already by :meth:`send_prepare_frame` (a retry resends it from these
        arguments, which must be the ones the frame was made from)."""
        rid = self._rid(request_id)
        if sent is None:
            sent = self._send_prepare(order, account, order_type, wallet, session_id, rid)
        req: pb.PreparePolymarketOrderRequest | None = None  # written already: the message is made later
        if sent is None:  # not connected, or values only protobuf's rules may judge: it refuses what it must
            req = self._prepare_request(order, account, order_type, wallet, session_id, rid)
            sent = self._send_now(PREPARE, req)
        loop = asyncio.get_running_loop()
        args = (order, account, order_type, wallet, session_id, rid)
        if sent is None:  # the call's task does it all: connect, send, wait, retry
            task = loop.create_task(self._prepared(req, None, args))
            task.add_done_callback(retrieve)
            return task
        # Written on the fast path: an OK reply resolves ``out`` in the turn its frame is read, and nothing else
        # runs for the call. The call's task (timeouts, errors, retries: as ever) starts only for what that did
        # not settle: another reply (an error), a lost connection, or no reply within the timeout.
        out: asyncio.Future[PreparedOrderReply] = loop.create_future()
        out.add_done_callback(retrieve)
        conn, call_id, fut = sent
        conn.early[call_id] = functools.partial(_early_reply, out)
        timer = loop.call_later(self.timeout, _expire, fut)  # the call's task then reports the timeout

        def settled(_: object) -> None:  # the reply frame read (any kind), the connection lost, or expired
            timer.cancel()
            if not out.done():
                task = loop.create_task(self._prepared(req, sent, args))
                task.add_done_callback(functools.partial(_settle, out))

        fut.add_done_callback(settled)
        return out

    def warm_prepare_polymarket_order(
        self, order: Mapping[str, object], *, account: str, order_type: str, wallet: str | None = None,
        session_id: str | None = None, request_id: str | None = None,
    ) -> None:  # fmt: skip
        """Build the request (and its frame) :meth:`begin_prepare_polymarket_order` would send; send nothing.
        Keeps that path warm between orders."""
        rid = self._rid(request_id)
        if type(order) is not dict or _prepare_frame(0, 0, rid, order, account=account, order_type=order_type,
                                                      wallet=wallet, session_id=session_id) is None:  # fmt: skip
            req = self._prepare_request(order, account, order_type, wallet, session_id, rid)
            encode(METHOD_IDS[PREPARE], 0, req.SerializeToString())

    def _send_prepare(
        self, order: Mapping[str, object], account: str, order_type: str, wallet: str | None,
        session_id: str | None, rid: str,
    ) -> _Sent | None:  # fmt: skip
        """Write a PreparePolymarketOrder request on the fast path now, its frame made in one compiled call
        (``_core.prepare_order_frame``: the message protobuf would make, in canonical order); None when the
        fast path is not connected or the order holds values other than ``str`` and ``int``."""
        conn = self._open_fast(PREPARE)
        if conn is None or type(order) is not dict:
            return None
        return self._fast_write(conn, lambda cid: _prepare_frame(
            METHOD_IDS[PREPARE], cid, rid, order, account=account, order_type=order_type, wallet=wallet,
            session_id=session_id))  # fmt: skip

    def _prepare_request(
        self, order: Mapping[str, object], account: str, order_type: str, wallet: str | None,
        session_id: str | None, request_id: str | None,
    ) -> pb.PreparePolymarketOrderRequest:  # fmt: skip
        # The defaults of prepare_polymarket_order (chain 137, no neg risk, POST /order) are left unset: the
        # same bytes, and the same fingerprint at the signer, as that call sends.
        return pb.PreparePolymarketOrderRequest(
            request_id=self._rid(request_id),
            key=_key_ref(wallet, session_id),
            order=_str_map(order),
            chain_id=137,
            account=account,
            order_type=order_type,
            path="/order",
        )

    async def _prepared(
        self, req: pb.PreparePolymarketOrderRequest | None, sent: _Sent | None, args: tuple[Any, ...]
    ) -> PreparedOrderReply:
        if req is None and sent is not None:
            # Written already (its frame made in Rust): its reply is waited for first, and the protobuf message
            # (for a retry, or another transport) is made only if that reply does not settle the call, so this
            # task's first step, which runs while the signer signs, stays short.
            try:
                reply = await self._fast_wait(sent, PREPARE, args[-1], pb.PreparePolymarketOrderReply, self.timeout)
                if reply is not None:
                    return _prepared_reply(reply)
            except SignerUnavailable:
                pass  # the connection was lost: sent again below, same request id, within retry_for
            sent = None
        if req is None:
            req = self._prepare_request(*args)
        return _prepared_reply(await self._call(PREPARE, req, pb.PreparePolymarketOrderReply, sent=sent))

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
