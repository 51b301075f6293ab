"""Venue REST order clients: Polymarket ``POST /order`` (L2 headers, signed V2 order) and Kalshi
``POST /trade-api/v2/portfolio/orders`` (RSA-PSS headers), plus the lookups that resolve a timeout.

A submit that times out or loses its connection raises :class:`SubmitUncertain`: the order may be at
the venue, so it is never resent; the executor asks the venue instead (:meth:`lookup`). A 429 means
the venue took nothing, so the same order (same client id) is retried after the venue's Retry-After.

Requests go through :mod:`crossbook.execution.http1` (our own HTTP/1.1 client: an order on a warm
connection is one bytes build and one write). Connections are kept alive (as the venues do) and kept
warm: :meth:`_Http.warm` opens ``spares`` connections ahead of need with a cheap public GET and a
background task repeats it every ``ping_s`` (and at once after a request that lost its connection), so
an order is written on an open connection instead of paying a TCP connect. Nothing is retried on another
connection: a connection that could not be opened means the request certainly did not leave
(:class:`VenueUnavailable`, even for a POST); one that broke after the request was written makes a POST
uncertain (resolved by lookup, never resent) and a GET or DELETE unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Literal, Protocol, cast
from urllib.parse import quote, urlsplit

import orjson

from crossbook.aio import cancel_and_wait
from crossbook.errors import PolicyViolation, SignerError
from crossbook.execution import http1
from crossbook.execution.errors import ExecutionError, SubmitUncertain, VenueRejected, VenueUnavailable
from crossbook.execution.models import ZERO, Fill, LegOrder, OrderResult, OrderStatus, TimeInForce, Venue
from crossbook.execution.signer import ExecutionSigner, Prepared
from crossbook.hub.proxies import proxy_label
from crossbook.signing.orders import order_hash

TOKEN_UNITS = 10**6
ZERO_BYTES32 = "0x" + "00" * 32
_POLY_TIF = {"FOK": "FOK", "FAK": "FAK", "GTC": "GTC"}
_KALSHI_TIF = {"FOK": "fill_or_kill", "FAK": "immediate_or_cancel", "GTC": "good_till_canceled"}


class VenueTrader(Protocol):
    venue: Venue

    async def prepare(self, order: LegOrder) -> None:
        """Sign and serialize; afterwards ``order.payload`` is final (and, on Polymarket, its hash known)."""
        ...

    def begin_prepare(self, order: LegOrder) -> Coroutine[Any, Any, None]:
        """:meth:`prepare` with its signing started now; awaiting the coroutine finishes it. A caller that
        drops the order instead must ``close()`` the coroutine."""
        ...

    def warm_prepare(self, order: LegOrder) -> None:
        """Build what :meth:`begin_prepare` would send (the order, the signing request) and drop it: nothing
        is signed or sent. Keeps the order path's code and data warm between edges."""
        ...

    async def submit(self, order: LegOrder) -> OrderResult: ...
    async def lookup(self, order: LegOrder) -> OrderResult | None:
        """The venue's view of the order, or None if it has never seen it."""
        ...

    async def fills(self, order: LegOrder) -> list[Fill]: ...
    async def cancel(self, order: LegOrder) -> bool: ...
    async def cancel_all(self) -> list[str]:
        """Cancel every open order of this key; the venue order ids cancelled."""
        ...

    async def close(self) -> None: ...
    async def warm(self) -> int:
        """Open connections to the venue ahead of the first order (and keep them open); how many answered."""
        ...


# Presigned Kalshi headers older than this are not used (the order is signed at its send instead): far inside
# any clock-skew window the venue allows for KALSHI-ACCESS-TIMESTAMP.
PRESIGNED_MAX_AGE_S = 1.0


async def _raise(exc: Exception) -> None:
    raise exc


async def _applied(
    order: LegOrder, pending: Awaitable[Prepared], poll: Callable[[asyncio.Future[Any]], None] | None
) -> None:
    # A signer on CPUs of its own answers within a fraction of a millisecond: wait for it polling (the signer's
    # poll_reply) rather than let this core halt (waking a halted core costs more than that on some machines).
    fut = asyncio.ensure_future(pending)  # the signer's task itself (no new task)
    if poll is not None:
        poll(fut)
    apply_prepared(order, await fut)


def apply_prepared(order: LegOrder, ready: Prepared) -> None:
    """The signer's reply on its order: the exact body to send, the order's id (its hash) and the headers."""
    order.payload = ready.body
    order.venue_order_id = ready.hash
    order.headers = dict(ready.headers)


class TokenBucket:
    """Client-side rate limit for one venue key: ``rate`` requests per second, bursts of ``burst``.
    Waiting here is cheaper than a 429 (which the venue may count against the key) and never risks a
    duplicate: nothing was sent yet."""

    def __init__(self, rate: float, burst: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate {rate}/s and burst {burst} must be positive (burst >= 1)")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = time.monotonic()
        self._lock = asyncio.Lock()
        self.waited_s = 0.0

    async def acquire(self) -> None:
        async with self._lock:  # FIFO: one waiter at a time takes the next token
            while True:
                self._refill()
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.rate
                self.waited_s += wait
                await asyncio.sleep(wait)

    def try_take(self) -> bool:
        """A token now, if one is there and nobody waits for one (their turn comes first); else False and
        nothing taken."""
        if self._lock.locked():
            return False
        self._refill()
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def give_back(self) -> None:
        """Return a token :meth:`try_take` gave that was not used (nothing was sent with it)."""
        self._tokens = min(self.burst, self._tokens + 1)


Rate = tuple[float, float]  # (requests per second, burst)


# Connections: how many to keep open ahead of need, how often to touch them (venues close idle ones), and how
# long the pool keeps an idle one (longer than the ping interval, so a pinged connection is never dropped).
SPARE_CONNECTIONS = 2
PING_S = 15.0
KEEPALIVE_S = 60.0


class _Http:
    def __init__(
        self, venue: Venue, base_url: str, timeout: float, max_429_retries: int,
        write_rate: Rate | None = None, read_rate: Rate | None = None, proxy: str | None = None,
        warm_path: str = "/", spares: int = SPARE_CONNECTIONS, ping_s: float = PING_S,
    ) -> None:  # fmt: skip
        self.venue = venue
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self.base_path = parts.path
        self.timeout = timeout
        self.max_429_retries = max_429_retries
        self.warm_path = warm_path  # a public, cheap GET (no key, no rate-limit cost worth counting)
        self.spares = spares
        self.ping_s = ping_s
        self._warmer: asyncio.Task[None] | None = None
        self._rewarm = asyncio.Event()
        self.warmed = 0  # warm-up requests answered (tests, stats)
        if proxy and not proxy.startswith(("http://", "https://")):
            raise ExecutionError(f"order traffic proxy {proxy_label(proxy)}: only http:// proxies (HTTP CONNECT) are "
                                 "supported for venue REST; socks is for the WebSocket tunnels")  # fmt: skip
        self.proxy = proxy or None  # the user's egress: every REST call of this key goes through it
        # Kept-alive connections to the venue; the headers every request carries are formatted once.
        self.pool = http1.Pool(f"{parts.scheme}://{parts.netloc}", timeout=timeout, connect_timeout=timeout,
                               proxy=self.proxy, max_idle_s=KEEPALIVE_S,
                               fixed_headers={"User-Agent": "crossbook", "Accept": "*/*",
                                              "Content-Type": "application/json"})  # fmt: skip
        self.writes = TokenBucket(*write_rate) if write_rate else None
        self.reads = TokenBucket(*read_rate) if read_rate else None
        self.retried_429 = 0

    def _start_warmer(self) -> None:
        if self._warmer is None and self.spares > 0:
            self._warmer = asyncio.get_running_loop().create_task(self._keep_warm(), name=f"{self.venue} http warm")

    async def warm(self) -> int:
        """Open ``spares`` connections to the venue (or touch the open ones) with concurrent public GETs, so
        the next requests are written on open connections. Returns how many were answered; failures are
        not errors here (the next request connects by itself)."""
        self._start_warmer()
        answered = await self.pool.warm(max(1, self.spares), self.base_path + self.warm_path, timeout=self.timeout)
        self.warmed += answered
        return answered

    async def _keep_warm(self) -> None:
        """Every ``ping_s`` (the venues close idle connections), and at once after a request lost its
        connection, open or touch the spares again. The first warm-up is the owner's (:meth:`warm`)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.ping_s):
                    await self._rewarm.wait()
            self._rewarm.clear()
            await self.warm()

    async def close(self) -> None:
        if self._warmer is not None:
            await cancel_and_wait(self._warmer)
            self._warmer = None
        await self.pool.close()

    def post_now(self, path: str, body: bytes, signed: Mapping[str, str]) -> http1.Exchange | None:
        """:meth:`call`'s first attempt of ``POST path`` with headers signed already, written now, before this
        returns, when that needs no wait: a rate token is there and a connection is open and idle. Hand what
        it returns to :meth:`call` (``posted=``), which awaits the response and does the rest as ever. None
        (nothing written, no token spent): :meth:`call` does it all."""
        bucket = self.writes
        if bucket is not None and not bucket.try_take():
            return None
        if self._warmer is None:
            self._start_warmer()
        try:
            posted = self.pool.start("POST", self.base_path + path, signed, body, timeout=self.timeout)
        except ValueError:  # headers it cannot write: call() raises it where the order's task reports it
            posted = None
        if posted is None and bucket is not None:
            bucket.give_back()
        return posted

    async def call(
        self, method: str, path: str, headers_for: Any, body: bytes = b"", query: str = "",
        signed: Mapping[str, str] | None = None, posted: http1.Exchange | None = None,
    ) -> tuple[int, Any]:  # fmt: skip
        """(status, JSON) of one request, retrying only 429. ``headers_for(method, path, body)`` signs;
        ``signed``: headers already signed over this request, used for the first attempt. ``posted``: the
        first attempt, written already by :meth:`post_now` (its rate token taken).

        POST failures after sending raise SubmitUncertain; GET failures raise VenueUnavailable."""
        bucket = self.reads if method == "GET" else self.writes
        if self._warmer is None:
            self._start_warmer()
        target = self.base_path + path + (f"?{query}" if query else "")
        for attempt in range(self.max_429_retries + 1):
            if posted is not None and attempt == 0:
                pending = self.pool.finish(posted)
            else:
                if bucket is not None:
                    await bucket.acquire()
                if signed is not None and attempt == 0:
                    headers: Mapping[str, str] = signed
                else:  # a retry after a 429 signs again (a fresh timestamp)
                    headers = await headers_for(method, self.base_path + path, body)
                pending = self.pool.request(method, target, headers, body, timeout=self.timeout)
            try:
                resp = await pending
            except http1.ConnectFailed as exc:
                self._rewarm.set()
                # The TCP (or proxy, or TLS) connection never opened: the request cannot have left, so even a
                # POST is certainly not at the venue.
                via = f" via proxy {proxy_label(self.proxy)}" if self.proxy else ""
                raise VenueUnavailable(f"{self.venue} unreachable for {method} {path} ({exc.reason}{via})") from exc
            except http1.RequestUncertain as exc:
                self._rewarm.set()  # the connection was closed under this request
                what = "timed out" if exc.timed_out else f"failed ({exc.reason})"
                if method == "POST":
                    raise SubmitUncertain(f"{self.venue} {method} {path} {what}; resolving by lookup") from exc
                raise VenueUnavailable(f"{self.venue} {method} {path} {what}") from exc
            status, raw = resp.status, resp.body
            if "close" in resp.headers.get("connection", "").lower():
                self._rewarm.set()  # this connection is gone: open a spare now, not at the next order
            if status == 429 and attempt < self.max_429_retries:
                # The venue took nothing: the same request (same client order id / order hash) again after
                # the venue's Retry-After, or an exponential backoff with jitter when it gives none.
                self.retried_429 += 1
                retry_after = resp.headers.get("retry-after", "")
                backoff = 0.1 * 2**attempt * (1 + random.random())
                wait = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else backoff
                await asyncio.sleep(min(wait, 2.0))
                continue
            try:
                payload = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                payload = {"error": raw[:200].decode(errors="replace")}
            if status == 429:
                raise VenueUnavailable(f"{self.venue} rate limit: still 429 after {self.max_429_retries} retries")
            if status >= 500:
                if method == "POST":
                    raise SubmitUncertain(f"{self.venue} answered HTTP {status} to {path}; resolving by lookup")
                raise VenueUnavailable(f"{self.venue} answered HTTP {status} to {path}")
            return status, payload
        raise AssertionError("unreachable")


def _error_text(payload: Any) -> str:
    if isinstance(payload, dict):
        err = payload.get("error", payload.get("errorMsg"))
        if isinstance(err, dict):
            return str(err.get("message") or err.get("code") or err)
        if err:
            return str(err)
    return str(payload)[:200]


def _dec(d: dict[str, Any], key: str) -> Decimal:
    return Decimal(str(d.get(key) or "0"))


def _status(filled: Decimal, size: Decimal, resting: bool, tif: str = "") -> OrderStatus:
    if filled >= size:
        return "filled"
    if resting:
        return "open"
    if filled > 0:
        return "partial"
    # A GTC order that no longer rests unfilled was cancelled (by us, the kill switch, the venue's
    # cancel-on-disconnect or a pause); an immediate order that took nothing was refused.
    return "cancelled" if tif == "GTC" else "rejected"


class PolymarketTrader:
    """Polymarket CLOB V2 orders (EOA signature type) for one wallet and API key."""

    venue: Venue = "polymarket"

    def __init__(
        self, base_url: str, signer: ExecutionSigner, *, timeout: float = 2.0, max_429_retries: int = 3,
        write_rate: Rate | None = None, read_rate: Rate | None = None, proxy: str | None = None,
    ) -> None:  # fmt: skip
        self.signer = signer
        self.http = _Http("polymarket", base_url, timeout, max_429_retries, write_rate, read_rate, proxy,
                          warm_path="/")  # fmt: skip

    async def warm(self) -> int:
        return await self.http.warm()

    async def _headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        return await self.signer.polymarket_l2_headers(method, path, body)

    async def heartbeat(self, heartbeat_id: str | None) -> str:
        """One order-safety heartbeat (``POST /v1/heartbeats``): while they keep coming the venue keeps our
        open orders; when they stop, it cancels them all. Returns the id to send next time."""
        body = orjson.dumps({"heartbeat_id": heartbeat_id})
        try:
            status, payload = await self.http.call("POST", "/v1/heartbeats", self._headers, body)
        except SubmitUncertain as exc:  # nothing to resolve: a lost heartbeat is just a missed one
            raise VenueUnavailable(str(exc)) from exc
        if status != 200 or not isinstance(payload, dict):
            raise VenueUnavailable(f"polymarket heartbeat refused (HTTP {status}): {_error_text(payload)}")
        return str(payload.get("heartbeat_id") or heartbeat_id or "")

    async def cancel(self, order: LegOrder) -> bool:
        body = orjson.dumps({"orderID": order.venue_order_id})
        _, payload = await self.http.call("DELETE", "/order", self._headers, body)
        return isinstance(payload, dict) and order.venue_order_id in (payload.get("canceled") or [])

    async def cancel_all(self) -> list[str]:
        _, payload = await self.http.call("DELETE", "/cancel-all", self._headers)
        return [str(x) for x in (payload.get("canceled") or [])] if isinstance(payload, dict) else []

    async def prepare(self, order: LegOrder) -> None:
        struct = self._struct(order)
        # One signer call: the signature, the exact body (crossbook.signing.polymarket_order_body) and the L2
        # headers over it, used for the first send (a 429 retry signs the headers again).
        ready = await self.signer.prepare_polymarket_order(struct, order_type=_POLY_TIF[order.tif],
                                                           request_id=order.client_order_id)  # fmt: skip
        apply_prepared(order, ready)

    def begin_prepare(
        self, order: LegOrder, sent: tuple[object, Mapping[str, object], str | None] | None = None, spun: bool = False
    ) -> Coroutine[Any, Any, None]:
        """:meth:`prepare`, with the signing request sent now (the signer signs while the caller goes on);
        await the result to have ``order.payload``. Never awaited (the order was refused meanwhile): close it.
        ``sent``: the request was written already (:meth:`send_first_leg`): ``(what that returned, the order
        map it carries, the order's hash or None)``, made by ``EdgeWatch`` for this order as :meth:`_struct`
        makes it (no hash: ``venue_order_id`` comes with the signer's reply). ``spun``: its reply was waited
        for spinning already (:meth:`take_first_leg`): the spin is not run again (the loop polls, as after
        one)."""
        if sent is not None:
            handle, struct, order.venue_order_id = sent
            pending = self.signer.begin_prepare_polymarket_order(  # type: ignore[call-arg]
                struct, order_type=_POLY_TIF[order.tif], request_id=order.client_order_id, sent=handle)
            poll = getattr(self.signer, "poll_reply", None)
            return _applied(order, pending, functools.partial(poll, spun=True) if spun and poll else poll)
        try:
            struct = self._struct(order)
            pending = self.signer.begin_prepare_polymarket_order(struct, order_type=_POLY_TIF[order.tif],
                                                                 request_id=order.client_order_id)  # fmt: skip
        except (ExecutionError, SignerError, PolicyViolation) as exc:
            # Refused before anything left (the order format, or the signing request itself): raised where
            # the caller awaits, as prepare() would, so the executor records the refusal the same way.
            return _raise(exc)
        # While the signer signs: the order's id (its EIP-712 hash) needs no key, so the executor can record
        # it before the signature is back; the signer's hash must then be this one (checked on send).
        order.venue_order_id = order_hash(struct)
        return _applied(order, pending, getattr(self.signer, "poll_reply", None))

    def first_leg_template(self, tif: TimeInForce) -> dict[str, object] | None:
        """What ``EdgeWatch.set_first_leg`` needs to make this trader's signing request for a ``tif`` BUY
        itself (the order :meth:`_struct` makes, as the signer client would frame it), or None when the
        signer cannot take such a frame (a signer in this process, or no fast path)."""
        template = getattr(self.signer, "prepare_frame_template", None)
        return None if template is None else template(_POLY_TIF[tif])

    def send_first_leg(self, frame: bytes, call_id: int) -> object | None:
        """Write a signing request made by ``EdgeWatch`` now; what :meth:`begin_prepare` takes as ``sent``,
        or None (nothing written: the order goes the usual way)."""
        send = getattr(self.signer, "send_prepare_frame", None)
        return None if send is None else send(frame, call_id)

    def take_first_leg(self, sent: object) -> Prepared | None:
        """The signer's reply to the request :meth:`send_first_leg` wrote, if it can be had now (a signer on
        CPUs of its own is waited for, spinning, up to ``SIGNER_SPIN_S``); None: :meth:`begin_prepare`
        (``sent``) waits for it."""
        take = getattr(self.signer, "take_reply", None)
        return None if take is None else cast("Prepared | None", take(sent))

    def forget_first_leg(self, sent: object) -> None:
        """The order :meth:`send_first_leg` asked a signature for was refused: its reply is discarded."""
        forget = getattr(self.signer, "forget", None)
        if forget is not None:
            forget(sent)

    def post_now(self, body: bytes, headers: Mapping[str, str]) -> object | None:
        """The POST of a prepared order (``body`` and ``headers`` from the signer's reply) written now, when it
        needs no wait (a rate token, an idle connection); hand what this returns to :meth:`submit` (``posted``)
        with the order the reply was applied to. None: nothing was written, and :meth:`submit` sends it."""
        return self.http.post_now("/order", body, headers)

    def prime(self) -> None:
        """An order is likely soon: let the signer know (a signer in this process needs nothing)."""
        prime = getattr(self.signer, "prime", None)
        if prime is not None:
            prime()

    def warm_prepare(self, order: LegOrder) -> None:
        warm = getattr(self.signer, "warm_prepare_polymarket_order", None)
        struct = self._struct(order)
        if warm is not None:
            warm(struct, order_type=_POLY_TIF[order.tif], request_id=order.client_order_id)

    def _struct(self, order: LegOrder, timestamp_ms: int | None = None) -> dict[str, object]:
        shares = order.size.quantize(Decimal("0.01"), ROUND_FLOOR)
        if shares != order.size or shares <= 0:
            raise ExecutionError(f"Polymarket size {order.size} must be positive with at most 2 decimals")
        size_units = shares * TOKEN_UNITS
        usdc_units = shares * order.price * TOKEN_UNITS
        if usdc_units != usdc_units.to_integral_value():
            raise ExecutionError(f"Polymarket price {order.price} × size {shares} is finer than 6 decimals")
        buy = order.side == "buy"
        address = self.signer.polymarket_address
        struct: dict[str, object] = {
            # Deterministic from the client order id: a re-prepared order keeps its salt (its hash still
            # changes with the timestamp, which is why the hash is stored before sending).
            "salt": int.from_bytes(hashlib.sha256(order.client_order_id.encode()).digest()[:6], "big"),
            "maker": address,
            "signer": address,
            "tokenId": order.market,
            "makerAmount": str(int(usdc_units if buy else size_units)),
            "takerAmount": str(int(size_units if buy else usdc_units)),
            "side": "BUY" if buy else "SELL",
            "signatureType": 0,
            "timestamp": str(time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms),
            "metadata": ZERO_BYTES32,
            "builder": ZERO_BYTES32,
        }
        return struct

    async def submit(self, order: LegOrder, posted: object | None = None) -> OrderResult:
        """Send ``order`` (or, with ``posted`` from :meth:`post_now`, await the answer to the POST written
        already) and read the venue's answer."""
        signed, order.headers = order.headers or None, {}  # signed for one send: never reused
        status, payload = await self.http.call("POST", "/order", self._headers, order.payload, signed=signed,
                                               posted=cast("http1.Exchange | None", posted))  # fmt: skip
        if status != 200 or not isinstance(payload, dict) or not payload.get("success"):
            text = _error_text(payload)
            if "already exists" in text:
                raise SubmitUncertain(f"polymarket already holds order {order.venue_order_id}; resolving by lookup")
            raise VenueRejected("polymarket", status, text)
        making = Decimal(str(payload.get("makingAmount") or "0"))
        taking = Decimal(str(payload.get("takingAmount") or "0"))
        filled, paid = (taking, making) if order.side == "buy" else (making, taking)
        avg = paid / filled if filled else None
        state = _status(filled, order.size, payload.get("status") == "live")
        return OrderResult(order, state, filled, avg)

    async def lookup(self, order: LegOrder) -> OrderResult | None:
        status, payload = await self.http.call("GET", f"/data/order/{order.venue_order_id}", self._headers)
        if status == 404 or not isinstance(payload, dict) or not payload.get("id"):
            return None
        filled = Decimal(str(payload.get("size_matched") or "0"))
        fills = await self.fills(order)
        paid = sum((f.price * f.size for f in fills), ZERO)
        avg = paid / filled if filled else None
        state = _status(filled, order.size, payload.get("status") == "LIVE", order.tif)
        return OrderResult(order, state, filled, avg, resolved_by="lookup", fills=fills)

    async def fills(self, order: LegOrder) -> list[Fill]:
        _, payload = await self.http.call("GET", "/data/trades", self._headers, query=f"asset_id={order.market}")
        data = payload.get("data", []) if isinstance(payload, dict) else []
        out: list[Fill] = []
        for t in data:
            if t.get("taker_order_id") != order.venue_order_id:
                continue
            price, size = Decimal(str(t["price"])), Decimal(str(t["size"]))
            bps = Decimal(str(t.get("fee_rate_bps") or "0"))
            out.append(Fill(str(t["id"]), price, size, bps / 10_000 * min(price, 1 - price) * size,
                            int(t.get("timestamp") or 0)))
        return out

    async def close(self) -> None:
        await self.http.close()


class KalshiTrader:
    """Kalshi v2 orders for one API key. ``base_url`` ends in ``/trade-api/v2``."""

    venue: Venue = "kalshi"

    def __init__(
        self, base_url: str, signer: ExecutionSigner, *, timeout: float = 2.0, max_429_retries: int = 3,
        write_rate: Rate | None = None, read_rate: Rate | None = None, cancel_on_pause: bool = True,
        proxy: str | None = None,
    ) -> None:  # fmt: skip
        self.signer = signer
        self.http = _Http("kalshi", base_url, timeout, max_429_retries, write_rate, read_rate, proxy,
                          warm_path="/exchange/status")  # fmt: skip
        self.cancel_on_pause = cancel_on_pause
        # Every order joins this group when set: deleting the group cancels all of them in one call.
        self.order_group_id: str | None = None

    async def _headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        return await self.signer.kalshi_headers(method, path)

    def presign_order(self) -> asyncio.Task[tuple[dict[str, str], float]]:
        """Sign the headers of one ``POST /portfolio/orders`` now, before its body is known: Kalshi's signature
        covers the timestamp, the method and the path, not the body. For the hedge leg, signed while the
        first leg is at the other venue; the task gives (headers, ``time.monotonic()`` when signed). The
        executor uses them for that one order's first attempt if they are fresh (:data:`PRESIGNED_MAX_AGE_S`),
        else the order is signed at its send as any other."""
        path = self.http.base_path + "/portfolio/orders"

        async def sign() -> tuple[dict[str, str], float]:
            return await self._headers("POST", path, b""), time.monotonic()

        return asyncio.get_running_loop().create_task(sign(), name="kalshi-presign")

    async def warm(self) -> int:
        return await self.http.warm()

    async def create_order_group(self, contracts_limit: int) -> str:
        """A new order group (the venue auto-cancels its orders past ``contracts_limit`` filled in 15 s);
        later orders join it."""
        body = orjson.dumps({"contracts_limit": contracts_limit})
        try:
            status, payload = await self.http.call("POST", "/portfolio/order_groups/create", self._headers, body)
        except SubmitUncertain as exc:  # an orphan empty group is harmless: make another next time
            raise VenueUnavailable(str(exc)) from exc
        if status not in (200, 201) or not isinstance(payload, dict) or not payload.get("order_group_id"):
            raise VenueUnavailable(f"kalshi order group not created (HTTP {status}): {_error_text(payload)}")
        self.order_group_id = str(payload["order_group_id"])
        return self.order_group_id

    async def delete_order_group(self) -> bool:
        """Delete the group, which cancels every resting order in it."""
        if not self.order_group_id:
            return False
        status, _ = await self.http.call("DELETE", f"/portfolio/order_groups/{self.order_group_id}", self._headers)
        self.order_group_id = None
        return status == 200

    async def cancel(self, order: LegOrder) -> bool:
        if not order.venue_order_id:
            return False
        status, _ = await self.http.call("DELETE", f"/portfolio/orders/{order.venue_order_id}", self._headers)
        return status == 200

    async def cancel_all(self) -> list[str]:
        """Every resting order of this key: the group first (one call), then any left outside it. Returns
        the ids of the group's orders (some may have been filled already) and those cancelled one by one."""
        done: list[str] = []
        if self.order_group_id:
            s, group = await self.http.call("GET", f"/portfolio/order_groups/{self.order_group_id}", self._headers)
            if s == 200 and isinstance(group, dict):
                done += [str(x) for x in group.get("orders") or []]
        await self.delete_order_group()
        status, payload = await self.http.call("GET", "/portfolio/orders", self._headers, query="status=resting")
        orders = payload.get("orders", []) if isinstance(payload, dict) and status == 200 else []
        for o in orders:
            if isinstance(o, dict) and o.get("status") == "resting":
                s, _ = await self.http.call("DELETE", f"/portfolio/orders/{o['order_id']}", self._headers)
                if s == 200:
                    done.append(str(o["order_id"]))
        return done

    def _body(self, order: LegOrder) -> bytes:
        if order.size != order.size.to_integral_value() or order.size <= 0:
            raise ExecutionError(f"Kalshi count {order.size} must be a positive whole number of contracts")
        body = {
            "ticker": order.market,
            "side": order.outcome,
            "action": order.side,
            "count": int(order.size),
            "count_fp": f"{order.size:.2f}",
            f"{order.outcome}_price_dollars": f"{order.price:.4f}",
            "client_order_id": order.client_order_id,
            "time_in_force": _KALSHI_TIF[order.tif],
        }
        if self.cancel_on_pause:
            body["cancel_order_on_pause"] = True
        if self.order_group_id:
            body["order_group_id"] = self.order_group_id
        return orjson.dumps(body)

    def begin_prepare(self, order: LegOrder) -> Coroutine[Any, Any, None]:
        return self.prepare(order)  # no signer call: the body is built here, the headers at the send

    def warm_prepare(self, order: LegOrder) -> None:
        self._body(order)

    async def prepare(self, order: LegOrder) -> None:
        order.payload = self._body(order)

    def _result(self, order: LegOrder, o: dict[str, Any], resolved_by: Literal["reply", "lookup"]) -> OrderResult:
        order.venue_order_id = str(o.get("order_id") or "") or None
        filled = Decimal(str(o.get("fill_count_fp") or "0"))
        cost = _dec(o, "taker_fill_cost_dollars") + _dec(o, "maker_fill_cost_dollars")
        fee = _dec(o, "taker_fees_dollars") + _dec(o, "maker_fees_dollars")
        state = _status(filled, order.size, o.get("status") == "resting", order.tif)
        reason = "" if filled else "nothing filled at the limit (order cancelled by the venue)"
        return OrderResult(order, state, filled, cost / filled if filled else None, fee, reason, resolved_by)

    async def submit(self, order: LegOrder) -> OrderResult:
        signed, order.headers = order.headers or None, {}  # presigned for one send: never reused
        status, payload = await self.http.call("POST", "/portfolio/orders", self._headers, order.payload,
                                               signed=signed)  # fmt: skip
        if status in (200, 201) and isinstance(payload, dict) and isinstance(payload.get("order"), dict):
            return self._result(order, payload["order"], "reply")
        text = _error_text(payload)
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            if payload["error"].get("code") == "order_already_exists":
                raise SubmitUncertain(f"kalshi already holds client order {order.client_order_id}; resolving by lookup")
        raise VenueRejected("kalshi", status, text)

    async def lookup(self, order: LegOrder) -> OrderResult | None:
        query = "client_order_id=" + quote(order.client_order_id, safe="")
        status, payload = await self.http.call("GET", "/portfolio/orders", self._headers, query=query)
        orders = payload.get("orders", []) if isinstance(payload, dict) and status == 200 else []
        mine = [o for o in orders if isinstance(o, dict) and o.get("client_order_id") == order.client_order_id]
        if not mine:
            return None
        return self._result(order, mine[0], "lookup")

    async def fills(self, order: LegOrder) -> list[Fill]:
        if not order.venue_order_id:
            return []
        query = "order_id=" + quote(order.venue_order_id, safe="")
        _, payload = await self.http.call("GET", "/portfolio/fills", self._headers, query=query)
        data = payload.get("fills", []) if isinstance(payload, dict) else []
        out: list[Fill] = []
        for f in data:
            yes = Decimal(str(f["yes_price_dollars"]))
            price = yes if f.get("side", order.outcome) == "yes" else 1 - yes
            fill = Fill(str(f["trade_id"]), price, _dec(f, "count_fp"), _dec(f, "fee_cost"), int(f.get("ts_ms") or 0))
            out.append(fill)
        return out

    async def close(self) -> None:
        await self.http.close()
