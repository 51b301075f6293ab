"""A lean HTTP/1.1 keep-alive client for venue REST, built for the order path.

Handing a POST to aiohttp costs ~440 µs (p50, this kind of box) before its first bytes reach the server;
writing the same bytes on an open connection costs ~75 µs. Here an order on a warm connection is one
bytes build and one ``transport.write``: no streams, no cookie jar, no redirects, no retries, no
per-request URL parsing.

Design
------
* :class:`Pool` — one origin (scheme, host, port). Kept-alive connections wait in a LIFO stack (the
  most recently used is the warmest: its congestion window is open and the server's idle timer is
  furthest away). A connection goes back to the stack only once its response was read completely,
  nothing followed it, and the server did not say ``Connection: close``. A connection the server closes
  while idle leaves the stack at once (``connection_lost``), so a request never picks a known-dead one;
  ``max_idle_s`` retires ones idle for longer than the venues keep them.
* :class:`_Conn` — an :class:`asyncio.Protocol` (works on uvloop) with TCP_NODELAY and an incremental
  response parser: status line, headers (size-limited), ``Content-Length``, ``Transfer-Encoding:
  chunked`` (trailers read and ignored) or read-until-close; HEAD, 1xx, 204 and 304 have no body;
  interim 1xx responses are skipped. Bytes may arrive in any split. Bytes after a complete response,
  or bytes while no request is in flight, mean the server is out of step: the response in hand is
  still delivered but the connection is never reused.
* Per pool, the constant request parts (the ``Host`` line and ``fixed_headers``) are formatted once.
  A request is ``method target HTTP/1.1``, those, the caller's headers, ``Content-Length`` (when
  there is a body, or for POST/PUT/PATCH) and the body, joined into one ``bytes``. Callers pass an
  origin-form target (``/path?query``, already percent-encoded) and must not pass ``Host``,
  ``Content-Length`` or ``Transfer-Encoding``; CR/LF in header names or values is refused
  (:class:`ValueError`, before anything is sent).
* ``https`` origins use TLS (``ssl_context``, by default ``ssl.create_default_context()``, with SNI and
  hostname checks). With a proxy (``http://[user:pass@]host:port``, or ``https://`` for TLS to the
  proxy itself) every connection is an HTTP CONNECT tunnel, for ``http`` origins too, so all traffic
  leaves through the proxy; ``Proxy-Authorization: Basic`` is sent when the URL has credentials, and an
  ``https`` origin is then wrapped with ``loop.start_tls``. Messages name a proxy only by its label
  (:func:`crossbook.hub.proxies.proxy_label`): never its credentials.
* Timeouts: ``connect_timeout`` bounds opening a connection (TCP, proxy CONNECT, TLS); the request's
  ``timeout`` bounds everything (connect included).

Error semantics (exact, because an order POST that may have reached the venue must never be resent
blindly — the caller resolves it by looking the order up):

* :class:`ConnectFailed` — the connection (TCP, TLS or proxy tunnel) could not be opened, or no time
  was left once it was: nothing of the request was sent, certainly.
* :class:`RequestUncertain` — the request was (possibly partly) written and no complete response came:
  timeout (``timed_out`` is set), connection lost or reset, a malformed or oversized response
  (:class:`MalformedResponse`, the connection is dropped). A kept-alive connection that turns out dead
  when written to (the write raises, or it closes before any response byte) is also uncertain: it is
  never silently retried on a fresh connection. Callers retry what is safe to retry (GETs) themselves.

Nothing here retries, follows redirects, stores cookies or decompresses (no ``Accept-Encoding`` is sent).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import socket
import ssl
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple, cast
from urllib.parse import unquote, urlsplit

from crossbook.errors import CrossbookError
from crossbook.hub.proxies import proxy_label

__all__ = [
    "ConnectFailed",
    "Exchange",
    "Headers",
    "HttpClientError",
    "MalformedResponse",
    "Pool",
    "PoolStats",
    "RequestUncertain",
    "Response",
]

MAX_HEADER_BYTES = 64 * 1024  # a response head (status line + headers), and a chunked body's trailers
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_CHUNK_LINE = 1024  # a chunk-size line with its extensions

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_STATUS_LINE = re.compile(r"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?")
_HEADER_LINE = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*?)[ \t]*")
_HEX = re.compile(r"[0-9A-Fa-f]{1,15}")
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
_methods_ok: set[str] = {"GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"}

# Parser states of one exchange.
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _UNTIL_CLOSE, _DONE = range(8)


class HttpClientError(CrossbookError, ConnectionError):
    """A request could not be completed; ``reason`` says why in words (no URL credentials, ever)."""

    def __init__(self, message: str, reason: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.timed_out = timed_out


class ConnectFailed(HttpClientError):
    """No connection could be opened (TCP, TLS or proxy CONNECT): nothing was sent, certainly."""


class RequestUncertain(HttpClientError):
    """The request was (possibly partly) written and no complete response came: the server may have
    acted on it. Never resend a non-idempotent request blindly; find out what happened instead."""


class MalformedResponse(RequestUncertain):
    """The server's response broke HTTP/1.1 or our size limits; the connection was dropped."""


class Headers(Mapping[str, str]):
    """Response headers: case-insensitive lookup (repeated fields joined with ``", "``); iteration yields
    lower-case names; :meth:`raw` keeps the fields as received."""

    __slots__ = ("_items", "_map")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        self._map: dict[str, str] = {}
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        self._items.append((name, value))
        key = name.lower()
        old = self._map.get(key)
        self._map[key] = value if old is None else f"{old}, {value}"

    def __getitem__(self, name: str) -> str:
        return self._map[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def getall(self, name: str) -> list[str]:
        key = name.lower()
        return [v for k, v in self._items if k.lower() == key]

    def raw(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(slots=True, frozen=True)
class Response:
    status: int
    reason: str
    headers: Headers
    body: bytes


@dataclass(slots=True)
class PoolStats:
    opened: int = 0  # connections opened (and ready: TCP, tunnel and TLS done)
    reused: int = 0  # requests written on a kept-alive connection taken from the pool
    requests: int = 0  # requests written (warm-up GETs included)
    connect_failed: int = 0


class _Proxy(NamedTuple):
    host: str
    port: int
    tls: bool
    auth: str  # the Proxy-Authorization header line, or ""
    label: str


class _Bad(Exception):
    """A response that breaks the protocol or a limit (internal: becomes MalformedResponse)."""


@cache
def _default_ssl() -> ssl.SSLContext:
    return ssl.create_default_context()


def _host_port(host: str, port: int, default: int | None) -> str:
    h = f"[{host}]" if ":" in host else host
    return h if port == default else f"{h}:{port}"


class Exchange(NamedTuple):
    """A request written by :meth:`Pool.start`, its response awaited with :meth:`Pool.finish`."""

    conn: _Conn
    waiter: asyncio.Future[Response]
    timer: asyncio.TimerHandle


class _Conn(asyncio.Protocol):
    """One connection and the exchange in flight on it (at most one: no pipelining)."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.epoch = pool._epoch
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Response] | None = None
        self._release = True  # back to the pool when the exchange ends cleanly (not for CONNECT)
        self._method = ""
        self._target = ""
        self._buf = bytearray()
        self._scan = 0
        self._state = _DONE
        self._received = 0
        self._status = 0
        self._reason = ""
        self._headers = Headers()
        self._keep = True
        self._body = bytearray()
        self._remaining = 0
        self._trailer_bytes = 0

    # -- asyncio.Protocol ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            # Nothing was asked: a server speaking out of turn cannot be trusted with the next request.
            self._close(abort=True)
            return
        self._received += len(data)
        self._buf += data
        try:
            done = self._parse()
        except _Bad as exc:
            self._fail(MalformedResponse(self._what(f"malformed response: {exc}"), f"malformed response: {exc}"))
            return
        if done:
            self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._forget(self)
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if self._state == _UNTIL_CLOSE and exc is None:  # the close delimits the body
            waiter.set_result(Response(self._status, self._reason, self._headers, bytes(self._body)))
            return
        if self._received == 0:
            reason = "the connection was closed before any response byte"
        else:
            reason = f"the connection was lost mid-response ({self._received} bytes received)"
        if exc is not None:
            reason += f" ({type(exc).__name__}: {exc})"
        waiter.set_exception(RequestUncertain(self._what(reason), reason))

    # -- one exchange ----------------------------------------------------------------------------------
    async def exchange(self, method: str, target: str, data: bytes, deadline: float, release: bool = True) -> Response:
        """Write ``data`` and wait for the response (until ``deadline``, loop time)."""
        return await self.finish(self.begin(method, target, data, deadline, release))

    def begin(self, method: str, target: str, data: bytes, deadline: float, release: bool = True) -> Exchange:
        """Write ``data`` now (before this returns) and start waiting for its response (until ``deadline``,
        loop time); await :meth:`finish` with what this returns for the response. A failure to write is
        the response's error (the request's fate is then unknown)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response] = loop.create_future()
        self._waiter = waiter
        self._release = release
        self._method = method
        self._target = target
        self._state = _HEAD
        self._scan = 0
        self._received = 0
        timer = loop.call_at(deadline, self._timed_out, max(0.0, deadline - loop.time()), waiter)
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            self._fail(self._uncertain("the connection was closed before the request was written"))
        else:
            try:
                transport.write(data)
            except Exception as exc:  # any write failure leaves the request's fate unknown
                self._fail(self._uncertain(f"writing the request failed ({type(exc).__name__}: {exc})"))
        return Exchange(self, waiter, timer)

    async def finish(self, ex: Exchange) -> Response:
        """The response to the request :meth:`begin` wrote (its error, if the exchange failed)."""
        waiter = ex.waiter
        try:
            return await waiter
        except BaseException:
            if self._waiter is waiter:  # cancelled mid-exchange: its response would answer the next request
                self._waiter = None
                self._close(abort=True)
            raise
        finally:
            ex.timer.cancel()

    def _timed_out(self, after: float, waiter: asyncio.Future[Response]) -> None:
        if self._waiter is waiter and not waiter.done():
            reason = f"timed out after {after:.3g}s without a complete response"
            self._fail(RequestUncertain(self._what(reason), reason, timed_out=True))

    def _what(self, reason: str) -> str:
        return f"{self._method} {self.pool.origin}{self._target if self._method != 'CONNECT' else ''}: {reason}"

    def _uncertain(self, reason: str) -> RequestUncertain:
        return RequestUncertain(self._what(reason), reason)

    def _fail(self, exc: HttpClientError) -> None:
        waiter, self._waiter = self._waiter, None
        self._close(abort=True)
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _finish(self) -> None:
        waiter, self._waiter = self._waiter, None
        response = Response(self._status, self._reason, self._headers, bytes(self._body))
        self._body = bytearray()
        if not self._keep or self._buf:  # the server closes, or sent bytes nobody asked for
            self._close(abort=bool(self._buf))
        elif self._release:
            self.pool._release(self)
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _close(self, abort: bool = False) -> None:
        if not self.closed:
            self.closed = True
            self.pool._forget(self)
        self._buf.clear()
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    # -- parsing -----------------------------------------------------------------------------------
    def _parse(self) -> bool:
        """Consume ``_buf``; True when the response is complete."""
        buf = self._buf
        pool = self.pool
        while True:
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n", self._scan)
                if end < 0:
                    if len(buf) > pool.max_header_bytes:
                        raise _Bad(f"response head larger than {pool.max_header_bytes} bytes")
                    self._scan = max(0, len(buf) - 3)
                    return False
                if end > pool.max_header_bytes:
                    raise _Bad(f"response head larger than {pool.max_header_bytes} bytes")
                head = bytes(buf[:end])
                del buf[: end + 4]
                self._scan = 0
                self._on_head(head)
            elif state == _LENGTH:
                take = min(self._remaining, len(buf))
                self._body += buf[:take]
                del buf[:take]
                self._remaining -= take
                if self._remaining:
                    return False
                self._state = _DONE
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_CHUNK_LINE:
                        raise _Bad("chunk size line too long")
                    return False
                if end > MAX_CHUNK_LINE:
                    raise _Bad("chunk size line too long")
                size_text = bytes(buf[:end]).split(b";", 1)[0].strip(b" \t").decode("latin-1")
                del buf[: end + 2]
                if not _HEX.fullmatch(size_text):
                    raise _Bad(f"bad chunk size {size_text[:20]!r}")
                size = int(size_text, 16)
                if size == 0:
                    self._state = _TRAILER
                    self._trailer_bytes = 0
                else:
                    if len(self._body) + size > pool.max_body_bytes:
                        raise _Bad(f"body larger than {pool.max_body_bytes} bytes")
                    self._remaining = size
                    self._state = _CHUNK_DATA
            elif state == _CHUNK_DATA:
                take = min(self._remaining, len(buf))
                self._body += buf[:take]
                del buf[:take]
                self._remaining -= take
                if self._remaining:
                    return False
                self._state = _CHUNK_END
            elif state == _CHUNK_END:
                if len(buf) < 2:
                    return False
                if buf[:2] != b"\r\n":
                    raise _Bad("chunk data not followed by CRLF")
                del buf[:2]
                self._state = _CHUNK_SIZE
            elif state == _TRAILER:  # trailer fields, read and ignored, up to an empty line
                end = buf.find(b"\r\n")
                if end < 0:
                    if self._trailer_bytes + len(buf) > pool.max_header_bytes:
                        raise _Bad(f"trailers larger than {pool.max_header_bytes} bytes")
                    return False
                self._trailer_bytes += end + 2
                if self._trailer_bytes > pool.max_header_bytes:
                    raise _Bad(f"trailers larger than {pool.max_header_bytes} bytes")
                del buf[: end + 2]
                if end == 0:
                    self._state = _DONE
            elif state == _UNTIL_CLOSE:
                if len(self._body) + len(buf) > pool.max_body_bytes:
                    raise _Bad(f"body larger than {pool.max_body_bytes} bytes")
                self._body += buf
                buf.clear()
                return False
            else:  # _DONE
                return True

    def _on_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        m = _STATUS_LINE.fullmatch(lines[0])
        if m is None:
            raise _Bad(f"bad status line {lines[0][:80]!r}")
        status = int(m.group(2))
        headers = Headers()
        for line in lines[1:]:
            h = _HEADER_LINE.fullmatch(line)
            if h is None:
                raise _Bad(f"bad header line {line[:80]!r}")
            headers.add(h.group(1), h.group(2))
        if status < 200:
            if status == 101:
                raise _Bad("101 Switching Protocols was not asked for")
            return  # an interim response (100 Continue, 103 Early Hints): the real one follows
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        keep = "close" not in tokens if m.group(1) == "1" else "keep-alive" in tokens
        method = self._method
        te = headers.get("transfer-encoding")
        cl = headers.get("content-length")
        self._status, self._reason, self._headers = status, m.group(3) or "", headers
        self._body = bytearray()
        if method == "CONNECT":  # 2xx: the connection is the tunnel now; a refusal's body is never read
            state = _DONE
            keep = 200 <= status < 300
        elif method == "HEAD" or status in (204, 304):
            state = _DONE
        elif te is not None:
            codings = [c.strip().lower() for c in te.split(",")]
            if codings[-1] == "chunked":
                if "chunked" in codings[:-1]:
                    raise _Bad(f"bad Transfer-Encoding {te[:80]!r}")
                state = _CHUNK_SIZE
            else:  # a body in some other coding: it ends when the connection does
                state = _UNTIL_CLOSE
                keep = False
            if cl is not None:  # both framings: Transfer-Encoding wins, and the connection is not reused
                keep = False
        elif cl is not None:
            values = {v.strip() for v in cl.split(",")}
            value = values.pop()
            if values or not (value.isascii() and value.isdigit()):
                raise _Bad(f"bad Content-Length {cl[:40]!r}")
            length = int(value)
            if length > self.pool.max_body_bytes:
                raise _Bad(f"Content-Length {length} above the limit of {self.pool.max_body_bytes} bytes")
            self._remaining = length
            state = _LENGTH if length else _DONE
        else:
            state = _UNTIL_CLOSE
            keep = False
        self._keep = keep
        self._state = state


class Pool:
    """Kept-alive connections to one origin (``scheme://host[:port]``) and the requests on them."""

    def __init__(
        self, origin: str, *, timeout: float = 30.0, connect_timeout: float | None = 10.0,
        ssl_context: ssl.SSLContext | None = None, proxy: str | None = None,
        proxy_ssl_context: ssl.SSLContext | None = None, fixed_headers: Mapping[str, str] | None = None,
        max_idle: int = 32, max_idle_s: float | None = 60.0,
        max_header_bytes: int = MAX_HEADER_BYTES, max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:  # fmt: skip
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"origin {origin!r}: need http:// or https:// and a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("origin: credentials in the URL are not supported")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"origin {origin!r}: scheme://host[:port] only (the path goes in each request)")
        self.tls = parts.scheme == "https"
        default_port = 443 if self.tls else 80
        self.host = parts.hostname
        self.port = parts.port or default_port
        self.origin = f"{parts.scheme}://{_host_port(self.host, self.port, None)}"
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.ssl_context = ssl_context
        self.max_idle = max_idle
        self.max_idle_s = max_idle_s
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.stats = PoolStats()
        self.proxy_ssl_context = proxy_ssl_context  # for an https:// proxy (default: the system's trust)
        self._proxy = self._parse_proxy(proxy) if proxy else None
        self._authority = _host_port(self.host, self.port, None)  # CONNECT host:port
        fixed = {"Host": _host_port(self.host, self.port, default_port), **(fixed_headers or {})}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        if self._fixed.count("\n") != len(fixed) or self._fixed.count("\r") != len(fixed):
            raise ValueError("fixed header names and values must not contain CR or LF")
        self._idle: list[_Conn] = []  # a stack: the last released is taken first
        self._conns: set[_Conn] = set()
        self._epoch = 0

    @staticmethod
    def _parse_proxy(url: str) -> _Proxy:
        label = proxy_label(url)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"proxy {label}: only http:// or https:// (HTTP CONNECT) proxies with a host")
        tls = parts.scheme == "https"
        auth = ""
        if parts.username is not None:
            creds = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            auth = f"Proxy-Authorization: Basic {base64.b64encode(creds).decode()}\r\n"
        return _Proxy(parts.hostname, parts.port or (443 if tls else 80), tls, auth, label)

    @property
    def proxy_label(self) -> str | None:
        return self._proxy.label if self._proxy else None

    @property
    def idle(self) -> int:
        """Connections open and idle in the pool now."""
        return len(self._idle)

    # -- requests ---------------------------------------------------------------------------------------
    def build(self, method: str, target: str, headers: Mapping[str, str] | None = None, body: bytes = b"") -> bytes:
        """The request's bytes, exactly as :meth:`request` writes them."""
        if method not in _methods_ok:
            if not _TOKEN.fullmatch(method):
                raise ValueError(f"bad HTTP method {method[:20]!r}")
            if len(_methods_ok) < 64:
                _methods_ok.add(method)
        if not target.startswith("/") or " " in target or "\r" in target or "\n" in target:
            raise ValueError(f"request target must be a path ('/...') without spaces or CR/LF: {target[:80]!r}")
        fields = ""
        if headers:
            fields = "".join([f"{k}: {v}\r\n" for k, v in headers.items()])
            if fields.count("\n") != len(headers) or fields.count("\r") != len(headers):
                raise ValueError("header names and values must not contain CR or LF")
        if body or method in _BODY_METHODS:
            return (f"{method} {target} HTTP/1.1\r\n{self._fixed}{fields}Content-Length: {len(body)}\r\n\r\n"
                    .encode("latin-1") + body)  # fmt: skip
        return f"{method} {target} HTTP/1.1\r\n{self._fixed}{fields}\r\n".encode("latin-1")

    async def request(
        self, method: str, target: str, headers: Mapping[str, str] | None = None, body: bytes = b"",
        *, timeout: float | None = None,
    ) -> Response:  # fmt: skip
        """One request on a kept-alive connection (a new one when none is idle). ``target`` is
        ``/path?query``. Raises :class:`ConnectFailed` (nothing sent) or :class:`RequestUncertain`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        data = self.build(method, target, headers, body)
        ex = self._start(method, target, data, timeout)
        if ex is not None:
            return await ex.conn.finish(ex)
        conn = await self._open(loop, deadline)
        if loop.time() >= deadline:
            self._release(conn)
            self.stats.connect_failed += 1
            reason = "no time left for the request once connected"
            raise ConnectFailed(f"{method} {self.origin}{target}: {reason}", reason, timed_out=True)
        self.stats.requests += 1
        return await conn.exchange(method, target, data, deadline)

    def start(
        self, method: str, target: str, headers: Mapping[str, str] | None = None, body: bytes = b"",
        *, timeout: float | None = None,
    ) -> Exchange | None:  # fmt: skip
        """:meth:`request`'s write, now: the request is written on an idle kept-alive connection before this
        returns, and :meth:`finish` awaits its response (with :meth:`request`'s errors). None, with nothing
        written, when no connection is idle (:meth:`request` would have to open one first)."""
        return self._start(method, target, self.build(method, target, headers, body), timeout)

    def _start(self, method: str, target: str, data: bytes, timeout: float | None) -> Exchange | None:
        """``data`` written now on an idle connection (the one :meth:`request` and :meth:`start` share)."""
        conn = self._take()
        if conn is None:
            return None
        self.stats.reused += 1
        self.stats.requests += 1
        loop = asyncio.get_running_loop()
        return conn.begin(method, target, data, loop.time() + (self.timeout if timeout is None else timeout))

    @staticmethod
    async def finish(ex: Exchange) -> Response:
        """The response to a request :meth:`start` wrote. Raises :class:`RequestUncertain`."""
        return await ex.conn.finish(ex)

    async def warm(
        self, n: int, path: str | None = None, headers: Mapping[str, str] | None = None,
        *, timeout: float | None = None,
    ) -> int:  # fmt: skip
        """Make sure ``n`` connections are open and idle (missing ones are opened concurrently). With
        ``path``, a GET is sent on each of them (idle ones included: it keeps them from idling out) and
        only those answered below 500 and kept alive count. Returns how many are ready; failures are
        not raised."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        conns: list[_Conn] = []
        if path is None:
            self._prune()
            missing = max(0, n - len(self._idle))
        else:
            data = self.build("GET", path, headers)
            while len(conns) < n and (conn := self._take()) is not None:
                conns.append(conn)
            missing = n - len(conns)
        try:
            opened = await asyncio.gather(*(self._open(loop, deadline) for _ in range(missing)),
                                          return_exceptions=True)  # fmt: skip
        except BaseException:  # cancelled: the connections taken stay usable
            for conn in conns:
                self._release(conn)
            raise
        unexpected: BaseException | None = None
        for r in opened:
            if isinstance(r, _Conn):
                conns.append(r)
            elif not isinstance(r, ConnectFailed) and unexpected is None:
                unexpected = r
        if path is None or unexpected is not None:
            for conn in conns:
                self._release(conn)
            if unexpected is not None:
                raise unexpected
            return min(n, len(self._idle))
        self.stats.requests += len(conns)

        async def prove(conn: _Conn) -> bool:
            try:
                response = await conn.exchange("GET", path, data, deadline)
            except RequestUncertain:
                return False
            return response.status < 500 and not conn.closed

        return sum(await asyncio.gather(*(prove(c) for c in conns)))

    async def close(self) -> None:
        """Close every connection (a request in flight fails as uncertain); the pool stays usable."""
        self._epoch += 1
        self._idle.clear()
        for conn in list(self._conns):
            if conn._waiter is not None:
                conn._fail(conn._uncertain("the pool was closed"))
            else:
                conn._close()
        self._conns.clear()
        await asyncio.sleep(0)

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- connections --------------------------------------------------------------------------------
    def _take(self) -> _Conn | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                conn._close(abort=True)
                continue
            if self.max_idle_s is not None and time.monotonic() - conn.idle_since > self.max_idle_s:
                conn._close()
                continue
            return conn
        return None

    def _prune(self) -> None:
        now = time.monotonic()
        for conn in list(self._idle):
            transport = conn.transport
            if conn.closed or transport is None or transport.is_closing():
                conn._close(abort=True)
            elif self.max_idle_s is not None and now - conn.idle_since > self.max_idle_s:
                conn._close()

    def _release(self, conn: _Conn) -> None:
        transport = conn.transport
        if (conn.closed or transport is None or transport.is_closing() or conn.epoch != self._epoch
                or len(self._idle) >= self.max_idle):  # fmt: skip
            conn._close()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    def _forget(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)

    async def _open(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Conn:
        budget = deadline - loop.time()
        if self.connect_timeout is not None:
            budget = min(budget, self.connect_timeout)
        conn = _Conn(self)
        via = f" via proxy {self._proxy.label}" if self._proxy else ""
        try:
            async with asyncio.timeout(budget):
                await self._dial(loop, conn, deadline)
        except BaseException as exc:
            conn._close(abort=True)
            if isinstance(exc, ConnectFailed):
                self.stats.connect_failed += 1
                raise
            if isinstance(exc, TimeoutError):
                reason, timed_out = f"connect timed out after {max(budget, 0):.3g}s", True
            elif isinstance(exc, OSError):  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
                reason, timed_out = f"{type(exc).__name__}: {exc}", False
            else:
                raise
            self.stats.connect_failed += 1
            raise ConnectFailed(f"cannot connect to {self.origin}{via}: {reason}", reason,
                                timed_out=timed_out) from exc  # fmt: skip
        self.stats.opened += 1
        self._conns.add(conn)
        return conn

    async def _dial(self, loop: asyncio.AbstractEventLoop, conn: _Conn, deadline: float) -> None:
        proxy = self._proxy
        ctx = (self.ssl_context or _default_ssl()) if self.tls else None
        if proxy is None:
            await loop.create_connection(lambda: conn, self.host, self.port, ssl=ctx,
                                         server_hostname=self.host if ctx else None)  # fmt: skip
            return
        proxy_ctx = (self.proxy_ssl_context or _default_ssl()) if proxy.tls else None
        await loop.create_connection(lambda: conn, proxy.host, proxy.port, ssl=proxy_ctx,
                                     server_hostname=proxy.host if proxy_ctx else None)  # fmt: skip
        connect = (f"CONNECT {self._authority} HTTP/1.1\r\nHost: {self._authority}\r\n{proxy.auth}\r\n"
                   .encode("latin-1"))  # fmt: skip
        try:
            response = await conn.exchange("CONNECT", self._authority, connect, deadline, release=False)
        except RequestUncertain as exc:
            reason = f"proxy CONNECT failed: {exc.reason}"
            raise ConnectFailed(f"cannot connect to {self.origin} via proxy {proxy.label}: {reason}", reason) from None
        if not 200 <= response.status < 300 or conn.closed:
            what = f"HTTP {response.status} {response.reason}".rstrip()
            reason = (f"proxy refused CONNECT ({what})" if not 200 <= response.status < 300
                      else f"proxy sent bytes after its CONNECT reply ({what})")  # fmt: skip
            raise ConnectFailed(f"cannot connect to {self.origin} via proxy {proxy.label}: {reason}", reason)
        if ctx is not None:
            assert conn.transport is not None
            transport = await loop.start_tls(conn.transport, conn, ctx, server_hostname=self.host)
            if transport is None:
                raise ConnectFailed(f"cannot connect to {self.origin}: TLS over the tunnel did not start",
                                    "TLS over the tunnel did not start")  # fmt: skip
            conn.transport = transport
