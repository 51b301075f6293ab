"""The PostgreSQL store against a real embedded server: migrations, audit log, crash safety."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from crossbook.errors import ConfigError, StoreError
from crossbook.store.embedded_postgres import EmbeddedPostgres
from crossbook.store.postgres import (
    VerdictRecord,
    create_pool,
    list_pairs,
    load_migrations,
    migrate,
    postgres_url,
    record_verdict,
    set_halted,
)

TABLES = {"market_pairs", "users", "sessions", "orders", "trades", "chain_txs", "verdicts", "audit_log",
          "schema_migrations"}


def verdict(i: int, status: str = "Unverified", polarity: str | None = None) -> VerdictRecord:
    return VerdictRecord(
        pair_ref=f"pair-{i}", poly_condition_id=f"0xcond{i}", kalshi_ticker=f"KX-{i}", status=status,
        polarity=polarity, extractor_a="offline-rules", extractor_b="offline-rules", judge="deterministic",
        reasons=["r"], extractions={"a": {}}, checks=[{"name": "x", "ok": True}], prompts={}, raw_replies={},
    )


async def test_migrate_from_empty_then_idempotent(pg_url: str) -> None:
    first = await migrate(pg_url)
    assert first == [m.name for m in load_migrations()]
    assert await migrate(pg_url) == []
    conn = await asyncpg.connect(pg_url)
    try:
        names = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
        assert TABLES <= names
        cols = {r["column_name"]: (r["data_type"], r["column_default"]) for r in await conn.fetch(
            "SELECT column_name, data_type, column_default FROM information_schema.columns"
            " WHERE table_name = 'market_pairs'")}
        assert cols["internal_id"][0] == "uuid"
        assert cols["logic_status"][0] == "character varying"
        assert cols["is_halted"] == ("boolean", "false")
        assert cols["last_undisputed_price"][0] == "numeric"
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("INSERT INTO market_pairs (poly_condition_id, kalshi_ticker, logic_status)"
                               " VALUES ('a', 'b', 'Maybe')")
        await conn.execute("INSERT INTO market_pairs (poly_condition_id, kalshi_ticker) VALUES ('a', 'b')")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("INSERT INTO market_pairs (poly_condition_id, kalshi_ticker) VALUES ('a', 'c')")
        with pytest.raises(asyncpg.CheckViolationError):  # Verified needs a polarity
            await conn.execute("INSERT INTO market_pairs (poly_condition_id, kalshi_ticker, logic_status)"
                               " VALUES ('x', 'y', 'Verified')")
    finally:
        await conn.close()


async def test_concurrent_migrators(pg_url: str) -> None:
    results = await asyncio.gather(*(migrate(pg_url) for _ in range(4)))
    applied = [r for r in results if r]
    assert len(applied) == 1, results  # exactly one did the work, the others waited and found it done
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(load_migrations())
    finally:
        await conn.close()


async def test_changed_migration_is_refused(pg_url: str, tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text("CREATE TABLE a (x int);")
    assert await migrate(pg_url, tmp_path) == ["001_a.sql"]
    (tmp_path / "001_a.sql").write_text("CREATE TABLE a (x bigint);")
    with pytest.raises(StoreError, match=r"001_a\.sql"):
        await migrate(pg_url, tmp_path)
    (tmp_path / "bad.sql").write_text("")
    with pytest.raises(StoreError, match=r"bad\.sql"):
        load_migrations(tmp_path)


async def test_audit_log_is_append_only(pg_url: str) -> None:
    await migrate(pg_url)
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("INSERT INTO audit_log (actor, action) VALUES ('t', 'x')")
        for sql in ("UPDATE audit_log SET actor = 'y'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(sql)
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 1
    finally:
        await conn.close()


async def test_record_list_halt_resume(pg_url: str) -> None:
    await migrate(pg_url)
    conn = await asyncpg.connect(pg_url)
    try:
        await record_verdict(conn, verdict(1, "Verified", "inverted"), "P title", "K title")
        await record_verdict(conn, verdict(1, "Unverified"))  # re-judged: downgraded at once
        pairs = await list_pairs(conn)
        assert len(pairs) == 1 and pairs[0]["logic_status"] == "Unverified" and not pairs[0]["is_halted"]
        assert await set_halted(conn, "KX-1", True) == 1
        assert (await list_pairs(conn))[0]["is_halted"] is True
        assert await set_halted(conn, pairs[0]["internal_id"], False) == 1
        assert await set_halted(conn, "nope", True) == 0
        assert await conn.fetchval("SELECT count(*) FROM verdicts") == 2
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 4
    finally:
        await conn.close()


async def test_restart_mid_write_loses_no_committed_verdict(tmp_path: Path) -> None:
    server = EmbeddedPostgres(workdir=str(tmp_path / "pg")).start()
    try:
        await migrate(server.url)
        committed: list[int] = []
        fifty = asyncio.Event()

        async def writer() -> None:
            conn = await asyncpg.connect(server.url)
            try:
                for i in range(10_000):
                    await record_verdict(conn, verdict(i))
                    committed.append(i)
                    if len(committed) == 50:
                        fifty.set()
            except Exception:  # the connection breaks in whichever way asyncpg reports it
                return

        task = asyncio.create_task(writer())
        await asyncio.wait_for(fifty.wait(), 10)
        await asyncio.to_thread(server.kill)  # crash, as a power cut would
        await asyncio.wait_for(task, 10)
        await asyncio.to_thread(server.start)
        conn = await asyncpg.connect(server.url)
        try:
            stored = {r["pair_ref"] for r in await conn.fetch("SELECT pair_ref FROM verdicts")}
        finally:
            await conn.close()
        assert {f"pair-{i}" for i in committed} <= stored
        assert len(stored) <= len(committed) + 1  # at most the one in flight at the crash
    finally:
        server.close()


async def test_postgres_url_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="postgresql://"):
        async with postgres_url("mysql://x"):
            pass
    async with postgres_url("postgresql://u@h/db") as url:
        assert url == "postgresql://u@h/db"
    async with postgres_url("", str(tmp_path)) as url:
        assert await migrate(url)
    async with postgres_url("", str(tmp_path)) as url:  # same state dir: data kept
        assert await migrate(url) == []


async def test_the_pool_skips_the_reset_query_yet_leaks_no_transaction_or_setting(pg_url: str) -> None:
    # create_pool leaves out asyncpg's reset query (a round trip per release); what it guarded against still
    # holds for everything crossbook does: a transaction left open is rolled back on release, a setting
    # made with set_config(..., true) ends with its transaction. One connection, so the next acquire gets it.
    await migrate(pg_url)
    pool = await create_pool(pg_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO audit_log (actor, action) VALUES ('pool-test', 'left open')")
            await conn.execute("SELECT set_config('synchronous_commit', 'off', true)")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == pid  # the same session
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE actor = 'pool-test'") == 0
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
            await conn.execute("SELECT set_config('application_name', 'kept', false)")  # session-wide
        async with pool.acquire() as conn:
            # no RESET ALL: a session-wide setting would survive, which is why crossbook never makes one
            assert await conn.fetchval("SHOW application_name") == "kept"
    finally:
        await pool.close()
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL"):
        await create_pool("postgresql://nobody@127.0.0.1:1/none", timeout=2)
