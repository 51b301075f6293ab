"""crossbook.execution.http1 against real servers: raw asyncio servers written here (so the bytes on the
wire are ours: chunked bodies, split writes, junk, idle closes, stalls, resets), the venue simulators,
pproxy (HTTP CONNECT, a subprocess) and an in-process CONNECT proxy (for refusals and TLS to the proxy).
Nothing is mocked; no timing is asserted (speed is measured in benches)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from crossbook.execution.http1 import (
    ConnectFailed,
    MalformedResponse,
    Pool,
    RequestUncertain,
)
from crossbook.venues.kalshi.sim import KalshiSim
from crossbook.venues.polymarket.sim import PolymarketSim
from tests.conftest import eventually
from tests.hub.conftest import ProxyProc, free_port

# ---------------------------------------------------------------------------------------------------
# a raw HTTP server: each test says what goes on the wire


@dataclass
class Req:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    raw_head: bytes


async def read_request(reader: asyncio.StreamReader) -> Req | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Req(method, target, headers, body, head)


def ok(body: bytes = b"ok", extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


Handler = Callable[["Server", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Server:
    handler: Handler
    ssl_ctx: ssl.SSLContext | None = None
    connections: int = 0
    requests: list[Req] = field(default_factory=list)
    eofs: int = 0  # connections the client closed (seen by a handler reading to the end)
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def origin(self) -> str:
        return f"{'https' if self.ssl_ctx else 'http'}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_ctx)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):  # handlers still waiting see their connection end
            writer.transport.abort()
        await asyncio.sleep(0.01)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.connections += 1
        try:
            await self.handler(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, RuntimeError):  # uvloop: RuntimeError on a closed one
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def next(self, reader: asyncio.StreamReader) -> Req | None:
        req = await read_request(reader)
        if req is not None:
            self.requests.append(req)
        return req

    async def until_eof(self, reader: asyncio.StreamReader) -> None:
        await reader.read()
        self.eofs += 1


async def echo(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Keep-alive: every request answered with ``METHOD target body``."""
    while (req := await srv.next(reader)) is not None:
        writer.write(ok(f"{req.method} {req.target} ".encode() + req.body))
    srv.eofs += 1


def serve(*responses: bytes, then_close: bool = False) -> Handler:
    """Answer the n-th request on a connection with ``responses[n]`` (the last one repeats)."""

    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        while await srv.next(reader) is not None:
            writer.write(responses[min(n, len(responses) - 1)])
            await writer.drain()
            n += 1
            if then_close:
                return
        srv.eofs += 1

    return handler


# ---------------------------------------------------------------------------------------------------
# keep-alive and framing


async def test_keep_alive_one_connection_for_sequential_requests() -> None:
    async with Server(echo) as srv, Pool(srv.origin, fixed_headers={"User-Agent": "t"}) as pool:
        for i in range(5):
            r = await pool.request("POST", f"/orders?i={i}", {"X-Key": "k"}, b'{"n":%d}' % i)
            assert r.status == 200 and r.body == f'POST /orders?i={i} {{"n":{i}}}'.encode()
        r = await pool.request("GET", "/status")
        assert r.body == b"GET /status "
        assert srv.connections == 1 and len(srv.requests) == 6
        assert (pool.stats.opened, pool.stats.reused, pool.stats.requests) == (1, 5, 6)
        first = srv.requests[0]
        assert first.headers["host"] == f"127.0.0.1:{srv.port}" and first.headers["x-key"] == "k"
        assert first.headers["content-length"] == str(len(first.body)) and first.headers["user-agent"] == "t"
        assert "content-length" not in srv.requests[-1].headers  # a GET without a body says nothing of one
        assert pool.idle == 1
        assert r.headers["content-length"] == r.headers["CONTENT-LENGTH"] == str(len(r.body))


async def test_idle_connections_reused_most_recent_first() -> None:
    async with Server(echo) as srv, Pool(srv.origin) as pool:
        assert await pool.warm(3) == 3 and srv.connections == 3 and pool.stats.opened == 3
        warmest = pool._idle[-1]
        await pool.request("GET", "/")
        assert pool._idle[-1] is warmest and srv.connections == 3 and pool.stats.reused == 1


CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n"
           b"5;ext=1\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n")  # fmt: skip


async def test_chunked_and_split_responses() -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await srv.next(reader) is not None:
            for i in range(len(CHUNKED)):  # one byte per write: every parser state sees a split
                writer.write(CHUNKED[i : i + 1])
                await writer.drain()
                if i % 8 == 0:
                    await asyncio.sleep(0.001)
            writer.write(b"HTTP/1.1 2")
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.write(b"00 OK\r\nContent-Len")
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.write(b"gth: 4\r\n\r\nab")
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.write(b"cd")

    async with Server(handler) as srv, Pool(srv.origin) as pool:
        r = await pool.request("GET", "/a")
        assert r.status == 200 and r.body == b"hello world!" and r.headers["retry-after"] == "3"
        assert "x-trailer" not in r.headers
        # The second response of the same handler turn arrives unasked: never trusted, never reused.
        await eventually(lambda: pool.idle == 0, what="the connection that spoke out of turn dropped")
        r = await pool.request("GET", "/b")
        assert r.body == b"hello world!" and srv.connections == 2


async def test_split_content_length_and_state_reset_between_responses() -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await srv.next(reader) is not None:
            for part in (b"HTTP/1.1 201 Created\r\n", b"Content-Type: application/json\r", b"\nContent-Length: 9",
                         b"\r\n\r", b"\n{\"a\":", b"123}"):  # fmt: skip
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(0.005)

    async with Server(handler) as srv, Pool(srv.origin) as pool:
        for _ in range(3):
            r = await pool.request("POST", "/o", None, b"{}")
            assert (r.status, r.reason, r.body) == (201, "Created", b'{"a":123}')
            assert r.headers["content-type"] == "application/json"
        assert srv.connections == 1


async def test_no_body_responses_and_interim_100() -> None:
    wire = [
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",  # a HEAD: the length describes a body never sent
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
        ok(b"last"),
    ]
    async with Server(serve(*wire)) as srv, Pool(srv.origin) as pool:
        assert (await pool.request("POST", "/", None, b"x")).status == 204
        r = await pool.request("HEAD", "/")
        assert r.status == 200 and r.body == b""
        assert (await pool.request("GET", "/")).status == 304
        assert (await pool.request("GET", "/")).body == b"last"
        assert srv.connections == 1


async def test_read_until_close() -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.next(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome ")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"bytes")

    async with Server(handler) as srv, Pool(srv.origin) as pool:
        r = await pool.request("GET", "/")
        assert r.body == b"some bytes" and pool.idle == 0
        assert (await pool.request("GET", "/")).body == b"some bytes" and srv.connections == 2


async def test_connection_close_from_server_is_not_reused() -> None:
    async with Server(serve(ok(extra="Connection: close\r\n"), then_close=True)) as srv, Pool(srv.origin) as pool:
        r = await pool.request("GET", "/")
        assert r.headers["connection"] == "close" and pool.idle == 0
        await pool.request("GET", "/")
        assert srv.connections == 2 and pool.stats.opened == 2 and pool.stats.reused == 0


async def test_http10_response_without_keep_alive_is_not_reused() -> None:
    async with Server(serve(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")) as srv, Pool(srv.origin) as pool:
        assert (await pool.request("GET", "/")).body == b"ok"
        assert pool.idle == 0 and srv.connections == 1


async def test_junk_after_a_response_drops_the_connection() -> None:
    async with Server(serve(ok(b"one") + b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo")) as srv:
        async with Pool(srv.origin) as pool:
            r = await pool.request("GET", "/")
            assert r.body == b"one" and pool.idle == 0  # the pipelined extra is not ours to read
            assert (await pool.request("GET", "/")).body == b"one" and srv.connections == 2


# ---------------------------------------------------------------------------------------------------
# connections that die


async def test_idle_connection_closed_by_server_is_replaced() -> None:
    async with Server(serve(ok(), then_close=True)) as srv, Pool(srv.origin) as pool:
        assert (await pool.request("GET", "/")).status == 200
        await eventually(lambda: pool.idle == 0, what="the idle connection the server closed left the pool")
        assert (await pool.request("GET", "/")).status == 200  # a new connection, not an error
        assert srv.connections == 2 and pool.stats.opened == 2


async def test_server_closes_after_reading_the_request() -> None:
    async with Server(serve(b"", then_close=True)) as srv, Pool(srv.origin) as pool:
        with pytest.raises(RequestUncertain, match="closed before any response byte") as info:
            await pool.request("POST", "/order", None, b"{}")
        assert not info.value.timed_out and pool.idle == 0


async def test_kept_alive_connection_dead_on_write_is_uncertain_not_retried() -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.next(reader)
        writer.write(ok())
        await srv.next(reader)  # read the second request, then vanish without a word
        writer.transport.abort()

    async with Server(handler) as srv, Pool(srv.origin) as pool:
        await pool.request("GET", "/")
        with pytest.raises(RequestUncertain):
            await pool.request("POST", "/order", None, b"{}")
        assert srv.connections == 1 and len(srv.requests) == 2  # never resent on a fresh connection


async def test_reset_mid_response() -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.next(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.transport.abort()

    async with Server(handler) as srv, Pool(srv.origin) as pool:
        with pytest.raises(RequestUncertain, match="lost mid-response"):
            await pool.request("GET", "/")
        assert srv.connections == 1


async def test_timeout_is_uncertain_and_drops_the_connection() -> None:
    async def stall(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.next(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        await srv.until_eof(reader)

    async with Server(stall) as srv, Pool(srv.origin, timeout=0.3) as pool:
        with pytest.raises(RequestUncertain, match="timed out") as info:
            await pool.request("POST", "/order", None, b"{}")
        assert info.value.timed_out and pool.idle == 0
        await eventually(lambda: srv.eofs == 1, what="the timed-out connection closed")
        with pytest.raises(RequestUncertain):
            await pool.request("GET", "/", timeout=0.1)  # the caller's timeout
        assert srv.connections == 2


async def test_cancelled_request_drops_its_connection() -> None:
    async def stall(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.next(reader)
        await srv.until_eof(reader)

    async with Server(stall) as srv, Pool(srv.origin) as pool:
        task = asyncio.create_task(pool.request("GET", "/"))
        await eventually(lambda: srv.requests, what="request at the server")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await eventually(lambda: srv.eofs == 1, what="the cancelled request's connection closed")
        assert pool.idle == 0


async def test_start_writes_on_an_idle_connection_before_it_returns() -> None:
    # Pool.start: the request's bytes are in the socket when it returns (no loop turn; the server reads them while
    # this coroutine has not yielded), on an idle connection; finish() gives the response as request() would.
    async with Server(echo) as srv, Pool(srv.origin) as pool:
        assert pool.start("POST", "/order", {"X-Key": "k"}, b"{}") is None  # nothing idle: nothing written
        assert pool.stats.requests == 0
        assert await pool.warm(1) == 1
        ex = pool.start("POST", "/order", {"X-Key": "k"}, b'{"n":1}')
        assert ex is not None and pool.idle == 0 and (pool.stats.reused, pool.stats.requests) == (1, 1)
        # written already: the server reads it without this task writing anything more
        await eventually(lambda: any(r.target == "/order" for r in srv.requests), what="the request at the server")
        r = await pool.finish(ex)
        assert r.status == 200 and r.body == b'POST /order {"n":1}'
        assert srv.requests[-1].headers["x-key"] == "k" and pool.idle == 1  # back in the pool for the next one
        assert (await pool.request("GET", "/next")).body == b"GET /next " and srv.connections == 1
        with pytest.raises(ValueError, match="CR or LF"):  # refused before anything is taken or written
            pool.start("POST", "/order", {"X-Key": "a\r\nb"}, b"{}")
        assert pool.idle == 1 and pool.stats.requests == 2


async def test_a_started_request_times_out_or_is_cancelled_as_a_request_does() -> None:
    # each connection answers its first request (the warm-up) and stalls on the second, mid-head
    async with Server(serve(ok(b"warm"), b"HTTP/1.1 200 OK\r\n")) as srv, Pool(srv.origin, timeout=0.3) as pool:
        assert await pool.warm(1, "/") == 1
        ex = pool.start("POST", "/order", None, b"{}")
        assert ex is not None
        with pytest.raises(RequestUncertain, match="timed out") as info:
            await pool.finish(ex)
        assert info.value.timed_out and pool.idle == 0
        await eventually(lambda: srv.eofs == 1, what="the timed-out connection closed")
        # cancelled while awaiting the answer: its connection is dropped (a late answer would answer the next)
        assert await pool.warm(1, "/") == 1
        ex = pool.start("POST", "/order", None, b"{}")
        assert ex is not None
        task = asyncio.create_task(pool.finish(ex))
        await eventually(lambda: len(srv.requests) == 4, what="the second POST at the server")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await eventually(lambda: srv.eofs == 2, what="the cancelled exchange's connection closed")
        assert pool.idle == 0 and ex.timer.cancelled()


async def test_connection_refused_is_connect_failed() -> None:
    async with Pool(f"http://127.0.0.1:{free_port()}") as pool:
        with pytest.raises(ConnectFailed, match=r"cannot connect to http://127\.0\.0\.1") as info:
            await pool.request("POST", "/order", None, b"{}")
        assert "Connect" in info.value.reason and pool.stats.connect_failed == 1 and pool.stats.requests == 0
        assert await pool.warm(2) == 0  # warm-up failures are counted, not raised


async def test_connect_timeout_is_connect_failed() -> None:
    async def silent(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.until_eof(reader)  # accepts TCP, never answers the TLS handshake

    async with Server(silent) as srv, Pool(f"https://127.0.0.1:{srv.port}", connect_timeout=0.2) as pool:
        with pytest.raises(ConnectFailed, match="connect timed out") as info:
            await pool.request("POST", "/order", None, b"{}")
        assert info.value.timed_out and pool.stats.requests == 0 and not srv.requests


async def test_bad_requests_are_refused_before_sending() -> None:
    async with Server(echo) as srv, Pool(srv.origin) as pool:
        with pytest.raises(ValueError, match="CR or LF"):
            await pool.request("GET", "/", {"X-A": "1\r\nX-Injected: 2"})
        with pytest.raises(ValueError, match="target"):
            await pool.request("GET", "/a b")
        with pytest.raises(ValueError, match="method"):
            await pool.request("GE T", "/")
        assert srv.connections == 0
    with pytest.raises(ValueError):
        Pool("http://127.0.0.1:1/base/path")


# ---------------------------------------------------------------------------------------------------
# malformed and hostile responses


@pytest.mark.parametrize(
    "wire, match",
    [
        (b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n", "bad status line"),
        (b"ICY 200 OK\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX", "not followed by CRLF"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
    ],
)
async def test_malformed_responses_are_refused_and_the_connection_dropped(wire: bytes, match: str) -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.next(reader)
        writer.write(wire)
        await srv.until_eof(reader)

    async with Server(handler) as srv, Pool(srv.origin) as pool:
        with pytest.raises(MalformedResponse, match=match):
            await pool.request("GET", "/")
        await eventually(lambda: srv.eofs == 1, what="the connection dropped")
        assert pool.idle == 0


async def test_oversized_head_and_body_are_refused() -> None:
    big_head = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 4000 + b"\r\nContent-Length: 0\r\n\r\n"
    endless_head = b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 1000  # never terminated
    async with Server(serve(big_head)) as srv, Pool(srv.origin, max_header_bytes=1024) as pool:
        with pytest.raises(MalformedResponse, match="head larger than 1024"):
            await pool.request("GET", "/")
    async with Server(serve(endless_head)) as srv, Pool(srv.origin, max_header_bytes=1024) as pool:
        with pytest.raises(MalformedResponse, match="head larger than 1024"):
            await pool.request("GET", "/")
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + (b"100\r\n" + b"x" * 256 + b"\r\n") * 5
    for wire in (b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", chunked,
                 b"HTTP/1.1 200 OK\r\n\r\n" + b"y" * 3000):  # fmt: skip
        async with Server(serve(wire)) as srv, Pool(srv.origin, max_body_bytes=1000) as pool:
            with pytest.raises(MalformedResponse, match="1000"):
                await pool.request("GET", "/")


# ---------------------------------------------------------------------------------------------------
# warm-up


async def test_warm_opens_missing_connections_and_proves_them() -> None:
    async with Server(echo) as srv, Pool(srv.origin) as pool:
        await pool.request("GET", "/")
        assert await pool.warm(3, "/ping") == 3
        assert srv.connections == 3 and pool.idle == 3
        assert [r.target for r in srv.requests].count("/ping") == 3  # the idle one was touched too
        assert await pool.warm(2) == 2 and srv.connections == 3
    async with Server(serve(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")) as srv, Pool(srv.origin) as pool:
        assert await pool.warm(2, "/ping") == 0


async def test_close_fails_requests_in_flight_and_the_pool_stays_usable() -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (req := await srv.next(reader)) is not None:
            if req.target == "/slow":
                await srv.until_eof(reader)
                return
            writer.write(ok())

    async with Server(handler) as srv:
        pool = Pool(srv.origin)
        await pool.warm(2)
        task = asyncio.create_task(pool.request("GET", "/slow"))
        await eventually(lambda: srv.requests, what="request at the server")
        await pool.close()
        with pytest.raises(RequestUncertain, match="pool was closed"):
            await task
        assert pool.idle == 0
        await eventually(lambda: srv.eofs == 1, what="connections closed")
        assert (await pool.request("GET", "/")).status == 200
        await pool.close()


# ---------------------------------------------------------------------------------------------------
# the venue simulators


async def test_keep_alive_at_the_simulators() -> None:
    async with PolymarketSim(tick_interval=1.0) as poly, KalshiSim(tick_interval=1.0) as kal:
        async with Pool(poly.rest_url) as p, Pool(kal.rest_url) as k:
            for _ in range(4):
                assert (await p.request("GET", "/")).status == 200
                r = await k.request("GET", "/trade-api/v2/exchange/status")
                assert r.status == 200 and r.headers["Content-Type"] == "application/json"
            assert poly.stats["http_connections"] == 1 and poly.stats["http_requests"] == 4
            assert kal.stats["http_connections"] == 1 and kal.stats["http_requests"] == 4
            kal.http_idle_s = 0.1  # the sim closes idle connections: the next request just opens another
            await k.request("GET", "/trade-api/v2/exchange/status")
            await eventually(lambda: k.idle == 0, what="the sim closed the idle connection")
            assert (await k.request("GET", "/trade-api/v2/exchange/status")).status == 200
            assert kal.stats["http_connections"] == 2 and kal.stats["http_idle_closed"] >= 1


# ---------------------------------------------------------------------------------------------------
# proxies


@pytest.fixture(scope="module")
def pproxy() -> Iterator[ProxyProc]:
    p = ProxyProc("http", auth="crossbook:pr0xy-s3cret").start()
    try:
        yield p
    finally:
        p.kill()


async def test_through_an_http_connect_proxy(pproxy: ProxyProc) -> None:
    async with Server(echo) as srv, Pool(srv.origin, proxy=pproxy.url) as pool:
        for i in range(3):
            assert (await pool.request("POST", "/o", None, b"%d" % i)).body == b"POST /o %d" % i
        assert srv.connections == 1 and pool.stats.opened == 1  # one tunnel, kept alive
        assert pool.proxy_label == f"http://127.0.0.1:{pproxy.port}"


async def test_proxy_refusing_is_connect_failed_without_credentials(pproxy: ProxyProc) -> None:
    # pproxy remembers a client address that once authenticated: a fresh one for the wrong password.
    fresh = ProxyProc("http", auth="crossbook:pr0xy-s3cret").start()
    try:
        wrong = f"http://crossbook:wr0ng-s3cret@127.0.0.1:{fresh.port}"
        async with Server(echo) as srv, Pool(srv.origin, proxy=wrong) as pool:
            with pytest.raises(ConnectFailed, match="407") as info:
                await pool.request("POST", "/o", None, b"{}")
            assert "wr0ng" not in str(info.value) and f"via proxy http://127.0.0.1:{fresh.port}" in str(info.value)
            assert srv.connections == 0
    finally:
        fresh.kill()
    async with Pool(f"http://127.0.0.1:{free_port()}", proxy=pproxy.url) as pool:  # the origin is down
        with pytest.raises(ConnectFailed, match="proxy"):
            await pool.request("GET", "/")
    async with Pool("http://127.0.0.1:1", proxy=f"http://u:pw@127.0.0.1:{free_port()}") as pool:  # proxy down
        with pytest.raises(ConnectFailed) as info:
            await pool.request("GET", "/")
        assert ":pw@" not in str(info.value)


@dataclass
class ConnectProxy:
    """An in-process HTTP CONNECT proxy: optionally over TLS, optionally refusing with ``refuse``."""

    ssl_ctx: ssl.SSLContext | None = None
    refuse: bytes | None = None
    auths: list[str] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_ctx else 'http'}://user:p%40ss@127.0.0.1:{self.port}"

    async def __aenter__(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_ctx)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.sleep(0.01)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._tunnel(reader, writer)
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        req = await read_request(reader)
        if req is None or req.method != "CONNECT":
            writer.close()
            return
        self.auths.append(req.headers.get("proxy-authorization", ""))
        if self.refuse is not None:
            writer.write(self.refuse)
            writer.close()
            return
        host, port = req.target.rsplit(":", 1)
        up_r, up_w = await asyncio.open_connection(host, int(port))
        self._writers.add(up_w)
        writer.write(b"HTTP/1.0 200 Connection established\r\n\r\n")

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, RuntimeError):
                pass
            finally:
                w.close()

        try:
            await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        finally:
            self._writers.discard(up_w)


async def test_proxy_refusal_status_and_basic_auth() -> None:
    async with ConnectProxy(refuse=b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope") as proxy:
        async with Pool("https://venue.example:443", proxy=proxy.url) as pool:
            with pytest.raises(ConnectFailed, match=r"refused CONNECT \(HTTP 403 Forbidden\)") as info:
                await pool.request("POST", "/order", None, b"{}")
            assert "p%40ss" not in str(info.value) and "p@ss" not in str(info.value)
        assert proxy.auths == ["Basic " + base64.b64encode(b"user:p@ss").decode()]


# ---------------------------------------------------------------------------------------------------
# TLS


@dataclass
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crossbook test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    d: Path = tmp_path_factory.mktemp("tls")
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (d / "cert.pem").write_bytes(cert_pem)
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))  # fmt: skip
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(d / "cert.pem", d / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return Tls(server, client)


async def test_tls_with_a_trusted_self_signed_certificate(tls: Tls) -> None:
    async with Server(echo, ssl_ctx=tls.server) as srv:
        async with Pool(srv.origin, ssl_context=tls.client) as pool:
            for _ in range(3):
                assert (await pool.request("POST", "/o", None, b"x")).body == b"POST /o x"
            assert srv.connections == 1
        async with Pool(srv.origin) as pool:  # the system trust store does not know this certificate
            with pytest.raises(ConnectFailed, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
                await pool.request("GET", "/")


async def test_tls_through_pproxy(tls: Tls, pproxy: ProxyProc) -> None:
    async with Server(echo, ssl_ctx=tls.server) as srv, Pool(srv.origin, ssl_context=tls.client,
                                                            proxy=pproxy.url) as pool:  # fmt: skip
        for _ in range(3):
            assert (await pool.request("GET", "/t")).body == b"GET /t "
        assert srv.connections == 1 and pool.stats.opened == 1


async def _tls_in_tls_through_a_tls_proxy(tls: Tls) -> None:
    async with (
        Server(echo, ssl_ctx=tls.server) as srv,
        ConnectProxy(ssl_ctx=tls.server) as proxy,
        Pool(srv.origin, ssl_context=tls.client, proxy=proxy.url, proxy_ssl_context=tls.client) as pool,
    ):
        for _ in range(2):
            assert (await pool.request("GET", "/x")).body == b"GET /x "
        assert srv.connections == 1 and len(proxy.auths) == 1


async def test_https_proxy_tls_in_tls(tls: Tls) -> None:
    await _tls_in_tls_through_a_tls_proxy(tls)


# ---------------------------------------------------------------------------------------------------
# on uvloop (the daemon's loop)


def test_on_uvloop(tls: Tls) -> None:
    async def main() -> None:
        await test_keep_alive_one_connection_for_sequential_requests()
        await test_chunked_and_split_responses()
        await test_read_until_close()
        await test_idle_connection_closed_by_server_is_replaced()
        await test_server_closes_after_reading_the_request()
        await test_timeout_is_uncertain_and_drops_the_connection()
        await test_tls_with_a_trusted_self_signed_certificate(tls)
        await _tls_in_tls_through_a_tls_proxy(tls)
        async with Server(echo) as srv, Pool(srv.origin, timeout=1.0) as pool:
            assert (await pool.request("GET", "/c?q=1")).body == b"GET /c?q=1 "

    uvloop.run(main())
