"""The hub: a picows WebSocket server speaking the protocol in docs/hub-protocol.md.

The hot path (one update → every subscriber, coalesced into one write per connection per loop turn,
conflation of paused clients, eviction of stuck ones) is ``crossbook_ext.fanout`` (Cython). Replies
written here go through :meth:`HubConnection._send`, which flushes the connection's queued updates
first, so each connection sees one ordered stream. This module does the rest, off the hot path: auth, the
subscription table, limits, demand, snapshots.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from crossbook_ext.fanout import Channel, Frame, Subscriber, monotonic
from picows import WSCloseCode, WSFrame, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from crossbook.hub.auth import User, UserStore
from crossbook.hub.demand import AnyUpstream, DemandTracker
from crossbook.hub.protocol import (
    PROTOCOL_VERSION,
    HubError,
    ProtocolError,
    error_msg,
    is_market,
    is_private,
    parse_topic,
    reply,
    snapshot_msg,
)
from crossbook.hub.tunnels import TunnelManager

log = logging.getLogger("crossbook.hub")

# (user name, intent as `crossbook trade --daemon` sends it) -> the executor's answer
IntentHandler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass
class HubLimits:
    max_subscriptions: int = 500  # topics per connection
    msg_rate: float = 20.0  # inbound messages per second, sustained ...
    msg_burst: int = 50  # ... with this burst
    max_violations: int = 20  # rate-limited messages before the connection is closed
    max_message_bytes: int = 64 * 1024
    auth_timeout_s: float = 5.0
    max_paused_s: float = 10.0  # a client not reading for this long is disconnected
    max_buffered_bytes: int = 1 << 20  # unsent bytes held for one client before it is disconnected
    sndbuf_bytes: int = 256 * 1024  # kernel send buffer per client: bounds what a stuck client pins
    sweep_interval_s: float = 0.25


class HubConnection(Subscriber):
    """One user connection: protocol handling on top of the Cython subscriber."""

    def __init__(self, hub: Hub, peer: str) -> None:
        self.hub = hub
        self.peer = peer
        self.user: User | None = None
        self.topics: set[str] = set()
        self.max_paused_s = hub.limits.max_paused_s
        self.max_buffered_bytes = hub.limits.max_buffered_bytes
        self._tokens = float(hub.limits.msg_burst)
        self._refill_at = time.monotonic()
        self._violations = 0
        self._auth_task: asyncio.Task[None] | None = None
        self._auth_timer: asyncio.TimerHandle | None = None

    # -- picows callbacks -----------------------------------------------------------------------
    def on_ws_connected(self, transport: WSTransport) -> None:
        super().on_ws_connected(transport)
        sock = transport.underlying_transport.get_extra_info("socket")
        if sock is not None and self.hub.limits.sndbuf_bytes:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.hub.limits.sndbuf_bytes)
        self.hub._conns.add(self)
        self._auth_timer = asyncio.get_running_loop().call_later(
            self.hub.limits.auth_timeout_s, self._close, WSCloseCode.POLICY_VIOLATION, "auth timeout"
        )

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        super().on_ws_disconnected(transport)
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        if self._auth_task is not None:
            self._auth_task.cancel()
        self.hub._drop(self)

    def on_evicted(self, reason: str) -> None:
        self.hub.evictions += 1
        log.warning("hub: disconnected %s (%s): %s", self.peer, self.user.name if self.user else "-", reason)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            self.flush()
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if frame.msg_type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return  # PING is answered by picows (auto-pong); PONG needs nothing
        if not frame.fin or frame.payload_size > self.hub.limits.max_message_bytes:
            self._close(WSCloseCode.MESSAGE_TOO_BIG, "fragmented or oversized message")
            return
        if not self._take_token():
            return
        req_id: Any = None
        try:
            msg = orjson.loads(frame.get_payload_as_bytes())
            if not isinstance(msg, dict):
                raise ProtocolError("bad_message", "a message is a JSON object with an 'op'")
            req_id = msg.get("id")
            self._dispatch(msg, req_id)
        except orjson.JSONDecodeError:
            self._send(error_msg("bad_json", "message is not valid JSON"))
        except ProtocolError as exc:
            self._send(error_msg(exc.code, str(exc), req_id))

    # -- protocol -------------------------------------------------------------------------------
    def _dispatch(self, msg: dict[str, Any], req_id: Any) -> None:
        op = msg.get("op")
        if op == "auth":
            if self.user is not None or self._auth_task is not None:
                raise ProtocolError("already_authenticated", "auth was already sent on this connection")
            token = msg.get("token")
            self._auth_task = asyncio.get_running_loop().create_task(self._auth(token, req_id))
            return
        if op == "ping":
            self._send(reply("pong", req_id, ts=int(time.time() * 1000)))
            return
        if self.user is None:
            raise ProtocolError("not_authenticated", "send {'op': 'auth', 'token': ...} and wait for auth_ok first")
        if op == "subscribe":
            self._subscribe(self._topics(msg), req_id)
        elif op == "unsubscribe":
            topics = self._topics(msg)
            for t in topics:
                self.hub._unsubscribe(self, t)
            self._send(reply("unsubscribed", req_id, topics=topics))
        elif op == "snapshot":
            topic = msg.get("topic")
            parse_topic(topic)
            assert isinstance(topic, str)
            if topic not in self.topics:
                raise ProtocolError("not_subscribed", f"subscribe to {topic!r} before asking for its snapshot")
            if is_private(topic):
                raise ProtocolError("no_snapshot", f"{topic!r} is an event stream: reconcile over the venue's REST API")
            ch = self.hub.channels[topic]
            if ch.seq == 0:
                raise ProtocolError("no_data", f"{topic!r} has no data yet; its first update will follow")
            self.offer(ch)
        elif op == "intent":
            self._intent(msg, req_id)
        else:
            raise ProtocolError("unknown_op",
                                f"unknown op {op!r} (auth, subscribe, unsubscribe, snapshot, intent, ping)")

    def _intent(self, msg: dict[str, Any], req_id: Any) -> None:
        """Hand a trading intent to the daemon's executor; the result comes back as ``intent_result``."""
        assert self.user is not None
        handler = self.hub.intents
        if handler is None:
            raise ProtocolError("execution_disabled", "this hub node takes no intents (execution.enabled is off)")
        if self.user.name not in self.hub.intent_users:
            raise ProtocolError("not_authorized", f"user {self.user.name!r} may not trade through this daemon "
                                "(execution.user / execution.hub_users)")  # fmt: skip
        intent = msg.get("intent")
        if not isinstance(intent, dict) or not isinstance(intent.get("op"), str):
            raise ProtocolError("bad_message", "'intent' must be an object with an 'op' (pair, buy, sell, route, "
                                "kill, release, status), as `crossbook trade --daemon` sends")  # fmt: skip
        self.hub._run_intent(self, handler, self.user.name, intent, req_id)

    def _topics(self, msg: dict[str, Any]) -> list[str]:
        topics = msg.get("topics")
        if not isinstance(topics, list) or not topics:
            raise ProtocolError("bad_message", "'topics' must be a non-empty list of topic strings")
        for t in topics:
            parse_topic(t)
        return list(dict.fromkeys(topics))

    def _subscribe(self, topics: list[str], req_id: Any) -> None:
        new = [t for t in topics if t not in self.topics]
        if len(self.topics) + len(new) > self.hub.limits.max_subscriptions:
            raise ProtocolError(
                "too_many_subscriptions",
                f"at most {self.hub.limits.max_subscriptions} topics per connection "
                f"(you have {len(self.topics)}, asked for {len(new)} more)",
            )
        done: list[str] = []
        failed: list[dict[str, str]] = []
        for t in new:
            try:
                self.hub._subscribe(self, t)
                done.append(t)
            except ProtocolError as exc:
                failed.append({"topic": t, "code": exc.code, "message": str(exc)})
        self._send(reply("subscribed", req_id, topics=done, failed=failed))
        for t in done:  # snapshot after the ack, so the client knows the topic is live
            if is_private(t):
                self.hub._send_tunnel_state(self, t)
                continue
            ch = self.hub.channels[t]
            if ch.seq:
                self.offer(ch)

    async def _auth(self, token: Any, req_id: Any) -> None:
        try:
            user = await self.hub.users.authenticate(token) if isinstance(token, str) else None
        except Exception as exc:  # the user store is down (PostgreSQL restarting): say so, try again later
            log.warning("hub: user store unavailable for %s: %s", self.peer, type(exc).__name__)
            self._send(error_msg("auth_unavailable", "the hub cannot check tokens right now; reconnect "
                                 "and retry in a few seconds", req_id))
            self._close(WSCloseCode.INTERNAL_ERROR, "user store unavailable")
            return
        if self.transport is None or self.transport.is_disconnected:
            return
        if user is None:
            self.hub.auth_failures += 1
            self._send(error_msg("auth_failed", "unknown or revoked token", req_id))
            self._close(WSCloseCode.POLICY_VIOLATION, "auth failed")
            return
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        self.user = user
        self._send(reply("auth_ok", req_id, user=user.name, protocol=PROTOCOL_VERSION))

    # -- helpers --------------------------------------------------------------------------------
    def _take_token(self) -> bool:
        lim = self.hub.limits
        now = time.monotonic()
        self._tokens = min(float(lim.msg_burst), self._tokens + (now - self._refill_at) * lim.msg_rate)
        self._refill_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self._violations += 1
        if self._violations >= lim.max_violations:
            self._close(WSCloseCode.POLICY_VIOLATION, "message rate limit exceeded")
        else:
            self._send(error_msg("rate_limited", f"more than {lim.msg_rate:g} messages/s; message dropped"))
        return False

    def _send(self, payload: bytes) -> None:
        if self.transport is not None and not self.evicted:
            self.flush()  # queued updates first: one FIFO per connection keeps the order
            self.transport.send(WSMsgType.TEXT, payload)

    def _close(self, code: WSCloseCode, reason: str) -> None:
        if self.transport is not None and not self.transport.is_disconnected:
            self.flush()
            self.transport.send_close(code, reason.encode())
            self.transport.disconnect()


class Hub:
    """Topics, subscriptions and the picows server. Feed it with :meth:`deliver` (it is a Sink)."""

    def __init__(
        self,
        users: UserStore,
        *,
        demand: DemandTracker | None = None,
        limits: HubLimits | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        certfile: str | None = None,
        keyfile: str | None = None,
        tunnels: TunnelManager | None = None,
    ) -> None:
        self.users = users
        self.tunnels = tunnels
        if tunnels is not None:
            tunnels.sink = self.deliver_private
        # (user name, venue) -> that user's connections subscribed to private:<venue>
        self._private: dict[tuple[str, str], set[HubConnection]] = {}
        self.demand = demand if demand is not None else DemandTracker(AnyUpstream(), grace_s=30.0)
        # Intents over the hub (op "intent"): the daemon's executor, for the users allowed to trade with it.
        self.intents: IntentHandler | None = None
        self.intent_users: frozenset[str] = frozenset()
        # An intent outlives the connection that sent it: cancelling one mid-order would leave a leg unknown.
        self._intent_tasks: set[asyncio.Task[None]] = set()
        self.limits = limits or HubLimits()
        self.host = host
        self.port = port
        self.certfile = certfile
        self.keyfile = keyfile
        self.channels: dict[str, Channel] = {}
        self._state: dict[str, Any] = {}
        self._conns: set[HubConnection] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.evictions = 0
        self.auth_failures = 0

    @property
    def url(self) -> str:
        return f"{'wss' if self.certfile else 'ws'}://{self.host}:{self.port}/"

    @property
    def connections(self) -> set[HubConnection]:
        return set(self._conns)

    async def start(self) -> Hub:
        ctx: ssl.SSLContext | None = None
        if self.certfile:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                ctx.load_cert_chain(self.certfile, self.keyfile)
            except (OSError, ssl.SSLError) as exc:
                raise HubError(f"hub certificate {self.certfile}: cannot load ({exc})") from exc

        def factory(request: WSUpgradeRequest) -> HubConnection:
            return HubConnection(self, str(request.path))

        try:
            self._server = await ws_create_server(
                factory, self.host, self.port, ssl=ctx, max_frame_size=self.limits.max_message_bytes,
                enable_auto_ping=True, auto_ping_idle_timeout=20, auto_ping_reply_timeout=20,
            )
        except OSError as exc:
            raise HubError(f"hub cannot listen on {self.host}:{self.port} ({exc})") from exc
        self.port = self._server.sockets[0].getsockname()[1]
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="hub-sweeper")
        log.info("hub listening on %s", self.url)
        return self

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for c in list(self._conns):
            c._close(WSCloseCode.GOING_AWAY, "hub shutting down")
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.demand.close()
        if self._intent_tasks:  # let in-flight intents finish (the executor resolves them), within a bound
            _done, pending = await asyncio.wait(self._intent_tasks, timeout=30.0)
            for t in pending:
                log.error("hub: intent still running at shutdown; the executor reconciles it at the next start")
                t.cancel()
        if self.tunnels is not None:
            await self.tunnels.stop()

    def _run_intent(
        self, conn: HubConnection, handler: IntentHandler, user: str, intent: dict[str, Any], req_id: Any
    ) -> None:
        async def run() -> None:
            try:
                result = await handler(user, intent)
            except Exception as exc:  # the handler answers refusals itself; anything else is a bug to report
                log.exception("hub: intent %s from %s failed", intent.get("op"), user)
                conn._send(error_msg("intent_failed", f"{type(exc).__name__}: {exc}", req_id))
                return
            conn._send(reply("intent_result", req_id, result=result))

        task = asyncio.get_running_loop().create_task(run(), name=f"hub-intent-{user}")
        self._intent_tasks.add(task)
        task.add_done_callback(self._intent_tasks.discard)

    # -- the Sink side --------------------------------------------------------------------------
    def deliver(self, topic: str, seq: int, data: Any, payload: bytes) -> None:
        """Publish one update. Stale or duplicate seqs (a reseed racing the stream) are ignored."""
        if is_private(topic):  # private data goes through deliver_private only, never a shared channel
            log.error("hub: refused to publish private topic %s on a shared channel", topic)
            return
        ch = self._channel(topic)
        if seq <= ch.seq:
            return
        self._state[topic] = data
        # Nobody listening: still advance the channel's seq (for later snapshots), without a copy.
        ch.publish(Frame(payload) if len(ch) else _EMPTY, seq)

    def _channel(self, topic: str) -> Channel:
        ch = self.channels.get(topic)
        if ch is None:
            ch = self.channels[topic] = Channel(topic, self._snapshot)
        return ch

    def _snapshot(self, topic: str, seq: int) -> bytes:
        return snapshot_msg(topic, seq, self._state.get(topic))

    def deliver_private(self, user: str, venue: str, payload: bytes) -> None:
        """A tunnel event or state change of ``user``: to that user's subscribed connections only.

        Not conflated (fills must not be merged away); a client that cannot keep up is disconnected
        by the same buffer/pause limits as everyone else."""
        for conn in list(self._private.get((user, venue), ())):
            if conn.user is not None and conn.user.name == user:  # belt and braces
                conn._send(payload)

    def _send_tunnel_state(self, conn: HubConnection, topic: str) -> None:
        if self.tunnels is None or conn.user is None:
            return
        tunnel = self.tunnels.get(conn.user.name, parse_topic(topic)[1])
        if tunnel is not None:
            conn._send(tunnel.state_msg())

    # -- subscriptions --------------------------------------------------------------------------
    def _subscribe(self, conn: HubConnection, topic: str) -> None:
        if is_private(topic):
            if self.tunnels is None:
                raise ProtocolError("private_unavailable", "this hub has no private tunnels configured")
            if conn.user is None:
                raise ProtocolError("not_authenticated", "private topics need an authenticated user")
            venue = parse_topic(topic)[1]
            self.tunnels.acquire(conn.user.name, venue)
            self._private.setdefault((conn.user.name, venue), set()).add(conn)
            conn.topics.add(topic)
            return
        if is_market(topic):
            self.demand.acquire(topic)
        self._channel(topic).add(conn)
        conn.topics.add(topic)

    def _unsubscribe(self, conn: HubConnection, topic: str) -> None:
        if topic not in conn.topics:
            return
        conn.topics.discard(topic)
        if is_private(topic):
            assert conn.user is not None and self.tunnels is not None
            key = (conn.user.name, parse_topic(topic)[1])
            listeners = self._private.get(key)
            if listeners is not None:
                listeners.discard(conn)
                if not listeners:
                    del self._private[key]
            self.tunnels.release(*key)
            return
        self.channels[topic].remove(conn)
        if is_market(topic):
            self.demand.release(topic)

    def drop_topic(self, topic: str, code: str, message: str) -> int:
        """The upstream refused a market topic it had accepted (unknown at the venue): tell every
        subscriber with an ``error`` naming the topic, unsubscribe them, and forget the demand.
        Returns how many connections were told."""
        told = 0
        for conn in list(self._conns):
            if topic not in conn.topics:
                continue
            conn.topics.discard(topic)
            ch = self.channels.get(topic)
            if ch is not None:
                ch.remove(conn)
            conn._send(error_msg(code, message, topic=topic))
            told += 1
        self.demand.drop(topic)
        return told

    def _drop(self, conn: HubConnection) -> None:
        for t in list(conn.topics):
            self._unsubscribe(conn, t)
        self._conns.discard(conn)

    async def _sweep(self) -> None:
        # Publishes already evict paused subscribers they touch; this catches quiet topics.
        while True:
            await asyncio.sleep(self.limits.sweep_interval_s)
            now = monotonic()
            for c in list(self._conns):
                if c.paused:
                    c.check(now)


_EMPTY = Frame(b"")
