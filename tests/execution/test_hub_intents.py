"""Intents over the hub connection (op ``intent``) in the real daemon process: the executor's user trades
and gets the result on its WebSocket; a user not allowed to trade is refused before anything reaches a
venue; a bad intent gets a clear error. Orders are counted at the simulators."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from crossbook.config import load_config
from crossbook.daemon import runtime_file
from crossbook.store.embedded_redis import EmbeddedRedis
from crossbook.store.postgres import migrate
from tests.execution.procs import ProcRig, make_proc_rig
from tests.execution.test_daemon import start_daemon, stop_daemon


@pytest.fixture
async def hrig(pg_url: str, tmp_path: Path, redis_server: EmbeddedRedis) -> AsyncIterator[ProcRig]:
    await migrate(pg_url)
    r = await make_proc_rig(pg_url, tmp_path, enabled=True,
                            extra=["[redis]", f'url = "{redis_server.url}"', "[hub]", "port = 0"])  # fmt: skip
    try:
        yield r
    finally:
        await r.poly.stop()
        await r.kal.stop()


async def token(r: ProcRig, name: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crossbook", "users", "add", name, "--config", str(r.config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


async def ask(ws: Any, msg: dict[str, Any], want: set[str], timeout: float = 60) -> dict[str, Any]:
    await ws.send(json.dumps(msg))
    while True:
        reply = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if reply.get("type") in want and reply.get("id") == msg.get("id"):
            return dict(reply)


async def test_intents_over_the_hub(hrig: ProcRig) -> None:
    r = hrig
    alice, mallory = await token(r, "alice"), await token(r, "mallory")  # alice is execution.user
    daemon = await start_daemon(r)
    try:
        url = json.loads(runtime_file(load_config(r.config)).read_text())["hub_url"]
        async with websockets.connect(url) as a, websockets.connect(url) as m:
            assert (await ask(a, {"op": "auth", "token": alice, "id": 1}, {"auth_ok"}))["user"] == "alice"
            assert (await ask(m, {"op": "auth", "token": mallory, "id": 1}, {"auth_ok"}))["user"] == "mallory"

            pair = {"op": "pair", "pair": r.pair_id, "size": "20", "edge": "0.02"}
            refused = await ask(m, {"op": "intent", "id": 2, "intent": pair}, {"error", "intent_result"})
            assert refused["type"] == "error" and refused["code"] == "not_authorized", refused
            assert "mallory" in refused["message"]
            assert (r.poly.orders_accepted, r.kal.orders_accepted) == (0, 0)

            bad = await ask(a, {"op": "intent", "id": 3, "intent": "buy everything"}, {"error"})
            assert bad["code"] == "bad_message" and "'op'" in bad["message"]

            done = await ask(a, {"op": "intent", "id": 4, "intent": pair}, {"error", "intent_result"})
            assert done["type"] == "intent_result", done
            assert done["result"]["intent"]["status"] == "hedged", done
            assert (r.poly.orders_accepted, r.kal.orders_accepted) == (1, 1)

            unknown = await ask(a, {"op": "intent", "id": 5, "intent": {**pair, "pair": "no-such-pair"}},
                                {"error", "intent_result"})  # fmt: skip
            assert unknown["result"]["refused"]["step"] == "pair", unknown
        assert r.poly.stats["orders_duplicate"] == r.kal.stats["orders_duplicate"] == 0
    finally:
        await stop_daemon(daemon)
