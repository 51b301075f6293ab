"""Execution in the real daemon process: intents over its execution socket (``crossbook trade ...
--daemon``); the daemon SIGKILLed while a leg's order sits accepted at a simulator with its reply held;
a new daemon reconciles the intent at start, before taking new ones. Nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crossbook.config import load_config
from crossbook.errors import ConfigError
from crossbook.execution.service import ask_daemon
from crossbook.store.embedded_redis import EmbeddedRedis
from crossbook.store.postgres import migrate
from tests.conftest import eventually
from tests.execution.procs import ProcRig, make_proc_rig
from tests.execution.test_restart import fetch


@pytest.fixture
async def drig(pg_url: str, tmp_path: Path, redis_server: EmbeddedRedis) -> AsyncIterator[ProcRig]:
    await migrate(pg_url)
    r = await make_proc_rig(pg_url, tmp_path, enabled=True,
                            extra=["[redis]", f'url = "{redis_server.url}"', "[hub]", "enabled = false"])  # fmt: skip
    r.poly.hold_reply_s = r.kal.hold_reply_s = 120.0
    try:
        yield r
    finally:
        await r.poly.stop()
        await r.kal.stop()


async def start_daemon(r: ProcRig) -> asyncio.subprocess.Process:
    import os
    import sys

    log = open(r.dir / "daemon.log", "ab")  # noqa: ASYNC230 - the child writes it; closed with the test dir
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROSSBOOK_")}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "crossbook", "daemon", "--config", str(r.config),
                                                stdout=log, stderr=log, env=env)  # fmt: skip
    cfg = load_config(r.config)

    async def ready() -> bool:
        assert proc.returncode is None, (r.dir / "daemon.log").read_text()
        try:
            return bool((await ask_daemon(cfg, {"op": "status"}, timeout=5))["ready"])
        except ConfigError:
            return False

    await eventually(ready, timeout=60, interval=0.1, what="the daemon taking intents")
    return proc


async def stop_daemon(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL if it has not stopped within 20 s."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_daemon_killed_mid_intent_reconciles_at_restart(drig: ProcRig) -> None:
    r = drig
    cfg = load_config(r.config)
    daemon = await start_daemon(r)
    try:
        r.kal.accept_then_timeout_next()  # leg 2 booked and filled at the venue, its reply held back
        req: dict[str, Any] = {"op": "pair", "pair": r.pair_id, "size": "20", "edge": "0.02"}
        pending = asyncio.ensure_future(ask_daemon(cfg, req))
        await eventually(lambda: r.kal.stats["replies_held"] == 1, timeout=30, what="leg 2 held at the venue")

        async def leg1_recorded() -> bool:  # written in the background while the hedge goes out
            rows = await fetch(r.pg_url, "SELECT status FROM orders WHERE venue = 'polymarket'")
            return [o["status"] for o in rows] == ["filled"]

        await eventually(leg1_recorded, timeout=10, what="leg 1's result in the store")
        daemon.send_signal(signal.SIGKILL)
        await daemon.wait()
        with pytest.raises(ConfigError, match="closed the connection"):
            await pending
        inflight = await fetch(r.pg_url, "SELECT venue, status FROM orders ORDER BY created_at")
        assert [(o["venue"], o["status"]) for o in inflight] == [("polymarket", "filled"), ("kalshi", "submitting")]

        daemon = await start_daemon(r)
        status = await ask_daemon(cfg, {"op": "status"})
        (rec,) = status["recovered"]
        code, out, err = await r.run("trade", "recover", "--daemon")
        assert code == 0 and [x["intent_id"] for x in out["recovered"]] == [rec["intent_id"]], err
        assert rec["status"] == "hedged" and any(o["resolved_by"] == "lookup" for o in rec["orders"]), rec
        assert (r.poly.orders_accepted, r.kal.orders_accepted) == (1, 1)

        # The restarted daemon takes new intents (the CLI's --daemon path).
        code, out, err = await r.run("trade", "pair", r.pair_id, "--size", "20", "--edge", "0.02", "--daemon")
        assert code == 0, err
        assert out["intent"]["status"] == "hedged", out
        assert (r.poly.orders_accepted, r.kal.orders_accepted) == (2, 2)
        assert r.poly.stats["orders_duplicate"] == r.kal.stats["orders_duplicate"] == 0
        code, out, err = await r.run("trade", "pair", "no-such-pair", "--size", "5", "--daemon")
        assert code == 3 and out["refused"]["step"] == "pair"
        intents = await fetch(r.pg_url, "SELECT status FROM execution_intents ORDER BY created_at")
        assert [i["status"] for i in intents] == ["hedged", "hedged"]
        trades = await fetch(r.pg_url, "SELECT venue, sum(size) AS n FROM trades GROUP BY venue")
        sims = {"polymarket": sum(Decimal(t["size"]) for t in r.poly.trades),
                "kalshi": sum(Decimal(f["count_fp"]) for f in r.kal.fills)}  # fmt: skip
        assert {t["venue"]: t["n"] for t in trades} == sims  # every venue fill recorded once
    finally:
        await stop_daemon(daemon)


async def test_an_edge_trigger_armed_in_the_daemon_fires_on_its_own_once(drig: ProcRig) -> None:
    """``crossbook trade arm``: a standing intent in the daemon's process, over its live books. It waits while
    the books show no edge that wide (the simulated books tick), fires when they show one, trades both legs with
    the records of any intent, and with the default manual re-arm fires once."""
    r = drig
    cfg = load_config(r.config)
    daemon = await start_daemon(r)
    try:
        code, out, err = await r.run("trade", "arm", r.pair_id, "--size", "20", "--edge", "0.5")
        assert code == 0, err
        assert out["armed"]["state"] == "armed" and out["armed"]["fires"] == 0 and out["armed"]["edge"] == "0.5"
        await asyncio.sleep(0.5)  # the sims tick every 50 ms: ten changes of both books, none with that edge
        assert (r.poly.orders_accepted, r.kal.orders_accepted) == (0, 0)

        # Armed again with an edge the books show (held still, so the order meets the book it was planned on): it
        # fires in the daemon, and the intent runs there with no client waiting.
        r.poly.pause_updates()
        r.kal.pause_updates()
        armed = await ask_daemon(cfg, {"op": "arm", "pair": r.pair_id, "size": "20", "edge": "0.02"})
        assert armed["armed"]["state"] in ("armed", "in_flight", "spent"), armed

        async def spent() -> dict[str, Any] | None:
            (t,) = (await ask_daemon(cfg, {"op": "armed"}))["triggers"]
            return t if t["state"] == "spent" else None

        t = await eventually(spent, timeout=30, what="the armed trigger firing")
        last = t["last_firing"]
        assert t["fires"] == 1 and last["status"] == "hedged" and last["took_ms"] > 0, last
        assert [(leg["venue"], leg["status"]) for leg in last["intent"]["legs"]] == [("polymarket", "filled"),
                                                                                   ("kalshi", "filled")]  # fmt: skip
        await asyncio.sleep(0.5)  # the edge is still there: a manual re-arm does not fire again
        assert (r.poly.orders_accepted, r.kal.orders_accepted) == (1, 1)
        assert r.poly.stats["orders_duplicate"] == r.kal.stats["orders_duplicate"] == 0
        intents = await fetch(r.pg_url, "SELECT kind, status FROM execution_intents")
        assert [(i["kind"], i["status"]) for i in intents] == [("pair", "hedged")]

        code, out, err = await r.run("trade", "disarm", r.pair_id)
        assert code == 0 and (out["disarmed"], out["was"]) == (r.pair_id, "spent"), err
        assert (await ask_daemon(cfg, {"op": "armed"}))["triggers"] == []
        code, out, _ = await r.run("trade", "arm", "no-such-pair", "--size", "5")
        assert code == 3 and out["refused"]["step"] == "pair"
        code, out, _ = await r.run("trade", "arm", r.pair_id, "--size", "5", "--limit", "1.5")
        assert code == 3 and out["refused"]["step"] == "intent" and "limit" in out["refused"]["reasons"][0]
    finally:
        await stop_daemon(daemon)
