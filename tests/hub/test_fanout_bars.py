"""The G3 fan-out bars, checked by `make test` with the real benchmark (benches/bench_fanout.py): at
N = 1000 and saturation, ≥ 5× websockets.broadcast() and ≥ 1.5× a naive picows loop per server
CPU-second, every frame delivered (the bench verifies counts and exits non-zero otherwise); one stuck
client moves the others' p99 by ≤ 2× and leaves the server's memory flat while the peers buffer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benches" / "bench_fanout.py"


def bench(*args: str) -> dict[tuple[str, int], dict[str, Any]]:
    out = subprocess.run([sys.executable, str(BENCH), "--json", *args], cwd=ROOT, capture_output=True,
                         timeout=600, check=False)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    rows = orjson.loads(out.stdout)["rows"]
    return {(r["peer"].split()[0], r["stuck"]): r for r in rows}


def test_n1000_saturation_bars_and_a_stuck_client() -> None:
    rows = bench("--mode", "sat", "--n", "1000", "--sizes", "200", "--stuck", "0,1", "--frames", "600")
    ours, naive, ws = rows[("ours", 0)], rows[("picows", 0)], rows[("websockets", 0)]
    vs_ws = ours["deliveries_per_cpu_s"] / ws["deliveries_per_cpu_s"]
    vs_naive = ours["deliveries_per_cpu_s"] / naive["deliveries_per_cpu_s"]
    print(f"\nN=1000 sat: {vs_ws:.1f}× websockets, {vs_naive:.1f}× naive picows; "
          f"p99 latency {ours['lat_p99_us']:,.0f} µs → {rows[('ours', 1)]['lat_p99_us']:,.0f} µs with a stuck client")
    assert vs_ws >= 5.0 and vs_naive >= 1.5
    assert all(r["verified"] for r in rows.values())
    assert rows[("ours", 1)]["lat_p99_us"] <= 2 * ours["lat_p99_us"]
    assert rows[("ours", 1)]["rss_growth_mb"] < 5


def test_a_stuck_client_costs_ours_no_memory_while_a_naive_loop_buffers_it() -> None:
    rows = bench("--mode", "sat", "--n", "10", "--sizes", "2048", "--stuck", "1", "--frames", "30000",
                 "--peers", "ours,picows")
    ours, naive = rows[("ours", 1)], rows[("picows", 1)]
    print(f"\nstuck client, 60 MB sent: server RSS ours +{ours['rss_growth_mb']:.1f} MB, "
          f"naive picows +{naive['rss_growth_mb']:.1f} MB")
    assert ours["rss_growth_mb"] < 5
    assert naive["rss_growth_mb"] > 20  # the scenario does pile up data for whoever buffers it
