"""Tick to trade: the frame that opens an edge leaves a venue → the pair's first order arrives at a venue.

Method (same run, same box; shared/reference/performance-anchors.md §4, G6 carried to the order):

* This process is the **harness**: it runs the venue simulators (Polymarket and Kalshi, one pair of sims
  per pipeline, so no pipeline ever sees another's frames) and is pinned to ``--cpu-sim``. The sims
  never tick on their own: each sample, the harness puts a cheap YES ask (0.40 × 50) on the Polymarket
  book and writes the ``price_change`` frame the sim itself builds (hash, best bid/ask) straight onto the
  pipeline's WebSocket as one pre-framed write; **t0 = time.monotonic_ns() just before that write**.
  YES 0.40 there + NO 0.52 on Kalshi + Kalshi's fee is an edge; before the frame there is none.
* Each order's **arrival** is stamped by the sim process when the first bytes of its HTTP request are
  handed to the sim's connection (``data_received``; ``HttpRequest.received_ns``, per request on a
  kept-alive connection), before any parsing or verification; the sim then
  verifies it exactly as the venue (EIP-712 signature + L2 HMAC, RSA-PSS), matches it and answers. Both
  legs of every sample must be accepted and filled, or the run fails (``verified`` in the output).
  CLOCK_MONOTONIC is shared by every process on one machine (``time.monotonic_ns`` is
  ``clock_gettime(CLOCK_MONOTONIC)`` on Linux), so t0 and the arrivals compare directly.
* **ours** (a child process, pinned to ``--cpu-daemon``): the daemon path — picows feeds → Rust
  ``BookSet`` → the change dispatcher → ``EdgeTrigger`` (top of book, breaker, capped sizing) →
  ``Executor.pair_trade`` (gate, sizing over both books) → the signer service in **its own process**
  (``crossbook-signer`` with KMS-sealed keys from moto in server mode, pinned to ``--cpu-signer``) over
  its Unix socket through ``ServiceSigner``/``SignerClient`` (its fast path when the signer offers it;
  ``--signer fast,grpc`` runs one ``ours`` pipeline per transport) → ``crossbook.execution.http1`` POST to
  the sim on a kept-alive connection. The trigger begins the intent in the loop turn that saw the edge
  (``Executor.start_pair_trade``: gate, first leg, signing request written), so the signer signs while
  the daemon returns to its loop. Store off:
  the PostgreSQL records the executor writes before an order are a separate cost (see README).
* **baseline** (a child process, same pinning): picows client + orjson + a plain Python dict book
  (scaled ints) + the same edge rule and sizing in Python + eth-account signing in process (EIP-712) +
  ``hmac`` L2 headers + ``cryptography`` RSA-PSS for Kalshi + an aiohttp POST (kept-alive session: what
  a Python trading bot usually sends with).
* Pipelines alternate in blocks (ABAB…). Each sample waits for the pipeline to report its pair intent
  finished, then restores both sims' books (frames the pipeline applies; it re-arms when the edge has
  closed) and sleeps ``--gap-ms`` (warm) or ``--idle-ms`` (after an idle gap) before the next frame.
* The breakdown (ours) comes from timestamps taken inside the child by wrapping the feed callback,
  the dispatcher, the executor's ``plan``, the signer calls and the HTTP call (a few ``monotonic_ns``
  calls per sample, also present in the headline numbers).

Usage: benches/bench_tick_to_trade.py [--samples 300] [--idle 30] [--warmup 20] [--block 20]
       [--gap-ms 20] [--idle-ms 300] [--signer fast,grpc] [--busy-poll off|on|both] [--cpu-sim 0]
       [--cpu-daemon 1] [--cpu-signer 0] [--json]

CPUs: the daemons on ``--cpu-daemon``, the signer on a CPU that is not the daemon's (as deployed; on two
CPUs that is the sims' CPU, idle while an order is in flight). With the signer on its own CPUs the order
path primes it when an edge shows (``stay_awake_us``) and busy-polls for its reply; on the daemon's CPU
it does neither (that would take the CPU the signature needs): ``--cpu-signer 1`` measures that case.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import gc
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve()
VENV_BIN = Path(sys.executable).parent
WALLET_HEX = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # anvil's well-known key 0
API_KEY = "00000000-0000-0000-0000-0000000b3c4d"
KALSHI_KEY_ID = "bench-kalshi-key"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
CENT, SHARE, U = 100, 100, 10_000  # sim units: price per cent, size per share, price per dollar
POLY_QUIET = ({3800: 100 * SHARE, 3700: 200 * SHARE}, {5200: 100 * SHARE, 5300: 200 * SHARE})
KALSHI_QUIET = ({4800: 100 * SHARE, 4700: 200 * SHARE}, {5200: 100 * SHARE, 5300: 200 * SHARE})
EDGE_ASK = (40 * CENT, 50 * SHARE)  # the level the tick frame adds to the Polymarket YES asks
SIZE, EDGE, LIMIT = "20", "0.02", "0.60"


def _pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})


def _now() -> int:
    return time.monotonic_ns()


# =====================================================================================================
# child: ours
# =====================================================================================================
async def child_ours(spec: dict[str, Any]) -> None:
    from picows import WSMsgType

    import crossbook.signing.client as signer_client_module
    from crossbook.aio import BusyPoll, ManagedGC
    from crossbook.book.service import MarketData
    from crossbook.config import Config
    from crossbook.execution import Executor, KalshiTrader, PairMarkets, PolymarketTrader, ServiceSigner, VenueTrader
    from crossbook.execution.models import Venue
    from crossbook.execution.trigger import EdgeIntent, EdgeTrigger, Firing
    from crossbook.safety import Breaker, Gate, PairLegs
    from crossbook.safety.gate import MemoryCatalog, PairInfo
    from crossbook.signing.client import SignerClient

    client = SignerClient(spec["signer_socket"], timeout=2.0, fast=spec["fast"])
    await client.health()  # connect (and warm) before the first order
    cfg = Config()
    cfg.polymarket.ws_url, cfg.polymarket.assets = spec["poly_ws"], [spec["yes_token"]]
    cfg.kalshi.ws_url, cfg.kalshi.markets = spec["kal_ws"], [spec["ticker"]]
    cfg.kalshi.api_key_id = KALSHI_KEY_ID
    md = MarketData(cfg, client, None)
    pair_id = "bench-pair"
    breaker = Breaker(md)
    breaker.add_pair(PairLegs(pair_id, spec["yes_token"], spec["ticker"], condition_id=spec["condition"]))
    signer = ServiceSigner(client, address=spec["address"], api_key=API_KEY, wallet="main")
    traders: dict[Venue, VenueTrader] = {
        "polymarket": PolymarketTrader(spec["poly_rest"], signer, timeout=2.0),
        "kalshi": KalshiTrader(spec["kal_rest"] + "/trade-api/v2", signer, timeout=2.0),
    }
    markets = {pair_id: PairMarkets(pair_id, spec["yes_token"], spec["no_token"], spec["ticker"])}
    store = None
    if spec["pg_url"]:  # --store: the records the daemon writes before an order, in PostgreSQL
        from crossbook.execution import ExecutionStore

        store = await ExecutionStore.connect(spec["pg_url"], spec["store"])
    executor = Executor(
        gate=Gate(breaker, MemoryCatalog({pair_id: PairInfo(pair_id, "Verified")})),
        books=md.books,
        traders=traders,
        markets=markets,
        store=store,
    )

    # -- instrumentation: marks of the sample in flight (monotonic ns) ----------------------------
    live: dict[str, int] = {}
    cur: dict[str, int] = {}

    if spec["marks"]:  # --no-breakdown leaves the path as the daemon runs it, without these wrappers
        for conn in md.connections:
            on_frame = conn._on_frame

            def rx(transport: Any, frame: Any, _orig: Callable[..., None] = on_frame) -> None:
                if frame.msg_type == WSMsgType.TEXT and frame.payload_size > 8:
                    live["rx"] = _now()
                _orig(transport, frame)

            conn._on_frame = rx  # type: ignore[method-assign]
        dispatch = md.dispatch_changes

        def disp() -> int:
            live["disp"] = _now()
            return dispatch()

        md.dispatch_changes = disp  # type: ignore[method-assign]

        def wrap_async(obj: Any, name: str, start: str, end: str) -> None:
            orig = getattr(obj, name)

            async def wrapped(*a: Any, **kw: Any) -> Any:
                if start not in cur:
                    cur[start] = _now()
                try:
                    return await orig(*a, **kw)
                finally:
                    if end not in cur:
                        cur[end] = _now()

            setattr(obj, name, wrapped)

        prime = executor.prime

        def timed_prime() -> None:
            live["prime0"] = _now()
            prime()
            live["prime1"] = _now()

        executor.prime = timed_prime  # type: ignore[method-assign]
        begin_first_leg = executor.begin_first_leg

        def timed_first(*a: Any, **kw: Any) -> Any:
            # The compiled path without a request made by the check: the first leg's signing request leaves
            # before start_pair_trade.
            cur.clear()
            cur.update(rx=live.get("rx", 0), disp=live.get("disp", 0))
            cur["first"] = _now()
            try:
                return begin_first_leg(*a, **kw)
            finally:
                cur["first1"] = _now()

        executor.begin_first_leg = timed_first  # type: ignore[method-assign]
        send_first_leg = executor.send_first_leg

        def timed_send_first(frame: bytes, call_id: int) -> Any:
            # The check made the signing request (EdgeWatch with a first leg): written here, before anything else.
            cur.clear()
            cur.update(rx=live.get("rx", 0), disp=live.get("disp", 0), send0=_now())
            sent = send_first_leg(frame, call_id)
            cur["sent"] = _now()
            return sent

        executor.send_first_leg = timed_send_first  # type: ignore[method-assign]
        start_pair_trade = executor.start_pair_trade

        def timed_start(*a: Any, **kw: Any) -> Any:
            if kw.get("first") is not None or kw.get("sent") is not None:
                cur["start"] = _now()
                return start_pair_trade(*a, **kw)
            cur.clear()
            cur.update(rx=live.get("rx", 0), disp=live.get("disp", 0), prime0=live.get("prime0", 0),
                       prime1=live.get("prime1", 0), start=_now())
            return start_pair_trade(*a, **kw)

        executor.start_pair_trade = timed_start  # type: ignore[method-assign]
        check_all = executor.gate.check_all

        def timed_check_all(*a: Any, **kw: Any) -> Any:
            try:
                return check_all(*a, **kw)
            finally:
                cur.setdefault("gated", _now())  # the first leg's gate check (both legs), not the second's

        executor.gate.check_all = timed_check_all  # type: ignore[method-assign]
        begin_prepare = traders["polymarket"].begin_prepare

        def timed_begin_prepare(order: Any, *a: Any, **kw: Any) -> Any:
            cur.setdefault("prep0", _now())
            return begin_prepare(order, *a, **kw)

        traders["polymarket"].begin_prepare = timed_begin_prepare  # type: ignore[method-assign]
        begin_sign = signer.begin_prepare_polymarket_order

        def timed_begin_sign(*a: Any, **kw: Any) -> Any:
            # One signer call (signature, body, L2 headers): sign0 = asked, sent = its request written (the
            # trigger then returns to the loop), sign1 = its reply handled in the daemon.
            cur.setdefault("sign0", _now())
            task = begin_sign(*a, **kw)
            cur.setdefault("sent", _now())
            task.add_done_callback(lambda _t: cur.setdefault("sign1", _now()))
            return task

        signer.begin_prepare_polymarket_order = timed_begin_sign  # type: ignore[method-assign]
        early_reply = signer_client_module._early_reply

        def timed_early_reply(out: Any, kind: int, payload: bytes) -> None:
            # The reply read and settled: in the turn it lands (the order path may go on in that same turn,
            # ahead of the future's callbacks, when it waits spinning: SignerClient.spin_for_reply).
            early_reply(out, kind, payload)
            if out.done():
                cur.setdefault("sign1", _now())

        signer_client_module._early_reply = timed_early_reply
        take_reply = signer.take_reply

        def timed_take_reply(sent: Any) -> Any:
            # The request the check made: its reply waited for (spinning) and read once the gate has passed.
            cur.setdefault("take0", _now())
            ready = take_reply(sent)
            if ready is not None:
                cur.setdefault("sign1", _now())
            return ready

        signer.take_reply = timed_take_reply
        wrap_async(signer, "kalshi_headers", "k0", "k1")
        pool = traders["polymarket"].http.pool  # type: ignore[attr-defined]
        pool_request = pool.request

        def timed_request(*a: Any, **kw: Any) -> Any:
            cur.setdefault("http0", _now())  # the first leg's POST asked of the pool (written in this call)
            return pool_request(*a, **kw)

        pool.request = timed_request
        pool_start = pool.start

        def timed_start_request(*a: Any, **kw: Any) -> Any:
            cur.setdefault("http0", _now())  # the first leg's POST written now (the reply read in this turn)
            return pool_start(*a, **kw)

        pool.start = timed_start_request

    def on_fire(f: Firing) -> None:
        cur.update(detected=f.detected_ns, fire=_now())

    def on_done(f: Firing) -> None:
        res = f.result
        ok = res is not None and res.status == "hedged" and all(leg.filled == leg.order.size for leg in res.legs)
        out = {
            "ok": ok,
            "status": res.status if res else (f.refused or f.error),
            "legs": [(leg.venue, leg.status, str(leg.filled)) for leg in res.legs] if res else [],
            "marks": dict(cur),
        }
        sys.stdout.write("D " + json.dumps(out) + "\n")
        sys.stdout.flush()

    trigger = EdgeTrigger(executor, rearm="after_close", on_fire=on_fire, on_done=on_done,
                          keep_warm_s=spec["keep_warm_ms"] / 1000 or None)  # fmt: skip
    trigger.attach(md)
    await md.start()
    for t in traders.values():  # as the daemon does: connections open (and kept warm) before the first order
        await t.warm()
    breaker.start()
    deadline = time.monotonic() + 20
    while not breaker.evaluate(pair_id).enabled:
        if time.monotonic() > deadline:
            raise SystemExit(f"ours: pair never enabled: {breaker.evaluate(pair_id).reasons}")
        await asyncio.sleep(0.02)
    trigger.arm(EdgeIntent(pair_id, Decimal(SIZE), Decimal(EDGE), Decimal(LIMIT)))
    collector = None
    if spec["gc"] == "managed":  # as the daemon runs by default (gc = "managed"): never inside an order
        collector = ManagedGC(0.25, busy=lambda: bool(trigger.in_flight()))
        collector.start()
    sys.stdout.write("READY " + json.dumps({"fast_connected": client.fast_connected}) + "\n")
    sys.stdout.flush()

    async def http_probe(n: int) -> dict[str, Any]:
        # The executor's HTTP client (crossbook.execution.http1: its pool, connections kept alive as at the
        # venues) against the floor: the same request bytes written on a connection opened beforehand
        # (closed after the reply). The pool adds Content-Type itself (a fixed header of the venue client).
        http = traders["polymarket"].http  # type: ignore[attr-defined]
        pool = http.pool
        target = http.base_path + "/_bench/http"
        body = b'{"order":' + b"0" * 900 + b"}"
        headers = {"POLY_ADDRESS": spec["address"], "POLY_SIGNATURE": "x" * 44, "POLY_TIMESTAMP": "1700000000",
                   "POLY_API_KEY": API_KEY, "POLY_PASSPHRASE": "p" * 64}  # fmt: skip
        host, port = spec["poly_rest"].removeprefix("http://").split(":")
        raw = pool.build("POST", target, headers, body).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
        starts: dict[str, list[int]] = {"client": [], "raw": []}
        await pool.warm(1)
        for _ in range(n):
            t = _now()
            await pool.request("POST", target, headers, body)
            starts["client"].append(t)
            r, w = await asyncio.open_connection(host, int(port))
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.sleep(0.001)
            t = _now()
            w.write(raw)
            await r.read()
            w.close()
            starts["raw"].append(t)
        return starts

    poller = BusyPoll()

    async def poll(on: int) -> dict[str, Any]:
        # Busy-polling (``busy_poll = true`` in the daemon): on only while this pipeline is measured, so it
        # never takes the shared CPU from the other pipelines' children.
        if on and spec["busy_poll"]:
            poller.start()
        else:
            poller.stop()
        return {"busy_poll": poller.running}

    await _serve_stdin({"HTTP": http_probe, "POLL": poll})
    poller.stop()
    if collector is not None:
        collector.stop()
    await trigger.stop()
    await breaker.stop()
    for t in traders.values():
        await t.close()
    await md.stop()
    if store is not None:
        await store.close()
    fast = client.fast_connected
    await client.close()
    pools = {v: dataclasses.asdict(t.http.pool.stats) for v, t in traders.items()}  # type: ignore[attr-defined]
    sys.stdout.write("BYE " + json.dumps({"fast_connected": fast, "fires": len(trigger.firings), "http": pools,
                                          "gc": collector.stats() if collector else None}) + "\n")  # fmt: skip
    sys.stdout.flush()


async def _wait_stop() -> None:
    await _serve_stdin({})


async def _serve_stdin(commands: dict[str, Callable[[int], Any]]) -> None:
    """Harness commands on stdin: ``STOP``, or ``NAME n`` answered with ``NAME {json}`` on stdout."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().split()
        if not line or line[0] == "STOP":
            return
        if line[0] in commands:
            out = await commands[line[0]](int(line[1]))
            sys.stdout.write(f"{line[0]} {json.dumps(out)}\n")
            sys.stdout.flush()


# =====================================================================================================
# child: baseline (picows + orjson + dict book + eth-account in process + an aiohttp POST)
# =====================================================================================================
S6 = 10**6  # baseline fixed point: micro-dollars and micro-shares


def scaled(text: str) -> int:
    """Exact decimal string → int × 10**6 (no float, no Decimal)."""
    neg = text.startswith("-")
    if neg:
        text = text[1:]
    whole, _, frac = text.partition(".")
    v = int(whole or "0") * S6 + int((frac + "000000")[:6])
    return -v if neg else v


def fmt6(v: int, places: int) -> str:
    q = 10 ** (6 - places)
    return f"{v // S6}.{(v % S6) // q:0{places}d}"


@dataclass
class DictBooks:
    poly_bids: dict[int, int] = field(default_factory=dict)
    poly_asks: dict[int, int] = field(default_factory=dict)
    poly_ok: bool = False
    kal_yes: dict[int, int] = field(default_factory=dict)
    kal_no: dict[int, int] = field(default_factory=dict)
    kal_ok: bool = False
    kal_seq: dict[int, int] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)  # venue → last update or heartbeat (monotonic ns)


async def child_baseline(spec: dict[str, Any]) -> None:
    import aiohttp
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from eth_account import Account
    from eth_account.messages import encode_typed_data
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    from crossbook.venues.polymarket.sim import _ORDER_V2_FIELDS, EXCHANGE_V2

    account = Account.from_key(bytes.fromhex(WALLET_HEX))
    rsa_key = serialization.load_der_private_key(base64.b64decode(spec["kalshi_der"]), password=None)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    l2_secret = base64.urlsafe_b64decode(spec["api_secret"])
    yes, ticker = spec["yes_token"], spec["ticker"]
    books = DictBooks()
    size_cap, edge, limit = scaled(SIZE), scaled(EDGE), scaled(LIMIT)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0))
    state = {"armed": True, "in_flight": False}
    marks: dict[str, int] = {}

    def kalshi_headers(method: str, path: str) -> dict[str, str]:
        ts = str(time.time_ns() // 1_000_000)
        sig = rsa_key.sign(f"{ts}{method}{path}".encode(), pss, hashes.SHA256())  # type: ignore[union-attr,call-arg,arg-type]
        return {"KALSHI-ACCESS-KEY": KALSHI_KEY_ID, "KALSHI-ACCESS-TIMESTAMP": ts,
                "KALSHI-ACCESS-SIGNATURE": base64.b64encode(sig).decode()}  # fmt: skip

    def kfee_num(p: int) -> int:
        """Kalshi's fee per share × 100 × S6: 7 × p × (1 − p) / S6 (kept exact by scaling)."""
        return 7 * p * (S6 - p)

    def top_edge() -> bool:
        if not (books.poly_ok and books.kal_ok and books.poly_asks and books.kal_yes):
            return False
        ya, na = min(books.poly_asks), S6 - max(books.kal_yes)  # YES on Polymarket, NO on Kalshi
        if ya > limit or na > limit:
            return False
        # ya + na + 0.07·na·(1 − na) < 1 − edge, all × 100·S6 to stay in integers.
        return 100 * S6 * (ya + na) + kfee_num(na) < 100 * S6 * (S6 - edge)

    def size() -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]] | None:
        a = sorted((p, s) for p, s in books.poly_asks.items() if p <= limit)
        b = sorted(((S6 - p, s) for p, s in books.kal_yes.items() if S6 - p <= limit))
        got, i, j = 0, 0, 0
        al = a[0][1] if a else 0
        bl = b[0][1] if b else 0
        wa: list[tuple[int, int]] = []
        wb: list[tuple[int, int]] = []
        while i < len(a) and j < len(b) and got < size_cap:
            pa, pb = a[i][0], b[j][0]
            if 100 * S6 * (pa + pb) + kfee_num(pb) >= 100 * S6 * (S6 - edge):
                break
            q = min(al, bl, size_cap - got)
            wa.append((pa, q))
            wb.append((pb, q))
            got, al, bl = got + q, al - q, bl - q
            if al <= 0:
                i += 1
                al = a[i][1] if i < len(a) else 0
            if bl <= 0:
                j += 1
                bl = b[j][1] if j < len(b) else 0
        n = got // S6 * S6
        while n >= 5 * S6:
            cost, fees, left = 0, 0, n
            for p, q in wa:
                t = min(q, left)
                cost, left = cost + p * t // S6, left - t
            left = n
            for p, q in wb:
                t = min(q, left)
                cost, left = cost + p * t // S6, left - t
                fees += -(-7 * t * p * (S6 - p) // (100 * S6 * S6 * 10_000)) * 10_000  # ceil to the cent
            if cost + fees < n * (S6 - edge) // S6:
                return n, wa, wb
            n -= S6
        return None

    async def trade(n: int, wa: list[tuple[int, int]], wb: list[tuple[int, int]]) -> None:
        ok = True
        legs: list[tuple[str, str, str]] = []
        try:
            limit1 = wa[-1][0]
            usdc = n * limit1 // S6
            struct: dict[str, Any] = {
                "salt": int.from_bytes(os.urandom(6), "big"), "maker": account.address, "signer": account.address,
                "tokenId": yes, "makerAmount": str(usdc), "takerAmount": str(n), "side": "BUY", "signatureType": 0,
                "timestamp": str(time.time_ns() // 1_000_000), "metadata": "0x" + "00" * 32,
                "builder": "0x" + "00" * 32,
            }  # fmt: skip
            message = {k: (0 if k == "side" else int(struct[k]) if t.startswith("uint") else struct[k])
                       for k, t in _ORDER_V2_FIELDS}  # fmt: skip
            typed = {
                "types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                           {"name": "chainId", "type": "uint256"},
                                           {"name": "verifyingContract", "type": "address"}],
                          "Order": [{"name": k, "type": t} for k, t in _ORDER_V2_FIELDS]},
                "primaryType": "Order",
                "domain": {"name": "Polymarket CTF Exchange", "version": "2", "chainId": 137,
                           "verifyingContract": EXCHANGE_V2},
                "message": message,
            }  # fmt: skip
            marks["sign0"] = _now()
            signed = Account.sign_message(encode_typed_data(full_message=typed), private_key=account.key)
            marks["sign1"] = _now()
            wire = {**struct, "expiration": "0", "signature": "0x" + bytes(signed.signature).hex()}
            body = orjson.dumps({"order": wire, "owner": API_KEY, "orderType": "FOK", "deferExec": False,
                                 "postOnly": False})  # fmt: skip
            ts = str(int(time.time()))
            mac = hmac.new(l2_secret, ts.encode() + b"POST/order" + body, hashlib.sha256).digest()
            headers = {"POLY_ADDRESS": account.address, "POLY_SIGNATURE": base64.urlsafe_b64encode(mac).decode(),
                       "POLY_TIMESTAMP": ts, "POLY_API_KEY": API_KEY, "POLY_PASSPHRASE": spec["passphrase"],
                       "Content-Type": "application/json"}  # fmt: skip
            marks["l2_1"] = _now()
            async with session.post(spec["poly_rest"] + "/order", data=body, headers=headers) as resp:
                reply = orjson.loads(await resp.read())
            filled = scaled(str(reply.get("takingAmount") or "0")) if reply.get("success") else 0
            legs.append(("polymarket", str(resp.status), fmt6(filled, 2)))
            ok = ok and filled == n
            # The hedge: NO on Kalshi up to its plan + 0.02 (the executor's default slippage).
            hedge = min(wb[-1][0] + 20_000, S6 - 10_000)
            kbody = orjson.dumps({
                "ticker": ticker, "side": "no", "action": "buy", "count": n // S6, "count_fp": fmt6(n, 2),
                "no_price_dollars": fmt6(hedge, 4), "client_order_id": os.urandom(16).hex(),
                "time_in_force": "fill_or_kill",
            })  # fmt: skip
            kh = {**kalshi_headers("POST", "/trade-api/v2/portfolio/orders"), "Content-Type": "application/json"}
            async with session.post(spec["kal_rest"] + "/trade-api/v2/portfolio/orders", data=kbody, headers=kh) as r2:
                rep2 = orjson.loads(await r2.read())
            order = rep2.get("order") or {}
            legs.append(("kalshi", str(r2.status), str(order.get("fill_count_fp"))))
            ok = ok and scaled(str(order.get("fill_count_fp") or "0")) == n
        except Exception as exc:  # report, never hang the harness
            ok = False
            legs.append(("error", type(exc).__name__, str(exc)[:200]))
        state["in_flight"] = False
        sys.stdout.write("D " + json.dumps({"ok": ok, "status": "hedged" if ok else "failed", "legs": legs,
                                            "marks": dict(marks)}) + "\n")  # fmt: skip
        sys.stdout.flush()
        check(_now())  # re-arm if the edge closed meanwhile

    def check(t: int) -> None:
        if state["in_flight"]:
            return
        edge_now = top_edge()
        if not state["armed"]:
            if not edge_now:
                state["armed"] = True  # the edge closed: the next opening may fire
            return
        if not edge_now:
            return
        if t - books.last.get("polymarket", 0) > 500_000_000 or t - books.last.get("kalshi", 0) > 500_000_000:
            return  # stale: no data is better than stale data
        marks["edge"] = _now()
        plan = size()
        if plan is None:
            return
        marks["sized"] = _now()
        state["armed"], state["in_flight"] = False, True
        asyncio.get_running_loop().create_task(trade(*plan))

    def on_poly(data: bytes, t: int) -> None:
        msg = orjson.loads(data)
        for ev in msg if isinstance(msg, list) else (msg,):
            kind = ev.get("event_type")
            if kind == "book" and ev.get("asset_id") == yes:
                books.poly_bids = {scaled(lv["price"]): scaled(lv["size"]) for lv in ev["bids"]}
                books.poly_asks = {scaled(lv["price"]): scaled(lv["size"]) for lv in ev["asks"]}
                books.poly_ok = True
            elif kind == "price_change":
                for ch in ev["price_changes"]:
                    if ch.get("asset_id") != yes:
                        continue
                    side = books.poly_bids if ch["side"] == "BUY" else books.poly_asks
                    p, s = scaled(ch["price"]), scaled(ch["size"])
                    if s:
                        side[p] = s
                    else:
                        side.pop(p, None)
        books.last["polymarket"] = t

    def on_kalshi(data: bytes, t: int) -> None:
        msg = orjson.loads(data)
        kind = msg.get("type")
        if kind == "orderbook_snapshot":
            body = msg["msg"]
            books.kal_yes = {scaled(p): scaled(s) for p, s in body.get("yes_dollars_fp", [])}
            books.kal_no = {scaled(p): scaled(s) for p, s in body.get("no_dollars_fp", [])}
            books.kal_seq[msg["sid"]] = msg["seq"]
            books.kal_ok = True
        elif kind == "orderbook_delta":
            sid, seq = msg["sid"], msg["seq"]
            if books.kal_seq.get(sid, -1) + 1 != seq:
                books.kal_ok = False  # a gap: this baseline would resubscribe; the bench never has one
            books.kal_seq[sid] = seq
            body = msg["msg"]
            side = books.kal_yes if body["side"] == "yes" else books.kal_no
            p = scaled(body["price_dollars"])
            s = side.get(p, 0) + scaled(body["delta_fp"])
            if s > 0:
                side[p] = s
            else:
                side.pop(p, None)
        books.last["kalshi"] = t

    class Listener(WSListener):
        def __init__(self, venue: str, handler: Callable[[bytes, int], None], subscribe: bytes) -> None:
            self.venue, self.handler, self.subscribe = venue, handler, subscribe

        def on_ws_connected(self, transport: WSTransport) -> None:
            sock = transport.underlying_transport.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transport.send(WSMsgType.TEXT, self.subscribe)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            t = _now()
            mt = frame.msg_type
            if mt == WSMsgType.PING or mt == WSMsgType.PONG:
                books.last[self.venue] = t
                return
            if mt != WSMsgType.TEXT:
                return
            data = frame.get_payload_as_bytes()
            if data == b"PONG":
                books.last[self.venue] = t
                return
            marks.clear()
            marks["rx"] = t
            self.handler(data, t)
            marks["applied"] = _now()
            check(t)

    poly_sub = orjson.dumps({"assets_ids": [yes], "type": "market", "custom_feature_enabled": True})
    kal_sub = orjson.dumps({"id": 1, "cmd": "subscribe",
                            "params": {"channels": ["orderbook_delta"], "market_tickers": [ticker]}})  # fmt: skip
    tp, _ = await ws_connect(lambda: Listener("polymarket", on_poly, poly_sub), spec["poly_ws"],
                             enable_auto_pong=True)  # fmt: skip
    handshake = kalshi_headers("GET", "/trade-api/ws/v2")
    tk, _ = await ws_connect(lambda: Listener("kalshi", on_kalshi, kal_sub), spec["kal_ws"], extra_headers=handshake,
                             enable_auto_pong=True)  # fmt: skip

    async def heartbeats() -> None:  # as our feeds: Polymarket text PING, Kalshi ping frames, every 0.25 s
        while True:
            await asyncio.sleep(0.25)
            tp.send(WSMsgType.TEXT, b"PING")
            tk.send_ping(b"hb")

    hb = asyncio.get_running_loop().create_task(heartbeats())
    deadline = time.monotonic() + 20
    while not (books.poly_ok and books.kal_ok):
        if time.monotonic() > deadline:
            raise SystemExit("baseline: books never arrived")
        await asyncio.sleep(0.02)
    collector = None
    if spec["gc"] == "managed":  # --baseline-gc managed: ours' collection policy, for comparison
        from crossbook.aio import ManagedGC

        collector = ManagedGC(0.25, busy=lambda: state["in_flight"])
        collector.start()
    sys.stdout.write("READY {}\n")
    sys.stdout.flush()
    await _wait_stop()
    if collector is not None:
        collector.stop()
    hb.cancel()
    tp.disconnect()
    tk.disconnect()
    await session.close()
    sys.stdout.write("BYE {}\n")
    sys.stdout.flush()


# =====================================================================================================
# harness
# =====================================================================================================
def ws_frame(payload: bytes) -> bytes:
    """An unmasked server TEXT frame (what the sim's websockets server would put on the wire)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


@dataclass
class Arrival:
    venue: str
    t: int
    status: int


def make_sims(seed: int, kalshi_pub: Any, secret: str, address: str) -> tuple[Any, Any, asyncio.Queue[Arrival]]:
    from crossbook.venues.kalshi.sim import KalshiSim
    from crossbook.venues.polymarket.sim import PolymarketSim
    from crossbook.venues.simcore import json_response

    arrivals: asyncio.Queue[Arrival] = asyncio.Queue()

    class Poly(PolymarketSim):
        async def _route_async(self, request: Any, conn: Any) -> Any:
            t = request.received_ns
            if request.path == "/_bench/http":  # the HTTP probe: arrival only, no order
                arrivals.put_nowait(Arrival("probe", t, 200))
                return json_response(200, {})
            response = await super()._route_async(request, conn)
            if request.method == "POST" and request.path == "/order":
                arrivals.put_nowait(Arrival("polymarket", t, response.status_code if response else 0))
            return response

    class Kal(KalshiSim):
        async def _route_async(self, request: Any, conn: Any) -> Any:
            t = request.received_ns
            response = await super()._route_async(request, conn)
            if request.method == "POST" and request.path.endswith("/portfolio/orders"):
                arrivals.put_nowait(Arrival("kalshi", t, response.status_code if response else 0))
            return response

    poly = Poly(seed=seed, markets=1, tick_interval=3600)
    kal = Kal(seed=seed, markets=1, tick_interval=3600, api_keys={KALSHI_KEY_ID: kalshi_pub}, ping_interval=5.0)
    for book, levels in ((poly._by_asset[poly.markets[0]].book, POLY_QUIET), (kal._markets[kal.markets[0]].book,
                                                                              KALSHI_QUIET)):  # fmt: skip
        book.tick, book.fair = CENT, (max(levels[0]) + min(levels[1])) // 2 // CENT * CENT
        book.bids, book.asks = dict(levels[0]), dict(levels[1])
        book.pending.clear()
    poly.order_rate = poly.read_rate = (1e9, 1e9)
    kal.write_rate = kal.read_rate = (1e9, 1e9)
    poly.add_api_creds(API_KEY, secret, "bench-pass", address=address)
    return poly, kal, arrivals


@dataclass
class Pipeline:
    name: str
    poly: Any
    kal: Any
    arrivals: asyncio.Queue[Arrival]
    proc: asyncio.subprocess.Process | None = None
    ready: dict[str, Any] = field(default_factory=dict)
    bye: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    async def line(self, prefix: str, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            if not raw:
                raise RuntimeError(f"{self.name}: child exited (rc {await self.proc.wait()})")
            text = raw.decode().rstrip("\n")
            if text.startswith(prefix + " ") or text == prefix:
                return dict(json.loads(text[len(prefix) :].strip() or "{}"))
            print(f"[{self.name}] {text}", file=sys.stderr)

    async def measured(self, on: bool) -> None:
        """Tell a busy-polling child its block starts (poll) or ends (sleep again)."""
        if self.name.endswith("-poll"):
            assert self.proc is not None and self.proc.stdin is not None
            self.proc.stdin.write(f"POLL {int(on)}\n".encode())
            await self.proc.stdin.drain()
            await self.line("POLL", 10)

    def write_edge(self) -> int:
        """Put the cheap YES ask on the Polymarket sim's book and write its frame; t0 just before the write."""
        sim = self.poly
        m = sim._by_asset[sim.markets[0]]
        change = m.book._set("ask", *EDGE_ASK)
        msg = {"event_type": "price_change", "market": m.condition_id, "timestamp": str(time.time_ns() // 10**6),
               "price_changes": sim._entries(m, m.yes_id, [change])}  # fmt: skip
        frame = ws_frame(orjson.dumps(msg))
        (session,) = [s for s, sub in sim._subs.items() if m.yes_id in sub.assets]
        transport = session.conn.transport
        t0 = time.monotonic_ns()
        transport.write(frame)
        return t0

    async def background(self, seconds: float, hz: float) -> None:
        """Market noise without an edge for ``seconds``: the size at the best ask (Polymarket) and best bid
        (Kalshi) moves by a share, alternately, ``hz`` frames a second. Each is a top-of-book change, so the
        feed, the books, the dispatcher and the trigger's top check all run, as they do between edges."""
        if hz <= 0:
            await asyncio.sleep(seconds)
            return
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        pm = self.poly._by_asset[self.poly.markets[0]]
        km = self.kal._markets[self.kal.markets[0]]
        i = 0
        while loop.time() < end:
            i += 1
            if i % 2:
                ask = min(pm.book.asks)
                c = pm.book._set("ask", ask, pm.book.asks[ask] + (SHARE if i % 4 == 1 else -SHARE))
                msg = {"event_type": "price_change", "market": pm.condition_id, "timestamp": "1",
                       "price_changes": self.poly._entries(pm, pm.yes_id, [c])}  # fmt: skip
                for session in self.poly._subs:
                    self.poly.deliver(session, "price_change", msg)
            else:
                bid = max(km.book.bids)
                c = km.book._set("bid", bid, km.book.bids[bid] + (SHARE if i % 4 == 2 else -SHARE))
                for session, conn in self.kal._conns.items():
                    for sub in conn.subs.values():
                        if sub.channel == "orderbook_delta":
                            self.kal.deliver(session, "orderbook_delta", self.kal._delta_frame(sub, km, c, 1))
            await asyncio.sleep(1 / hz)
        await asyncio.sleep(0.002)  # the last noise frame is applied before the edge frame is written

    def restore(self) -> None:
        """Both sims' books back to quiet (what the orders took, and the edge level), announced as frames."""
        from crossbook.venues.simcore import Change

        for sim, levels, is_poly in ((self.poly, POLY_QUIET, True), (self.kal, KALSHI_QUIET, False)):
            m = sim._by_asset[sim.markets[0]] if is_poly else sim._markets[sim.markets[0]]
            book = m.book
            book.pending.clear()
            changes: list[Change] = []
            for side, want in (("bid", levels[0]), ("ask", levels[1])):
                have = book.bids if side == "bid" else book.asks
                for p in sorted(set(have) | set(want)):
                    if have.get(p, 0) != want.get(p, 0):
                        changes.append(book._set(side, p, want.get(p, 0)))
            if not changes:
                continue
            if is_poly:
                msg = {"event_type": "price_change", "market": m.condition_id, "timestamp": "1",
                       "price_changes": sim._entries(m, m.yes_id, changes)}  # fmt: skip
                for session, sub in sim._subs.items():
                    if m.yes_id in sub.assets:
                        sim.deliver(session, "price_change", msg)
            else:
                for session, conn in sim._conns.items():
                    for sub in conn.subs.values():
                        if m.ticker in sub.markets and sub.channel == "orderbook_delta":
                            for c in changes:
                                sim.deliver(session, "orderbook_delta", sim._delta_frame(sub, m, c, 1))


async def one_sample(p: Pipeline, kind: str, round_no: int = -1) -> None:
    while not p.arrivals.empty():
        p.arrivals.get_nowait()
    t0 = p.write_edge()
    try:
        first = await asyncio.wait_for(p.arrivals.get(), 5)
        second = await asyncio.wait_for(p.arrivals.get(), 5)
        done = await p.line("D", 10)
    except TimeoutError:
        p.failures.append(f"{kind}: no order within 5 s of the frame")
        p.restore()
        await asyncio.sleep(0.5)
        return
    ok = done.get("ok") and first.venue == "polymarket" and second.venue == "kalshi"
    ok = ok and first.status == 200 and second.status in (200, 201)
    if not ok:
        p.failures.append(f"{kind}: {first} {second} {done}")
    p.samples.append({"kind": kind, "round": round_no, "t0": t0, "t1": first.t, "t2": second.t, "ok": bool(ok),
                      "marks": done.get("marks", {})})  # fmt: skip
    p.restore()
    gc.collect(1)  # the harness's own garbage, between samples (see harness())


async def http_probe(p: Pipeline, n: int) -> dict[str, Any]:
    """Send → arrival at the sim for the executor's HTTP client (http1, kept-alive connections) vs. a write on a
    connection opened beforehand."""
    assert p.proc is not None and p.proc.stdin is not None
    while not p.arrivals.empty():
        p.arrivals.get_nowait()
    p.proc.stdin.write(f"HTTP {n}\n".encode())
    await p.proc.stdin.drain()
    starts = await p.line("HTTP", 120)
    got = [p.arrivals.get_nowait() for _ in range(p.arrivals.qsize())]
    arrived = [a.t for a in got if a.venue == "probe"]
    if len(arrived) != 2 * n:
        return {"error": f"{len(arrived)} probe arrivals for {2 * n} requests"}
    aio = [(arrived[2 * i] - t) / 1000 for i, t in enumerate(starts["client"])]
    raw = [(arrived[2 * i + 1] - t) / 1000 for i, t in enumerate(starts["raw"])]
    return {"executor_client_us": summary(aio), "write_on_open_connection_us": summary(raw)}


def start_moto(cpu: int | None, tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    exe = shutil.which("moto_server", path=str(VENV_BIN)) or "moto_server"
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=lambda: _pin(cpu))  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.05)


def start_signer(
    tmp: str, kms_url: str, kalshi_der: bytes, api_secret: str, address: str, cpu: int | None,
    keep_warm_ms: int | None = None,
) -> tuple[subprocess.Popen[bytes], str, Path]:  # fmt: skip
    import boto3
    from crossbook_signer.envelope import context, seal  # type: ignore[import-not-found,unused-ignore]

    kms = boto3.client("kms", region_name="us-east-1", endpoint_url=kms_url, aws_access_key_id="testing",
                       aws_secret_access_key="testing", aws_session_token="testing")  # fmt: skip
    key_id = kms.create_key(Description="crossbook bench")["KeyMetadata"]["KeyId"]
    blob = seal(kms, key_id, bytes.fromhex(WALLET_HEX), context("main", "polymarket-key"))
    # The signer knows an API account by name; ServiceSigner sends that name as the order's owner too, so
    # the account is named by its API key (as the daemon's config does: execution.polymarket_api_key).
    sec = seal(kms, key_id, api_secret.encode(), context(API_KEY, "polymarket-api-secret"))
    pas = seal(kms, key_id, b"bench-pass", context(API_KEY, "polymarket-api-passphrase"))
    kal = seal(kms, key_id, kalshi_der, context(KALSHI_KEY_ID, "kalshi-rsa-key"))
    config = Path(tmp) / "signer.toml"
    config.write_text("\n".join([
        f"allowed_uids = [{os.getuid()}]",
        *([f"keep_warm_ms = {keep_warm_ms}"] if keep_warm_ms is not None else []),
        "[kms]", f'key_id = "{key_id}"', "[wallets.main]",
        f'private_key = "{blob}"', f'[polymarket_api."{API_KEY}"]', f'api_key = "{API_KEY}"', f'address = "{address}"',
        f'secret = "{sec}"', f'passphrase = "{pas}"', "[kalshi]", f'key_id = "{KALSHI_KEY_ID}"',
        f'private_key = "{kal}"',
    ]) + "\n")  # fmt: skip
    sock = str(Path(tmp) / "signer.sock")
    log = Path(tmp) / "signer.log"
    env = {**os.environ, **AWS_ENV, "AWS_ENDPOINT_URL_KMS": kms_url}
    proc = subprocess.Popen([sys.executable, "-m", "crossbook_signer", "--socket", sock, "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=log.open("wb"), env=env,
                            preexec_fn=lambda: _pin(cpu))  # fmt: skip
    deadline = time.monotonic() + 30
    while "ready on" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"signer did not start:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    return proc, sock, log


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = min(len(s) - 1, max(0, round(q * (len(s) - 1))))
    return s[k]


def summary(xs: list[float]) -> dict[str, Any]:
    return {"n": len(xs), "p50": pct(xs, 0.5), "p99": pct(xs, 0.99), "p999": pct(xs, 0.999),
            "mean": statistics.fmean(xs) if xs else float("nan"), "max": max(xs) if xs else float("nan")}  # fmt: skip


OURS_SEGMENTS = [
    ("frame write → feed callback (kernel, loop wake)", "t0", "rx"),
    ("feed → BookSet → change dispatch", "rx", "disp"),
    ("dispatch → trigger looks at the pair", "disp", "detected"),
    ("trigger: top check", "detected", "prime0"),
    ("trigger: signer prime written", "prime0", "prime1"),
    ("trigger: breaker, plan at the top", "prime1", "start"),
    ("executor: plan check + gate (both legs)", "start", "gated"),
    ("executor: leg orders → trader", "gated", "prep0"),
    ("trader: order struct → signer call", "prep0", "sign0"),
    ("signing request written (one call: sign+body+L2)", "sign0", "sent"),
    ("signer works ‖ daemon → reply read", "sent", "sign1"),
    ("reply read → HTTP write → arrival at the sim", "sign1", "t1"),
]
# The compiled path (EdgeWatch fired from MarketData's frame listener, before the batched change dispatch):
# the signing request leaves first; the rows marked ‖ run while the signer signs (they overlap its round trip
# and are left out of the tail attribution).
OURS_COMPILED_SEGMENTS = [
    ("frame write → feed callback (kernel, loop wake)", "t0", "rx"),
    ("feed → BookSet → frame listener → trigger", "rx", "detected"),
    ("trigger: compiled edge check (EdgeWatch)", "detected", "first"),
    ("executor: first leg order → trader", "first", "prep0"),
    ("trader: order struct → signer call", "prep0", "sign0"),
    ("signing request written (one call: sign+body+L2)", "sign0", "sent"),
    ("‖ plan at the top, breaker", "sent", "start"),
    ("‖ plan check + gate (both legs)", "start", "gated"),
    ("‖ leg 1 checked, intent task created", "gated", "fire"),
    ("‖ → reply read (the loop, or the order path spinning)", "fire", "sign1"),
    ("signer works ‖ daemon → reply read", "sent", "sign1"),
    ("reply read → HTTP write → arrival at the sim", "sign1", "t1"),
]
# The compiled path with the signing request made in the check itself (EdgeWatch with a first leg: the signer
# service's fast path): written before any Python builds the order, which is made (and checked) meanwhile.
OURS_FRAME_SEGMENTS = [
    ("frame write → feed callback (kernel, loop wake)", "t0", "rx"),
    ("feed → BookSet → frame listener → trigger", "rx", "detected"),
    ("trigger: compiled check, signing request made", "detected", "send0"),
    ("signing request written", "send0", "sent"),
    ("‖ plan at the top, breaker", "sent", "start"),
    ("‖ plan check + gate (both legs), leg 1 = plan", "start", "gated"),
    ("‖ → the wait for the reply begins", "gated", "take0"),
    ("‖ → reply read (spinning, or the loop)", "take0", "sign1"),
    ("signer works ‖ daemon → reply read", "sent", "sign1"),
    ("reply read → order checked → HTTP request", "sign1", "http0"),
    ("HTTP request written → arrival at the sim", "http0", "t1"),
]
BASE_SEGMENTS = [
    ("frame write → feed callback (kernel, loop wake)", "t0", "rx"),
    ("orjson + dict book", "rx", "applied"),
    ("edge check + sizing", "applied", "sized"),
    ("task start + build order", "sized", "sign0"),
    ("eth-account sign (in process)", "sign0", "sign1"),
    ("body + L2 HMAC", "sign1", "l2_1"),
    ("HTTP: POST → arrival at the sim", "l2_1", "t1"),
]


def breakdown(p: Pipeline, segments: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    out = []
    for label, a, b in segments:
        xs = []
        for s in p.samples:
            if s["kind"] != "warm" or not s["ok"]:
                continue
            marks = {**s["marks"], "t0": s["t0"], "t1": s["t1"]}
            if a in marks and b in marks and marks[a] and marks[b]:
                xs.append((marks[b] - marks[a]) / 1000)
        out.append({"segment": label, **summary(xs)})
    return out


def tail_attribution(p: Pipeline, segments: list[tuple[str, str, str]], share: float = 0.05) -> dict[str, Any]:
    """Where the slowest ``share`` of warm samples lost their time: per segment, the mean excess over that
    segment's own p50 across those samples (µs), largest first; ``rest`` is what no segment mark covers."""
    ok = [s for s in p.samples if s["kind"] == "warm" and s["ok"]]
    if not ok:
        return {}
    ok.sort(key=lambda s: s["t1"] - s["t0"])
    slow = ok[-max(1, round(len(ok) * share)) :]

    def seg(s: dict[str, Any], a: str, b: str) -> float | None:
        marks = {**s["marks"], "t0": s["t0"], "t1": s["t1"]}
        return (marks[b] - marks[a]) / 1000 if marks.get(a) and marks.get(b) else None

    med = {label: statistics.median([v for s in ok if (v := seg(s, a, b)) is not None] or [0.0])
           for label, a, b in segments}  # fmt: skip
    total_med = statistics.median([(s["t1"] - s["t0"]) / 1000 for s in ok])
    excess: dict[str, float] = {}
    for label, a, b in segments:
        vs = [v - med[label] for s in slow if (v := seg(s, a, b)) is not None]
        excess[label] = statistics.fmean(vs) if vs else 0.0
    total = statistics.fmean([(s["t1"] - s["t0"]) / 1000 - total_med for s in slow])
    ranked = sorted(excess.items(), key=lambda kv: -kv[1])
    return {"n": len(slow), "excess_us": total, "segments": ranked, "rest": total - sum(excess.values())}


async def harness(args: argparse.Namespace) -> dict[str, Any]:
    import uvloop  # noqa: F401  (the children run on it; the harness too, see main)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from crossbook.signing import PrivateKey

    _pin(args.cpu_sim)
    tmp = tempfile.mkdtemp(prefix="cb-t2t-")
    os.chmod(tmp, 0o700)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = rsa_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    address = PrivateKey("0x" + WALLET_HEX).address
    secret = base64.urlsafe_b64encode(os.urandom(32)).decode()
    moto = signer = None
    pg: Any = None
    pipelines: list[Pipeline] = []
    try:
        moto, kms_url = start_moto(args.cpu_sim, tmp)
        pg_url = ""
        if args.store != "off":  # PostgreSQL on the sims' CPU (as the signer: a dependency, not the daemon's core)
            from crossbook.store.embedded_postgres import EmbeddedPostgres
            from crossbook.store.postgres import migrate

            pg = EmbeddedPostgres().start()
            pg_url = pg.url
            await migrate(pg_url)
        signer, sock, _ = start_signer(tmp, kms_url, der, secret, address, args.cpu_signer, args.signer_keep_warm_ms)
        polls = {"off": [""], "on": ["-poll"], "both": ["", "-poll"]}[args.busy_poll]
        names = [f"ours-{t}{x}" for t in args.signer for x in polls] + ["baseline"]
        for i, name in enumerate(names):
            poly, kal, arrivals = make_sims(100 + i, rsa_key.public_key(), secret, address)
            await poly.start()
            await kal.start()
            p = Pipeline(name, poly, kal, arrivals)
            m = poly._by_asset[poly.markets[0]]
            spec = {
                "poly_ws": poly.ws_url, "poly_rest": poly.rest_url, "kal_ws": kal.ws_url, "kal_rest": kal.rest_url,
                "yes_token": m.yes_id, "no_token": m.no_id, "condition": m.condition_id, "ticker": kal.markets[0],
                "signer_socket": sock, "fast": "-fast" in name, "address": address,
                "busy_poll": name.endswith("-poll"),
                "gc": args.baseline_gc if name == "baseline" else args.gc,
                "pg_url": pg_url, "store": args.store, "marks": args.breakdown,
                "keep_warm_ms": args.keep_warm_ms,
                "api_secret": secret, "passphrase": "bench-pass", "kalshi_der": base64.b64encode(der).decode(),
            }  # fmt: skip
            spec_path = Path(tmp) / f"{name}.json"  # 0600 in a 0700 dir: the bench's throwaway keys stay private
            spec_path.touch(0o600)
            spec_path.write_text(json.dumps(spec))
            role = "baseline" if name == "baseline" else "ours"
            p.proc = await asyncio.create_subprocess_exec(
                sys.executable, str(HERE), "--role", role, "--spec", str(spec_path), "--cpu", str(args.cpu_daemon),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONHASHSEED": "0"},
            )  # fmt: skip
            p.ready = await p.line("READY", 60)
            pipelines.append(p)
        # The harness plays the venues: a collection of its own while an order is in flight would delay the
        # arrival stamps of whichever pipeline is measured. Its collections run between samples instead.
        gc.collect()
        gc.freeze()
        gc.disable()
        # Warm-up, then ABAB blocks of warm samples, then samples after idle gaps (also alternated).
        for p in pipelines:
            await p.measured(True)
            for _ in range(args.warmup):
                await p.background(args.gap_ms / 1000, args.background_hz)
                await one_sample(p, "warmup")
            await p.measured(False)
        order = [(k, n) for k, n in (("warm", args.samples), ("idle", args.idle)) if n > 0]
        for kind, n in order:
            gap = (args.gap_ms if kind == "warm" else args.idle_ms) / 1000
            done = rnd = 0
            while done < n:
                block = min(args.block if kind == "warm" else max(1, args.block // 4), n - done)
                for p in pipelines:
                    await p.measured(True)
                    for _ in range(block):
                        if kind == "warm":
                            await p.background(gap, args.background_hz)
                        else:
                            await asyncio.sleep(gap)
                        await one_sample(p, kind, rnd)
                    await p.measured(False)
                done += block
                rnd += 1
        probe: dict[str, Any] = {}
        first_ours = next((p for p in pipelines if p.name.startswith("ours")), None)
        if first_ours is not None and args.http_probe > 0:
            probe = await http_probe(first_ours, args.http_probe)
        for p in pipelines:
            assert p.proc is not None and p.proc.stdin is not None
            p.proc.stdin.write(b"STOP\n")
            await p.proc.stdin.drain()
            with contextlib.suppress(Exception):
                p.bye = await p.line("BYE", 20)
            await asyncio.wait_for(p.proc.wait(), 20)
        result = report(args, pipelines)
        result["http_probe"] = probe
        result["samples"] = {p.name: p.samples for p in pipelines}
        return result
    finally:
        for p in pipelines:
            if p.proc is not None and p.proc.returncode is None:
                p.proc.kill()
            await p.poly.stop()
            await p.kal.stop()
        if pg is not None:
            pg.close()
        for proc in (signer, moto):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def report(args: argparse.Namespace, pipelines: list[Pipeline]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for p in pipelines:
        r: dict[str, Any] = {"failures": p.failures[:10], "n_failures": len(p.failures), "ready": p.ready,
                             "bye": p.bye}  # fmt: skip
        for kind in ("warm", "idle"):
            ok = [s for s in p.samples if s["kind"] == kind and s["ok"]]
            r[kind] = {
                "first_leg_us": summary([(s["t1"] - s["t0"]) / 1000 for s in ok]),
                "both_legs_us": summary([(s["t2"] - s["t0"]) / 1000 for s in ok]),
            }
        r["accepted"] = {"polymarket": p.poly.orders_accepted, "kalshi": p.kal.orders_accepted,
                         "duplicates": p.poly.stats["orders_duplicate"] + p.kal.stats["orders_duplicate"],
                         "signature_refused": p.poly.stats["order_signature_refused"]
                         + p.poly.stats["l2_signature_refused"]}  # fmt: skip
        total = sum(1 for s in p.samples)
        r["verified"] = (not p.failures and total > 0 and p.poly.orders_accepted == total
                         and p.kal.orders_accepted == total and r["accepted"]["duplicates"] == 0)  # fmt: skip
        compiled = sum(1 for s in p.samples if s["marks"].get("first")) * 2 > len(p.samples)
        made = sum(1 for s in p.samples if s["marks"].get("send0")) * 2 > len(p.samples)
        segments = (BASE_SEGMENTS if p.name == "baseline" else OURS_FRAME_SEGMENTS if made
                    else OURS_COMPILED_SEGMENTS if compiled else OURS_SEGMENTS)  # fmt: skip
        r["breakdown"] = breakdown(p, segments)
        r["tail"] = tail_attribution(p, [seg for seg in segments if not seg[0].startswith("‖")])
        rows[p.name] = r
    base = rows.get("baseline")
    by_name = {p.name: p for p in pipelines}
    base_pipeline = by_name.get("baseline")
    for name, r in rows.items():
        if base is None or base_pipeline is None or name == "baseline":
            continue
        r["ratio_vs_baseline"] = {
            f"{kind}_{leg}_{q}": r[kind][leg][q] / base[kind][leg][q]
            for kind in ("warm", "idle") for leg in ("first_leg_us", "both_legs_us") for q in ("p50", "p99", "p999")
            if base[kind][leg][q] and base[kind][leg][q] == base[kind][leg][q]
        }  # fmt: skip
        # Per ABAB round (one block of each pipeline, back to back): the p50 ratio, so drift between rounds
        # shows as a band instead of hiding in the pooled figure.
        per_round = []
        for rnd in sorted({s["round"] for s in base_pipeline.samples if s["kind"] == "warm"}):
            mine = [(s["t1"] - s["t0"]) / 1000 for s in by_name[name].samples
                    if s["kind"] == "warm" and s["ok"] and s["round"] == rnd]  # fmt: skip
            theirs = [(s["t1"] - s["t0"]) / 1000 for s in base_pipeline.samples
                      if s["kind"] == "warm" and s["ok"] and s["round"] == rnd]  # fmt: skip
            if mine and theirs:
                per_round.append(statistics.median(mine) / statistics.median(theirs))
        if per_round:
            r["warm_p50_ratio_rounds"] = {"n": len(per_round), "median": statistics.median(per_round),
                                          "min": min(per_round), "max": max(per_round)}  # fmt: skip
    keys = ("samples", "idle", "warmup", "block", "gap_ms", "idle_ms", "background_hz", "keep_warm_ms", "cpu_sim",
            "cpu_daemon", "cpu_signer", "signer_keep_warm_ms", "busy_poll", "gc", "baseline_gc", "store",
            "breakdown")  # fmt: skip
    config: dict[str, Any] = {k: getattr(args, k) for k in keys}
    config.update(cpus=os.cpu_count(), python=sys.version.split()[0], loadavg=os.getloadavg(), size=SIZE, edge=EDGE,
                  limit=LIMIT)  # fmt: skip
    return {"bench": "tick_to_trade", "config": config, "pipelines": rows}


def print_table(res: dict[str, Any]) -> None:
    rows = res["pipelines"]
    print("tick → first order at the venue (µs; t0 = the edge frame's write, arrival = the request's first bytes "
          "at the sim)")  # fmt: skip
    hdr = f"{'pipeline':<14} {'kind':<5} {'n':>5} {'p50':>9} {'p99':>9} {'p99.9':>9} {'both p50':>9} {'both p99':>9}"
    print(hdr + f" {'p50 ×':>7} {'p99 ×':>7}  verified")
    for name, r in rows.items():
        for kind in ("warm", "idle"):
            f, b = r[kind]["first_leg_us"], r[kind]["both_legs_us"]
            if not f["n"]:
                continue
            ratio = r.get("ratio_vs_baseline", {})
            r50 = ratio.get(f"{kind}_first_leg_us_p50")
            r99 = ratio.get(f"{kind}_first_leg_us_p99")
            print(f"{name:<14} {kind:<5} {f['n']:>5} {f['p50']:>9.1f} {f['p99']:>9.1f} {f['p999']:>9.1f} "
                  f"{b['p50']:>9.1f} {b['p99']:>9.1f} {(f'{r50:.2f}' if r50 else '-'):>7} "
                  f"{(f'{r99:.2f}' if r99 else '-'):>7}  {r['verified']}")  # fmt: skip
    for name, r in rows.items():
        band = r.get("warm_p50_ratio_rounds")
        if band:
            print(f"{name}: warm p50 ratio per ABAB round: median {band['median']:.2f} "
                  f"[{band['min']:.2f}–{band['max']:.2f}] over {band['n']} rounds")  # fmt: skip
    for name, r in rows.items():
        print(f"\nbreakdown, {name} (warm, first leg, µs)")
        print(f"  {'segment':<50} {'p50':>8} {'p99':>8}")
        for seg in r["breakdown"]:
            if seg["n"]:
                print(f"  {seg['segment']:<50} {seg['p50']:>8.1f} {seg['p99']:>8.1f}")
        tail = r.get("tail")
        if tail:
            top = ", ".join(f"{label.split(' (')[0]} +{v:.0f}" for label, v in tail["segments"][:3] if v > 0)
            print(f"  slowest {tail['n']} samples: +{tail['excess_us']:.0f} µs over the median, mostly: {top}")
        if r["n_failures"]:
            print(f"  FAILURES ({r['n_failures']}): {r['failures'][:3]}")
        if name.startswith("ours"):
            print(f"  signer fast path connected: {r['ready'].get('fast_connected')}")
            http, gcs = r["bye"].get("http") or {}, r["bye"].get("gc")
            if http:
                print("  venue connections opened / requests: " + ", ".join(
                    f"{v} {st['opened']} / {st['requests']}" for v, st in http.items()))  # fmt: skip
            if gcs:
                print(f"  managed GC: {gcs['collections']} collections ({gcs['full_collections']} full), "
                      f"{gcs['deferred']} deferred while an order was in flight, longest {gcs['longest_us']:.0f} µs")
    probe = res.get("http_probe") or {}
    if "executor_client_us" in probe:
        a, w = probe["executor_client_us"], probe["write_on_open_connection_us"]
        print(f"\nHTTP client, request handed over → first bytes at the sim (µs, n={a['n']}): the executor's http1 "
              f"session p50 {a['p50']:.1f} p99 {a['p99']:.1f}; same bytes written on an already open "
              f"connection p50 {w['p50']:.1f} p99 {w['p99']:.1f}")  # fmt: skip
    elif probe:
        print(f"\nHTTP probe: {probe}")
    cfg = res["config"]
    print(f"\n(sims + harness on CPU {cfg['cpu_sim']}, daemons on CPU {cfg['cpu_daemon']}, signer on CPU "
          f"{cfg['cpu_signer']}; {cfg['cpus']} CPUs; load average at the end {cfg['loadavg']}; ratios = ours / "
          f"baseline, < 1 is faster; goal p99 ≤ 0.3×)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--role", choices=["harness", "ours", "baseline"], default="harness", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--samples", type=int, default=300, help="warm samples per pipeline")
    ap.add_argument("--idle", type=int, default=30, help="samples after an idle gap, per pipeline")
    ap.add_argument("--warmup", type=int, default=20, help="discarded samples per pipeline first")
    ap.add_argument("--block", type=int, default=20, help="samples per pipeline before switching (ABAB)")
    ap.add_argument("--gap-ms", type=float, default=20.0, help="pause before a warm sample")
    ap.add_argument("--idle-ms", type=float, default=300.0, help="pause before an idle sample")
    ap.add_argument("--signer", default="fast,grpc", help="ours' signer transports: fast, grpc or both")
    ap.add_argument("--busy-poll", choices=["off", "on", "both"], default="off",
                    help="ours with the daemon's busy_poll (the loop polls instead of sleeping, only while its "
                         "own block is measured): off, on, or both as separate pipelines")  # fmt: skip
    ap.add_argument("--gc", choices=["managed", "auto"], default="managed",
                    help="ours: the daemon's garbage collection (default managed, as the daemon: a loop timer, "
                         "never inside an order; auto: Python's thresholds)")  # fmt: skip
    ap.add_argument("--baseline-gc", choices=["managed", "auto"], default="auto",
                    help="the baseline's: auto (a bot as usually written) or managed (ours' policy, for comparison)")
    ap.add_argument("--store", choices=["off", "durable", "async"], default="off",
                    help="ours writes its records to PostgreSQL (embedded, on the sims' CPU) before each order, as "
                         "the daemon does, committed durable or async (execution.records_commit); default off: the "
                         "records' own cost is measured apart (benches/README)")  # fmt: skip
    ap.add_argument("--cpu-sim", type=int, default=0)
    ap.add_argument("--cpu-daemon", type=int, default=1)
    ap.add_argument("--cpu-signer", type=int, default=0,
                    help="the signer's CPU; as deployed, not the daemon's (on 2 CPUs: the sims' CPU, idle while an "
                         "order is in flight)")  # fmt: skip
    ap.add_argument("--background-hz", type=float, default=500.0,
                    help="no-edge top-of-book frames per second during a warm gap (0: silence)")  # fmt: skip
    ap.add_argument("--keep-warm-ms", type=float, default=2.0, help="ours: EdgeTrigger keep_warm_s in ms (0: off)")
    ap.add_argument("--http-probe", type=int, default=50, help="HTTP client probe requests (0: skip)")
    ap.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                    help="ours without the timing wrappers the breakdown needs (a few µs per step): headline only")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--signer-keep-warm-ms", type=int, default=None,
                    help="the signer's keep_warm_ms (a throwaway signature this often when idle; default: the "
                         "signer's own default)")  # fmt: skip
    ap.add_argument("--samples-out", metavar="FILE", help="write every sample (t0, arrivals, marks) as JSON to FILE")
    args = ap.parse_args()
    import uvloop

    if args.role != "harness":
        _pin(args.cpu)
        spec = json.loads(Path(args.spec).read_text())
        uvloop.run(child_ours(spec) if args.role == "ours" else child_baseline(spec))
        return
    args.signer = [s.strip() for s in args.signer.split(",") if s.strip() in ("fast", "grpc")]
    res = uvloop.run(harness(args))
    if args.samples_out:
        Path(args.samples_out).write_text(json.dumps(res.pop("samples"), default=str))
    else:
        res.pop("samples")
    if args.json:
        print(json.dumps(res, indent=1, default=str))
    else:
        print_table(res)
    if not all(r["verified"] for r in res["pipelines"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
