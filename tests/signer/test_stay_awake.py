"""The fast path's stay-awake: a Health request with ``stay_awake_us`` (a client that saw an edge and is
about to send an order) makes the signer's loop poll until the next request arrives, or until that time
(capped) passes. The signer's own fast-path server and service, in this process, on a real Unix socket."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from crossbook_signer.fast import MAX_STAY_AWAKE_US, FastServer
from crossbook_signer.service import Hardening, Keys, SignerService

from crossbook._proto import signer_pb2 as pb
from crossbook.signing.fastframe import HEADER, OK, encode


@pytest.fixture
async def fast(tmp_path: Path) -> AsyncIterator[tuple[FastServer, asyncio.StreamReader, asyncio.StreamWriter]]:
    path = str(tmp_path / "signer.sock.fast")
    listen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listen.bind(path)
    listen.listen(8)
    listen.setblocking(False)
    server = FastServer(listen, SignerService(Keys(), {}, None, "", Hardening()), frozenset({os.getuid()}))
    await server.start()
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        yield server, reader, writer
    finally:
        writer.close()
        await server.close()


async def health(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, call_id: int, us: int) -> None:
    writer.write(encode(pb.FAST_HEALTH, call_id, pb.HealthRequest(stay_awake_us=us).SerializeToString()))
    head = await reader.readexactly(HEADER.size)
    length, kind, got = HEADER.unpack(head)
    reply = pb.HealthReply.FromString(await reader.readexactly(length - 5))
    assert (kind, got, reply.status) == (OK, call_id, "ok")


async def test_stay_awake_polls_until_the_next_request(fast: tuple[FastServer, asyncio.StreamReader,
                                                                    asyncio.StreamWriter]) -> None:  # fmt: skip
    server, reader, writer = fast
    await health(reader, writer, 1, 0)  # a plain health check: no stay
    assert server.stayed_awake == 0 and server.awake is None
    await health(reader, writer, 2, 1_000_000)  # asks for a second: capped, polling until the next request
    assert server.stayed_awake == 1 and server.awake is not None and not server.awake.done()
    await health(reader, writer, 3, 0)  # the request it stayed awake for: polling stops
    assert server.awake.done()


async def test_stay_awake_ends_by_itself(fast: tuple[FastServer, asyncio.StreamReader,
                                                     asyncio.StreamWriter]) -> None:  # fmt: skip
    server, reader, writer = fast
    assert MAX_STAY_AWAKE_US <= 10_000  # a client cannot make the signer spin for long
    await health(reader, writer, 1, 2000)
    turns = 0

    def count() -> None:
        nonlocal turns
        turns += 1

    loop = asyncio.get_running_loop()
    # While it stays awake the loop keeps turning (a callback scheduled 1 ms ahead runs); afterwards the
    # loop is idle again: nothing is left polling.
    loop.call_later(0.001, count)
    await asyncio.sleep(0.05)
    assert turns == 1 and server.awake is not None and not server.awake.done()
    ready = getattr(loop, "_ready", None)
    if ready is not None:
        assert len(ready) == 0
