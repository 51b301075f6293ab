"""Private tunnels: per user, one authenticated upstream connection per venue, relayed to that user only.

- Kalshi: the v2 WebSocket, handshake signed with *that user's* key (through a :class:`HeaderSigner`),
  subscribed to ``fill`` and ``user_orders``.
- Polymarket: the user channel (``/ws/user``), subscribed with that user's L2 API credentials.

Every tunnel dials through the :class:`~crossbook.hub.proxies.ProxyPool` with picows' own
``ws_connect(..., proxy=url)``; when the connection drops it reconnects through a different proxy
(the old one is health-checked in the background, and taken out at once if the dial itself failed).
Events go to a sink as ready-made hub messages (docs/hub-protocol.md, "Private topics"):
``{"type":"private","topic":"private:<venue>","seq":N,"data":<venue event, unchanged>}`` and
``{"type":"tunnel","topic":"private:<venue>","state":"up"|"down","reason":...}``.

Secrets (Kalshi keys stay behind the signer; Polymarket secret/passphrase, proxy credentials) are never
logged, repr'd or put in messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect
from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError

from crossbook.aio import cancel_and_wait, wait_event
from crossbook.hub.protocol import ProtocolError
from crossbook.hub.proxies import NoProxyAvailable, ProxyBudgetExhausted, ProxyPool, describe_error
from crossbook.signing.headers import HeaderSigner
from crossbook.venues.wsfeed import backoff_delays

log = logging.getLogger("crossbook.hub.tunnels")

VENUES = ("kalshi", "polymarket")
KALSHI_CHANNELS = ("fill", "user_orders")
_KALSHI_EVENTS = {"fill", "user_order"}
_POLY_EVENTS = {"order", "trade"}

# The proxy itself failed (refused, timed out, rejected the tunnel): take it out of the pool now.
_PROXY_FAULTS: tuple[type[BaseException], ...] = (
    ProxyError, ProxyConnectionError, ProxyTimeoutError, ConnectionRefusedError, ConnectionResetError,
)

Sink = Callable[[str, str, bytes], None]  # (user name, venue, hub message)


@dataclass(frozen=True)
class PolymarketApiCreds:
    """L2 API credentials of one user (from ``POST /auth/api-key``); only the key's prefix is ever shown."""

    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    passphrase: str = field(repr=False)
    markets: tuple[str, ...] = ()  # condition ids to filter on; empty = all

    def __repr__(self) -> str:
        return f"PolymarketApiCreds(api_key={self.api_key[:4]}…, secret=<hidden>, passphrase=<hidden>)"


class CredentialStore(Protocol):
    """Where a user's venue credentials come from (the signer service, a vault, a test)."""

    def kalshi(self, user: str) -> HeaderSigner | None: ...

    def polymarket(self, user: str) -> PolymarketApiCreds | None: ...


class InMemoryCredentials:
    def __init__(self) -> None:
        self._kalshi: dict[str, HeaderSigner] = {}
        self._poly: dict[str, PolymarketApiCreds] = {}

    def set_kalshi(self, user: str, signer: HeaderSigner) -> None:
        self._kalshi[user] = signer

    def set_polymarket(self, user: str, creds: PolymarketApiCreds) -> None:
        self._poly[user] = creds

    def kalshi(self, user: str) -> HeaderSigner | None:
        return self._kalshi.get(user)

    def polymarket(self, user: str) -> PolymarketApiCreds | None:
        return self._poly.get(user)

    def __repr__(self) -> str:
        return f"InMemoryCredentials(kalshi_users={len(self._kalshi)}, polymarket_users={len(self._poly)})"


@dataclass
class TunnelSettings:
    connect_timeout_s: float = 10.0
    ping_idle_s: float = 10.0  # WebSocket ping when nothing arrived for this long ...
    ping_reply_s: float = 10.0  # ... and drop the link if no pong within this
    reconnect_min_s: float = 0.25
    reconnect_max_s: float = 30.0
    dial_cost: float = 1.0  # budget tokens one dial spends on its proxy


@dataclass
class TunnelStats:
    connects: int = 0
    disconnects: int = 0
    dial_failures: int = 0
    events: int = 0
    proxies: list[str] = field(default_factory=list)  # labels of the proxies each connect went through
    last_error: str = ""


def private_topic(venue: str) -> str:
    return f"private:{venue}"


def tunnel_msg(venue: str, state: str, reason: str | None = None) -> bytes:
    return orjson.dumps({"type": "tunnel", "topic": private_topic(venue), "state": state, "reason": reason})


class _Listener(WSListener):
    def __init__(self, tunnel: PrivateTunnel) -> None:
        self.tunnel = tunnel

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.tunnel._on_connected(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT or frame.msg_type == WSMsgType.BINARY:
            self.tunnel._on_payload(frame.get_payload_as_bytes())
        elif frame.msg_type == WSMsgType.CLOSE:
            self.tunnel.stats.last_error = f"venue closed the connection ({frame.get_close_code()})"
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.tunnel._on_disconnected(transport)


class PrivateTunnel:
    """One user's reconnecting upstream for one venue."""

    venue = ""

    def __init__(self, user: str, url: str, pool: ProxyPool, sink: Sink, settings: TunnelSettings) -> None:
        self.user = user
        self.url = url
        self.pool = pool
        self.sink = sink
        self.settings = settings
        self.stats = TunnelStats()
        self.seq = 0  # per tunnel, +1 per relayed event (clients see gaps only across reconnects: never)
        self.connected = False
        self.proxy: str | None = None  # URL of the proxy in use: secret, log pool.label(...)
        self._transport: WSTransport | None = None
        self._down = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._checks: set[asyncio.Task[bool]] = set()
        self._stopping = False

    # -- what venues fill in -------------------------------------------------------------------
    def handshake_headers(self) -> dict[str, str]:
        return {}

    async def handshake_headers_async(self) -> dict[str, str]:
        """Headers for the next dial; asked anew per dial (signatures carry a timestamp)."""
        return self.handshake_headers()

    def subscribe_messages(self) -> list[bytes]:
        raise NotImplementedError

    def events(self, msg: Any) -> list[Any]:
        """The user events in one parsed venue message (acks, errors, pongs give none)."""
        raise NotImplementedError

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def proxy_label(self) -> str | None:
        return self.pool.label(self.proxy) if self.proxy else None

    def state_msg(self) -> bytes:
        return tunnel_msg(self.venue, "up" if self.connected else "down",
                          None if self.connected else "connecting to the venue")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"tunnel:{self.venue}:{self.user}")

    async def stop(self) -> None:
        self._stopping = True
        if self._transport is not None:
            self._transport.disconnect(graceful=False)
        self._down.set()
        await cancel_and_wait(self._task)
        for t in list(self._checks):
            await cancel_and_wait(t)

    async def _run(self) -> None:
        s = self.settings
        delays = iter(backoff_delays(s.reconnect_min_s, s.reconnect_max_s))
        avoid: set[str] = set()
        while not self._stopping:
            try:
                url = self.pool.acquire(self.venue, s.dial_cost, avoid=avoid)
            except ProxyBudgetExhausted as exc:
                self.stats.last_error = str(exc)
                await asyncio.sleep(max(exc.retry_after_s, 0.01))
                continue
            except NoProxyAvailable as exc:
                self.stats.last_error = str(exc)
                log.warning("tunnel %s/%s: %s", self.venue, self.user, exc)
                await asyncio.sleep(next(delays))
                continue
            self.proxy = url
            started = time.monotonic()
            try:
                await self._connect_once(url)
            except asyncio.CancelledError:
                raise
            except _PROXY_FAULTS as exc:
                self.stats.dial_failures += 1
                self.stats.last_error = describe_error(exc, url)
                self.pool.report_failure(url, self.stats.last_error)
            except Exception as exc:  # handshake refused, timeout, venue down: back off and retry
                self.stats.dial_failures += 1
                self.stats.last_error = describe_error(exc, url)
                self._suspect(url)
            else:
                self._suspect(url)  # the link dropped: is it the proxy? (checked in the background)
            if self._stopping:
                break
            log.warning("tunnel %s/%s via %s down: %s", self.venue, self.user, self.pool.label(url),
                        self.stats.last_error or "disconnected")
            avoid = {url}  # next dial prefers another proxy
            if time.monotonic() - started > 30:
                delays = iter(backoff_delays(s.reconnect_min_s, s.reconnect_max_s))
            await asyncio.sleep(next(delays))

    def _suspect(self, url: str) -> None:
        task = asyncio.get_running_loop().create_task(self.pool.check(url))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _connect_once(self, url: str) -> None:
        s = self.settings
        self._down.clear()
        signing = asyncio.ensure_future(self.handshake_headers_async())
        try:  # asyncio.wait, not wait_for: on 3.11 wait_for can swallow our own cancellation
            signed, _ = await asyncio.wait({signing}, timeout=s.connect_timeout_s)
        finally:
            if not signing.done():
                signing.cancel()
        if not signed:
            raise TimeoutError(f"no handshake signature within {s.connect_timeout_s:g}s")
        headers = signing.result()
        dial = asyncio.ensure_future(ws_connect(
            lambda: _Listener(self), self.url, proxy=url, extra_headers=headers,
            websocket_handshake_timeout=s.connect_timeout_s, enable_auto_pong=True, enable_auto_ping=True,
            auto_ping_idle_timeout=s.ping_idle_s, auto_ping_reply_timeout=s.ping_reply_s,
            logger_name=f"tunnel.{self.venue}",
        ))
        try:
            done, _ = await asyncio.wait({dial}, timeout=s.connect_timeout_s + 1)
        finally:
            if not dial.done():
                dial.cancel()
        if not done:
            raise TimeoutError(f"no WebSocket handshake within {s.connect_timeout_s:g}s")
        dial.result()
        await wait_event(self._down, None)

    # -- picows callbacks ----------------------------------------------------------------------
    def _on_connected(self, transport: WSTransport) -> None:
        self._transport = transport
        self.connected = True
        self.stats.connects += 1
        self.stats.last_error = ""
        label = self.proxy_label or "-"
        self.stats.proxies.append(label)
        log.info("tunnel %s/%s up via %s", self.venue, self.user, label)
        for msg in self.subscribe_messages():
            transport.send(WSMsgType.TEXT, msg)
        self._emit(tunnel_msg(self.venue, "up"))

    def _on_payload(self, payload: bytes) -> None:
        if payload == b"PONG":
            return
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError:
            log.warning("tunnel %s/%s: dropped a non-JSON frame (%d bytes)", self.venue, self.user, len(payload))
            return
        for event in self.events(msg):
            self.seq += 1
            self.stats.events += 1
            self._emit(orjson.dumps(
                {"type": "private", "topic": private_topic(self.venue), "seq": self.seq, "data": event}
            ))

    def _on_disconnected(self, transport: WSTransport) -> None:
        if self._transport is transport:
            self._transport = None
        if self.connected:
            self.stats.disconnects += 1
            self.connected = False
            if not self._stopping:
                # Venues do not replay missed fills/orders: the client reconciles over REST on "up".
                self._emit(tunnel_msg(self.venue, "down", "venue connection lost; reconnecting "
                                      "(events in between are not replayed: reconcile over REST)"))
        self._down.set()

    def _emit(self, payload: bytes) -> None:
        try:
            self.sink(self.user, self.venue, payload)
        except Exception:  # a sink bug must not kill the tunnel
            log.exception("tunnel %s/%s: sink failed", self.venue, self.user)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(user={self.user!r}, connected={self.connected}, "
                f"proxy={self.proxy_label!r}, events={self.stats.events})")


class KalshiTunnel(PrivateTunnel):
    venue = "kalshi"

    def __init__(self, user: str, url: str, pool: ProxyPool, sink: Sink, settings: TunnelSettings,
                 signer: HeaderSigner) -> None:
        super().__init__(user, url, pool, sink, settings)
        self._signer = signer
        self._ids = 0

    def handshake_headers(self) -> dict[str, str]:
        return self._signer.kalshi_headers("GET", self._path())

    async def handshake_headers_async(self) -> dict[str, str]:
        # The signer service answers over gRPC: await it rather than block the loop on the sync call.
        signer: Any = self._signer
        if hasattr(signer, "kalshi_headers_async"):
            return dict(await signer.kalshi_headers_async("GET", self._path()))
        return self.handshake_headers()

    def _path(self) -> str:
        return urlsplit(self.url).path or "/trade-api/ws/v2"

    def subscribe_messages(self) -> list[bytes]:
        self._ids += 1
        return [orjson.dumps({"id": self._ids, "cmd": "subscribe", "params": {"channels": list(KALSHI_CHANNELS)}})]

    def events(self, msg: Any) -> list[Any]:
        if not isinstance(msg, dict):
            return []
        kind = msg.get("type")
        if kind == "error":
            raw = msg.get("msg")
            err: dict[str, Any] = raw if isinstance(raw, dict) else {}
            log.warning("tunnel kalshi/%s: venue error %s %s", self.user, err.get("code"), err.get("msg"))
        return [msg] if kind in _KALSHI_EVENTS else []


class PolymarketTunnel(PrivateTunnel):
    venue = "polymarket"

    def __init__(self, user: str, url: str, pool: ProxyPool, sink: Sink, settings: TunnelSettings,
                 creds: PolymarketApiCreds) -> None:
        super().__init__(user, url, pool, sink, settings)
        self._creds = creds

    def subscribe_messages(self) -> list[bytes]:
        c = self._creds
        return [orjson.dumps({
            "auth": {"apiKey": c.api_key, "secret": c.secret, "passphrase": c.passphrase},
            "markets": list(c.markets), "assets_ids": [], "type": "user",
        })]

    def events(self, msg: Any) -> list[Any]:
        items = msg if isinstance(msg, list) else [msg]
        return [m for m in items if isinstance(m, dict) and m.get("event_type") in _POLY_EVENTS]


class TunnelManager:
    """Opens a user's tunnel when their first hub connection subscribes ``private:<venue>`` and
    closes it ``grace_s`` after the last one leaves. ``sink`` is set by the hub."""

    def __init__(
        self,
        pool: ProxyPool,
        credentials: CredentialStore,
        *,
        kalshi_ws_url: str | None = None,
        polymarket_user_url: str | None = None,
        settings: TunnelSettings | None = None,
        grace_s: float = 5.0,
    ) -> None:
        self.pool = pool
        self.credentials = credentials
        self.urls = {"kalshi": kalshi_ws_url, "polymarket": polymarket_user_url}
        self.settings = settings or TunnelSettings()
        self.grace_s = grace_s
        self.sink: Sink | None = None
        self._tunnels: dict[tuple[str, str], PrivateTunnel] = {}
        self._refs: dict[tuple[str, str], int] = {}
        self._closing: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._stops: set[asyncio.Task[None]] = set()

    def get(self, user: str, venue: str) -> PrivateTunnel | None:
        return self._tunnels.get((user, venue))

    @property
    def tunnels(self) -> dict[tuple[str, str], PrivateTunnel]:
        return dict(self._tunnels)

    def acquire(self, user: str, venue: str) -> PrivateTunnel:
        """Count one more listener of ``user``'s ``venue`` tunnel, opening it if needed.

        Raises ProtocolError (``private_unavailable`` / ``no_credentials``) when it cannot exist."""
        key = (user, venue)
        tunnel = self._tunnels.get(key)
        if tunnel is None:
            tunnel = self._open(user, venue)
            self._tunnels[key] = tunnel
            tunnel.start()
        timer = self._closing.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._refs[key] = self._refs.get(key, 0) + 1
        return tunnel

    def release(self, user: str, venue: str) -> None:
        key = (user, venue)
        n = self._refs.get(key, 0) - 1
        if n > 0:
            self._refs[key] = n
            return
        self._refs.pop(key, None)
        if key in self._tunnels and key not in self._closing:
            self._closing[key] = asyncio.get_running_loop().call_later(self.grace_s, self._close, key)

    def _close(self, key: tuple[str, str]) -> None:
        self._closing.pop(key, None)
        tunnel = self._tunnels.pop(key, None)
        if tunnel is not None:
            task = asyncio.get_running_loop().create_task(tunnel.stop())
            self._stops.add(task)
            task.add_done_callback(self._stops.discard)

    def _open(self, user: str, venue: str) -> PrivateTunnel:
        url = self.urls.get(venue)
        if not url:
            raise ProtocolError("private_unavailable", f"this hub has no {venue} tunnel endpoint configured")
        if self.sink is None:
            raise ProtocolError("private_unavailable", "private tunnels are not attached to a hub")
        if venue == "kalshi":
            signer = self.credentials.kalshi(user)
            if signer is not None:
                return KalshiTunnel(user, url, self.pool, self.sink, self.settings, signer)
        elif venue == "polymarket":
            creds = self.credentials.polymarket(user)
            if creds is not None:
                return PolymarketTunnel(user, url, self.pool, self.sink, self.settings, creds)
        raise ProtocolError("no_credentials", f"no {venue} credentials are on file for your account")

    async def stop(self) -> None:
        for timer in self._closing.values():
            timer.cancel()
        self._closing.clear()
        tunnels = list(self._tunnels.values())
        self._tunnels.clear()
        self._refs.clear()
        await asyncio.gather(*(t.stop() for t in tunnels), return_exceptions=True)
        for task in list(self._stops):
            await cancel_and_wait(task)
