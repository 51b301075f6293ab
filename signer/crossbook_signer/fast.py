"""The fast path: the signer's own protobuf messages, length-prefixed, on a second uid-checked socket.

gRPC stays the contract and serves every method; this socket (``<socket>.fast``, mode 0600) exists
because Python gRPC costs hundreds of µs per call (docs/signer.md, "Fast path"). It is served by the
signer process itself, on the same event loop as gRPC, with no relay: the peer's uid is checked with
``SO_PEERCRED`` when it connects, then every frame (``crossbook.signing.fastframe``) goes to
:meth:`SignerService.call` — the same request handling, policy and idempotency as the gRPC servicer.
PreparePolymarketOrder (a method of ``SignerService.raw_methods``) skips protobuf altogether: its
payload goes as bytes to :meth:`SignerService.prepare_order_raw`, whose reply bytes are the frame's
payload, as on the gRPC servicer.

A synchronous method (everything but AuthorizeSession) is answered inside ``data_received``, in the
loop turn that read the request: no task, no stream objects. A Health request with ``stay_awake_us``
(a client about to send an order) makes the loop poll instead of sleep until the next request arrives
or that time passes (capped at :data:`MAX_STAY_AWAKE_US`), so the order finds this CPU running.

Malformed input never reaches the request handling: an unknown method id or a payload that does not
parse as the method's request message gets an error frame naming the problem (the connection stays
usable); an impossible frame length loses the framing, so it gets an error frame with call id 0 and the
connection is closed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable
from typing import cast

import grpc
from google.protobuf.message import DecodeError, Message

from crossbook._proto import signer_pb2 as pb
from crossbook.aio import poll_until_done
from crossbook.signing.fastframe import ERROR, METHOD_IDS, METHODS, OK, FrameReader, FramingError, encode
from crossbook.unixsock import peer_credentials
from crossbook_signer.service import Refusal, SignerService

log = logging.getLogger("crossbook.signer")

# The longest a Health request's ``stay_awake_us`` may keep the loop polling (a client asks for less).
MAX_STAY_AWAKE_US = 5000
PREPARE_ID = METHOD_IDS["PreparePolymarketOrder"]


class _Connection(asyncio.Protocol):
    __slots__ = ("pid", "reader", "server", "transport")

    def __init__(self, server: FastServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.reader = FrameReader(self._frame)
        self.pid = 0

    def connection_made(self, base: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, base)  # uvloop's transports do not subclass it
        pid, uid, _gid = peer_credentials(transport.get_extra_info("socket"))
        if uid not in self.server.allowed_uids:
            log.warning("refused peer uid=%d pid=%d on the fast path: uid not in allowed_uids", uid, pid)
            self.server.refused += 1
            transport.abort()  # before reading a byte
            return
        self.pid = pid
        self.transport = transport
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        awake = self.server.awake
        if awake is not None and not awake.done():
            awake.set_result(None)  # the request the client asked us to stay awake for: stop polling
        try:
            self.reader.feed(data)
        except FramingError as exc:
            log.warning("fast path: peer pid=%d sent a bad frame (%s); closing its connection", self.pid, exc)
            self._send_error(0, grpc.StatusCode.INVALID_ARGUMENT, f"{exc}; the signer closes this connection")
            if self.transport is not None:
                self.transport.close()  # after the error frame is flushed
                self.transport = None

    # Back-pressure: a peer that does not read its replies stops being read.
    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def _frame(self, kind: int, call_id: int, payload: bytes) -> None:
        service = self.server.service
        if kind == PREPARE_ID:  # the order path's common case, in one step (else the general path below)
            fast = service.prepare_wallet_frame(payload, OK, call_id)
            if fast is not None:
                frame, req = fast
                transport = self.transport
                if transport is not None and not transport.is_closing():
                    transport.write(frame)
                service.remember_wallet_frame(req, frame)  # signed: remembered even if the peer left
                return
        method = METHODS.get(kind)
        if method is None:
            self._send_error(call_id, grpc.StatusCode.UNIMPLEMENTED, f"unknown fast-path method id {kind}")
            return
        raw = service.raw_methods.get(method.name)
        result: Message | bytes | Awaitable[Message] | Awaitable[bytes]
        try:
            if raw is not None:  # bytes in, bytes out; a payload that does not parse comes back as a Refusal
                result = raw(payload)
            else:
                try:
                    request = method.request.FromString(payload)
                except DecodeError:
                    self._send_error(
                        call_id,
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"{method.name}: the payload is not a valid {method.request.DESCRIPTOR.name} message",
                    )
                    return
                result = service.call(method.name, request)
        except Refusal as exc:
            self._send_error(call_id, exc.code, exc.message, exc.rule)
            return
        except Exception as exc:  # a bug must cost one call, never the signer
            log.error("fast path: %s failed: %s", method.name, type(exc).__name__)
            self._send_error(call_id, grpc.StatusCode.INTERNAL, f"internal signer error ({type(exc).__name__})")
            return
        if isinstance(result, bytes):
            self._send(OK, call_id, result)
        elif isinstance(result, Message):
            self._send(OK, call_id, result.SerializeToString())
            if isinstance(result, pb.HealthReply):
                us = pb.HealthRequest.FromString(payload).stay_awake_us
                if us:
                    self.server.stay_awake(us)
        else:
            self.server.spawn(self._finish(method.name, call_id, result))

    async def _finish(self, name: str, call_id: int, pending: Awaitable[Message] | Awaitable[bytes]) -> None:
        try:
            reply = await pending
        except Refusal as exc:
            self._send_error(call_id, exc.code, exc.message, exc.rule)
            return
        except Exception as exc:
            log.error("fast path: %s failed: %s", name, type(exc).__name__)
            self._send_error(call_id, grpc.StatusCode.INTERNAL, f"internal signer error ({type(exc).__name__})")
            return
        self._send(OK, call_id, reply if isinstance(reply, bytes) else reply.SerializeToString())

    def _send(self, kind: int, call_id: int, payload: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(encode(kind, call_id, payload))

    def _send_error(self, call_id: int, code: grpc.StatusCode, message: str, rule: str = "") -> None:
        err = pb.CallError(code=code.value[0], message=message, rule=rule)
        self._send(ERROR, call_id, err.SerializeToString())


class FastServer:
    """Serves the fast path on ``listen`` (an already bound, 0600, non-blocking Unix socket)."""

    def __init__(self, listen: socket.socket, service: SignerService, allowed_uids: frozenset[int]) -> None:
        self.listen = listen
        self.service = service
        self.allowed_uids = allowed_uids
        self.refused = 0
        self.connections: set[_Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.AbstractServer | None = None
        self.awake: asyncio.Future[None] | None = None  # done when the request we stay awake for arrives
        self.stayed_awake = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_unix_server(lambda: _Connection(self), sock=self.listen)

    def stay_awake(self, us: int) -> None:
        """Poll (the loop never sleeps) until the next request arrives on any connection, or ``us`` µs
        (at most :data:`MAX_STAY_AWAKE_US`) pass: asked by a client about to send an order, so the order
        does not find this CPU halted."""
        loop = asyncio.get_running_loop()
        if self.awake is None or self.awake.done():
            self.awake = loop.create_future()
        self.stayed_awake += 1
        poll_until_done(self.awake, min(us, MAX_STAY_AWAKE_US) / 1e6)

    def spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        for task in list(self.tasks):
            task.cancel()
