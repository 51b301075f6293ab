"""The venue simulators over real sockets: shapes as the vectors, books that rebuild to the truth,
and every scripted fault doing what it says."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from crossbook.venues.kalshi.auth import (
    WS_PATH,
    auth_headers,
    load_private_key,
    load_public_key,
    sign_request,
    verify_signature,
)
from crossbook.venues.kalshi.sim import KalshiSim
from crossbook.venues.polymarket.sim import PolymarketSim, _book_hash

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors"
if not VECTORS.is_dir():
    VECTORS = Path("/work/shared/vectors")
KAT = json.loads((VECTORS / "kalshi" / "kat_rsa_pss_verify.json").read_text())
PRIVATE_KEY = load_private_key(base64.b64decode(KAT["private_key_pkcs8_der_b64"]))
KEY_ID = KAT["api_key_id"]

Book = dict[str, dict[Decimal, Decimal]]


async def recv_json(ws: ClientConnection, timeout: float = 2.0) -> Any:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))


async def drain(ws: ClientConnection, quiet: float = 0.2) -> list[Any]:
    """Every frame until the link has been quiet for ``quiet`` seconds (raw text)."""
    out: list[Any] = []
    while True:
        try:
            out.append(await asyncio.wait_for(ws.recv(), quiet))
        except TimeoutError:
            return out


async def collect(ws: ClientConnection, seconds: float) -> list[Any]:
    """Every frame received within the next ``seconds`` (raw text)."""
    out: list[Any] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        try:
            out.append(await asyncio.wait_for(ws.recv(), left))
        except TimeoutError:
            break
    return out


def http(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=3) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


async def ahttp(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    return await asyncio.get_running_loop().run_in_executor(None, http, url, body, headers)


def sorted_book(book: Book) -> dict[str, list[tuple[Decimal, Decimal]]]:
    return {
        "bids": sorted(book["bids"].items(), reverse=True),
        "asks": sorted(book["asks"].items()),
    }


# --------------------------------------------------------------------------------------------
# Polymarket
# --------------------------------------------------------------------------------------------


@pytest.fixture
async def poly() -> AsyncIterator[PolymarketSim]:
    sim = PolymarketSim(seed=7, tick_interval=0.01)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def poly_apply(books: dict[str, Book], frame: Any) -> None:
    for ev in frame if isinstance(frame, list) else [frame]:
        if ev["event_type"] == "book":
            books[ev["asset_id"]] = {
                "bids": {Decimal(x["price"]): Decimal(x["size"]) for x in ev["bids"]},
                "asks": {Decimal(x["price"]): Decimal(x["size"]) for x in ev["asks"]},
            }
        elif ev["event_type"] == "price_change":
            for pc in ev["price_changes"]:
                side = books[pc["asset_id"]]["bids" if pc["side"] == "BUY" else "asks"]
                size = Decimal(pc["size"])
                if size == 0:
                    side.pop(Decimal(pc["price"]), None)
                else:
                    side[Decimal(pc["price"])] = size


def test_poly_hash_matches_known_answer() -> None:
    kat = json.loads((VECTORS / "polymarket" / "kat_orderbook_hash.json").read_text())
    for case in kat["cases"]:
        assert _book_hash(case["input"]) == case["expected_hash"]


def test_poly_markets_deterministic() -> None:
    a, b, c = PolymarketSim(seed=3), PolymarketSim(seed=3), PolymarketSim(seed=4)
    assert a.markets == b.markets != c.markets
    assert all(len(m) == 77 and m.isdigit() for m in a.assets)
    assert all(len(c) == 66 and c.startswith("0x") for c in a.conditions.values())
    assert [a.book(m) for m in a.markets] == [b.book(m) for m in b.markets]
    for m in a.markets:
        book = a.book(m)
        assert 10 <= len(book["bids"]) <= 20 and 10 <= len(book["asks"]) <= 20
        assert book["bids"][0][0] < book["asks"][0][0]
        assert a.titles[m]


async def test_poly_snapshot_then_price_changes(poly: PolymarketSim) -> None:
    async with connect(poly.ws_url) as ws:
        assets = poly.assets[:2]
        await ws.send(orjson.dumps({"assets_ids": assets, "type": "market", "custom_feature_enabled": True}))
        first = await recv_json(ws)
        assert isinstance(first, list) and [ev["asset_id"] for ev in first] == assets
        for ev in first:
            assert ev["event_type"] == "book"
            assert ev["market"] == poly.conditions[ev["asset_id"]]
            assert set(ev) >= {"bids", "asks", "timestamp", "hash", "tick_size", "min_order_size", "neg_risk"}
            bids = [Decimal(x["price"]) for x in ev["bids"]]
            asks = [Decimal(x["price"]) for x in ev["asks"]]
            assert bids == sorted(bids) and asks == sorted(asks, reverse=True)  # best last
            assert bids[-1] < asks[-1]
            assert ev["hash"] == _book_hash(ev) and len(ev["hash"]) == 40
            assert all(isinstance(x["price"], str) and isinstance(x["size"], str) for x in ev["bids"])
        seen: set[str] = set()
        for _ in range(60):
            ev = await recv_json(ws)
            seen.add(ev["event_type"])
            if ev["event_type"] == "price_change":
                assert set(ev) == {"event_type", "market", "price_changes", "timestamp"}
                for pc in ev["price_changes"]:
                    assert set(pc) == {"asset_id", "price", "size", "side", "hash", "best_bid", "best_ask"}
                    assert pc["side"] in ("BUY", "SELL") and pc["asset_id"] in assets
                    assert Decimal(pc["best_bid"]) < Decimal(pc["best_ask"])
            elif ev["event_type"] == "best_bid_ask":
                assert set(ev) == {"event_type", "market", "asset_id", "best_bid", "best_ask", "spread", "timestamp"}
        assert "price_change" in seen and "best_bid_ask" in seen


async def test_poly_rebuilt_book_matches_truth(poly: PolymarketSim) -> None:
    async with connect(poly.ws_url) as ws:
        await ws.send(orjson.dumps({"assets_ids": poly.assets, "type": "market"}))
        books: dict[str, Book] = {}
        loop = asyncio.get_running_loop()
        end = loop.time() + 0.6
        while loop.time() < end:
            poly_apply(books, await recv_json(ws))
        poly.pause_updates()
        for raw in await drain(ws):
            poly_apply(books, orjson.loads(raw))
        assert set(books) == set(poly.assets)
        for asset in poly.assets:
            assert sorted_book(books[asset]) == poly.book(asset), asset
        assert poly.stats["price_change"] > 20


async def test_poly_ping_pong_unknown_and_later_subscribe(poly: PolymarketSim) -> None:
    async with connect(poly.ws_url) as ws:
        poly.pause_updates()
        await ws.send(orjson.dumps({"assets_ids": ["123", "456"], "type": "market"}))
        await ws.send("PING")
        assert await asyncio.wait_for(ws.recv(), 2) == "PONG"  # nothing for the unknown ids
        await ws.send(orjson.dumps({"assets_ids": [poly.markets[1]], "operation": "subscribe"}))
        ev = await recv_json(ws)
        assert ev["event_type"] == "book" and ev["asset_id"] == poly.markets[1]
        await ws.send(orjson.dumps({"assets_ids": [poly.markets[1]], "operation": "unsubscribe"}))
        await asyncio.sleep(0.05)
        poly.resume_updates()
        assert await drain(ws, 0.2) == []


async def test_poly_too_many_assets_refused(poly: PolymarketSim) -> None:
    async with connect(poly.ws_url) as ws:
        await ws.send(orjson.dumps({"assets_ids": [str(i) for i in range(501)], "type": "market"}))
        with pytest.raises(ConnectionClosed):
            await drain(ws, 1.0)
            await ws.recv()


async def test_poly_tick_size_change_then_book(poly: PolymarketSim) -> None:
    asset = poly.markets[0]
    assert poly.tick_size(asset) == Decimal("0.01")
    async with connect(poly.ws_url) as ws:
        await ws.send(orjson.dumps({"assets_ids": [asset], "type": "market"}))
        assert (await recv_json(ws))["event_type"] == "book"
        poly.change_tick_size(asset, "0.1")
        books: dict[str, Book] = {}
        tick_seen = False
        for _ in range(100):
            ev = await recv_json(ws)
            if ev["event_type"] == "tick_size_change":
                assert {k: ev[k] for k in ("asset_id", "old_tick_size", "new_tick_size")} == {
                    "asset_id": asset,
                    "old_tick_size": "0.01",
                    "new_tick_size": "0.1",
                }
                assert set(ev) == {"event_type", "asset_id", "market", "old_tick_size", "new_tick_size", "timestamp"}
                tick_seen = True
            elif ev["event_type"] == "book":
                assert tick_seen and ev["tick_size"] == "0.1"
                poly_apply(books, ev)
                break
        else:
            pytest.fail("no book after tick_size_change")
        prices = [p for p in books[asset]["bids"]] + [p for p in books[asset]["asks"]]
        assert all(p % Decimal("0.1") == 0 for p in prices)


async def test_poly_garbage_frames(poly: PolymarketSim) -> None:
    async with connect(poly.ws_url) as ws:
        await ws.send(orjson.dumps({"assets_ids": [poly.markets[0]], "type": "market"}))
        await recv_json(ws)
        poly.pause_updates()
        await drain(ws, 0.1)
        poly.send_garbage(3)
        frames = await drain(ws, 0.3)
        assert len(frames) == 3 and poly.stats["garbage"] == 3
        bad = 0
        for raw in frames:
            try:
                ev = orjson.loads(raw)
            except orjson.JSONDecodeError:
                bad += 1
                continue
            assert ev["price_changes"][0]["price"] == "abc"
        assert bad == 2


async def test_poly_drop_and_stall(poly: PolymarketSim) -> None:
    async with connect(poly.ws_url) as ws:
        await ws.send(orjson.dumps({"assets_ids": [poly.markets[0]], "type": "market"}))
        await recv_json(ws)
        await collect(ws, 0.1)
        poly.stall_heartbeats(0.4)
        await collect(ws, 0.05)  # frames already in flight
        await ws.send("PING")
        assert await collect(ws, 0.25) == []  # dead: no pong, no updates
        await asyncio.sleep(0.15)
        await ws.send("PING")
        assert "PONG" in await collect(ws, 0.2)
        assert poly.drop_connections() == 1
        with pytest.raises(ConnectionClosed) as info:
            for _ in range(1000):
                await asyncio.wait_for(ws.recv(), 2)
        assert info.value.rcvd is None  # no close frame: the TCP connection was aborted


async def test_poly_rest_and_http_fault(poly: PolymarketSim) -> None:
    asset = poly.markets[2]
    poly.pause_updates()
    status, book = await ahttp(f"{poly.rest_url}/book?token_id={asset}")
    assert status == 200 and book["asset_id"] == asset and book["market"] == poly.conditions[asset]
    assert [(Decimal(x["price"]), Decimal(x["size"])) for x in reversed(book["bids"])] == poly.book(asset)["bids"]
    assert (await ahttp(f"{poly.rest_url}/book?token_id=1"))[0] == 404
    status, markets = await ahttp(f"{poly.rest_url}/markets")
    assert status == 200 and {m["tokens"][0]["token_id"] for m in markets["data"]} == set(poly.markets)
    status, gamma = await ahttp(f"{poly.rest_url}/gamma/markets")
    assert status == 200 and json.loads(gamma[0]["clobTokenIds"])[0] == poly.markets[0]
    assert gamma[0]["question"] == poly.titles[poly.markets[0]]
    assert (await ahttp(f"{poly.rest_url}/"))[0] == 200
    async with connect(poly.ws_url) as ws:
        await ws.send(orjson.dumps({"assets_ids": [asset], "type": "market"}))
        await recv_json(ws)
        status, body = await ahttp(f"{poly.rest_url}/_sim/fault", orjson.dumps({"fault": "garbage", "n": 2}))
        assert status == 200 and body["ok"]
        assert len(await drain(ws, 0.3)) == 2
        status, body = await ahttp(f"{poly.rest_url}/_sim/fault", orjson.dumps({"fault": "nope"}))
        assert status == 400


async def test_rest_keeps_connections_alive_next_to_websockets(poly: PolymarketSim) -> None:
    """REST is persistent HTTP/1.1 on the WebSocket port, as at the venues: requests on one connection
    are answered in order on it (pipelined too) until the client asks ``Connection: close``."""
    poly.pause_updates()
    reader, writer = await asyncio.open_connection(poly.host, poly.port)
    try:
        asset = poly.markets[0]
        fault = orjson.dumps({"fault": "reject_next", "reason": "test"})
        writer.write(b"GET /health HTTP/1.1\r\nHost: sim\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        assert head.startswith(b"HTTP/1.1 200 ") and b"Connection: keep-alive" in head
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        assert orjson.loads(await reader.readexactly(length))["venue"] == "polymarket"
        async with connect(poly.ws_url) as ws:  # a WebSocket on the same port meanwhile
            await ws.send(orjson.dumps({"assets_ids": [asset], "type": "market"}))
            first_frame = await recv_json(ws)
            assert asset in str(first_frame)
        writer.write(  # two more, pipelined: a POST with a body, then a GET that closes
            b"POST /_sim/fault HTTP/1.1\r\nHost: sim\r\nContent-Length: %d\r\n\r\n%s" % (len(fault), fault)
            + f"GET /book?token_id={asset} HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n".encode()
        )
        rest = await asyncio.wait_for(reader.read(), 3)  # until the sim closes, after the second answer
    finally:
        writer.close()
    first, second = rest.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 ") and b'"fault":"reject_next"' in first
    assert second.startswith(b"200 ") and b"Connection: close" in second and asset.encode() in second
    assert poly.stats["http_connections"] == 1 and poly.stats["http_requests"] == 3
    assert poly.stats["fault_reject_next"] == 1


# --------------------------------------------------------------------------------------------
# Kalshi
# --------------------------------------------------------------------------------------------


@pytest.fixture
async def kalshi() -> AsyncIterator[KalshiSim]:
    sim = KalshiSim(seed=5, tick_interval=0.01, api_keys={KEY_ID: KAT["public_key_pem"]}, ping_interval=0.2)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def kconnect(sim: KalshiSim) -> Any:
    return connect(sim.ws_url, additional_headers=auth_headers(KEY_ID, PRIVATE_KEY, "GET", WS_PATH))


def kalshi_apply(books: dict[str, Book], frame: dict[str, Any], use_yes_price: bool = False) -> None:
    """Rebuild the YES view: YES bids; asks from NO bids at 1 - p."""
    msg = frame["msg"]
    ticker = msg["market_ticker"]

    def ask_price(p: str) -> Decimal:
        return Decimal(p) if use_yes_price else Decimal(1) - Decimal(p)

    if frame["type"] == "orderbook_snapshot":
        books[ticker] = {
            "bids": {Decimal(p): Decimal(c) for p, c in msg.get("yes_dollars_fp", [])},
            "asks": {ask_price(p): Decimal(c) for p, c in msg.get("no_dollars_fp", [])},
        }
    elif frame["type"] == "orderbook_delta":
        side = books[ticker]["bids" if msg["side"] == "yes" else "asks"]
        price = Decimal(msg["price_dollars"]) if msg["side"] == "yes" else ask_price(msg["price_dollars"])
        size = side.get(price, Decimal(0)) + Decimal(msg["delta_fp"])
        assert size >= 0
        if size == 0:
            side.pop(price, None)
        else:
            side[price] = size


def test_kalshi_auth_known_answer() -> None:
    public = load_public_key(KAT["public_key_pem"])
    ts = int(KAT["timestamp_ms"])
    assert verify_signature(public, ts, KAT["method"], KAT["path_signed"], KAT["example_signature_b64"])
    assert not verify_signature(public, ts + 1, KAT["method"], KAT["path_signed"], KAT["example_signature_b64"])
    assert not verify_signature(public, ts, "GET", KAT["path_signed"], "not base64!!")
    query = KAT["message_for_path_with_query"]
    sig = sign_request(PRIVATE_KEY, ts, "get", query["path"])
    assert verify_signature(public, ts, "GET", query["message"][len(str(ts)) + 3 :], sig)
    assert sig != sign_request(PRIVATE_KEY, ts, "GET", query["path"])  # PSS is randomized
    headers = auth_headers(KEY_ID, PRIVATE_KEY, "GET", KAT["path_signed"], now_ms=ts)
    assert headers["KALSHI-ACCESS-KEY"] == KEY_ID and headers["KALSHI-ACCESS-TIMESTAMP"] == KAT["timestamp_ms"]
    assert verify_signature(public, ts, "GET", KAT["path_signed"], headers["KALSHI-ACCESS-SIGNATURE"])
    assert isinstance(load_private_key(KAT["private_key_pkcs8_der_b64"]), rsa.RSAPrivateKey)


async def test_kalshi_handshake_auth(kalshi: KalshiSim) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad_cases = [
        {},
        auth_headers(KEY_ID, other, "GET", WS_PATH),
        auth_headers("unknown-key", PRIVATE_KEY, "GET", WS_PATH),
        auth_headers(KEY_ID, PRIVATE_KEY, "GET", "/trade-api/v2/markets"),
        auth_headers(KEY_ID, PRIVATE_KEY, "GET", WS_PATH, now_ms=1703123456789),
    ]
    for headers in bad_cases:
        with pytest.raises(InvalidStatus) as info:
            async with connect(kalshi.ws_url, additional_headers=headers):
                pass
        assert info.value.response.status_code == 401
        assert orjson.loads(info.value.response.body)["error"]["code"] == "authentication_error"
    async with kconnect(kalshi) as ws:
        await ws.send(orjson.dumps({"id": 1, "cmd": "nope", "params": {}}))
        assert await recv_json(ws) == {"id": 1, "type": "error", "msg": {"code": 5, "msg": "Unknown command"}}
    assert kalshi.stats["handshakes_refused"] == len(bad_cases)


async def test_kalshi_subscribe_snapshot_deltas_and_truth(kalshi: KalshiSim) -> None:
    tickers = kalshi.markets[:2]
    async with kconnect(kalshi) as ws:
        await ws.send(
            orjson.dumps(
                {"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_tickers": tickers}}
            )
        )
        assert await recv_json(ws) == {"id": 1, "type": "subscribed", "msg": {"channel": "orderbook_delta", "sid": 1}}
        books: dict[str, Book] = {}
        seq = 0
        for ticker in tickers:
            snap = await recv_json(ws)
            assert snap["type"] == "orderbook_snapshot" and snap["sid"] == 1 and snap["seq"] == seq + 1
            seq = snap["seq"]
            assert set(snap["msg"]) == {"market_ticker", "market_id", "yes_dollars_fp", "no_dollars_fp"}
            assert snap["msg"]["market_ticker"] == ticker and snap["msg"]["market_id"] == kalshi.market_ids[ticker]
            yes = snap["msg"]["yes_dollars_fp"]
            assert [Decimal(p) for p, _ in yes] == sorted(Decimal(p) for p, _ in yes)
            assert all(len(p) == 6 and p.startswith("0.") and c.endswith(".00") for p, c in yes)
            kalshi_apply(books, snap)
        loop = asyncio.get_running_loop()
        end = loop.time() + 0.5
        while loop.time() < end:
            frame = await recv_json(ws)
            assert frame["type"] == "orderbook_delta" and frame["seq"] == seq + 1
            seq = frame["seq"]
            assert set(frame["msg"]) == {
                "market_ticker",
                "market_id",
                "price_dollars",
                "delta_fp",
                "side",
                "ts",
                "ts_ms",
            }
            assert frame["msg"]["side"] in ("yes", "no") and frame["msg"]["delta_fp"] != "0.00"
            kalshi_apply(books, frame)
        kalshi.pause_updates()
        for raw in await drain(ws):
            kalshi_apply(books, orjson.loads(raw))
        for ticker in tickers:
            truth = kalshi.book(ticker)
            assert sorted_book(books[ticker]) == truth
            assert truth["bids"][0][0] < truth["asks"][0][0]


async def test_kalshi_use_yes_price(kalshi: KalshiSim) -> None:
    ticker = kalshi.markets[2]
    kalshi.pause_updates()
    async with kconnect(kalshi) as ws:
        params = {"channels": ["orderbook_delta"], "market_ticker": ticker, "use_yes_price": True}
        await ws.send(orjson.dumps({"id": 3, "cmd": "subscribe", "params": params}))
        await recv_json(ws)
        books: dict[str, Book] = {}
        kalshi_apply(books, await recv_json(ws), use_yes_price=True)
        assert sorted_book(books[ticker]) == kalshi.book(ticker)


async def test_kalshi_skip_seq_gap_and_get_snapshot_heals(kalshi: KalshiSim) -> None:
    ticker = kalshi.markets[0]
    async with kconnect(kalshi) as ws:
        await ws.send(
            orjson.dumps(
                {"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_ticker": ticker}}
            )
        )
        await recv_json(ws)
        books: dict[str, Book] = {}
        snap = await recv_json(ws)
        kalshi_apply(books, snap)
        last = snap["seq"]
        assert kalshi.skip_seq(ticker) == 1
        gap = None
        for _ in range(200):
            frame = await recv_json(ws)
            if frame["seq"] != last + 1:
                gap = (last, frame["seq"])
                break
            last = frame["seq"]
        assert gap is not None and gap[1] == gap[0] + 2
        # sids-only get_snapshot is refused (code 14) and burns a seq slot, as on the venue
        await ws.send(
            orjson.dumps({"id": 2, "cmd": "update_subscription", "params": {"sids": [1], "action": "get_snapshot"}})
        )
        params = {"sids": [1], "market_tickers": [ticker], "action": "get_snapshot"}
        await ws.send(orjson.dumps({"id": 3, "cmd": "update_subscription", "params": params}))
        error_seen = False
        for _ in range(500):
            frame = await recv_json(ws)
            if frame["type"] == "error":
                assert frame == {"id": 2, "type": "error", "msg": {"code": 14, "msg": "Market Ticker required"}}
                error_seen = True
            if frame["type"] == "orderbook_snapshot":
                assert frame["sid"] == 1 and frame["seq"] > gap[1]
                kalshi_apply(books, frame)
                break
        assert error_seen
        last = frame["seq"]
        end = asyncio.get_running_loop().time() + 0.3
        while asyncio.get_running_loop().time() < end:
            frame = await recv_json(ws)
            assert frame["seq"] == last + 1
            last = frame["seq"]
            kalshi_apply(books, frame)
        kalshi.pause_updates()
        for raw in await drain(ws):
            kalshi_apply(books, orjson.loads(raw))
        assert sorted_book(books[ticker]) == kalshi.book(ticker)


async def test_kalshi_errors_unsubscribe_ticker_trade(kalshi: KalshiSim) -> None:
    kalshi.trade_probability = 1.0
    async with kconnect(kalshi) as ws:
        await ws.send(orjson.dumps({"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"]}}))
        assert (await recv_json(ws))["msg"] == {"code": 14, "msg": "Market Ticker required"}
        await ws.send(orjson.dumps({"id": 2, "cmd": "unsubscribe", "params": {"sids": [99]}}))
        assert await recv_json(ws) == orjson.loads((VECTORS / "kalshi" / "spec_error_unknown_sid.json").read_text()) | {
            "id": 2
        }
        ticker = kalshi.markets[1]
        await ws.send(
            orjson.dumps(
                {"id": 3, "cmd": "subscribe", "params": {"channels": ["ticker", "trade"], "market_tickers": [ticker]}}
            )
        )
        acks = [await recv_json(ws), await recv_json(ws)]
        assert [a["msg"]["channel"] for a in acks] == ["ticker", "trade"]
        sids = {a["msg"]["channel"]: a["msg"]["sid"] for a in acks}
        spec_ticker = orjson.loads((VECTORS / "kalshi" / "spec_ticker.json").read_text())
        spec_trade = orjson.loads((VECTORS / "kalshi" / "spec_trade.json").read_text())
        got: dict[str, Any] = {}
        while len(got) < 2:
            frame = await recv_json(ws)
            got.setdefault(frame["type"], frame)
        assert set(got["ticker"]) == set(spec_ticker) and set(got["ticker"]["msg"]) == set(spec_ticker["msg"])
        assert set(got["trade"]) == set(spec_trade) and set(got["trade"]["msg"]) == set(spec_trade["msg"])
        assert got["trade"]["sid"] == sids["trade"] and got["trade"]["seq"] >= 1
        trade = got["trade"]["msg"]
        assert Decimal(trade["yes_price_dollars"]) + Decimal(trade["no_price_dollars"]) == 1
        await ws.send(
            orjson.dumps({"id": 4, "cmd": "unsubscribe", "params": {"sids": [sids["trade"], sids["ticker"]]}})
        )
        unsubscribed = [f for f in [orjson.loads(r) for r in await drain(ws)] if f["type"] == "unsubscribed"]
        assert [(u["id"], u["sid"]) for u in unsubscribed] == [(4, sids["trade"]), (4, sids["ticker"])]
        assert all(set(u) == {"id", "sid", "seq", "type"} for u in unsubscribed)
        assert kalshi.subscriptions() == []


async def test_kalshi_heartbeat_pings_and_stall(kalshi: KalshiSim) -> None:
    async with kconnect(kalshi) as ws:
        await asyncio.sleep(0.5)
        assert kalshi.stats["pings"] >= 2  # websockets answers with pongs by itself
        kalshi.stall_heartbeats(0.5)
        before = kalshi.stats["pings"]
        await asyncio.sleep(0.45)
        assert kalshi.stats["pings"] == before and kalshi.stats["pings_withheld"] >= 1
        kalshi.drop_connections()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 2)


async def test_kalshi_garbage_and_rest(kalshi: KalshiSim) -> None:
    ticker = kalshi.markets[3]
    kalshi.pause_updates()
    status, body = await ahttp(f"{kalshi.rest_url}/trade-api/v2/markets/{ticker}/orderbook")
    assert status == 200 and set(body["orderbook_fp"]) == {"yes_dollars", "no_dollars"}
    rebuilt: dict[str, Book] = {}
    kalshi_apply(
        rebuilt,
        {
            "type": "orderbook_snapshot",
            "msg": {
                "market_ticker": ticker,
                "yes_dollars_fp": body["orderbook_fp"]["yes_dollars"],
                "no_dollars_fp": body["orderbook_fp"]["no_dollars"],
            },
        },
    )
    assert sorted_book(rebuilt[ticker]) == kalshi.book(ticker)
    status, listing = await ahttp(f"{kalshi.rest_url}/trade-api/v2/markets")
    assert status == 200 and [m["ticker"] for m in listing["markets"]] == kalshi.markets
    assert all(m["status"] == "active" and m["title"] for m in listing["markets"])
    assert (await ahttp(f"{kalshi.rest_url}/trade-api/v2/portfolio/balance"))[0] == 401
    path = "/trade-api/v2/portfolio/balance"
    status, balance = await ahttp(kalshi.rest_url + path, headers=auth_headers(KEY_ID, PRIVATE_KEY, "GET", path))
    assert status == 200 and "balance" in balance
    async with kconnect(kalshi) as ws:
        await asyncio.sleep(0.05)
        status, _ = await ahttp(f"{kalshi.rest_url}/_sim/fault", orjson.dumps({"fault": "garbage", "n": 3}))
        assert status == 200
        frames = await drain(ws, 0.3)
        assert len(frames) == 3
        parsed = []
        for raw in frames:
            try:
                parsed.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                continue
        assert [p["msg"]["price_dollars"] for p in parsed] == ["abc"]


def test_sim_digest_is_stable() -> None:
    """Same seed, same books: a cheap guard against accidental nondeterminism."""
    a, b = KalshiSim(seed=11, api_keys={}), KalshiSim(seed=11, api_keys={})
    for _ in range(50):
        a._step_markets()
        b._step_markets()
    digest = [hashlib.sha1(repr(s.book(t)).encode()).hexdigest() for s in (a, b) for t in s.markets]
    assert digest[:4] == digest[4:]
