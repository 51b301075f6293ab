"""Shared machinery of the local venue simulators (Polymarket and Kalshi).

Books are kept in integer units (price in 1/10000 of a dollar, size in 1/100 of a share or
contract) so the random walk is exact and deterministic for a seed; the venue modules only format.
The server side is a `websockets` asyncio server whose connections (:class:`SimConnection`) also
serve plain HTTP/1.1 with keep-alive, as the venues do: the REST endpoints and ``POST /_sim/fault``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, cast
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

from crossbook.aio import cancel_and_wait

log = logging.getLogger(__name__)

PRICE_SCALE = 10_000  # price units per dollar: 0.0001 resolution
SIZE_SCALE = 100  # size units per share/contract: 0.01 resolution
_PRICE_EXP = Decimal(1) / PRICE_SCALE
_SIZE_EXP = Decimal(1) / SIZE_SCALE

Side = Literal["bid", "ask"]
Level = tuple[Decimal, Decimal]
BookView = dict[str, list[Level]]
JSON = Any


def price_dec(units: int) -> Decimal:
    return (Decimal(units) * _PRICE_EXP).quantize(_PRICE_EXP)


def size_dec(units: int) -> Decimal:
    return (Decimal(units) * _SIZE_EXP).quantize(_SIZE_EXP)


def fmt_trim(value: Decimal) -> str:
    """Venue style without trailing zeros: 0.5, 0.48, 1142.85, 10500100."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


def fmt_fixed(value: Decimal, places: int) -> str:
    return format(value.quantize(Decimal(1).scaleb(-places)), "f")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Change:
    """One level change: the new aggregate size (0 = level removed) and the size before."""

    side: Side
    price: int
    size: int
    old: int


class LadderBook:
    """An L2 book in integer units that walks around a fair price, never crossed.

    Invariant: every bid < fair < every ask (so best bid < best ask).
    """

    def __init__(
        self,
        rng: random.Random,
        *,
        tick: int,
        fair: int,
        fractional_sizes: bool,
        min_levels: int = 10,
        max_levels: int = 20,
    ) -> None:
        self.rng = rng
        self.tick = tick
        self.fractional_sizes = fractional_sizes
        self.min_levels = min_levels
        self.max_levels = max_levels
        self.fair = self._clamp_fair(fair - fair % tick)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        # Level changes made by matched orders, announced with the next step (so feeds stay in sync).
        self.pending: list[Change] = []
        for side in ("bid", "ask"):
            target = rng.randint(min_levels + 2, max_levels - 2)
            book = self._side(side)
            candidates = self._range(side)
            if not candidates:
                continue
            # Always quote the touch, then fill the rest of the ladder.
            book[candidates[0]] = self._new_size(near=True)
            for price in rng.sample(candidates[1:], min(target - 1, len(candidates) - 1)):
                book[price] = self._new_size(near=False)

    # -- queries -----------------------------------------------------------------------------
    def best_bid(self) -> int | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> int | None:
        return min(self.asks) if self.asks else None

    def sorted_bids(self) -> list[tuple[int, int]]:
        """Best (highest) first."""
        return sorted(self.bids.items(), reverse=True)

    def sorted_asks(self) -> list[tuple[int, int]]:
        """Best (lowest) first."""
        return sorted(self.asks.items())

    # -- evolution ---------------------------------------------------------------------------
    def step(self) -> list[Change]:
        """Advance one tick; return the level changes in the order they happened (matched orders' first)."""
        taken, self.pending = self.pending, []
        return taken + self._step()

    def take(self, side: Side, limit: int, size: int) -> list[tuple[int, int]]:
        """Consume resting liquidity on ``side`` (``"ask"`` for a YES buy, ``"bid"`` for a YES sell) at prices
        no worse than ``limit``, up to ``size`` units; returns the fills (price, size), best price first.
        The level changes are queued in ``pending`` and announced by the next :meth:`step`."""
        book = self._side(side)
        levels = sorted(book) if side == "ask" else sorted(book, reverse=True)
        fills: list[tuple[int, int]] = []
        left = size
        for price in levels:
            if left <= 0 or (price > limit if side == "ask" else price < limit):
                break
            got = min(left, book[price])
            fills.append((price, got))
            left -= got
            self.pending.append(self._set(side, price, book[price] - got))
        return fills

    def available(self, side: Side, limit: int) -> int:
        """Units resting on ``side`` at prices no worse than ``limit``."""
        book = self._side(side)
        return sum(s for p, s in book.items() if (p <= limit if side == "ask" else p >= limit))

    def _step(self) -> list[Change]:
        rng = self.rng
        changes: list[Change] = []
        if rng.random() < 0.35:
            self.fair = self._clamp_fair(self.fair + rng.choice((-1, 1)) * self.tick)
        # Forced: levels the fair price walked over leave the book.
        for price in [p for p in self.bids if p >= self.fair]:
            changes.append(self._set("bid", price, 0))
        for price in [p for p in self.asks if p <= self.fair]:
            changes.append(self._set("ask", price, 0))
        for _ in range(max(0, rng.randint(1, 3) - len(changes))):
            change = self._random_op()
            if change is not None:
                changes.append(change)
        return changes

    def retick(self, new_tick: int) -> None:
        """Move every level onto the new tick (bids down, asks up), aggregating sizes."""
        self.tick = new_tick
        self.fair = self._clamp_fair(self.fair - self.fair % new_tick)
        bids: dict[int, int] = {}
        for price, size in self.bids.items():
            p = price - price % new_tick
            if p >= new_tick and p < self.fair:
                bids[p] = bids.get(p, 0) + size
        asks: dict[int, int] = {}
        for price, size in self.asks.items():
            p = price + (-price) % new_tick
            if p <= PRICE_SCALE - new_tick and p > self.fair:
                asks[p] = asks.get(p, 0) + size
        self.bids, self.asks = bids, asks

    def shift(self, ticks: int) -> list[Change]:
        """Move the whole book by ``ticks`` (up when positive) at once, as a sudden repricing does; the level
        changes are queued in ``pending`` (announced by the next :meth:`step`) and returned."""
        d = ticks * self.tick
        changes: list[Change] = []
        for side in ("bid", "ask"):
            book = self._side(side)
            moved = {p + d: q for p, q in book.items() if self.tick <= p + d <= PRICE_SCALE - self.tick}
            for price in sorted(set(book) | set(moved)):
                if book.get(price, 0) != moved.get(price, 0):
                    changes.append(Change(side, price, moved.get(price, 0), book.get(price, 0)))
            book.clear()
            book.update(moved)
        self.fair = min(max(self.fair + d, self.tick), PRICE_SCALE - self.tick)
        self.pending.extend(changes)
        return changes

    def trade(self) -> tuple[Side, int, int] | None:
        """A plausible trade at the touch: (aggressor book side hit, price, size); the book is not changed."""
        side: Side = "bid" if self.rng.random() < 0.5 else "ask"
        book = self._side(side)
        if not book:
            return None
        price = max(book) if side == "bid" else min(book)
        size = min(book[price], self.rng.randint(1, 200) * SIZE_SCALE)
        return side, price, size

    # -- internals ---------------------------------------------------------------------------
    def _clamp_fair(self, fair: int) -> int:
        low = PRICE_SCALE * 15 // 100
        high = PRICE_SCALE * 85 // 100
        fair = min(max(fair, low), high)
        return fair - fair % self.tick

    def _span(self) -> int:
        return 30 * self.tick

    def _side(self, side: Side) -> dict[int, int]:
        return self.bids if side == "bid" else self.asks

    def _range(self, side: Side) -> list[int]:
        """Allowed prices for a side, nearest the fair price first."""
        span = self._span()
        if side == "bid":
            low = max(self.tick, self.fair - span)
            return list(range(self.fair - self.tick, low - 1, -self.tick))
        high = min(PRICE_SCALE - self.tick, self.fair + span)
        return list(range(self.fair + self.tick, high + 1, self.tick))

    def _new_size(self, *, near: bool) -> int:
        rng = self.rng
        whole = rng.randint(5, 800) if near else rng.choice((rng.randint(5, 3000), rng.randint(1000, 40000)))
        units = whole * SIZE_SCALE
        if self.fractional_sizes and rng.random() < 0.4:
            units += rng.randint(1, SIZE_SCALE - 1)
        return units

    def _set(self, side: Side, price: int, size: int) -> Change:
        book = self._side(side)
        old = book.get(price, 0)
        if size:
            book[price] = size
        else:
            book.pop(price, None)
        return Change(side, price, size, old)

    def _random_op(self) -> Change | None:
        rng = self.rng
        side: Side = "bid" if rng.random() < 0.5 else "ask"
        book = self._side(side)
        free = [p for p in self._range(side) if p not in book]
        far = [p for p in book if abs(p - self.fair) > self._span()]
        if far:
            return self._set(side, rng.choice(far), 0)
        roll = rng.random()
        if (len(book) < self.min_levels or roll < 0.3) and free and len(book) < self.max_levels:
            # New levels cluster near the touch, as on a real book.
            index = min(len(free) - 1, int(abs(rng.gauss(0, len(free) / 3))))
            return self._set(side, free[index], self._new_size(near=index < 3))
        if book and (len(book) > self.max_levels or (roll < 0.55 and len(book) > self.min_levels)):
            return self._set(side, rng.choice(sorted(book)), 0)
        if book:
            price = rng.choice(sorted(book))
            old = book[price]
            factor = Decimal(rng.randint(30, 180)) / 100
            new = int((Decimal(old) * factor).to_integral_value())
            if not self.fractional_sizes:
                new -= new % SIZE_SCALE
            new = max(new, SIZE_SCALE)
            if new == old:
                new += SIZE_SCALE
            return self._set(side, price, new)
        return None


def json_response(status: int, payload: JSON, extra: Mapping[str, str] | None = None) -> Response:
    body = orjson.dumps(payload)
    headers = Headers()
    headers["Date"] = email.utils.formatdate(usegmt=True)
    headers["Content-Type"] = "application/json"
    headers["Content-Length"] = str(len(body))
    for key, value in (extra or {}).items():
        headers[key] = value
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


@dataclass(slots=True)
class HttpRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Headers
    body: bytes
    received_ns: int = 0  # time.monotonic_ns() when the request's first bytes reached the sim (0: unknown)
    keep_alive: bool = False  # the client keeps the connection open after the answer

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


class SimConnection(ServerConnection):
    """One TCP connection to a simulator: persistent HTTP/1.1 (REST) or a WebSocket.

    The venues keep REST connections alive, so the sims do too: plain HTTP requests are parsed here
    (request line, headers, ``Content-Length`` body) and answered in order on the same connection,
    which stays open until the client closes it, asks ``Connection: close``, or it idles for
    ``SimServer.http_idle_s``. A request that asks for a WebSocket upgrade is handed, bytes untouched,
    to the websockets protocol underneath (then the connection is a WebSocket for good).

    ``sim`` is set on the per-server subclass :meth:`SimServer.start` makes.
    """

    sim: SimServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prebuf: bytes | None = b""  # None: the bytes belong to the websockets protocol
        self._http_queue: list[HttpRequest] = []
        self._http_task: asyncio.Task[None] | None = None
        self._http_close = False  # the request being answered is the connection's last
        self._idle: asyncio.TimerHandle | None = None
        self._request_ns = 0  # monotonic ns when the first bytes of the request being read arrived
        self.http_requests = 0  # plain HTTP requests read on this connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.sim._http_conns.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.sim._http_conns.discard(self)
        self._disarm_idle()
        super().connection_lost(exc)

    def _arm_idle(self) -> None:
        self._disarm_idle()
        self._idle = self.loop.call_later(self.sim.http_idle_s, self._idle_expired)

    def _disarm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _idle_expired(self) -> None:
        self._idle = None
        if self._prebuf is not None and not self._http_queue and self._http_task is None:
            self.sim.stats["http_idle_closed"] += 1
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._prebuf is None:
            super().data_received(data)
            return
        if not self._prebuf:
            self._request_ns = time.monotonic_ns()
        buf = self._prebuf + data
        while buf and self._prebuf is not None:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                if len(buf) >= 65536:
                    self._http_fail(431, "request head too large")
                    return
                break
            lines = buf[:head_end].decode("latin-1").split("\r\n")
            try:
                method, target, version = lines[0].split(" ")
            except ValueError:
                self._http_fail(400, "malformed request line")
                return
            headers = Headers()
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep:
                    self._http_fail(400, "malformed header line")
                    return
                headers[name.strip()] = value.strip()
            if "websocket" in headers.get("Upgrade", "").lower():
                if self.http_requests or self._http_queue or self._http_task is not None:
                    self._http_fail(400, "a WebSocket upgrade must be the connection's first request")
                    return
                self._prebuf = None  # a WebSocket from here on: websockets parses the handshake itself
                self._disarm_idle()
                self.sim._http_conns.discard(self)
                super().data_received(buf)
                return
            if "chunked" in headers.get("Transfer-Encoding", "").lower():
                self._http_fail(501, "chunked request bodies are not supported; send Content-Length")
                return
            try:
                length = int(headers.get("Content-Length", "0"))
            except ValueError:
                self._http_fail(400, "bad Content-Length")
                return
            end = head_end + 4 + length
            if len(buf) < end:
                if end > 4 * 1024 * 1024:
                    self._http_fail(413, "request body too large")
                    return
                break
            split = urlsplit(target)
            request = HttpRequest(method, split.path, parse_qs(split.query), headers, buf[head_end + 4 : end],
                                  received_ns=self._request_ns)  # fmt: skip
            conn_header = headers.get("Connection", "").lower()
            request.keep_alive = "close" not in conn_header and (version == "HTTP/1.1" or "keep-alive" in conn_header)
            buf = buf[end:]
            self._request_ns = time.monotonic_ns() if buf else 0
            self._queue_request(request)
        if self._prebuf is not None:
            self._prebuf = buf

    def _queue_request(self, request: HttpRequest) -> None:
        if not self.http_requests:
            self.sim.stats["http_connections"] += 1
        self.http_requests += 1
        self.sim.stats["http_requests"] += 1
        self._http_queue.append(request)
        self._disarm_idle()
        if self._http_task is None:
            self._http_task = self.loop.create_task(self._serve_http())

    async def _serve_http(self) -> None:
        """Answer the queued requests one by one, in order (pipelined requests wait their turn)."""
        try:
            while self._http_queue and not self.transport.is_closing():
                request = self._http_queue.pop(0)
                response = await self.sim._answer(self, request)
                if self.transport.is_closing():  # dropped by a fault, or the client hung up
                    break
                response.headers["Connection"] = "keep-alive" if request.keep_alive else "close"
                self.transport.write(response.serialize())
                if not request.keep_alive:
                    self._http_queue.clear()
                    self.transport.close()
        finally:
            self._http_task = None
            if not self.transport.is_closing():
                self._arm_idle()

    def _http_fail(self, status: int, reason: str) -> None:
        """A request that cannot be parsed: answer and close (the byte stream cannot be trusted further)."""
        self._prebuf = b""
        self._http_queue.clear()
        response = json_response(status, {"error": reason})
        response.headers["Connection"] = "close"
        if self._http_task is None:
            self.transport.write(response.serialize())
        self.transport.close()


class Session:
    """One client connection: an outbound queue drained by its own writer task."""

    def __init__(self, sim: SimServer, conn: ServerConnection) -> None:
        self.sim = sim
        self.conn = conn
        self.queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.writer = asyncio.get_running_loop().create_task(self._write_loop())

    def enqueue(self, kind: str, message: JSON | str) -> None:
        text = message if isinstance(message, str) else orjson.dumps(message).decode()
        self.queue.put_nowait((kind, text))

    async def _write_loop(self) -> None:
        stats = self.sim.stats
        try:
            while True:
                kind, text = await self.queue.get()
                await self.conn.send(text)
                stats[kind] += 1
                stats["frames_sent"] += 1
        except ConnectionClosed:
            pass

    async def close(self) -> None:
        self.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.writer


class SimDisconnect(Exception):
    """Raised inside an order endpoint to drop the connection before the order is booked."""


class SimServer:
    """Base class: server lifecycle, tick loop, faults, HTTP plumbing. Venues fill in the rest."""

    ws_path = "/"
    ws_extra_paths: tuple[str, ...] = ()  # further WebSocket endpoints (e.g. Polymarket's /ws/user)
    venue = "sim"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        tick_interval: float = 0.05,
        heartbeat: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.seed = seed
        self.tick_interval = tick_interval
        self.heartbeat = heartbeat
        self.stats: Counter[str] = Counter()
        self.sessions: dict[ServerConnection, Session] = {}
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._paused = False
        self._stall_until = 0.0
        self._stalled_conns: set[ServerConnection] = set()
        self._order_faults: list[tuple[str, str]] = []
        self._buckets: dict[str, tuple[float, float]] = {}
        self.hold_reply_s = 5.0
        # An idle keep-alive REST connection is closed after this long (venues' load balancers do the same).
        self.http_idle_s = 90.0
        self._http_conns: set[SimConnection] = set()

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}{self.ws_path}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        # The connections of this server know it (REST requests are answered by the connection itself).
        conn_class = cast(type[SimConnection], type("SimConnection", (SimConnection,), {"sim": self}))
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            create_connection=conn_class,
            open_timeout=None,  # a keep-alive REST connection never sends a handshake (idle: http_idle_s)
            ping_interval=None,  # venues decide their own heartbeat
            compression=None,
            max_size=2**22,
        )
        for sock in self._server.sockets:
            self.port = int(sock.getsockname()[1])
            break
        self._tasks.append(asyncio.get_running_loop().create_task(self._tick_loop()))

    async def stop(self) -> None:
        # Bounded at every step: a test's teardown must never hang on a sim.
        for task in self._tasks:
            await cancel_and_wait(task)
        self._tasks.clear()
        for conn in list(self.sessions):
            conn.transport.abort()
        http_conns, self._http_conns = list(self._http_conns), set()
        for http_conn in http_conns:
            http_conn.transport.abort()
        serving = {t for c in http_conns if (t := c._http_task) is not None}
        if serving:
            await asyncio.wait(serving, timeout=1.0)
        if self._server is not None:
            self._server.close(close_connections=False)
            closing = asyncio.ensure_future(self._server.wait_closed())
            await asyncio.wait({closing}, timeout=2.0)
            closing.cancel()
            self._server = None
        for session in list(self.sessions.values()):
            await asyncio.wait({asyncio.ensure_future(session.close())}, timeout=1.0)
        self.sessions.clear()

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- faults ------------------------------------------------------------------------------
    def drop_connections(self) -> int:
        """Abort every client WebSocket connection (no close frame). Returns how many. REST connections
        are left alone (``disconnect_next`` drops the one carrying an order)."""
        count = 0
        for conn in list(self.sessions):
            conn.transport.abort()
            count += 1
        self.stats["dropped_connections"] += count
        return count

    def stall_heartbeats(self, seconds: float) -> None:
        """Connected-but-dead: no heartbeat answers/pings and no book messages for ``seconds``.

        The book keeps moving meanwhile; what would have been sent is lost, as on a dead link.
        """
        self._stall_until = asyncio.get_running_loop().time() + seconds
        # Only the links open now go dead; a client that reconnects gets a healthy socket, as it
        # would from a real venue whose old TCP path died.
        self._stalled_conns = set(self.sessions)
        self.stats["stalls"] += 1

    def is_stalled(self, conn: ServerConnection) -> bool:
        return conn in self._stalled_conns and asyncio.get_running_loop().time() < self._stall_until

    def send_garbage(self, n: int = 1) -> None:
        """Send ``n`` malformed frames to every client, cycling invalid / truncated / bad price."""
        for session in list(self.sessions.values()):
            frames = self._garbage_frames(session)
            for i in range(n):
                session.enqueue("garbage", frames[i % len(frames)])

    def pause_updates(self) -> None:
        self._paused = True

    def resume_updates(self) -> None:
        self._paused = False

    def _fault_table(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {
            "drop": lambda a: self.drop_connections(),
            "drop_connections": lambda a: self.drop_connections(),
            "stall": lambda a: self.stall_heartbeats(float(a.get("seconds", 5))),
            "stall_heartbeats": lambda a: self.stall_heartbeats(float(a.get("seconds", 5))),
            "garbage": lambda a: self.send_garbage(int(a.get("n", 1))),
            "send_garbage": lambda a: self.send_garbage(int(a.get("n", 1))),
            "pause": lambda a: self.pause_updates(),
            "pause_updates": lambda a: self.pause_updates(),
            "resume": lambda a: self.resume_updates(),
            "resume_updates": lambda a: self.resume_updates(),
            "reject_next": lambda a: self.reject_next(str(a.get("reason", "order rejected by the simulator"))),
            "accept_then_timeout_next": lambda a: self.accept_then_timeout_next(),
            "partial_fill_next": lambda a: self.partial_fill_next(str(a.get("fraction", "0.5"))),
            "disconnect_next": lambda a: self.disconnect_next(str(a.get("when", "after_accept"))),
            "shift_book": lambda a: self.shift_book(str(a.get("market", "")) or None, int(a.get("ticks", 1))),
        }

    def apply_fault(self, spec: Mapping[str, Any]) -> JSON:
        """Run a fault described as ``{"fault": name, ...args}`` (what ``POST /_sim/fault`` takes)."""
        name = str(spec.get("fault", ""))
        action = self._fault_table().get(name)
        if action is None:
            raise KeyError(name)
        result = action(dict(spec))
        self.stats[f"fault_{name}"] += 1
        return result

    # -- venue hooks -------------------------------------------------------------------------
    def _garbage_frames(self, session: Session) -> list[str]:
        return ["{not json", '{"event_type": "bo']

    def _step_markets(self) -> None:
        raise NotImplementedError

    async def _on_open(self, session: Session) -> None:
        """Called after the handshake; start per-connection tasks here."""

    async def _on_message(self, session: Session, message: str | bytes) -> None:
        raise NotImplementedError

    def _on_close(self, session: Session) -> None:
        """Drop per-connection state."""

    def _authenticate(self, request: HttpRequest) -> Response | None:
        """Return an error response to refuse the request, None to accept."""
        return None

    def _route(self, request: HttpRequest) -> Response | None:
        """Answer a plain HTTP request; None = 404."""
        return None

    async def _route_async(self, request: HttpRequest, conn: ServerConnection) -> Response | None:
        """Like :meth:`_route`, for answers that may be held back (accept-then-timeout)."""
        return self._route(request)

    # -- order entry faults and counters (both venues' order endpoints) -------------------------
    def reject_next(self, reason: str = "order rejected by the simulator (fault injected)") -> None:
        """The next order is refused with ``reason`` (nothing is booked)."""
        self._order_faults.append(("reject", reason))

    def accept_then_timeout_next(self) -> None:
        """The next order is accepted, booked and matched, but its HTTP reply is held until the client
        gives up (its connection closes) or ``hold_reply_s`` passes."""
        self._order_faults.append(("timeout", ""))

    def partial_fill_next(self, fraction: Decimal | str) -> None:
        """The next order fills at most ``fraction`` (0..1) of its size; the rest is killed or rests."""
        f = Decimal(fraction)
        if not Decimal(0) <= f <= 1:
            raise ValueError(f"partial fill fraction {fraction!r} must be within 0..1")
        self._order_faults.append(("partial", str(f)))

    def disconnect_next(self, when: str = "after_accept") -> None:
        """The connection carrying the next order is dropped (TCP abort, no reply): ``after_accept`` once the
        order is booked and matched, ``before_accept`` before the venue looked at it (nothing booked)."""
        if when not in ("after_accept", "before_accept"):
            raise ValueError(f"disconnect when={when!r}: after_accept or before_accept")
        self._order_faults.append(("disconnect", when))

    def shift_book(self, market: str | None = None, ticks: int = 1) -> int:
        """Reprice a market's book by ``ticks`` now (all markets when None); returns the level changes."""
        raise NotImplementedError

    async def _reply(self, conn: ServerConnection, response: Response, mode: str) -> Response:
        """Deliver an order's reply as the injected fault says: held, dropped, or normally."""
        if mode == "timeout":
            return await self.hold_reply(conn, response)
        if mode == "disconnect":
            return await self.drop_mid_order(conn)
        return response

    async def drop_mid_order(self, conn: ServerConnection) -> Response:
        """Abort the connection the order came on; the response returned is never delivered."""
        self.stats["disconnects_mid_order"] += 1
        conn.transport.abort()
        return json_response(503, {"error": "connection dropped (fault injected)"})

    def take_order_fault(self) -> tuple[str, str] | None:
        return self._order_faults.pop(0) if self._order_faults else None

    @property
    def orders_accepted(self) -> int:
        """Orders accepted (each client order id / order hash once). Duplicates are refused and counted
        in ``stats['orders_duplicate']``, never here."""
        return self.stats["orders_accepted"]

    def rate_limited(self, bucket: str, rate: float, burst: float) -> bool:
        """Token bucket per ``bucket`` (e.g. key + reads/writes): True means answer 429."""
        now = time.monotonic()
        tokens, last = self._buckets.get(bucket, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens < 1:
            self._buckets[bucket] = (tokens, now)
            self.stats["rate_limited"] += 1
            return True
        self._buckets[bucket] = (tokens - 1, now)
        return False

    async def hold_reply(self, conn: ServerConnection, response: Response) -> Response:
        """Withhold ``response`` until the client hangs up or ``hold_reply_s`` passes."""
        self.stats["replies_held"] += 1
        deadline = time.monotonic() + self.hold_reply_s
        # Polled: a REST connection has no close event to await (it is not a WebSocket).
        while time.monotonic() < deadline and not conn.transport.is_closing():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        return response

    # -- plumbing ----------------------------------------------------------------------------
    def deliver(self, session: Session, kind: str, message: JSON) -> bool:
        """Queue a data message unless the link is stalled (then it is lost). True if queued."""
        if self.is_stalled(session.conn):
            self.stats["lost_in_stall"] += 1
            return False
        session.enqueue(kind, message)
        return True

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            if self._paused:
                continue
            try:
                self._step_markets()
            except Exception:  # a sim bug must not kill the server silently mid-test
                log.exception("%s sim tick failed", self.venue)
                raise

    def _install_pong_gate(self, conn: ServerConnection) -> None:
        """Stop answering WebSocket pings while stalled (the socket looks alive but is dead)."""
        protocol = conn.protocol
        original: Callable[[Frame], None] = protocol.send_frame

        def send_frame(frame: Frame) -> None:
            if frame.opcode is Opcode.PONG and self.is_stalled(conn):
                self.stats["pongs_withheld"] += 1
                return
            original(frame)

        setattr(protocol, "send_frame", send_frame)  # noqa: B010 - instance-level override

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        """The WebSocket handshake (plain HTTP requests never get here: :class:`SimConnection` answers
        them). None accepts the upgrade; a response refuses it and websockets closes the connection."""
        split = urlsplit(request.path)
        req = HttpRequest(request.method, split.path, parse_qs(split.query), request.headers, b"")
        if req.path == self.ws_path or req.path in self.ws_extra_paths:
            refused = self._authenticate(req)
            if refused is not None:
                self.stats["handshakes_refused"] += 1
                refused.headers["Connection"] = "close"
                return refused
            self._install_pong_gate(conn)
            return None
        response = await self._answer(conn, req)
        response.headers["Connection"] = "close"
        return response

    async def _answer(self, conn: ServerConnection, req: HttpRequest) -> Response:
        """The answer to one plain HTTP request: faults, health, then the venue's routes."""
        if req.path == "/_sim/fault":
            return self._http_fault(req)
        if req.path == "/" or req.path == "/health":
            return json_response(200, {"status": "ok", "venue": self.venue, "ws_url": self.ws_url})
        try:
            answer = await self._route_async(req, conn)
        except Exception as exc:  # report, don't crash the server
            log.exception("%s sim route failed", self.venue)
            return json_response(500, {"error": str(exc)})
        if answer is None:
            return json_response(404, {"error": f"not found: {req.method} {req.path}"})
        return answer

    def _http_fault(self, req: HttpRequest) -> Response:
        spec: dict[str, Any] = {}
        if req.body:
            try:
                loaded = orjson.loads(req.body)
            except orjson.JSONDecodeError:
                return json_response(400, {"error": "body is not JSON"})
            if not isinstance(loaded, dict):
                return json_response(400, {"error": "body must be a JSON object"})
            spec.update(loaded)
        for key, values in req.query.items():
            spec.setdefault(key, values[0])
        try:
            result = self.apply_fault(spec)
        except KeyError:
            return json_response(
                400, {"error": f"unknown fault {spec.get('fault')!r}", "faults": sorted(self._fault_table())}
            )
        except (TypeError, ValueError) as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(200, {"ok": True, "fault": spec.get("fault"), "result": result})

    async def _handle(self, conn: ServerConnection) -> None:
        session = Session(self, conn)
        self.sessions[conn] = session
        self.stats["connections"] += 1
        try:
            await self._on_open(session)
            async for message in conn:
                await self._on_message(session, message)
        except ConnectionClosed:
            pass
        finally:
            self.sessions.pop(conn, None)
            self._on_close(session)
            await session.close()


def run_standalone(factory: Callable[[str, int, int], SimServer], argv: list[str] | None, description: str) -> None:
    """``python -m ... --port P``: run one simulator until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    async def main() -> None:
        sim = factory(args.host, args.port, args.seed)
        await sim.start()
        print(f"{sim.venue} sim listening: ws {sim.ws_url}  rest {sim.rest_url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await sim.stop()

    with contextlib.suppress(KeyboardInterrupt):
        try:
            import uvloop
        except ImportError:  # pragma: no cover
            asyncio.run(main())
        else:
            uvloop.run(main())
