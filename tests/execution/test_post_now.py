"""The executor's direct send of a first leg's POST (``_Http.post_now``, ``PolymarketTrader.post_now``): written
in the caller's turn only when nothing has to be waited for (a rate token, an idle kept-alive connection), and
otherwise nothing written and nothing spent; the answer then goes through :meth:`_Http.call` as any POST's does
(429 retried with fresh headers, uncertainty raised as SubmitUncertain). Against raw servers on real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from crossbook.execution.errors import SubmitUncertain
from crossbook.execution.venues import TokenBucket, _Http
from tests.conftest import eventually
from tests.execution.test_http1 import Server, echo, ok, serve


def http(origin: str, rate: tuple[float, float] | None = None) -> _Http:
    return _Http("polymarket", origin, timeout=0.5, max_429_retries=2, write_rate=rate, spares=0)


async def never_signs(method: str, path: str, body: bytes) -> Mapping[str, str]:
    raise AssertionError("the posted attempt was signed again")


async def test_post_now_writes_only_when_nothing_must_be_waited_for() -> None:
    async with Server(echo) as srv:
        h = http(srv.origin, rate=(1.0, 1.0))
        try:
            assert h.post_now("/order", b'{"a":1}', {"POLY_API_KEY": "k"}) is None  # no idle connection yet
            assert h.writes is not None and h.writes.try_take()  # ...and its token was given back
            h.writes.give_back()
            assert await h.pool.warm(1) == 1
            posted = h.post_now("/order", b'{"a":1}', {"POLY_API_KEY": "k"})
            assert posted is not None  # written in this call
            await eventually(lambda: any(r.target == "/order" for r in srv.requests), what="the POST at the server")
            status, payload = await h.call("POST", "/order", never_signs, b'{"a":1}', posted=posted)
            assert (status, payload) == (200, {"error": 'POST /order {"a":1}'})  # echo's answer is not JSON
            (req,) = [r for r in srv.requests if r.target == "/order"]
            assert req.headers["poly_api_key"] == "k" and req.body == b'{"a":1}'
            # the bucket's one token is spent: the next is not written now, and no connection is taken for it
            idle = h.pool.idle
            assert h.post_now("/order", b"{}", {"POLY_API_KEY": "k"}) is None and h.pool.idle == idle
            assert len([r for r in srv.requests if r.target == "/order"]) == 1
            # headers that cannot be written: nothing sent now (the call raises it where the order is reported)
            h.writes = None
            assert h.post_now("/order", b"{}", {"POLY_API_KEY": "a\r\nb"}) is None and h.pool.idle == idle
        finally:
            await h.close()


async def test_a_posted_attempt_answered_429_is_retried_signed_again_and_a_lost_one_is_uncertain() -> None:
    too_many = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Length: 2\r\n\r\n{}"
    async with Server(serve(ok(b"warm"), too_many, ok(b'{"success":true}'))) as srv:
        h = http(srv.origin)
        signed: list[str] = []

        async def sign(method: str, path: str, body: bytes) -> Mapping[str, str]:
            signed.append(f"{method} {path}")
            return {"POLY_API_KEY": "fresh"}

        try:
            assert await h.pool.warm(1, "/") == 1
            posted = h.post_now("/order", b"{}", {"POLY_API_KEY": "first"})
            assert posted is not None
            status, payload = await h.call("POST", "/order", sign, b"{}", posted=posted)
            assert (status, payload) == (200, {"success": True}) and h.retried_429 == 1
            assert signed == ["POST /order"]  # the retry signed afresh; the posted attempt was not signed here
            orders = [r.headers["poly_api_key"] for r in srv.requests if r.target == "/order"]
            assert orders == ["first", "fresh"]
        finally:
            await h.close()

    async def hang_up(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.next(reader)  # the warm-up
        writer.write(ok(b"warm"))
        await srv.next(reader)  # the order: read, then the connection drops without an answer

    async with Server(hang_up) as srv:
        h = http(srv.origin)
        try:
            assert await h.pool.warm(1, "/") == 1
            posted = h.post_now("/order", b"{}", {"POLY_API_KEY": "k"})
            assert posted is not None
            with pytest.raises(SubmitUncertain, match="resolving by lookup"):  # never resent blindly
                await h.call("POST", "/order", never_signs, b"{}", posted=posted)
            assert len([r for r in srv.requests if r.target == "/order"]) == 1
        finally:
            await h.close()


def test_try_take_never_jumps_the_queue_and_give_back_is_capped() -> None:
    async def main() -> None:
        b = TokenBucket(1.0, 2.0)
        assert b.try_take() and b.try_take() and not b.try_take()  # the burst, then nothing (1/s)
        b.give_back()
        b.give_back()
        b.give_back()
        assert b._tokens == 2.0  # never above the burst
        async with b._lock:  # someone waits for a token: theirs comes first
            assert not b.try_take()
        assert b.try_take()

    asyncio.run(main())
