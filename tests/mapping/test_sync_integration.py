"""`crossbook pairs sync` as processes against a real PostgreSQL: two syncs at once (concurrent writers) and the
database crashing half-way through a sync. Each verdict commits on its own and is keyed by the texts it judged, so
neither loses a committed verdict nor stores one twice."""

from __future__ import annotations

import asyncio
import json

import asyncpg  # type: ignore[import-untyped]

from crossbook.mapping.sync import gamma_markets_url, kalshi_events_url
from crossbook.store.embedded_postgres import EmbeddedPostgres
from crossbook.store.postgres import list_pairs, migrate
from crossbook.venues.kalshi.sim import KalshiSim
from crossbook.venues.polymarket.sim import PolymarketSim
from tests.mapping.test_sync import _counts, _games, _run_cli

N = 40  # true pairs in the generated catalogs


async def _sims() -> tuple[PolymarketSim, KalshiSim]:
    pc, kc = _games(N)
    poly, kal = PolymarketSim(markets=1, catalog=pc), KalshiSim(markets=1, catalog=kc)
    await poly.start()
    await kal.start()
    return poly, kal


def _args(poly: PolymarketSim, kal: KalshiSim, url: str) -> list[str]:
    return ["pairs", "sync", "--offline", "--no-progress", "--gamma-url", gamma_markets_url(poly.rest_url),
            "--kalshi-url", kalshi_events_url(kal.rest_url), "--db-url", url]


async def test_two_syncs_at_once_store_each_verdict_once(pg_url: str) -> None:
    poly, kal = await _sims()
    await migrate(pg_url)
    conn = await asyncpg.connect(pg_url)
    try:
        args = [*_args(poly, kal, pg_url), "--concurrency", "4"]
        procs = [await _run_cli(args) for _ in range(2)]
        outs = await asyncio.gather(*(p.communicate() for p in procs))
        for p, (_, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err.decode()[-2000:]
        reps = [json.loads(out) for out, _ in outs]
        cands = reps[0]["candidates"]
        assert cands == reps[1]["candidates"] > 0
        # every candidate was stored by exactly one of the two writers; the other saw it as already judged
        assert reps[0]["judged"] + reps[1]["judged"] == cands
        assert all(r["judged"] + r["already_judged"] == cands for r in reps)
        assert await _counts(conn) == (cands, cands)
        assert await conn.fetchval("SELECT count(DISTINCT texts_sha256) FROM verdicts") == cands
        pairs = await list_pairs(conn)
        assert len(pairs) == N and all(p["logic_status"] == "Verified" for p in pairs)
        # each pair points at a verdict that exists and says the same thing
        bad = await conn.fetchval(
            "SELECT count(*) FROM market_pairs m LEFT JOIN verdicts v ON v.id = m.last_verdict_id"
            " WHERE v.id IS NULL OR v.status <> m.logic_status OR v.kalshi_ticker <> m.kalshi_ticker")
        assert bad == 0
    finally:
        await conn.close()
        await poly.stop()
        await kal.stop()


async def test_database_crash_mid_sync_loses_no_verdict(pg_server: EmbeddedPostgres, pg_url: str) -> None:
    """The session's server is killed (SIGKILL, crash recovery on the next start) under a running sync; the
    pg_url fixture starts it again for the next test if this one fails half-way."""
    server = pg_server
    poly, kal = await _sims()
    try:
        await migrate(pg_url)
        args = _args(poly, kal, pg_url)
        # paced (about 6 s for every candidate) so the crash lands mid-sync even on a loaded machine
        proc = await _run_cli([*args, "--rate", "15", "--concurrency", "4"])
        conn = await asyncpg.connect(pg_url)
        try:
            for _ in range(600):  # some, not all, verdicts in
                if (await _counts(conn))[0] >= 15:
                    break
                await asyncio.sleep(0.02)
            seen = {r["texts_sha256"]: r["id"] for r in await conn.fetch("SELECT id, texts_sha256 FROM verdicts")}
        finally:
            await conn.close()
        await asyncio.to_thread(server.kill)  # the database crashes under the running sync
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 1, err.decode()[-2000:]
        assert b"the database failed mid-sync" in err and b"Traceback" not in err
        assert 15 <= len(seen)
        await asyncio.to_thread(server.start)
        proc = await _run_cli(args)
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()[-2000:]
        rep = json.loads(out)
        conn = await asyncpg.connect(pg_url)
        try:
            after = {r["texts_sha256"]: r["id"] for r in await conn.fetch("SELECT id, texts_sha256 FROM verdicts")}
            assert all(after.get(k) == v for k, v in seen.items())  # nothing committed was lost or rewritten
            assert len(after) == rep["candidates"] and rep["judged"] == rep["candidates"] - rep["already_judged"]
            assert rep["already_judged"] >= len(seen)
            assert await _counts(conn) == (len(after), len(after))
            assert len(await list_pairs(conn)) == N
        finally:
            await conn.close()
    finally:
        await poly.stop()
        await kal.stop()
        await asyncio.to_thread(server.start)  # no-op when it is running
