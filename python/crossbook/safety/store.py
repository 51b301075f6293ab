"""The breaker and gate, kept in step with PostgreSQL.

``market_pairs`` is the source of truth for what an operator decides: ``is_halted`` (``crossbook pairs
halt``), ``logic_status`` and ``polarity`` (the mapping's verdict). The daemon mirrors them into the
breaker and the gate every ``interval_s``, and writes back what it observes: each pair's
``last_undisputed_price`` while it is fully enabled, and every trip and re-arm as an ``audit_log`` row.
A pair is matched to its row by Kalshi ticker (unique in both places).

The gate reads only the in-memory mirror, so a PostgreSQL outage never blocks a decision; it stops
the mirror from changing (logged), and halts set before the outage stay in force.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

import orjson

from crossbook.aio import cancel_and_wait
from crossbook.safety.breaker import Breaker, PairState
from crossbook.safety.gate import MemoryCatalog

log = logging.getLogger("crossbook.safety")


class PgSafetySync:
    def __init__(self, pool: Any, breaker: Breaker, catalog: MemoryCatalog, *, interval_s: float = 1.0) -> None:
        self.pool = pool
        self.breaker = breaker
        self.catalog = catalog
        self.interval_s = interval_s
        self._transitions: list[PairState] = []
        self._written_price: dict[str, Decimal] = {}
        self._task: asyncio.Task[None] | None = None
        self.errors = 0
        breaker.add_listener(self._on_transition)

    def _on_transition(self, st: PairState) -> None:
        self._transitions.append(st)

    def _by_ticker(self) -> dict[str, str]:
        return {p.kalshi_ticker: p.pair_id for p in self.breaker.pairs()}

    async def sync_once(self) -> None:
        by_ticker = self._by_ticker()
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT kalshi_ticker, logic_status, is_halted, last_undisputed_price, polarity"
                " FROM market_pairs WHERE kalshi_ticker = ANY($1::text[])", list(by_ticker))
            for r in rows:
                pid = by_ticker[r["kalshi_ticker"]]
                info = self.catalog.pairs.get(pid)
                if info is None:
                    continue
                self.breaker.set_halted(pid, bool(r["is_halted"]))
                info.logic_status = str(r["logic_status"])
                info.polarity = str(r["polarity"] or info.polarity)
                if info.last_undisputed_price is None and r["last_undisputed_price"] is not None:
                    info.last_undisputed_price = Decimal(r["last_undisputed_price"])
            self.breaker.check_all()  # a halt or resume takes effect (and is published) now
            # what we observed goes back: prices of fully enabled pairs, every transition
            for ticker, pid in by_ticker.items():
                info = self.catalog.pairs.get(pid)
                price = info.last_undisputed_price if info else None
                if price is None or self._written_price.get(pid) == price:
                    continue
                if not self.breaker.evaluate(pid).enabled:
                    continue
                await conn.execute(
                    "UPDATE market_pairs SET last_undisputed_price = $1, updated_at = now() WHERE kalshi_ticker = $2",
                    price, ticker)
                self._written_price[pid] = price
            pending, self._transitions = self._transitions, []
            try:
                for st in pending:
                    await conn.execute(
                        "INSERT INTO audit_log (actor, action, subject, detail) VALUES ('breaker', $1, $2, $3::jsonb)",
                        "execute_enabled" if st.enabled else "execute_disabled", st.pair_id,
                        orjson.dumps({"reasons": list(st.reasons), "at_ms": st.at_ns // 1_000_000}).decode())
            except Exception:
                self._transitions = pending + self._transitions  # not lost: written next time
                raise

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="safety-store-sync")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        try:
            await asyncio.wait_for(self.sync_once(), 3.0)  # the last transitions reach the audit log
        except Exception as exc:
            log.warning("could not write the last breaker transitions to PostgreSQL: %s", exc)

    async def _run(self) -> None:
        while True:
            try:
                await self.sync_once()
            except Exception as exc:
                self.errors += 1
                log.warning("PostgreSQL sync of pair safety state failed (%s); keeping the last known state", exc)
            await asyncio.sleep(self.interval_s)
