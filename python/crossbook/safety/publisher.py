"""Publishes each pair's execute state to Redis, so a terminal (or the hub) can grey out Execute.

``HSET state:pair:<id> enabled 0|1 reasons <text> ts <ms>`` and ``PUBLISH crossbook:pairs <json>``.
Transitions are queued and written by one task: the breaker never waits on Redis, and while Redis
is away only the latest state per pair is kept.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from crossbook.aio import join
from crossbook.safety.breaker import PairState

log = logging.getLogger("crossbook.safety")

CHANNEL = "crossbook:pairs"


def state_key(pair_id: str) -> str:
    return f"state:pair:{pair_id}"


def state_json(st: PairState) -> bytes:
    return orjson.dumps({"pair_id": st.pair_id, "enabled": st.enabled, "reasons": list(st.reasons),
                         "ts": st.at_ns // 1_000_000})


class RedisStatePublisher:
    def __init__(self, url: str, timeout_s: float = 1.0) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._latest: dict[str, PairState] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.errors = 0

    def __call__(self, st: PairState) -> None:
        self._latest[st.pair_id] = st
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="pair-state-publisher")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        await join(self._task)
        await self._redis.aclose()

    async def _run(self) -> None:
        while not self._stopping or self._latest:
            await self._wake.wait()
            self._wake.clear()
            batch, self._latest = self._latest, {}
            if not batch:
                continue
            pipe = self._redis.pipeline(transaction=False)
            for st in batch.values():
                pipe.hset(state_key(st.pair_id), mapping={
                    "enabled": 1 if st.enabled else 0, "reasons": "; ".join(st.reasons),
                    "ts": st.at_ns // 1_000_000})
                pipe.publish(CHANNEL, state_json(st))
            try:
                await pipe.execute()
            except (RedisError, OSError) as exc:
                self.errors += 1
                log.warning("could not publish pair states to Redis (%s); will retry", exc)
                for pid, st in batch.items():
                    self._latest.setdefault(pid, st)
                if self._stopping:
                    return
                await asyncio.sleep(0.2)
                self._wake.set()
