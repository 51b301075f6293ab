"""Fan-out: K topics → N loopback WebSocket clients. Ours vs websockets broadcast() vs a naive picows loop.

Method (same run, same box; see shared/reference/performance-anchors.md §3-4):
* This process is the server; it runs each peer in turn (on uvloop) and is pinned to CPU 0. The N
  clients live in ONE separate process (this script with --client) pinned to CPU 1, so the
  server's CPU (getrusage of this process) is only the server's work.
* Every client subscribes to K topics. One round = one loop turn in which the server publishes one
  update on each of the K topics (a feed dispatch: ``BookSet.take_changed()`` hands over a list of
  changed markets), then waits until the client process reports that all N clients have all K
  frames. ``--burst 1`` is the one-update-per-turn case. Every peer gets the same pattern: ours
  ``Channel.publish`` per update (it queues; one write per connection at the end of the turn),
  websockets ``broadcast()`` per update, naive picows ``send()`` per update per client.
  Deliveries per server CPU-second = N * K * rounds / CPU s.
* Skew = from the first client receiving anything of the round to the last client having all K
  frames, in *kernel* receive timestamps (SO_TIMESTAMPNS): the server's send spread, not the client
  process's reading order. With K = 1 it is the first-to-last-client skew of one message.
* ``--stuck 1`` adds one more client that never reads (4 KiB receive buffer); it is not counted in
  deliveries or skew, so its row shows what a stuck client does to everyone else. Ours conflates it
  (its eviction limit is raised above the run length here, so it stays connected and paused).
* Clients are raw non-blocking sockets (handshake + unmasked-frame parsing by hand): cheap
  enough that 1000 of them do not make the client the bottleneck.

Usage: benches/bench_fanout.py [--n 10,100,1000] [--sizes 200,2048] [--burst 1,8] [--stuck 0,1]
                               [--messages 200] [--repeat 1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import selectors
import socket
import statistics
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux value; not exported by Python 3.11
HANDSHAKE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


# ---------------------------------------------------------------------------------------------
# client process
def _connect(port: int, rcvbuf: int = 0) -> socket.socket:
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.sendall(HANDSHAKE)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("server closed during handshake")
        buf += chunk
    if b" 101 " not in buf.split(b"\r\n", 1)[0]:
        raise SystemExit(f"handshake refused: {buf[:80]!r}")
    return s


def _frames(b: bytes) -> tuple[int, bytes]:
    """Count complete unmasked frames at the start of ``b``; return (count, rest)."""
    count, pos = 0, 0
    while len(b) - pos >= 2:
        ln, hdr = b[pos + 1] & 0x7F, 2
        if ln == 126:
            if len(b) - pos < 4:
                break
            hdr, ln = 4, struct.unpack_from(">H", b, pos + 2)[0]
        elif ln == 127:
            if len(b) - pos < 10:
                break
            hdr, ln = 10, struct.unpack_from(">Q", b, pos + 2)[0]
        if len(b) - pos < hdr + ln:
            break
        pos += hdr + ln
        count += 1
    return count, b[pos:]


def run_clients(port: int, n: int, rounds: int, k: int, stuck: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    socks = [_connect(port) for _ in range(n)]
    stuck_socks = [_connect(port, rcvbuf=4096) for _ in range(stuck)]  # never read
    sel = selectors.EpollSelector()
    for i, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
    bufs = [b""] * n
    got_frames = [0] * n
    first_ts = [0] * n
    done_ts = [0] * n
    done = 0
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    got = 0
    while got < rounds:
        for key, _ in sel.select():
            i = key.data
            data, anc, _, _ = socks[i].recvmsg(1 << 20, 64)
            if not data:
                raise SystemExit("server closed")
            ts = 0
            if anc:
                sec, nsec = struct.unpack("qq", anc[0][2][:16])
                ts = sec * 1_000_000_000 + nsec
            if got_frames[i] == 0 and not bufs[i]:
                first_ts[i] = ts
            c, bufs[i] = _frames(bufs[i] + data)
            got_frames[i] += c
            if c and got_frames[i] == k:
                done_ts[i] = ts
                done += 1
            if done == n:
                out.write(f"{min(first_ts)} {max(done_ts)}\n")
                out.flush()
                done = 0
                got_frames = [0] * n
                got += 1
    del stuck_socks


# ---------------------------------------------------------------------------------------------
# servers: each returns (server, registered-clients getter, publish(payloads of one turn, seq))
Publish = Callable[[list[bytes], int], None]


async def server_ours(topics: list[str]) -> tuple[Any, Callable[[], int], Publish]:
    from crossbook_ext.fanout import Channel, Frame, Subscriber
    from picows import ws_create_server

    chans = [Channel(t) for t in topics]

    class Sub(Subscriber):
        def on_ws_connected(self, transport: Any) -> None:
            super().on_ws_connected(transport)
            self.max_paused_s = 3600.0  # keep a stuck client conflated (not evicted) for the whole run
            for ch in chans:
                ch.add(self)

        def on_ws_disconnected(self, transport: Any) -> None:
            super().on_ws_disconnected(transport)
            for ch in chans:
                ch.remove(self)

    def publish(payloads: list[bytes], seq: int) -> None:
        for ch, p in zip(chans, payloads, strict=True):
            ch.publish(Frame(p), seq)

    srv = await ws_create_server(lambda _r: Sub(), "127.0.0.1", 0)
    return srv, lambda: len(chans[0]), publish


async def server_picows_naive(topics: list[str]) -> tuple[Any, Callable[[], int], Publish]:
    from picows import WSListener, WSMsgType, ws_create_server

    transports: list[Any] = []

    class L(WSListener):
        def on_ws_connected(self, transport: Any) -> None:
            transports.append(transport)

        def on_ws_disconnected(self, transport: Any) -> None:
            transports.remove(transport)

    def publish(payloads: list[bytes], seq: int) -> None:
        for p in payloads:
            for t in transports:
                t.send(WSMsgType.TEXT, p)

    srv = await ws_create_server(lambda _r: L(), "127.0.0.1", 0)
    return srv, lambda: len(transports), publish


async def server_websockets(topics: list[str]) -> tuple[Any, Callable[[], int], Publish]:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    conns: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        conns.add(ws)
        try:
            await ws.wait_closed()
        finally:
            conns.discard(ws)

    def publish(payloads: list[bytes], seq: int) -> None:
        for p in payloads:
            broadcast(conns, p.decode())

    srv = await serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None, max_queue=None)
    return srv, lambda: len(conns), publish


PEERS: dict[str, Callable[[list[str]], Awaitable[tuple[Any, Callable[[], int], Publish]]]] = {
    "ours (crossbook_ext)": server_ours,
    "picows naive send()": server_picows_naive,
    "websockets broadcast()": server_websockets,
}


def cpu_s() -> tuple[float, float]:
    """(user, user + system) CPU seconds of this (server) process."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_utime + r.ru_stime


async def run_one(peer: str, n: int, size: int, k: int, stuck: int, messages: int, warmup: int) -> dict[str, Any]:
    topics = [f"bench:t{j}" for j in range(k)]
    srv, count, publish = await PEERS[peer](topics)
    port = srv.sockets[0].getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", str(port), str(n), str(messages + warmup), str(k), str(stuck),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    stdout = proc.stdout
    ours = peer.startswith("ours")
    try:
        line = await asyncio.wait_for(stdout.readline(), 120)
        if line.strip() != b"ready":
            raise RuntimeError(f"client process failed to start ({line!r})")
        deadline = time.monotonic() + 30
        while count() < n + stuck:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{peer}: only {count()} of {n + stuck} clients registered")
            await asyncio.sleep(0.01)
        heads = [b'{"type":"update","topic":"%s","seq":%%d,"data":"' % t.encode() for t in topics]

        async def send(r: int) -> float:
            payloads = []
            for h in heads:
                head = h % (r + 1)
                payloads.append(head + b"x" * max(0, size - len(head) - 2) + b'"}')
            publish(payloads, r + 1)  # all K updates in this one loop turn
            lo, hi = map(int, (await asyncio.wait_for(stdout.readline(), 60)).split())
            return (hi - lo) / 1000

        for r in range(warmup):
            await send(r)
        stats0 = _ext_stats() if ours else (0, 0)
        # CPU over the whole measured loop: per-message getrusage deltas are below its resolution.
        # The loop also pays for reading the client's ack line, the same for every peer.
        c0 = cpu_s()
        skews = [await send(r) for r in range(warmup, warmup + messages)]
        c1 = cpu_s()
        stats1 = _ext_stats() if ours else (0, 0)
        t_user, t_cpu = c1[0] - c0[0], c1[1] - c0[1]
        await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        srv.close()
        await srv.wait_closed()
    q = statistics.quantiles(skews, n=100)
    deliveries = n * k * messages
    writes = stats1[1] - stats0[1]
    return {
        "peer": peer, "n": n, "size": size, "burst": k, "stuck": stuck, "messages": messages,
        "server_cpu_s": t_cpu,
        "deliveries_per_cpu_s": deliveries / t_cpu if t_cpu > 0 else float("inf"),
        # getrusage's user/system split is tick-sampled on this VM: indicative only
        "user_ns_per_delivery": t_user * 1e9 / deliveries,
        "cpu_ns_per_delivery": t_cpu * 1e9 / deliveries,
        # ours only: connection writes (sendmsg or transport.write) per delivery; peers make one per delivery
        "writes_per_delivery": writes / deliveries if ours else 1.0,
        "skew_p50_us": statistics.median(skews), "skew_p99_us": q[98],
    }


def _ext_stats() -> tuple[int, int]:
    from crossbook_ext.fanout import stats

    return stats()


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {0})
    rows: list[dict[str, Any]] = []
    peers = [p for p in PEERS if not args.peers or any(x in p for x in args.peers)]
    for n in args.n:
        for size in args.sizes:
            for k in args.burst:
                for stuck in args.stuck:
                    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in peers}
                    for rep in range(args.repeat):
                        order = peers if rep % 2 == 0 else peers[::-1]  # ABBA against drift
                        for p in order:
                            runs[p].append(await run_one(p, n, size, k, stuck, args.messages, args.warmup))
                    for p in peers:
                        ordered = sorted(runs[p], key=lambda r: r["deliveries_per_cpu_s"])
                        best = dict(ordered[len(ordered) // 2])  # median
                        best["repeats_deliveries_per_cpu_s"] = [r["deliveries_per_cpu_s"] for r in runs[p]]
                        rows.append(best)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    out = [f"{'N':>5} {'K':>3} {'size':>5} {'stuck':>5}  {'peer':<24} {'deliv/CPU-s':>12} {'ns/deliv':>9} "
           f"{'writes/deliv':>12} {'skew p50 µs':>12} {'skew p99 µs':>12} {'ours ×':>7}"]
    ours = {(r["n"], r["size"], r["burst"], r["stuck"]): r for r in rows if r["peer"].startswith("ours")}
    for r in rows:
        o = ours.get((r["n"], r["size"], r["burst"], r["stuck"]))
        ratio = f"{o['deliveries_per_cpu_s'] / r['deliveries_per_cpu_s']:>7.2f}" if o else f"{'-':>7}"
        out.append(f"{r['n']:>5} {r['burst']:>3} {r['size']:>5} {r['stuck']:>5}  {r['peer']:<24} "
                   f"{r['deliveries_per_cpu_s']:>12,.0f} {r['cpu_ns_per_delivery']:>9,.0f} "
                   f"{r['writes_per_delivery']:>12.3f} {r['skew_p50_us']:>12,.0f} {r['skew_p99_us']:>12,.0f} {ratio}")
    return "\n".join(out)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        run_clients(*(int(a) for a in sys.argv[2:7]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)

    def ints(s: str) -> list[int]:
        return [int(x) for x in s.split(",")]

    ap.add_argument("--n", type=ints, default=[10, 100, 1000])
    ap.add_argument("--sizes", type=ints, default=[200, 2048])
    ap.add_argument("--burst", type=ints, default=[1, 8], help="updates (topics) published per loop turn")
    ap.add_argument("--stuck", type=ints, default=[0, 1], help="extra clients that never read")
    ap.add_argument("--peers", type=lambda s: s.split(","), default=[], help="substrings of peer names to run")
    ap.add_argument("--messages", type=int, default=200, help="measured rounds (loop turns) per run")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=1, help="runs per peer (alternating order); median kept")
    ap.add_argument("--json", action="store_true", help="print JSON rows instead of the table")
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    rows = asyncio.run(main_async(args))
    if args.json:
        sys.stdout.buffer.write(orjson.dumps({"rows": rows}, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(table(rows))
        print(f"(server pinned to CPU 0, clients to CPU 1; {os.cpu_count()} CPUs; kernel rx timestamps; "
              f"K = updates per loop turn; skew = first byte at any client → last client has all K)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
