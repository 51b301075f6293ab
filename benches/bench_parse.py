"""Parse benchmark: venue WS frame bytes -> L2 book update, ours vs Python peers, same run.

Implementations, all fed the same pre-generated frames (``_streams.py``), one venue at a time:

* ``crossbook``  ``crossbook.BookSet.apply(venue, frame, recv_ns)`` (Rust parse + apply, fixed-point).
* ``orjson+py``  ``orjson.loads`` + a dict-based Python book.
* ``msgspec+py`` ``msgspec.json.Decoder`` over typed, tagged ``Struct`` unions + the same Python book.

The Python book is exact fixed-point without ``Decimal``: every price and size string is parsed to
an ``int`` scaled by 10**6 (string split, no float). It does the same work as ours: parse the whole
frame, apply every level of every event (snapshot replace, set/remove, signed Kalshi deltas,
per-sid ``seq`` check, tick-size invalidation), keep bids and asks per market plus the last update
time. It does less than ours in one respect, which favours the peers: its levels are unsorted
dicts, so it keeps no best-first order and tracks no top-of-book changes.

Results are checked, not trusted: after the timed run every market's full book (all levels) from
each implementation must equal the generator's own ground truth, or the script exits 1.

Timing: each apply call is timed alone with ``time.perf_counter_ns`` (p50/p99/mean come from these
individual samples, and they include the timer overhead, which is measured and printed, never
subtracted). ``frames/s`` comes from a separate batched pass over the same frames without per-frame
timers. Each implementation is warmed up on a throwaway instance first. GC stays enabled (the stream
itself is moved out of the collector's way with ``gc.freeze``).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _streams

ANCHOR = (
    "Context only, not a comparison (different hardware, native Rust, no Python boundary): "
    "NautilusTrader Polymarket inbound_pipeline/book_deltas 643 ns median, book_snapshot 1.90 µs "
    "(AMD Threadripper 9980X, bench-lto, powersave governor, 2026-05-19; "
    "nautechsystems/nautilus_trader crates/adapters/polymarket/benches/BENCHMARKS.md)."
)

_SCALE = 1_000_000
_POW = tuple(10 ** (6 - k) for k in range(7))


def fx(s: str) -> int:
    """Exact decimal string -> int micro-units (10**-6). Raises ValueError past 6 dp."""
    if s[0] == "-":
        return -fx(s[1:])
    whole, _, frac = s.partition(".")
    if not frac:
        return int(whole) * _SCALE
    return int(whole or "0") * _SCALE + int(frac) * _POW[len(frac)]


# --------------------------------------------------------------------------- Python peer books


class PyBook:
    __slots__ = ("asks", "bids", "sid", "ts", "valid")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}  # Polymarket bids / Kalshi YES bids
        self.asks: dict[int, int] = {}  # Polymarket asks / Kalshi NO bids (NO price)
        self.valid = False
        self.ts = 0
        self.sid = 0


class PolyPy:
    """Polymarket market channel into dict books, from orjson dicts or msgspec Structs."""

    def __init__(self) -> None:
        self.books: dict[str, PyBook] = {}
        self._dec = msgspec.json.Decoder(list[PolyEvent] | PolyEvent)

    def _book(self, asset_id: str) -> PyBook:
        b = self.books.get(asset_id)
        if b is None:
            b = self.books[asset_id] = PyBook()
        return b

    # orjson ------------------------------------------------------------------
    def apply_orjson(self, frame: bytes, recv_ns: int) -> None:
        obj = orjson.loads(frame)
        if type(obj) is list:
            for ev in obj:
                self._dict_event(ev, recv_ns)
        else:
            self._dict_event(obj, recv_ns)

    def _dict_event(self, ev: dict[str, Any], recv_ns: int) -> None:
        et = ev.get("event_type")
        if et == "price_change":
            changes = ev.get("price_changes")
            for c in changes if changes is not None else (ev,):
                b = self._book(c["asset_id"])
                b.ts = recv_ns
                if not b.valid:
                    continue
                side = b.bids if c["side"] == "BUY" else b.asks
                size = fx(c["size"])
                if size:
                    side[fx(c["price"])] = size
                else:
                    side.pop(fx(c["price"]), None)
        elif et == "book":
            b = self._book(ev["asset_id"])
            b.bids = {fx(lv["price"]): fx(lv["size"]) for lv in ev["bids"]}
            b.asks = {fx(lv["price"]): fx(lv["size"]) for lv in ev["asks"]}
            b.valid = True
            b.ts = recv_ns
        elif et == "tick_size_change":
            b = self._book(ev["asset_id"])
            b.bids, b.asks, b.valid, b.ts = {}, {}, False, recv_ns

    # msgspec -----------------------------------------------------------------
    def apply_msgspec(self, frame: bytes, recv_ns: int) -> None:
        obj = self._dec.decode(frame)
        if type(obj) is list:
            for ev in obj:
                self._struct_event(ev, recv_ns)
        else:
            self._struct_event(obj, recv_ns)  # type: ignore[arg-type]

    def _struct_event(self, ev: PolyEvent, recv_ns: int) -> None:
        if type(ev) is PolyPriceChange:
            if ev.price_changes is not None:
                for c in ev.price_changes:
                    self._set_level(c.asset_id, c.side, c.price, c.size, recv_ns)
            elif ev.asset_id is not None and ev.side and ev.price and ev.size:
                self._set_level(ev.asset_id, ev.side, ev.price, ev.size, recv_ns)
        elif type(ev) is PolyBookEvent:
            b = self._book(ev.asset_id)
            b.bids = {fx(lv.price): fx(lv.size) for lv in ev.bids}
            b.asks = {fx(lv.price): fx(lv.size) for lv in ev.asks}
            b.valid = True
            b.ts = recv_ns
        elif type(ev) is PolyTickSizeChange:
            b = self._book(ev.asset_id)
            b.bids, b.asks, b.valid, b.ts = {}, {}, False, recv_ns

    def _set_level(self, asset_id: str, side_s: str, price: str, size_s: str, recv_ns: int) -> None:
        b = self._book(asset_id)
        b.ts = recv_ns
        if not b.valid:
            return
        side = b.bids if side_s == "BUY" else b.asks
        size = fx(size_s)
        if size:
            side[fx(price)] = size
        else:
            side.pop(fx(price), None)


class PolyLevel(msgspec.Struct):
    price: str
    size: str


class PolyChange(msgspec.Struct):
    asset_id: str
    price: str
    size: str
    side: str
    hash: str = ""
    best_bid: str = ""
    best_ask: str = ""


class PolyBookEvent(msgspec.Struct, tag_field="event_type", tag="book"):
    asset_id: str
    market: str
    bids: list[PolyLevel]
    asks: list[PolyLevel]
    timestamp: str = ""
    hash: str = ""


class PolyPriceChange(msgspec.Struct, tag_field="event_type", tag="price_change"):
    market: str
    timestamp: str = ""
    price_changes: list[PolyChange] | None = None
    # legacy single-level shape
    asset_id: str | None = None
    price: str | None = None
    size: str | None = None
    side: str | None = None


class PolyTickSizeChange(msgspec.Struct, tag_field="event_type", tag="tick_size_change"):
    asset_id: str
    market: str
    new_tick_size: str
    old_tick_size: str = ""
    timestamp: str = ""


PolyEvent = PolyBookEvent | PolyPriceChange | PolyTickSizeChange


class KalshiSnapMsg(msgspec.Struct):
    market_ticker: str
    market_id: str = ""
    yes_dollars_fp: list[tuple[str, str]] = msgspec.field(default_factory=list)
    no_dollars_fp: list[tuple[str, str]] = msgspec.field(default_factory=list)


class KalshiSnapshot(msgspec.Struct, tag_field="type", tag="orderbook_snapshot"):
    sid: int
    seq: int
    msg: KalshiSnapMsg


class KalshiDeltaMsg(msgspec.Struct):
    market_ticker: str
    price_dollars: str
    delta_fp: str
    side: str
    market_id: str = ""
    ts: str = ""
    ts_ms: int = 0


class KalshiDelta(msgspec.Struct, tag_field="type", tag="orderbook_delta"):
    sid: int
    seq: int
    msg: KalshiDeltaMsg


class KalshiPy:
    """Kalshi v2 orderbook channel into dict books (YES bids, NO bids), with per-sid seq checks."""

    def __init__(self) -> None:
        self.books: dict[str, PyBook] = {}
        self.last_seq: dict[int, int] = {}
        self._dec = msgspec.json.Decoder(KalshiSnapshot | KalshiDelta)

    def _book(self, ticker: str) -> PyBook:
        b = self.books.get(ticker)
        if b is None:
            b = self.books[ticker] = PyBook()
        return b

    def _snapshot(self, sid: int, seq: int, ticker: str, yes: Iterable[Sequence[str]],
                  no: Iterable[Sequence[str]], recv_ns: int) -> None:
        b = self._book(ticker)
        b.bids = {fx(p): fx(s) for p, s in yes}
        b.asks = {fx(p): fx(s) for p, s in no}
        b.valid, b.sid, b.ts = True, sid, recv_ns
        self.last_seq[sid] = seq

    def _delta(self, sid: int, seq: int, ticker: str, side_s: str, price: str, delta: str,
               recv_ns: int) -> None:
        b = self._book(ticker)
        b.ts = recv_ns
        last = self.last_seq.get(sid)
        self.last_seq[sid] = seq
        if last is None or seq != last + 1:
            for other in self.books.values():  # a gap may have hidden changes to any market of the sid
                if other.sid == sid:
                    other.valid = False
            b.valid = False
            return
        if not b.valid:
            return
        side = b.bids if side_s == "yes" else b.asks
        p = fx(price)
        new = side.get(p, 0) + fx(delta)
        if new > 0:
            side[p] = new
        elif new == 0:
            side.pop(p, None)
        else:
            b.valid = False

    def apply_orjson(self, frame: bytes, recv_ns: int) -> None:
        obj = orjson.loads(frame)
        t = obj.get("type")
        if t == "orderbook_delta":
            m = obj["msg"]
            self._delta(obj["sid"], obj["seq"], m["market_ticker"], m["side"], m["price_dollars"],
                        m["delta_fp"], recv_ns)
        elif t == "orderbook_snapshot":
            m = obj["msg"]
            self._snapshot(obj["sid"], obj["seq"], m["market_ticker"], m.get("yes_dollars_fp", ()),
                           m.get("no_dollars_fp", ()), recv_ns)

    def apply_msgspec(self, frame: bytes, recv_ns: int) -> None:
        obj = self._dec.decode(frame)
        if type(obj) is KalshiDelta:
            m = obj.msg
            self._delta(obj.sid, obj.seq, m.market_ticker, m.side, m.price_dollars, m.delta_fp, recv_ns)
        else:
            s = obj.msg
            self._snapshot(obj.sid, obj.seq, s.market_ticker, s.yes_dollars_fp, s.no_dollars_fp, recv_ns)


# --------------------------------------------------------------------------- timing

IMPLS = ("crossbook", "orjson+py", "msgspec+py")


@dataclass
class Stats:
    n: int
    mean_ns: float
    p50_ns: int
    p99_ns: int
    frames_per_s: float

    @staticmethod
    def of(samples: list[int], batch_ns: int) -> Stats:
        s = sorted(samples)
        n = len(s)
        return Stats(n, sum(s) / n, s[n // 2], s[min(n - 1, (n * 99) // 100)], n * 1e9 / batch_ns)


def _pcts(samples: list[int]) -> dict[str, float]:
    s = sorted(samples)
    n = len(s)
    if not n:
        return {"n": 0}
    return {"n": n, "p50_ns": s[n // 2], "p99_ns": s[min(n - 1, (n * 99) // 100)],
            "mean_ns": round(sum(s) / n, 1)}


def timer_overhead(n: int = 200_000) -> dict[str, float]:
    pc = time.perf_counter_ns
    out = [0] * n
    for i in range(n):
        t0 = pc()
        out[i] = pc() - t0
    out.sort()
    return {"median_ns": out[n // 2], "mean_ns": statistics.fmean(out), "p99_ns": out[(n * 99) // 100]}


Apply = Callable[[bytes, int], Any]


def time_each(apply: Apply, frames: list[bytes], recvs: list[int]) -> list[int]:
    pc = time.perf_counter_ns
    n = len(frames)
    out = [0] * n
    for i in range(n):
        f = frames[i]
        r = recvs[i]
        t0 = pc()
        apply(f, r)
        out[i] = pc() - t0
    return out


def time_batch(apply: Apply, frames: list[bytes], recvs: list[int]) -> int:
    pc = time.perf_counter_ns
    t0 = pc()
    for f, r in zip(frames, recvs, strict=True):
        apply(f, r)
    return pc() - t0


def make_impl(name: str, venue: str) -> tuple[Any, Apply]:
    """A fresh book holder and its ``apply(frame, recv_ns)``."""
    if name == "crossbook":
        import crossbook

        bs = crossbook.BookSet()
        # functools.partial is implemented in C: one vectorcall per frame, like the peers' bound
        # methods, with no extra Python frame in the timed region.
        return bs, functools.partial(bs.apply, venue)
    holder: PolyPy | KalshiPy = PolyPy() if venue == "polymarket" else KalshiPy()
    return holder, (holder.apply_orjson if name == "orjson+py" else holder.apply_msgspec)


# --------------------------------------------------------------------------- checking


Levels = list[tuple[Decimal, Decimal]]
D6 = Decimal(_SCALE)


def _truth(venue: str, stream: Any) -> dict[str, tuple[Levels, Levels]]:
    out: dict[str, tuple[Levels, Levels]] = {}
    if venue == "polymarket":
        for aid, a in stream.assets.items():
            bids = [(Decimal(p) / D6, Decimal(s) / 100) for p, s in sorted(a.bids.items(), reverse=True)]
            asks = [(Decimal(p) / D6, Decimal(s) / 100) for p, s in sorted(a.asks.items())]
            out[aid] = (bids, asks)
    else:
        for t, m in stream.markets.items():
            bids = [(Decimal(p) / D6, Decimal(s) / 100) for p, s in sorted(m.yes.items(), reverse=True)]
            asks = [((_streams.ONE - Decimal(p)) / D6, Decimal(s) / 100)
                    for p, s in sorted(m.no.items(), reverse=True)]
            out[t] = (bids, asks)
    return out


def _py_levels(venue: str, b: PyBook) -> tuple[Levels, Levels]:
    bids = [(Decimal(p) / D6, Decimal(s) / D6) for p, s in sorted(b.bids.items(), reverse=True)]
    if venue == "polymarket":
        asks = [(Decimal(p) / D6, Decimal(s) / D6) for p, s in sorted(b.asks.items())]
    else:
        asks = [((D6 - p) / D6, Decimal(s) / D6) for p, s in sorted(b.asks.items(), reverse=True)]
    return bids, asks


def _dec_levels(levels: list[list[str]]) -> Levels:
    return [(Decimal(p), Decimal(s)) for p, s in levels]


def _top_of(levels: Levels) -> tuple[Decimal, Decimal] | None:
    return levels[0] if levels else None


def check(venue: str, stream: Any, holders: dict[str, Any]) -> list[str]:
    """Every implementation's full book must equal the generator's truth, and be valid."""
    errors: list[str] = []
    truth = _truth(venue, stream)
    if "crossbook" in holders:
        # The stream is clean: no malformed or unknown frames, no gaps, best_bid/best_ask always right.
        stats = holders["crossbook"].stats()
        bad = {k: stats.get(k) for k in ("malformed", "unknown", "gaps", "bba_mismatch", "ignored")
               if stats.get(k)}
        if bad:
            errors.append(f"crossbook {venue}: stats() counted problems in a clean stream: {bad}")
    for name, h in holders.items():
        for market, (t_bids, t_asks) in truth.items():
            if name == "crossbook":
                try:
                    d = h.book(venue, market)
                    top = h.top(venue, market)
                except Exception as e:
                    errors.append(f"{name} {venue} {market}: book() raised {e!r}")
                    continue
                bids, asks, valid = _dec_levels(d["bids"]), _dec_levels(d["asks"]), d["valid"]
                top_b = (Decimal(top["bid"]), Decimal(top["bid_size"])) if top["bid"] is not None else None
                top_a = (Decimal(top["ask"]), Decimal(top["ask_size"])) if top["ask"] is not None else None
                if (top_b, top_a) != (_top_of(t_bids), _top_of(t_asks)) or top["valid"] is not valid:
                    errors.append(f"{name} {venue} {market}: top() {top} != truth bid {_top_of(t_bids)} "
                                  f"ask {_top_of(t_asks)}")
            else:
                b = h.books.get(market)
                if b is None:
                    errors.append(f"{name} {venue} {market}: missing")
                    continue
                bids, asks = _py_levels(venue, b)
                valid = b.valid
            if not valid:
                errors.append(f"{name} {venue} {market}: invalid at the end of a gap-free stream")
            for side, got, want in (("bids", bids, t_bids), ("asks", asks, t_asks)):
                if got != want:
                    diff = next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w),
                                min(len(got), len(want)))
                    errors.append(
                        f"{name} {venue} {market} {side}: {len(got)} levels vs truth {len(want)}; first "
                        f"difference at #{diff}: got {got[diff:diff + 2]} want {want[diff:diff + 2]}"
                    )
    return errors


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    t_gen = time.perf_counter()
    streams: dict[str, Any] = {
        "polymarket": _streams.polymarket_stream(args.frames, args.seed),
        "kalshi": _streams.kalshi_stream(args.frames, args.seed),
    }
    gen_s = time.perf_counter() - t_gen
    gc.collect()
    gc.freeze()  # the pre-generated stream is long-lived; keep it out of every collection
    overhead = timer_overhead()

    results: dict[str, dict[str, Stats]] = {}
    pooled: dict[str, list[int]] = {name: [] for name in IMPLS}
    pooled_batch: dict[str, int] = dict.fromkeys(IMPLS, 0)
    errors: list[str] = []
    by_kind: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    workload: dict[str, Any] = {}
    for venue, stream in streams.items():
        frames = [f.data for f in stream.frames]
        kinds = [f.kind for f in stream.frames]
        by_kind[venue] = {}
        recvs = [f.recv_ns for f in stream.frames]
        workload[venue] = {
            "frames": len(frames),
            "mean_frame_bytes": round(statistics.fmean(len(f) for f in frames), 1),
            "markets": len(getattr(stream, "assets", None) or stream.markets),
            **stream.counts,
        }
        warm = min(len(frames), max(2_000, len(frames) // 5))
        holders: dict[str, Any] = {}
        results[venue] = {}
        for name in IMPLS:
            _, apply = make_impl(name, venue)
            time_batch(apply, frames[:warm], recvs[:warm])
            holder, apply = make_impl(name, venue)
            gc.collect()
            samples = time_each(apply, frames, recvs)
            holders[name] = holder
            _, apply_b = make_impl(name, venue)
            gc.collect()
            batch_ns = time_batch(apply_b, frames, recvs)
            results[venue][name] = Stats.of(samples, batch_ns)
            by_kind[venue][name] = {
                kind: _pcts([t for t, k in zip(samples, kinds, strict=True) if k == kind])
                for kind in ("delta", "snapshot")
            }
            pooled[name].extend(samples)
            pooled_batch[name] += batch_ns
        errors += check(venue, stream, holders)
    results["overall"] = {name: Stats.of(pooled[name], pooled_batch[name]) for name in IMPLS}

    import crossbook

    return {
        "bench": "parse",
        "config": {
            "frames_per_venue": args.frames,
            "seed": args.seed,
            "cpu_pinned": args.cpu,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "affinity": sorted(os.sched_getaffinity(0)),
            "versions": {
                "crossbook": getattr(crossbook, "__version__", "?"),
                "orjson": orjson.__version__,
                "msgspec": msgspec.__version__,
            },
            "generate_s": round(gen_s, 2),
        },
        "workload": workload,
        "timer_overhead_ns": overhead,
        "timer_note": "per-frame samples include one perf_counter_ns pair (overhead above, not subtracted)",
        "results": {
            venue: {
                name: {
                    "mean_ns": round(st.mean_ns, 1),
                    "p50_ns": st.p50_ns,
                    "p99_ns": st.p99_ns,
                    "frames_per_s": round(st.frames_per_s),
                    "p50_ratio_vs_crossbook": round(st.p50_ns / by["crossbook"].p50_ns, 2),
                    "mean_ratio_vs_crossbook": round(st.mean_ns / by["crossbook"].mean_ns, 2),
                }
                for name, st in by.items()
            }
            for venue, by in results.items()
        },
        "by_frame_kind": by_kind,
        "checks": {"ok": not errors, "errors": errors[:20], "error_count": len(errors)},
        "anchor": ANCHOR,
    }


def print_table(rep: dict[str, Any]) -> None:
    cols = ("venue", "impl", "mean ns", "p50 ns", "p99 ns", "frames/s", "p50 ratio", "mean ratio")
    rows = []
    for venue, by in rep["results"].items():
        for name, r in by.items():
            rows.append((venue, name, f"{r['mean_ns']:,.0f}", f"{r['p50_ns']:,}", f"{r['p99_ns']:,}",
                         f"{r['frames_per_s']:,}", f"{r['p50_ratio_vs_crossbook']:.2f}x",
                         f"{r['mean_ratio_vs_crossbook']:.2f}x"))
    cfg, ov = rep["config"], rep["timer_overhead_ns"]
    head = (f"parse bench: {cfg['frames_per_venue']:,} frames/venue, seed {cfg['seed']}, "
            f"Python {cfg['python']}, {cfg['cpus']} CPUs (affinity {cfg['affinity']}), "
            f"versions {cfg['versions']}")
    work = "; ".join(f"{v}: {w}" for v, w in rep["workload"].items())
    kinds = []
    for venue, by in rep["by_frame_kind"].items():
        for kind in ("delta", "snapshot"):
            parts = ", ".join(f"{name} {r[kind]['p50_ns']:,}/{r[kind]['p99_ns']:,}" for name, r in by.items())
            kinds.append(f"          {venue} {kind} frames (n={by['crossbook'][kind]['n']:,}) p50/p99 ns: {parts}")
    notes = [
        f"workload  {work}",
        "by kind",
        *kinds,
        f"timer     perf_counter_ns overhead median {ov['median_ns']} ns, mean {ov['mean_ns']:.0f} ns "
        "(included in every per-frame sample, not subtracted)",
        "ratios    peer / crossbook (>1 means crossbook is faster); frames/s from a batched pass "
        "without per-frame timers",
        "peers     exact int micro-unit books (no Decimal, no float), unsorted dicts",
        f"checks    {'OK: all implementations agree with the ground truth on every level of every book' if rep['checks']['ok'] else 'FAILED'}",  # noqa: E501
        f"anchor    {rep['anchor']}",
    ]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text fallback
        print(head)
        widths = [max(len(str(x)) for x in col) for col in zip(cols, *rows, strict=True)]
        for row in (cols, *rows):
            print("  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))
        print("\n".join(notes))
        return
    table = Table(title=head, title_justify="left")
    for i, c in enumerate(cols):
        table.add_column(c, justify="left" if i < 2 else "right")
    last = None
    for row in rows:
        if last is not None and row[0] != last:
            table.add_section()
        last = row[0]
        table.add_row(*row, style="bold" if row[1] == "crossbook" else None)
    console = Console(width=max(120, Console().width))
    console.print(table)
    for n in notes:
        console.print(n, highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--frames", type=int, default=100_000, help="frames per venue (default 100000)")
    ap.add_argument("--seed", type=int, default=20260101)
    ap.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU (sched_setaffinity)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)
    rep = run(args)
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        print_table(rep)
    if not rep["checks"]["ok"]:
        print(f"\nRESULT CHECK FAILED ({rep['checks']['error_count']} problems):", file=sys.stderr)
        for e in rep["checks"]["errors"]:
            print("  " + e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
