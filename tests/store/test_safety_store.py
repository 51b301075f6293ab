"""The breaker and gate mirror market_pairs (halt, verdict) and write back prices and transitions."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from crossbook.safety import Breaker, Gate, Intent, PairLegs
from crossbook.safety.gate import MemoryCatalog, PairInfo
from crossbook.safety.store import PgSafetySync
from crossbook.store.postgres import migrate


@dataclass
class _Fresh:
    valid: bool = True
    connected: bool = True
    age_ms: float = 1.0
    reason: str | None = None


class _MD:
    def __init__(self) -> None:
        self.stale = False

    def freshness(self, venue: str, market: str, now_ns: int | None = None) -> _Fresh:
        return _Fresh(age_ms=9_000.0 if self.stale else 1.0)


async def test_halt_verdict_price_and_transitions_round_trip(pg_url: str) -> None:
    await migrate(pg_url)
    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=2)
    try:
        await pool.execute(
            "INSERT INTO market_pairs (poly_condition_id, kalshi_ticker, logic_status, polarity, is_halted)"
            " VALUES ('0xc1', 'KX-1', 'Verified', 'same', false)")
        md = _MD()
        breaker = Breaker(md)
        breaker.add_pair(PairLegs("p1", "asset-1", "KX-1", "0xc1"))
        catalog = MemoryCatalog({"p1": PairInfo("p1", "Unverified")})
        gate = Gate(breaker, catalog)
        sync = PgSafetySync(pool, breaker, catalog)
        breaker.check_all()
        await sync.sync_once()
        buy = Intent("kalshi", "buy", "yes", Decimal("0.5"), Decimal("1"))
        assert gate.check("p1", buy).allowed  # the store's verdict (Verified) now applies

        # an operator halts the pair in PostgreSQL: the gate refuses within one sync
        await pool.execute("UPDATE market_pairs SET is_halted = true WHERE kalshi_ticker = 'KX-1'")
        await sync.sync_once()
        assert gate.check("p1", buy).reasons == ("pair halted",)
        await pool.execute("UPDATE market_pairs SET is_halted = false WHERE kalshi_ticker = 'KX-1'")
        await sync.sync_once()

        # the last undisputed price goes back to the store while the pair is enabled, not while stale
        catalog.pairs["p1"].last_undisputed_price = Decimal("0.5690")
        md.stale = True
        breaker.check_all()
        await sync.sync_once()
        assert await pool.fetchval("SELECT last_undisputed_price FROM market_pairs") is None
        md.stale = False
        breaker.check_all()
        await sync.sync_once()
        assert await pool.fetchval("SELECT last_undisputed_price FROM market_pairs") == Decimal("0.5690")

        rows = await pool.fetch("SELECT actor, action, subject, detail FROM audit_log WHERE actor = 'breaker'"
                                " ORDER BY id")
        actions = [r["action"] for r in rows]
        assert actions == ["execute_enabled", "execute_disabled", "execute_enabled", "execute_disabled",
                           "execute_enabled"], actions
        assert "pair halted" in rows[1]["detail"]
        assert all(r["subject"] == "p1" for r in rows)
        assert "Polymarket book stale" in rows[3]["detail"]
    finally:
        await pool.close()
