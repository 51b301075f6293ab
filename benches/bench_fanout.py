"""Fan-out: 1 topic → N loopback WebSocket clients. Ours vs websockets broadcast() vs a naive picows loop.

Method (same run, same box; see shared/reference/performance-anchors.md §3-4):
* This process is the server; it runs each peer in turn (on uvloop) and is pinned to CPU 0. The N
  clients live in ONE separate process (this script with --client) pinned to CPU 1, so the
  server's CPU (getrusage of this process) is only the server's work.
* One message in flight: the server publishes message k, the client process reports when all N
  clients have it, then k+1 follows. Deliveries per server CPU-second = N * messages / CPU s.
* Skew = last client's minus first client's *kernel* receive timestamp (SO_TIMESTAMPNS) for the
  same message: the server's send spread, not the client process's reading order.
* Clients are raw non-blocking sockets (handshake + unmasked-frame parsing by hand): cheap
  enough that 1000 of them do not make the client the bottleneck.

Usage: benches/bench_fanout.py [--n 10,100,1000] [--sizes 200,2048] [--messages 200] [--json]
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
def run_clients(port: int, n: int, messages: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
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
        s.setblocking(False)
        socks.append(s)
    sel = selectors.EpollSelector()
    for i, s in enumerate(socks):
        sel.register(s, selectors.EVENT_READ, i)
    bufs = [b""] * n
    first_ts = [0] * n
    done = 0
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    got = 0
    while got < messages:
        for key, _ in sel.select():
            i = key.data
            data, anc, _, _ = socks[i].recvmsg(65536, 64)
            if not data:
                raise SystemExit("server closed")
            if not bufs[i] and anc:
                sec, nsec = struct.unpack("qq", anc[0][2][:16])
                first_ts[i] = sec * 1_000_000_000 + nsec
            b = bufs[i] + data
            # one message in flight per client: complete when the whole frame is here
            need = -1
            if len(b) >= 2:
                ln, hdr = b[1] & 0x7F, 2
                if ln == 126:
                    hdr, ln = 4, (struct.unpack(">H", b[2:4])[0] if len(b) >= 4 else -10)
                elif ln == 127:
                    hdr, ln = 10, (struct.unpack(">Q", b[2:10])[0] if len(b) >= 10 else -10)
                need = hdr + ln if ln >= 0 else -1
            if 0 <= need <= len(b):
                bufs[i] = b[need:]
                done += 1
            else:
                bufs[i] = b
            if done == n:
                out.write(f"{min(first_ts)} {max(first_ts)}\n")
                out.flush()
                done = 0
                got += 1


# ---------------------------------------------------------------------------------------------
# servers (each returns (port, ready-count getter, publish(bytes, seq)))
Publish = Callable[[bytes, int], None]


async def server_ours() -> tuple[Any, Callable[[], int], Publish]:
    from crossbook_ext.fanout import Channel, Frame, Subscriber
    from picows import ws_create_server

    ch = Channel("bench:x")

    class Sub(Subscriber):  # type: ignore[misc]
        def on_ws_connected(self, transport: Any) -> None:
            super().on_ws_connected(transport)
            ch.add(self)

        def on_ws_disconnected(self, transport: Any) -> None:
            super().on_ws_disconnected(transport)
            ch.remove(self)

    srv = await ws_create_server(lambda _r: Sub(), "127.0.0.1", 0)
    return srv, lambda: len(ch), lambda payload, seq: ch.publish(Frame(payload), seq)


async def server_picows_naive() -> tuple[Any, Callable[[], int], Publish]:
    from picows import WSListener, WSMsgType, ws_create_server

    transports: list[Any] = []

    class L(WSListener):  # type: ignore[misc]
        def on_ws_connected(self, transport: Any) -> None:
            transports.append(transport)

        def on_ws_disconnected(self, transport: Any) -> None:
            transports.remove(transport)

    def publish(payload: bytes, seq: int) -> None:
        for t in transports:
            t.send(WSMsgType.TEXT, payload)

    srv = await ws_create_server(lambda _r: L(), "127.0.0.1", 0)
    return srv, lambda: len(transports), publish


async def server_websockets() -> tuple[Any, Callable[[], int], Publish]:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    conns: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        conns.add(ws)
        try:
            await ws.wait_closed()
        finally:
            conns.discard(ws)

    srv = await serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None, max_queue=None)
    return srv, lambda: len(conns), lambda payload, seq: broadcast(conns, payload.decode())


PEERS: dict[str, Callable[[], Awaitable[tuple[Any, Callable[[], int], Publish]]]] = {
    "ours (crossbook_ext)": server_ours,
    "picows naive send()": server_picows_naive,
    "websockets broadcast()": server_websockets,
}


def cpu_s() -> tuple[float, float]:
    """(user, user + system) CPU seconds of this (server) process."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_utime + r.ru_stime


async def run_one(peer: str, n: int, size: int, messages: int, warmup: int) -> dict[str, Any]:
    srv, count, publish = await PEERS[peer]()
    port = srv.sockets[0].getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", str(port), str(n), str(messages + warmup),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise RuntimeError(f"client process failed to start ({line!r})")
        deadline = time.monotonic() + 30
        while count() < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{peer}: only {count()} of {n} clients registered")
            await asyncio.sleep(0.01)
        body = b'{"type":"update","topic":"bench:x","seq":%d,"data":"'
        async def send(k: int) -> int:
            head = body % k
            publish(head + b"x" * max(0, size - len(head) - 2) + b'"}', k + 1)
            lo, hi = map(int, (await asyncio.wait_for(proc.stdout.readline(), 30)).split())
            return hi - lo

        for k in range(warmup):
            await send(k)
        # CPU over the whole measured loop: per-message getrusage deltas are below its resolution.
        # The loop also pays for reading the client's ack line, the same for every peer.
        c0 = cpu_s()
        skews = [(await send(k)) / 1000 for k in range(warmup, warmup + messages)]
        c1 = cpu_s()
        t_user, t_cpu = c1[0] - c0[0], c1[1] - c0[1]
        await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        srv.close()
        await srv.wait_closed()
    q = statistics.quantiles(skews, n=100)
    return {
        "peer": peer, "n": n, "size": size, "messages": messages, "server_cpu_s": t_cpu,
        "deliveries_per_cpu_s": n * messages / t_cpu if t_cpu > 0 else float("inf"),
        # getrusage's user/system split is tick-sampled on this VM: indicative only
        "user_ns_per_delivery": t_user * 1e9 / (n * messages),
        "cpu_ns_per_delivery": t_cpu * 1e9 / (n * messages),
        "skew_p50_us": statistics.median(skews), "skew_p99_us": q[98],
    }


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {0})
    rows: list[dict[str, Any]] = []
    peers = list(PEERS)
    for n in args.n:
        for size in args.sizes:
            runs: dict[str, list[dict[str, Any]]] = {p: [] for p in peers}
            for rep in range(args.repeat):
                order = peers if rep % 2 == 0 else peers[::-1]  # ABBA against drift
                for p in order:
                    runs[p].append(await run_one(p, n, size, args.messages, args.warmup))
            for p in peers:
                best = sorted(runs[p], key=lambda r: r["deliveries_per_cpu_s"])[len(runs[p]) // 2]  # median
                rows.append(best)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    out = [f"{'N':>5} {'size':>5}  {'peer':<24} {'deliv/CPU-s':>12} {'skew p50 µs':>12} {'skew p99 µs':>12}"
           f" {'ours ×':>7}"]
    ours = {(r["n"], r["size"]): r for r in rows if r["peer"].startswith("ours")}
    for r in rows:
        o = ours[(r["n"], r["size"])]
        ratio = o["deliveries_per_cpu_s"] / r["deliveries_per_cpu_s"]
        out.append(f"{r['n']:>5} {r['size']:>5}  {r['peer']:<24} {r['deliveries_per_cpu_s']:>12,.0f} "
                   f"{r['skew_p50_us']:>12,.0f} {r['skew_p99_us']:>12,.0f} {ratio:>7.2f}")
    return "\n".join(out)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        run_clients(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=lambda s: [int(x) for x in s.split(",")], default=[10, 100, 1000])
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[200, 2048])
    ap.add_argument("--messages", type=int, default=200, help="measured messages per run (bounded)")
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
        print(f"(server pinned to CPU 0, clients to CPU 1; {os.cpu_count()} CPUs; kernel rx timestamps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
