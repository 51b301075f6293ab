"""Shared fixtures: real services on free loopback ports, torn down after."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from crossbook.store.embedded_redis import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis().start()
    yield server
    server.close()


@pytest.fixture
async def redis_client(redis_server: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    redis_server.start()  # a test may have stopped it
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=2)
    await client.flushall()
    yield client
    await client.aclose()


async def maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def eventually(pred: Any, timeout: float = 5.0, interval: float = 0.02, what: str = "condition") -> Any:
    """Poll ``pred`` (sync or async) until it returns a truthy value; fail with ``what`` otherwise."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while True:
        last = await maybe_await(pred())
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(interval)
