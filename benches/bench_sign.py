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
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=20000, help="warm samples per fast implementation")
    ap.add_argument("--eth-iters", type=int, default=2000, help="warm samples for eth-account (slow)")
    ap.add_argument("--cold", type=int, default=30, help="cold samples (each after 100 ms idle)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--cpu", type=int, default=None, help="pin to this core")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.cpu is not None:
        os.sched_setaffinity(0, {a.cpu})
    orders = make_orders(1000, a.seed, PrivateKey(KEY_HEX).address)
    impls = build(orders)
    check(orders, impls)
    res = run(a.iters, a.cold, impls, a.eth_iters)
    ours, floor, eth = res["crossbook"], res["floor"], res["eth-account"]
    ratios = {
        "warm_p50_vs_floor": ours["warm_p50_us"] / floor["warm_p50_us"],
        "warm_p99_vs_floor": ours["warm_p99_us"] / floor["warm_p99_us"],
        "cold_p50_vs_floor": ours["cold_p50_us"] / floor["cold_p50_us"],
        "eth_account_speedup_p50": eth["warm_p50_us"] / ours["warm_p50_us"],
        "cold_over_warm_p50": ours["cold_p50_us"] / ours["warm_p50_us"],
    }
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "timer_overhead_us": timer_overhead(),
        "coincurve": coincurve.__version__ if hasattr(coincurve, "__version__") else "?",
    }
    if a.json:
        print(json.dumps({"results": res, "ratios": ratios, "meta": meta}, indent=2))
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


if __name__ == "__main__":
    main()
