"""Breaker trip latency: how long after a leg's last evidence (update or heartbeat) the pair trips.

The venue simulators stall one leg's heartbeats and data (a connected-but-dead socket); the breaker
must trip once the evidence is older than the limit (500 ms) — never before, and as little after as
the scheduler allows. Each trial reports the evidence age at the moment of the trip; lateness is
that age minus the limit. Prints p50/p99/max over the trials; ``--json`` for machines.

    .venv/bin/python benches/bench_breaker.py --trials 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import statistics
import time

from cryptography.hazmat.primitives.asymmetric import rsa

from crossbook.book.service import MarketData
from crossbook.config import Config
from crossbook.safety import Breaker, PairLegs, PairState
from crossbook.signing import LocalHeaderSigner
from crossbook.venues.kalshi.sim import KalshiSim
from crossbook.venues.polymarket.sim import PolymarketSim


async def run(trials: int, limit_ms: int) -> dict[str, object]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    poly = PolymarketSim(seed=1, markets=1, tick_interval=0.02)
    kal = KalshiSim(seed=1, markets=1, tick_interval=0.02, api_keys={"k": key.public_key()})
    await poly.start()
    await kal.start()
    cfg = Config()
    cfg.polymarket.ws_url, cfg.polymarket.assets = poly.ws_url, list(poly.markets)
    cfg.kalshi.ws_url, cfg.kalshi.markets = kal.ws_url, list(kal.markets)
    cfg.polymarket.ping_interval_s = 0.1
    cfg.polymarket.pong_timeout_s = 5.0  # keep the socket: we measure the breaker, not the reconnect
    md = MarketData(cfg, LocalHeaderSigner("k", key), None)
    await md.start()
    breaker = Breaker(md, stale_after_ms=limit_ms)
    breaker.add_pair(PairLegs("p", poly.markets[0], kal.markets[0]))
    events: list[PairState] = []
    breaker.add_listener(events.append)
    breaker.start()
    lateness: list[float] = []
    try:
        while not breaker.evaluate("p").enabled:  # noqa: ASYNC110 - polls a computed state
            await asyncio.sleep(0.01)
        for _ in range(trials):
            n = len(events)
            poly.stall_heartbeats(limit_ms / 1000 + 0.3)
            deadline = time.monotonic() + 5
            trip = None
            while trip is None and time.monotonic() < deadline:
                trip = next((e for e in events[n:] if not e.enabled), None)
                await asyncio.sleep(0.005)
            if trip is None:
                raise SystemExit("the breaker did not trip within 5 s")
            m = re.search(r"stale for (\d+) ms", "; ".join(trip.reasons))
            if m:
                lateness.append(float(m.group(1)) - limit_ms)
            while not breaker.evaluate("p").enabled:  # noqa: ASYNC110 - polls a computed state
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
    finally:
        await breaker.stop()
        await md.stop()
        await poly.stop()
        await kal.stop()
    lat = sorted(lateness)
    return {
        "limit_ms": limit_ms,
        "trials": len(lat),
        "lateness_ms": {
            "min": lat[0], "p50": statistics.median(lat),
            "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))], "max": lat[-1],
        },
        "never_early": all(x >= 0 for x in lat),
    }


def main() -> None:
    logging.disable(logging.WARNING)  # the trips are the measurement, not news
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--limit-ms", type=int, default=500)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = asyncio.run(run(args.trials, args.limit_ms))
    if args.json:
        print(json.dumps(out))
        return
    lat = out["lateness_ms"]
    assert isinstance(lat, dict)
    print(f"breaker trip after the last evidence, limit {out['limit_ms']} ms, {out['trials']} trials")
    print(f"  lateness beyond the limit: min {lat['min']:.0f} ms, p50 {lat['p50']:.0f} ms, "
          f"p99 {lat['p99']:.0f} ms, max {lat['max']:.0f} ms; never early: {out['never_early']}")
    print("  (ages are whole milliseconds as the breaker reports them; the loop wakes at the exact deadline)")


if __name__ == "__main__":
    main()
