"""Execution records in PostgreSQL: intents, orders (written before they are sent), trades, audit log.

An order row is inserted with status ``submitting`` *before* the request leaves, holding the client
order id (and on Polymarket the order hash), so a crash mid-submit leaves a row that reconciliation
can resolve by asking the venue. Every state change is also appended to ``audit_log``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from crossbook.errors import StoreError
from crossbook.execution.models import LegOrder, OrderResult
from crossbook.store.postgres import append_audit

ACTOR = "execution"


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError):
        return None


class ExecutionStore:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, url: str) -> ExecutionStore:
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=4, timeout=10)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise StoreError(f"execution store: cannot connect to PostgreSQL: {exc}") from exc
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    async def intent_started(self, intent_id: str, kind: str, pair_ref: str, spec: dict[str, Any]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO execution_intents (id, kind, pair_ref, spec, status)"
                " VALUES ($1, $2, $3, $4::jsonb, 'new')",
                uuid.UUID(intent_id), kind, pair_ref, json.dumps(spec, default=str),
            )
            await append_audit(conn, ACTOR, "intent_started", intent_id, {"kind": kind, "pair": pair_ref, **spec})

    async def intent_finished(self, intent_id: str, status: str, result: dict[str, Any]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE execution_intents SET status = $2, result = $3::jsonb, updated_at = now() WHERE id = $1",
                uuid.UUID(intent_id), status, json.dumps(result, default=str),
            )
            await append_audit(conn, ACTOR, "intent_finished", intent_id, {"status": status, **result})

    async def order_submitting(self, order: LegOrder) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO orders (client_order_id, pair_id, venue, market, side, outcome, price, size, status,"
                " venue_order_id, intent_id, pair_ref, leg, purpose, time_in_force)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'submitting', $9, $10, $11, $12, $13, $14)",
                order.client_order_id, _uuid(order.pair_id), order.venue, order.market, order.side, order.outcome,
                order.price, order.size, order.venue_order_id, _uuid(order.intent_id), order.pair_id, order.leg,
                order.purpose, order.tif,
            )
            await append_audit(conn, ACTOR, "order_submitting", order.client_order_id, _order_detail(order))

    async def order_result(self, result: OrderResult) -> None:
        o = result.order
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE orders SET status = $2, filled = $3, avg_price = $4, fee = $5, reason = $6, resolved_by = $7,"
                " venue_order_id = COALESCE($8, venue_order_id), updated_at = now() WHERE client_order_id = $1",
                o.client_order_id, result.status, result.filled, result.avg_price, result.fee,
                result.reason or None, result.resolved_by, o.venue_order_id,
            )
            await append_audit(conn, ACTOR, f"order_{result.status}", o.client_order_id, {
                **_order_detail(o), "filled": str(result.filled), "avg_price": str(result.avg_price),
                "fee": str(result.fee), "reason": result.reason, "resolved_by": result.resolved_by,
            })  # fmt: skip

    async def record_fills(self, result: OrderResult) -> int:
        """Insert the order's fills (each venue trade once); returns how many were new."""
        o = result.order
        n = 0
        async with self.pool.acquire() as conn, conn.transaction():
            order_uuid = await conn.fetchval("SELECT id FROM orders WHERE client_order_id = $1", o.client_order_id)
            if order_uuid is None:
                raise StoreError(f"no order row for client order id {o.client_order_id}")
            for f in result.fills:
                at = datetime.fromtimestamp(f.executed_at_ms / 1000, tz=UTC) if f.executed_at_ms else datetime.now(UTC)
                status = await conn.execute(
                    "INSERT INTO trades (order_id, venue, venue_trade_id, price, size, fee, executed_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (venue, venue_trade_id) DO NOTHING",
                    order_uuid, o.venue, f.venue_trade_id, f.price, f.size, f.fee, at,
                )
                n += int(str(status).split()[-1])
            if n:
                await append_audit(conn, ACTOR, "fills_recorded", o.client_order_id, {"new": n})
        return n


def _order_detail(o: LegOrder) -> dict[str, Any]:
    return {
        "venue": o.venue, "market": o.market, "side": o.side, "outcome": o.outcome, "price": str(o.price),
        "size": str(o.size), "tif": o.tif, "purpose": o.purpose, "leg": o.leg, "intent": o.intent_id,
        "venue_order_id": o.venue_order_id,
    }  # fmt: skip
