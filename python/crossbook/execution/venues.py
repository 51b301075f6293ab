"""Venue REST order clients: Polymarket ``POST /order`` (L2 headers, signed V2 order) and Kalshi
``POST /trade-api/v2/portfolio/orders`` (RSA-PSS headers), plus the lookups that resolve a timeout.

A submit that times out or loses its connection raises :class:`SubmitUncertain`: the order may be at
the venue, so it is never resent; the executor asks the venue instead (:meth:`lookup`). A 429 means
the venue took nothing, so the same order (same client id) is retried after the venue's Retry-After.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Literal, Protocol
from urllib.parse import quote, urlsplit

import aiohttp
import orjson

from crossbook.execution.errors import ExecutionError, SubmitUncertain, VenueRejected, VenueUnavailable
from crossbook.execution.models import ZERO, Fill, LegOrder, OrderResult, OrderStatus, Venue
from crossbook.execution.signer import ExecutionSigner

TOKEN_UNITS = 10**6
ZERO_BYTES32 = "0x" + "00" * 32
_POLY_TIF = {"FOK": "FOK", "FAK": "FAK", "GTC": "GTC"}
_KALSHI_TIF = {"FOK": "fill_or_kill", "FAK": "immediate_or_cancel", "GTC": "good_till_canceled"}


class VenueTrader(Protocol):
    venue: Venue

    async def prepare(self, order: LegOrder) -> None:
        """Sign and serialize; afterwards ``order.payload`` is final (and, on Polymarket, its hash known)."""
        ...

    async def submit(self, order: LegOrder) -> OrderResult: ...
    async def lookup(self, order: LegOrder) -> OrderResult | None:
        """The venue's view of the order, or None if it has never seen it."""
        ...

    async def fills(self, order: LegOrder) -> list[Fill]: ...
    async def close(self) -> None: ...


class _Http:
    def __init__(self, venue: Venue, base_url: str, timeout: float, max_429_retries: int) -> None:
        self.venue = venue
        self.base_url = base_url.rstrip("/")
        self.base_path = urlsplit(self.base_url).path
        self.timeout = timeout
        self.max_429_retries = max_429_retries
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self, method: str, path: str, headers_for: Any, body: bytes = b"", query: str = ""
    ) -> tuple[int, Any]:
        """(status, JSON) of one request, retrying only 429. ``headers_for(method, path, body)`` signs.

        POST failures after sending raise SubmitUncertain; GET failures raise VenueUnavailable."""
        for attempt in range(self.max_429_retries + 1):
            headers = dict(await headers_for(method, self.base_path + path, body))
            headers["Content-Type"] = "application/json"
            url = self.base_url + path + (f"?{query}" if query else "")
            try:
                async with self.session().request(method, url, data=body or None, headers=headers) as resp:
                    raw = await resp.read()
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After", "")
            except (TimeoutError, aiohttp.ClientError) as exc:
                what = "timed out" if isinstance(exc, TimeoutError) else f"failed ({type(exc).__name__})"
                if method == "POST":
                    raise SubmitUncertain(f"{self.venue} {method} {path} {what}; resolving by lookup") from exc
                raise VenueUnavailable(f"{self.venue} {method} {path} {what}") from exc
            if status == 429 and attempt < self.max_429_retries:
                wait = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else 0.2 * (attempt + 1)
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


def _status(filled: Decimal, size: Decimal, resting: bool) -> OrderStatus:
    if filled >= size:
        return "filled"
    if resting:
        return "open"
    return "partial" if filled > 0 else "rejected"


class PolymarketTrader:
    """Polymarket CLOB V2 orders (EOA signature type) for one wallet and API key."""

    venue: Venue = "polymarket"

    def __init__(self, base_url: str, signer: ExecutionSigner, *, timeout: float = 2.0, max_429_retries: int = 3):
        self.signer = signer
        self.http = _Http("polymarket", base_url, timeout, max_429_retries)

    async def _headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        return await self.signer.polymarket_l2_headers(method, path, body)

    async def prepare(self, order: LegOrder) -> None:
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
            "timestamp": str(time.time_ns() // 1_000_000),
            "metadata": ZERO_BYTES32,
            "builder": ZERO_BYTES32,
        }
        signed = await self.signer.sign_polymarket_order(struct, request_id=order.client_order_id)
        wire = {**struct, "expiration": "0", "signature": signed.signature}
        body = {
            "order": wire,
            "owner": self.signer.polymarket_api_key,
            "orderType": _POLY_TIF[order.tif],
            "deferExec": False,
            "postOnly": False,
        }
        order.payload = orjson.dumps(body)
        order.venue_order_id = signed.hash

    async def submit(self, order: LegOrder) -> OrderResult:
        status, payload = await self.http.call("POST", "/order", self._headers, order.payload)
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
        state = _status(filled, order.size, payload.get("status") == "LIVE")
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

    def __init__(self, base_url: str, signer: ExecutionSigner, *, timeout: float = 2.0, max_429_retries: int = 3):
        self.signer = signer
        self.http = _Http("kalshi", base_url, timeout, max_429_retries)

    async def _headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        return await self.signer.kalshi_headers(method, path)

    async def prepare(self, order: LegOrder) -> None:
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
        order.payload = orjson.dumps(body)

    def _result(self, order: LegOrder, o: dict[str, Any], resolved_by: Literal["reply", "lookup"]) -> OrderResult:
        order.venue_order_id = str(o.get("order_id") or "") or None
        filled = Decimal(str(o.get("fill_count_fp") or "0"))
        cost = _dec(o, "taker_fill_cost_dollars") + _dec(o, "maker_fill_cost_dollars")
        fee = _dec(o, "taker_fees_dollars") + _dec(o, "maker_fees_dollars")
        state = _status(filled, order.size, o.get("status") == "resting")
        reason = "" if filled else "nothing filled at the limit (order cancelled by the venue)"
        return OrderResult(order, state, filled, cost / filled if filled else None, fee, reason, resolved_by)

    async def submit(self, order: LegOrder) -> OrderResult:
        status, payload = await self.http.call("POST", "/portfolio/orders", self._headers, order.payload)
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
