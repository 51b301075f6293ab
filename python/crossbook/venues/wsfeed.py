"""One upstream WebSocket connection for market data: connect, subscribe, read, heartbeat, reconnect.

Venue feeds subclass :class:`UpstreamConnection` and say how to sign the handshake, what to send
after connecting, how to ping, and what a frame means. The read path is deliberately short: the
frame's bytes go to the Rust ``BookSet`` with their arrival time, and nothing else allocates.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from crossbook._core import BookSet
from crossbook.aio import cancel_and_wait
from crossbook.config import FeedConfig
from crossbook.errors import FeedError, FrameError

log = logging.getLogger("crossbook.feed")

# Stream ids: one per WebSocket connection (every connect takes a new one), unique in the process, so
# connections sharing a BookSet never mix their sequence state (Kalshi numbers sids per connection).
_stream_ids = itertools.count(1)


@dataclass
class ConnectionStats:
    connects: int = 0
    disconnects: int = 0
    frames: int = 0
    malformed: int = 0
    pings_sent: int = 0
    pongs: int = 0
    heartbeat_timeouts: int = 0
    last_error: str = ""
    malformed_samples: list[str] = field(default_factory=list)


def backoff_delays(min_s: float, max_s: float, rng: random.Random | None = None) -> Iterable[float]:
    """Jittered exponential backoff ("full jitter" between half and all of the cap)."""
    r = rng or random.Random()
    cap = min_s
    while True:
        yield cap / 2 + r.random() * cap / 2
        cap = min(max_s, cap * 2)


class _Listener(WSListener):
    def __init__(self, conn: UpstreamConnection) -> None:
        self.conn = conn

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.conn._on_connected(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self.conn._on_frame(transport, frame)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.conn._on_disconnected(transport)


class UpstreamConnection:
    """A reconnecting market-data WebSocket feeding one ``BookSet``."""

    venue: str = ""

    def __init__(
        self,
        name: str,
        url: str,
        books: BookSet,
        feed_cfg: FeedConfig,
        *,
        ping_interval_s: float,
        pong_timeout_s: float,
        on_update: Callable[[], None] | None = None,
    ) -> None:
        self.on_integrity: Callable[[str], None] | None = None  # books of this feed just went invalid
        # (market, reason): the venue refused a market we asked for (MarketData tells the hub's users)
        self.on_rejected: Callable[[str, str], None] | None = None
        self.name = name
        self.url = url
        self.books = books
        self.cfg = feed_cfg
        self.ping_interval_s = ping_interval_s
        self.pong_timeout_s = pong_timeout_s
        self.on_update = on_update
        self.stats = ConnectionStats()
        self.connected = False
        # The current connection's stream id (BookSet.apply(..., stream=)): 0 before the first one.
        self.stream = 0
        self.last_rx_ns = 0
        self.last_heartbeat_ns = 0  # last pong (ours) or server ping: proof the pipe is alive
        self.connected_at_ns = 0  # when the current connection came up (subscription deadlines count from it)
        self._last_ping_sent_ns = 0
        self._awaiting_pong_since_ns = 0
        self._transport: WSTransport | None = None
        self._disconnected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._hb_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._markets: tuple[str, ...] = ()

    # -- what venues fill in -------------------------------------------------------------------
    def markets(self) -> tuple[str, ...]:
        return self._markets

    def has_room(self) -> bool:
        """Whether :meth:`add_market` may add one more market (venue limit per connection)."""
        return False

    def add_market(self, market: str) -> None:
        """Carry one more market from now on (and after every reconnect)."""
        raise NotImplementedError

    def remove_market(self, market: str) -> None:
        """Stop carrying a market (the venue is told at once when connected)."""
        raise NotImplementedError

    def send_text(self, msg: bytes) -> bool:
        """Send one command on the live connection; False when there is none (the next connect
        subscribes the current set anyway, so nothing is lost)."""
        t = self._transport
        if t is None or not self.connected:
            return False
        t.send(WSMsgType.TEXT, msg)
        return True

    def handshake_headers(self) -> dict[str, str]:
        return {}

    def subscribe_messages(self) -> list[bytes]:
        raise NotImplementedError

    def send_heartbeat(self, transport: WSTransport) -> None:
        transport.send_ping(b"crossbook")

    def is_heartbeat_reply(self, frame: WSFrame) -> bool:
        return bool(frame.msg_type == WSMsgType.PONG)

    def after_apply(self, transport: WSTransport, payload: bytes) -> None:
        """Hook after each applied frame (Kalshi asks for snapshots on sequence gaps and reads its
        command replies here)."""

    def on_reconnect(self) -> None:
        """Books of this connection can no longer be trusted: venues mark them invalid (and forget
        the closed connection's ``stream``; the next connect takes a new one)."""

    def integrity_event(self, reason: str) -> None:
        """Tell whoever listens (the breaker) at once that books just went invalid."""
        if self.on_integrity is not None:
            try:
                self.on_integrity(reason)
            except Exception:  # a listener's bug must not break the feed
                log.exception("%s: integrity listener failed", self.name)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"feed:{self.name}")
        return self._task

    async def stop(self) -> None:
        self._stopping = True
        if self._transport is not None:
            self._transport.disconnect(graceful=False)
        self._disconnected.set()  # lets a connected reader return on its own
        await cancel_and_wait(self._hb_task)
        await cancel_and_wait(self._task)

    def kick(self, reason: str) -> None:
        """Drop the connection (it reconnects); used when the data can no longer be trusted."""
        log.warning("%s: dropping connection: %s", self.name, reason)
        self.stats.last_error = reason
        if self._transport is not None:
            self._transport.disconnect(graceful=False)

    async def _run(self) -> None:
        delays = iter(backoff_delays(self.cfg.reconnect_min_s, self.cfg.reconnect_max_s))
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._connect_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("%s: connection to %s failed: %s", self.name, self.url, self.stats.last_error)
            if self._stopping:
                break
            if time.monotonic() - started > 30:
                delays = iter(backoff_delays(self.cfg.reconnect_min_s, self.cfg.reconnect_max_s))
            delay = next(delays)
            log.info("%s: reconnecting in %.2fs", self.name, delay)
            await asyncio.sleep(delay)

    async def _connect_once(self) -> None:
        self._disconnected.clear()
        kwargs: dict[str, Any] = {}
        if self.cfg.proxy:
            kwargs["proxy"] = self.cfg.proxy
        try:
            transport, _ = await asyncio.wait_for(
                ws_connect(
                    lambda: _Listener(self),
                    self.url,
                    extra_headers=self.handshake_headers(),
                    websocket_handshake_timeout=self.cfg.connect_timeout_s,
                    enable_auto_pong=True,
                    logger_name=f"feed.{self.name}",
                    **kwargs,
                ),
                timeout=self.cfg.connect_timeout_s + 1,
            )
        except TimeoutError:
            raise FeedError(f"{self.name}: no WebSocket handshake from {self.url} within "
                            f"{self.cfg.connect_timeout_s}s") from None
        try:
            self._hb_task = asyncio.get_running_loop().create_task(
                self._heartbeat(transport), name=f"heartbeat:{self.name}"
            )
            await self._disconnected.wait()
        finally:
            if self._hb_task is not None:
                self._hb_task.cancel()
                self._hb_task = None

    async def _heartbeat(self, transport: WSTransport) -> None:
        timeout_ns = int(self.pong_timeout_s * 1e9)
        while True:
            await asyncio.sleep(self.ping_interval_s)
            now = time.time_ns()
            if self._awaiting_pong_since_ns and now - self._awaiting_pong_since_ns > timeout_ns:
                self.stats.heartbeat_timeouts += 1
                self.kick(f"no heartbeat reply for {self.pong_timeout_s:.1f}s")
                return
            if not self._awaiting_pong_since_ns:
                self._awaiting_pong_since_ns = now
            self._last_ping_sent_ns = now
            self.stats.pings_sent += 1
            try:
                self.send_heartbeat(transport)
            except Exception as exc:  # the transport is going away; the reader will notice
                log.debug("%s: ping failed: %s", self.name, exc)

    # -- picows callbacks (the hot path) -------------------------------------------------------
    def _on_connected(self, transport: WSTransport) -> None:
        sock = transport.underlying_transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.cfg.recv_buffer_bytes)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.cfg.send_buffer_bytes)
            except OSError as exc:
                log.debug("%s: socket options not applied: %s", self.name, exc)
        self._transport = transport
        self.stream = next(_stream_ids)
        self.connected = True
        self.stats.connects += 1
        now = time.time_ns()
        self.last_rx_ns = now
        self.last_heartbeat_ns = now
        self.connected_at_ns = now
        self._awaiting_pong_since_ns = 0
        log.info("%s: connected to %s (%d markets)", self.name, self.url, len(self.markets()))
        for msg in self.subscribe_messages():
            transport.send(WSMsgType.TEXT, msg)

    def _on_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        now = time.time_ns()
        self.last_rx_ns = now
        if self.is_heartbeat_reply(frame):
            self.stats.pongs += 1
            self.last_heartbeat_ns = now
            self._awaiting_pong_since_ns = 0
            return
        mt = frame.msg_type
        if mt == WSMsgType.PING:
            self.last_heartbeat_ns = now  # server heartbeat (auto-ponged by picows)
            return
        if mt != WSMsgType.TEXT and mt != WSMsgType.BINARY:
            return
        self.stats.frames += 1
        payload = frame.get_payload_as_bytes()
        try:
            self.books.apply(self.venue, payload, now, self.stream)  # stream: positional is cheaper
        except FrameError as exc:
            self.stats.malformed += 1
            if len(self.stats.malformed_samples) < 20:
                self.stats.malformed_samples.append(str(exc))
            log.warning("%s: dropped a malformed frame (%d so far): %s", self.name, self.stats.malformed, exc)
            return
        try:
            self.after_apply(transport, payload)
        except Exception:  # a bug in a venue hook must not take the feed down
            log.exception("%s: after_apply failed", self.name)
        if self.on_update is not None:
            self.on_update()

    def _on_disconnected(self, transport: WSTransport) -> None:
        if self._transport is transport:
            self._transport = None
        was = self.connected
        self.connected = False
        if was:
            self.stats.disconnects += 1
            log.warning("%s: disconnected from %s", self.name, self.url)
        self.on_reconnect()
        self.integrity_event(f"{self.name} disconnected")
        if self.on_update is not None:
            self.on_update()
        self._disconnected.set()
