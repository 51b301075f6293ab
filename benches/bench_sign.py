"""Order-signing benchmark: one Polymarket V2 order → (EIP-712 hash, 65-byte signature), same run.

Implementations, all on the same random orders (fields as strings, the way orders are built):

* ``crossbook``        ``crossbook.signing.sign_polymarket_order(order, PrivateKey)``: dict → Rust
  (parse fields, EIP-712 hash, libsecp256k1 sign with the key in locked memory) → hex strings.
* ``floor``            ``_core.polymarket_order_digest(order)`` (our dict parse + struct hash) +
  ``coincurve.PrivateKey.sign_recoverable(digest, hasher=None)`` (libsecp256k1 via cffi). This is
  "the coincurve signing floor plus the hash", the target of the ≤ 1.3× rule.
* ``eth-account``      ``encode_typed_data(full_message=...)`` + ``LocalAccount.sign_message``.
* ``coincurve only``   ``sign_recoverable`` over a fixed digest (context: the bare ECDSA cost).
* ``digest only``      ``_core.polymarket_order_digest(order)`` (context: parse + hash cost).

Every implementation's output is checked against ours before timing (same hash, same signature
bytes modulo the v encoding), or the script exits 1.

Timing: each call is timed alone with ``time.perf_counter_ns`` (p50/p99 include the timer overhead,
printed, never subtracted). Warm: tight loop after a warm-up, implementations interleaved in rounds
so frequency drift hits all alike. Cold: one call after a 100 ms sleep, repeated. GC stays enabled.

Second part (skip with ``--no-rtt``): the signer round trip (G5). A real ``crossbook-signer`` process
(keys sealed with moto's KMS in server mode, as in the tests) is asked to sign one order through
``SignerClient`` on uvloop (the daemon's loop), against the floor "raw UDS ping-pong + signing":

* ``raw UDS``          blocking ``sendall``/``recv`` of a frame the size of a sign request to a
  Python process that answers each with a frame the size of a sign reply (no parsing, no work).
* ``fast path``        ``SignerClient.sign_polymarket_order(order, wallet=...)`` over ``<socket>.fast``.
* ``fast, session``    the same with a session key (policy check + re-sealed session blob per order).
* ``gRPC via relay``   the same call with ``fast=False`` (grpc.aio through the SO_PEERCRED relay).

Each call has a fresh request id, so every one is really signed. Warm and cold (after 100 ms idle)
as above, contenders interleaved. The ratio is p50 over (raw p50 + sign p50) and p99 over (raw p99 +
sign p99), "sign" being the ``crossbook`` row of the first part. ``--cpu`` pins this process (client)
and ``--server-cpu`` pins the signer and the echo server (set both: G5 pins client and server apart).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import coincurve
from eth_account import Account
from eth_account.messages import encode_typed_data

from crossbook import _core
from crossbook.signing import PrivateKey, sign_polymarket_order

KEY_HEX = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
EXCHANGE = "0xE111180000d2663C0091e4f400237545B87B996B"
ORDER_FIELDS = [
    {"name": "salt", "type": "uint256"},
    {"name": "maker", "type": "address"},
    {"name": "signer", "type": "address"},
    {"name": "tokenId", "type": "uint256"},
    {"name": "makerAmount", "type": "uint256"},
    {"name": "takerAmount", "type": "uint256"},
    {"name": "side", "type": "uint8"},
    {"name": "signatureType", "type": "uint8"},
    {"name": "timestamp", "type": "uint256"},
    {"name": "metadata", "type": "bytes32"},
    {"name": "builder", "type": "bytes32"},
]
DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
ZERO32 = "0x" + "00" * 32


def make_orders(n: int, seed: int, address: str) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        size = rng.randint(1, 10_000) * 10_000
        price = rng.randint(1, 99)
        out.append(
            {
                "salt": str(rng.getrandbits(62)),
                "maker": address,
                "signer": address,
                "tokenId": str(rng.getrandbits(255)),
                "makerAmount": str(size * price // 100),
                "takerAmount": str(size),
                "side": rng.choice(["BUY", "SELL"]),
                "signatureType": 0,
                "timestamp": str(1_713_398_400_000 + rng.randint(0, 10**9)),
                "metadata": ZERO32,
                "builder": ZERO32,
            }
        )
    return out


def eth_typed(order: dict[str, Any]) -> dict[str, Any]:
    msg = {f["name"]: order[f["name"]] for f in ORDER_FIELDS}
    msg["side"] = 0 if order["side"] == "BUY" else 1
    for k in ("salt", "tokenId", "makerAmount", "takerAmount", "timestamp"):
        msg[k] = int(msg[k])
    return {
        "types": {"EIP712Domain": DOMAIN_FIELDS, "Order": ORDER_FIELDS},
        "primaryType": "Order",
        "domain": {"name": "Polymarket CTF Exchange", "version": "2", "chainId": 137, "verifyingContract": EXCHANGE},
        "message": msg,
    }


def build(orders: list[dict[str, Any]]) -> dict[str, Callable[[int], object]]:
    key = PrivateKey(KEY_HEX)
    acct = Account.from_key(KEY_HEX)
    cc = coincurve.PrivateKey(bytes.fromhex(KEY_HEX[2:]))
    digest = _core.polymarket_order_digest
    fixed = digest(orders[0])
    n = len(orders)

    def ours(i: int) -> object:
        return sign_polymarket_order(orders[i % n], key)

    def floor(i: int) -> object:
        return cc.sign_recoverable(digest(orders[i % n]), hasher=None)

    def eth(i: int) -> object:
        return acct.sign_message(encode_typed_data(full_message=eth_typed(orders[i % n])))

    def cc_only(i: int) -> object:
        return cc.sign_recoverable(fixed, hasher=None)

    def digest_only(i: int) -> object:
        return digest(orders[i % n])

    return {
        "crossbook": ours,
        "floor": floor,
        "eth-account": eth,
        "coincurve only": cc_only,
        "digest only": digest_only,
    }


def check(orders: list[dict[str, Any]], impls: dict[str, Callable[[int], object]]) -> None:
    for i in range(min(len(orders), 50)):
        ours = impls["crossbook"](i)
        assert isinstance(ours, tuple)
        h, sig = ours
        floor = impls["floor"](i)
        assert isinstance(floor, bytes)
        if sig != "0x" + floor[:64].hex() + format(floor[64] + 27, "02x"):
            sys.exit(f"floor signature differs from ours on order {i}")
        eth: Any = impls["eth-account"](i)
        if h != "0x" + bytes(eth.message_hash).hex() or sig != "0x" + bytes(eth.signature).hex():
            sys.exit(f"eth-account differs from ours on order {i}")


def pct(xs: list[int], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] / 1000.0


def timer_overhead() -> float:
    pc = time.perf_counter_ns
    xs = []
    for _ in range(10000):
        t0 = pc()
        xs.append(pc() - t0)
    return pct(xs, 0.5)


def run(iters: int, cold: int, impls: dict[str, Callable[[int], object]], eth_iters: int) -> dict[str, Any]:
    pc = time.perf_counter_ns
    names = list(impls)
    warm: dict[str, list[int]] = {k: [] for k in names}
    for name in names:  # warm-up
        f = impls[name]
        for i in range(200):
            f(i)
    rounds = 10
    for r in range(rounds):
        for name in names:
            f = impls[name]
            count = (eth_iters if name == "eth-account" else iters) // rounds
            base = r * count
            xs = warm[name]
            for i in range(base, base + count):
                t0 = pc()
                f(i)
                xs.append(pc() - t0)
    coldx: dict[str, list[int]] = {k: [] for k in names}
    for j in range(cold):
        for name in names:
            time.sleep(0.1)
            f = impls[name]
            t0 = pc()
            f(j)
            coldx[name].append(pc() - t0)
    out: dict[str, Any] = {}
    for name in names:
        out[name] = {
            "warm_p50_us": pct(warm[name], 0.5),
            "warm_p99_us": pct(warm[name], 0.99),
            "warm_mean_us": statistics.fmean(warm[name]) / 1000.0,
            "cold_p50_us": pct(coldx[name], 0.5),
            "cold_p99_us": pct(coldx[name], 0.99),
            "samples": len(warm[name]),
        }
    return out


# --- signer round trip (G5) ---------------------------------------------------------------------

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_SESSION_TOKEN": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}

# The raw peer: answer every read with a reply-sized frame. One sign request arrives in one read on a
# Unix socket (one send of a few hundred bytes), so no framing work is needed to be a fair floor.
ECHO_SERVER = """
import os, socket, sys
path, reply_size = sys.argv[1], int(sys.argv[2])
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(1)
print("ready", flush=True)
conn, _ = srv.accept()
reply = bytes(reply_size)
while True:
    if not conn.recv(65536):
        break
    conn.sendall(reply)
"""


def _pin(cpu: int | None) -> Callable[[], None] | None:
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})  # before exec: every thread of the child inherits it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(pred: Callable[[], bool], what: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"{what} did not start")
        time.sleep(0.02)


class Peers:
    """moto KMS, the signer and the raw echo server, each a subprocess in a private temp dir."""

    def __init__(self, server_cpu: int | None, keep_warm_ms: int | None) -> None:
        self.keep_warm_ms = keep_warm_ms
        self.dir = tempfile.mkdtemp(prefix="cb-bench-sign-")
        os.chmod(self.dir, 0o700)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.server_cpu = server_cpu
        self.socket = os.path.join(self.dir, "signer.sock")
        self.echo_socket = os.path.join(self.dir, "echo.sock")

    def start(self, reply_size: int) -> None:
        import boto3
        from crossbook_signer.envelope import context, seal

        port = _free_port()
        moto_exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
        moto = subprocess.Popen(
            [moto_exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.procs.append(moto)

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        _wait(listening, "moto_server", moto)
        url = f"http://127.0.0.1:{port}"
        kms = boto3.client(
            "kms", region_name="us-east-1", endpoint_url=url, aws_access_key_id="bench", aws_secret_access_key="bench"
        )
        key_id = kms.create_key(Description="crossbook bench")["KeyMetadata"]["KeyId"]
        blob = seal(kms, key_id, bytes.fromhex(KEY_HEX[2:]), context("main", "polymarket-key"))
        config = os.path.join(self.dir, "signer.toml")
        warm = "" if self.keep_warm_ms is None else f"keep_warm_ms = {self.keep_warm_ms}\n"
        Path(config).write_text(
            f'allowed_uids = [{os.getuid()}]\n{warm}[kms]\nkey_id = "{key_id}"\n'
            f'[wallets.main]\nprivate_key = "{blob}"\n'
        )
        env = {**os.environ, **AWS_ENV, "AWS_ENDPOINT_URL_KMS": url}
        self.signer_log = os.path.join(self.dir, "signer.log")
        with open(self.signer_log, "wb") as err:
            signer = subprocess.Popen(
                [sys.executable, "-m", "crossbook_signer", "--socket", self.socket, "--config", config],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                preexec_fn=_pin(self.server_cpu),
            )
        self.procs.append(signer)
        _wait(lambda: b"ready on" in Path(self.signer_log).read_bytes(), "crossbook-signer", signer)
        echo = subprocess.Popen(
            [sys.executable, "-c", ECHO_SERVER, self.echo_socket, str(reply_size)],
            stdout=subprocess.PIPE,
            preexec_fn=_pin(self.server_cpu),
        )
        self.procs.append(echo)
        assert echo.stdout is not None
        if echo.stdout.readline().strip() != b"ready":
            sys.exit("echo server did not start")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _order_for_rtt(orders: list[dict[str, Any]], i: int) -> dict[str, Any]:
    return orders[i % len(orders)]


async def rtt_run(
    peers: Peers,
    orders: list[dict[str, Any]],
    iters: int,
    grpc_iters: int,
    cold: int,
    reps: int,
    reply_size: int,
    paced_scale: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    from crossbook.signing.client import SignerClient

    key = PrivateKey(KEY_HEX)
    fast = SignerClient(peers.socket, fast=True)
    slow = SignerClient(peers.socket, fast=False)
    session = await slow.authorize_session(
        "bench",
        "0x" + "ab" * 20,
        expires_at=int(time.time()) + 3600,
        max_order_notional=Decimal(10**9),
        max_total_notional=Decimal(10**15),
        allowed_token_ids=[o["tokenId"] for o in orders[:2]],  # a session trades a pair's markets, not a thousand
    )
    session_orders = [
        {**o, "maker": session.address, "signer": session.address, "tokenId": orders[i % 2]["tokenId"]}
        for i, o in enumerate(orders)
    ]
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(peers.echo_socket)
    counter = iter(range(10**9))

    # The raw peer moves frames of the real sizes: a framed sign request out, a sign reply back.
    request_frame = bytes(_sign_request_size(orders[0]))

    def raw_ping(i: int) -> None:
        raw.sendall(request_frame)
        got = 0
        while got < reply_size:
            got += len(raw.recv(65536))

    async def fast_sign(i: int) -> None:
        r = await fast.sign_polymarket_order(_order_for_rtt(orders, i), wallet="main", request_id=f"f-{next(counter)}")
        assert r.signature

    async def session_sign(i: int) -> None:
        r = await fast.sign_polymarket_order(
            _order_for_rtt(session_orders, i), session_id=session.session_id, request_id=f"s-{next(counter)}"
        )
        assert r.signature

    async def grpc_sign(i: int) -> None:
        r = await slow.sign_polymarket_order(_order_for_rtt(orders, i), wallet="main", request_id=f"g-{next(counter)}")
        assert r.signature

    # Same answer as local signing, over both transports, before timing anything.
    for i in range(20):
        want = sign_polymarket_order(orders[i], key)
        a = await fast.sign_polymarket_order(orders[i], wallet="main")
        b = await slow.sign_polymarket_order(orders[i], wallet="main")
        if (a.hash, a.signature) != tuple(want) or (b.hash, b.signature) != tuple(want):
            sys.exit(f"the signer's signature differs from local signing on order {i}")
    if not fast.fast_connected:
        sys.exit("the client did not reach the signer's fast path")

    def local_sign(i: int) -> None:
        sign_polymarket_order(_order_for_rtt(orders, i), key)

    # name -> (call, is_async, timed calls per repetition)
    contenders: dict[str, tuple[Callable[[int], Any], bool, int]] = {
        "sign (local)": (local_sign, False, iters),
        "raw UDS": (raw_ping, False, iters),
        "fast path": (fast_sign, True, iters),
        "fast, session": (session_sign, True, iters),
        "gRPC via relay": (grpc_sign, True, grpc_iters),
    }
    pc = time.perf_counter_ns
    for f, is_async, _n in contenders.values():  # warm-up
        for i in range(300):
            r = f(i)
            if is_async:
                await r
    # Warm: contenders take turns in short blocks (ABAB), so a burst of load from elsewhere on the box
    # hits all of them alike. The peers of the raw and signer contenders share a core, so each block
    # starts with untimed calls to make "warm" mean warm for the server process too. Paced: the same
    # with a 1 ms pause after each call, the way orders arrive; back to back, the signer needs ~60 % of
    # its core, and next to a CPU-bound neighbour the kernel's fair share (50 %) then makes it wait
    # whole time slices, which the raw peer (~20 %) never does.
    step = 0

    async def measure(reps: int, scale: float, pause: float) -> list[dict[str, list[int]]]:
        nonlocal step
        rounds, block_warmup = 20, 5
        per_rep: list[dict[str, list[int]]] = []
        for _rep in range(reps):
            warm: dict[str, list[int]] = {k: [] for k in contenders}
            for _rnd in range(rounds):
                for name, (f, is_async, n) in contenders.items():
                    xs = warm[name]
                    for k in range(block_warmup + max(1, int(n * scale) // rounds)):
                        step += 1
                        if is_async:
                            t0 = pc()
                            await f(step)
                            t1 = pc()
                        else:
                            t0 = pc()
                            f(step)
                            t1 = pc()
                        if k >= block_warmup:
                            xs.append(t1 - t0)
                        if pause:
                            await asyncio.sleep(pause)
            per_rep.append(warm)
        return per_rep

    per_rep = await measure(reps, 1.0, 0.0)
    paced_rep = await measure(1, paced_scale, 0.001) if paced_scale > 0 else []
    coldx: dict[str, list[int]] = {k: [] for k in contenders}
    for j in range(cold):
        for name, (f, is_async, _n) in contenders.items():
            await asyncio.sleep(0.1)
            t0 = pc()
            r = f(j)
            if is_async:
                await r
            coldx[name].append(pc() - t0)
    raw.close()
    await fast.close()
    await slow.close()
    pooled = {name: [x for rep in per_rep for x in rep[name]] for name in contenders}
    out: dict[str, Any] = {
        name: {
            "warm_p50_us": pct(pooled[name], 0.5),
            "warm_p99_us": pct(pooled[name], 0.99),
            "warm_mean_us": statistics.fmean(pooled[name]) / 1000.0,
            "cold_p50_us": pct(coldx[name], 0.5),
            "cold_p99_us": pct(coldx[name], 0.99),
            "samples": len(pooled[name]),
            "reps": [{"p50_us": pct(rep[name], 0.5), "p99_us": pct(rep[name], 0.99)} for rep in per_rep],
            **(
                {
                    "paced_p50_us": pct(paced_rep[0][name], 0.5),
                    "paced_p99_us": pct(paced_rep[0][name], 0.99),
                    "paced_samples": len(paced_rep[0][name]),
                }
                if paced_rep
                else {}
            ),
        }
        for name in contenders
    }
    sizes = {"request_frame_bytes": len(request_frame), "reply_frame_bytes": reply_size}
    return out, sizes


def _sign_request_size(order: dict[str, Any]) -> int:
    """Bytes of a framed SignPolymarketOrderRequest for ``order`` (what the fast path sends)."""
    from crossbook._proto import signer_pb2 as pb
    from crossbook.signing.fastframe import HEADER

    req = pb.SignPolymarketOrderRequest(
        request_id="f-123456",
        key=pb.KeyRef(wallet="main"),
        order={k: str(v) for k, v in order.items()},
        version="2",
        chain_id=137,
    )
    return HEADER.size + len(req.SerializeToString())


def _sign_reply_size() -> int:
    from crossbook._proto import signer_pb2 as pb
    from crossbook.signing.fastframe import HEADER

    reply = pb.SignPolymarketOrderReply(
        hash="0x" + "ab" * 32,
        signature="0x" + "cd" * 65,
        audit=pb.Audit(
            request_id="f-123456", decision="signed", key="wallet:main", notional="12.34", signed_at_ms=1 << 40
        ),
    )
    return HEADER.size + len(reply.SerializeToString())


def rtt(args: argparse.Namespace, orders: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    import uvloop

    reply_size = _sign_reply_size()
    peers = Peers(args.server_cpu, args.keep_warm_ms)
    try:
        peers.start(reply_size)
        scale = args.paced / 100
        return uvloop.run(
            rtt_run(peers, orders, args.rtt_iters, args.grpc_iters, args.cold, args.reps, reply_size, scale)
        )
    finally:
        peers.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=20000, help="warm samples per fast implementation")
    ap.add_argument("--eth-iters", type=int, default=2000, help="warm samples for eth-account (slow)")
    ap.add_argument("--cold", type=int, default=30, help="cold samples (each after 100 ms idle)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--cpu", type=int, default=None, help="pin this process (and the client) to this core")
    ap.add_argument("--server-cpu", type=int, default=None, help="pin the signer and the raw echo server here")
    ap.add_argument("--rtt-iters", type=int, default=4000, help="warm round trips per repetition per contender")
    ap.add_argument("--grpc-iters", type=int, default=400, help="of which over gRPC (slow), per repetition")
    ap.add_argument(
        "--paced", type=float, default=25, help="paced pass (1 ms between calls): %% of --rtt-iters; 0 = skip"
    )
    ap.add_argument("--reps", type=int, default=5, help="repetitions of the warm round trips (ratio band)")
    ap.add_argument("--keep-warm-ms", type=int, default=None, help="the signer's keep_warm_ms (default: its own)")
    ap.add_argument("--no-rtt", action="store_true", help="skip the signer round trip (no moto/signer needed)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.cpu is not None:
        os.sched_setaffinity(0, {a.cpu})
    orders = make_orders(1000, a.seed, PrivateKey(KEY_HEX).address)
    impls = build(orders)
    check(orders, impls)
    res = run(a.iters, a.cold, impls, a.eth_iters)
    ours, floor, eth = res["crossbook"], res["floor"], res["eth-account"]
    del impls  # the eth-account/coincurve contenders are done; the round trip part runs alone
    ratios = {
        "warm_p50_vs_floor": ours["warm_p50_us"] / floor["warm_p50_us"],
        "warm_p99_vs_floor": ours["warm_p99_us"] / floor["warm_p99_us"],
        "cold_p50_vs_floor": ours["cold_p50_us"] / floor["cold_p50_us"],
        "eth_account_speedup_p50": eth["warm_p50_us"] / ours["warm_p50_us"],
        "cold_over_warm_p50": ours["cold_p50_us"] / ours["warm_p50_us"],
    }
    rtt_res: dict[str, Any] = {}
    rtt_ratios: dict[str, dict[str, float]] = {}
    sizes: dict[str, Any] = {}
    if not a.no_rtt:
        rtt_res, sizes = rtt(a, orders)
        rtt_ratios = rtt_ratio_table(rtt_res)
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "timer_overhead_us": timer_overhead(),
        "coincurve": coincurve.__version__ if hasattr(coincurve, "__version__") else "?",
        "cpu": a.cpu,
        "server_cpu": a.server_cpu,
        "signer_keep_warm_ms": a.keep_warm_ms,
        "loadavg": os.getloadavg(),
        **sizes,
    }
    if a.json:
        out = {"results": res, "ratios": ratios, "rtt": rtt_res, "rtt_ratios": rtt_ratios, "meta": meta}
        print(json.dumps(out, indent=2))
        return
    print(
        f"Polymarket V2 order signature (hash + sign), µs per call; timer overhead {meta['timer_overhead_us']:.3f} µs"
    )
    print(f"{'implementation':<16}{'warm p50':>10}{'warm p99':>10}{'cold p50':>10}{'cold p99':>10}{'vs ours p50':>13}")
    for name, r in res.items():
        rel = r["warm_p50_us"] / ours["warm_p50_us"]
        print(
            f"{name:<16}{r['warm_p50_us']:>10.2f}{r['warm_p99_us']:>10.2f}"
            f"{r['cold_p50_us']:>10.2f}{r['cold_p99_us']:>10.2f}{rel:>12.2f}×"
        )
    print(
        f"ours / floor (coincurve sign + our hash): p50 {ratios['warm_p50_vs_floor']:.2f}×, "
        f"p99 {ratios['warm_p99_vs_floor']:.2f}×, cold p50 {ratios['cold_p50_vs_floor']:.2f}×  (goal ≤ 1.3×)"
    )
    print(f"eth-account / ours: {ratios['eth_account_speedup_p50']:.1f}× slower  (goal ≥ 8×)")
    print(f"ours cold / warm p50: {ratios['cold_over_warm_p50']:.2f}×")
    if not rtt_res:
        return
    print()
    print(
        f"Signer round trip (one order, SignerClient on uvloop), µs; client cpu {a.cpu}, signer cpu {a.server_cpu}, "
        f"load average {meta['loadavg'][0]:.2f}; frames {sizes['request_frame_bytes']} B out, "
        f"{sizes['reply_frame_bytes']} B back"
    )
    paced = "paced_p50_us" in rtt_res["raw UDS"]
    extra = f"{'paced p50':>11}{'paced p99':>11}" if paced else ""
    print(f"{'path':<22}{'warm p50':>10}{'warm p99':>10}{'cold p50':>10}{'cold p99':>10}{'samples':>9}{extra}")
    sign, raw = rtt_res["sign (local)"], rtt_res["raw UDS"]
    cols = ["warm_p50_us", "warm_p99_us", "cold_p50_us", "cold_p99_us"]
    cols += ["paced_p50_us", "paced_p99_us"] if "paced_p50_us" in raw else []
    floor_row = {k: raw[k] + sign[k] for k in cols}
    rows = {"sign (local)": sign, "raw UDS": raw, "floor: raw UDS + sign": floor_row}
    rows.update({k: v for k, v in rtt_res.items() if k not in rows})
    for name, r in rows.items():
        samples = str(r.get("samples", ""))
        extra = f"{r['paced_p50_us']:>11.1f}{r['paced_p99_us']:>11.1f}" if paced else ""
        print(
            f"{name:<22}{r['warm_p50_us']:>10.1f}{r['warm_p99_us']:>10.1f}"
            f"{r['cold_p50_us']:>10.1f}{r['cold_p99_us']:>10.1f}{samples:>9}{extra}"
        )
    print(f"vs floor (median of {a.reps} repetitions [min–max]; cold: pooled)   goal p99 ≤ 3× (G5 stretch ≤ 1.5×)")
    for name in RTT_PATHS:
        r = rtt_ratios[name]
        band = "  ".join(
            f"warm {q} {r[f'warm_{q}']:.2f}× [{r[f'warm_{q}_min']:.2f}–{r[f'warm_{q}_max']:.2f}]"
            for q in ("p50", "p99")
        )
        paced_s = f"  paced p50 {r['paced_p50']:.2f}×  paced p99 {r['paced_p99']:.2f}×" if "paced_p50" in r else ""
        print(f"  {name:<16} {band}  cold p50 {r['cold_p50']:.2f}×  cold p99 {r['cold_p99']:.2f}×{paced_s}")


RTT_PATHS = ("fast path", "fast, session", "gRPC via relay")


def rtt_ratio_table(res: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each path over the floor (raw UDS + local sign) of the same repetition: median and band."""
    sign, raw = res["sign (local)"], res["raw UDS"]
    out: dict[str, dict[str, float]] = {}
    for name in RTT_PATHS:
        r = res[name]
        row: dict[str, float] = {}
        for q in ("p50", "p99"):
            per_rep = [
                rep[f"{q}_us"] / (rr[f"{q}_us"] + sr[f"{q}_us"])
                for rep, rr, sr in zip(r["reps"], raw["reps"], sign["reps"], strict=True)
            ]
            row[f"warm_{q}"] = statistics.median(per_rep)
            row[f"warm_{q}_min"] = min(per_rep)
            row[f"warm_{q}_max"] = max(per_rep)
            row[f"cold_{q}"] = r[f"cold_{q}_us"] / (raw[f"cold_{q}_us"] + sign[f"cold_{q}_us"])
            if f"paced_{q}_us" in r:
                row[f"paced_{q}"] = r[f"paced_{q}_us"] / (raw[f"paced_{q}_us"] + sign[f"paced_{q}_us"])
        out[name] = row
    return out


if __name__ == "__main__":
    main()
