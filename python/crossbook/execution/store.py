"""Execution records in PostgreSQL: intents, orders (written before they are sent), trades, audit log.

An order row is inserted with status ``submitting`` *before* the request leaves, holding the client
order id (and on Polymarket the order hash), so a crash mid-submit leaves a row that reconciliation
can resolve by asking the venue. Every state change is also appended to ``audit_log``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from crossbook.errors import StoreError
from crossbook.execution.models import Fill, LegOrder, OrderResult
from crossbook.execution.positions import Position
from crossbook.store.postgres import append_audit, create_pool, json_text

ACTOR = "execution"


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError):
        return None


class ExecutionStore:
    """The executor's records in PostgreSQL. ``commit``: how the records written before an order leaves are
    committed. ``"durable"`` (default): flushed to the WAL first, so they survive a crash of PostgreSQL or of
    its machine too. ``"async"`` (``synchronous_commit = off`` for those statements only): they survive a
    crash of the daemon (what recovery needs), but a crash of the database server within about
    ``3 × wal_writer_delay`` (0.6 s by default) of an order may lose its row. About 0.7 ms less per order
    here (benches/bench_tick_to_trade.py --store)."""

    def __init__(self, pool: Any, commit: str = "durable") -> None:
        if commit not in ("durable", "async"):
            raise ValueError(f"commit must be 'durable' or 'async', not {commit!r}")
        self.pool = pool
        self.commit = commit
        # This executor's identity: intents it starts carry it, and a session advisory lock on it (held on
        # one pooled connection for the executor's life) tells others it is alive.
        self.owner_id = str(uuid.uuid4())
        self._owner_conn: Any = None
        self._owner_lock = asyncio.Lock()

    def _audit(self, rows: list[tuple[str, str, str, str]]) -> str:
        """The audit rows ``(actor, action, subject, detail)`` (placeholders; the action a literal) as the
        statement's last part; with ``commit = "async"`` it also turns that statement's commit asynchronous
        (``set_config(..., true)``: this transaction only, the session keeps its own setting)."""
        values = ", ".join(f"({a}, '{act}', {s}, {d}::jsonb)" for a, act, s, d in rows)
        head = "INSERT INTO audit_log (actor, action, subject, detail)"
        if self.commit == "durable":
            return f"{head} VALUES {values}"
        return (f"{head} SELECT v.a, v.b, v.s, v.d FROM (VALUES {values}) AS v(a, b, s, d),"
                " (SELECT set_config('synchronous_commit', 'off', true)) AS c")

    async def _ensure_owner(self) -> None:
        async with self._owner_lock:
            if self._owner_conn is None:
                conn = await self.pool.acquire()
                await conn.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", self.owner_id)
                self._owner_conn = conn

    async def release_owner(self) -> None:
        conn, self._owner_conn = self._owner_conn, None
        if conn is not None:
            try:
                await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", self.owner_id)
            finally:
                await self.pool.release(conn)

    @classmethod
    async def connect(cls, url: str, commit: str = "durable") -> ExecutionStore:
        return cls(await create_pool(url, min_size=1, max_size=4), commit)

    async def close(self) -> None:
        await self.release_owner()
        await self.pool.close()

    async def intent_started(
        self, intent_id: str, kind: str, pair_ref: str, spec: dict[str, Any], *,
        legs: list[dict[str, Any]] | None = None, user_ref: str = "", first: LegOrder | None = None,
    ) -> None:  # fmt: skip
        """Persist the intent with its planned legs (and their client order ids) before any order leaves.
        With ``first``: that order's row too (``submitting``, as :meth:`order_submitting` writes it), in the
        same statement. One round trip, atomic, started while the signer signs: the order then waits for
        nothing in PostgreSQL once its signature is back (the executor has its hash already)."""
        await self._ensure_owner()
        legs_doc = legs or []
        audit = {"kind": kind, "pair": pair_ref, "user": user_ref, **spec, "legs": legs_doc}
        args: list[Any] = [uuid.UUID(intent_id), kind, pair_ref, json_text(spec), json_text(legs_doc), user_ref,
                           self.owner_id, ACTOR, intent_id, json_text(audit)]  # fmt: skip
        if first is None:
            sql = f"WITH i AS ({_INSERT_INTENT}) {self._audit([('$8', 'intent_started', '$9', '$10')])}"
        else:
            args += [*_order_values(first), first.client_order_id, json_text(_order_detail(first))]
            audits = self._audit([("$8", "intent_started", "$9", "$10"), ("$8", "order_submitting", "$26", "$27")])
            sql = f"WITH i AS ({_INSERT_INTENT}), o AS ({_insert_order(11)}) {audits}"
        async with self.pool.acquire() as conn:
            await conn.execute(sql, *args)

    async def open_intents(self) -> list[dict[str, Any]]:
        """Claim the intents started and never finished by an executor that is gone (a crash or kill
        mid-intent), oldest first. An owner is gone when its advisory lock can be taken; the claim is a
        compare-and-set of the owner, so two recovering executors never both take one intent."""
        await self._ensure_owner()
        claimed: list[dict[str, Any]] = []
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, kind, pair_ref, spec, legs, user_ref, owner, created_at FROM execution_intents"
                " WHERE status = 'new' AND owner <> $1 ORDER BY created_at", self.owner_id,
            )
            for r in rows:
                owner = str(r["owner"])
                if owner and not await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", owner):
                    continue  # its executor is alive and still working on it
                try:
                    took = await conn.fetchval(
                        "UPDATE execution_intents SET owner = $3 WHERE id = $1 AND owner = $2 AND status = 'new'"
                        " RETURNING id", r["id"], owner, self.owner_id,
                    )
                finally:
                    if owner:
                        await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", owner)
                if took is not None:
                    claimed.append({**dict(r), "id": str(r["id"]), "spec": _json(r["spec"]), "legs": _json(r["legs"])})
        return claimed

    async def intent_orders(self, intent_id: str) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT * FROM orders WHERE intent_id = $1 ORDER BY created_at", uuid.UUID(intent_id)
            )
        return [dict(r) for r in rows]

    async def open_orders(self, user_ref: str) -> list[dict[str, Any]]:
        """The user's orders we last knew resting at a venue."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT * FROM orders WHERE user_ref = $1 AND status = 'open' ORDER BY created_at",
                                    user_ref)  # fmt: skip
        return [dict(r) for r in rows]

    async def mark_recovered(self, intent_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE execution_intents SET recovered_at = now() WHERE id = $1", uuid.UUID(intent_id))
            await append_audit(conn, ACTOR, "intent_recovering", intent_id, {"executor": self.owner_id})

    async def intent_finished(self, intent_id: str, status: str, result: dict[str, Any]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE execution_intents SET status = $2, result = $3::jsonb, updated_at = now() WHERE id = $1",
                uuid.UUID(intent_id), status, json.dumps(result, default=str),
            )
            await append_audit(conn, ACTOR, "intent_finished", intent_id, {"status": status, **result})

    async def order_submitting(self, order: LegOrder) -> None:
        """The order's row (``submitting``) and its audit entry, in one statement, before it is sent."""
        args = [*_order_values(order), ACTOR, order.client_order_id, json_text(_order_detail(order))]
        sql = f"WITH o AS ({_insert_order(1)}) {self._audit([('$16', 'order_submitting', '$17', '$18')])}"
        async with self.pool.acquire() as conn:
            await conn.execute(sql, *args)

    async def order_refused(self, result: OrderResult) -> None:
        """An order stopped before sending (signer policy, unbuildable): kept with why, for the record."""
        o = result.order
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO orders (client_order_id, pair_id, venue, market, side, outcome, price, size, status,"
                " intent_id, pair_ref, leg, purpose, time_in_force, user_ref, reason, resolved_by)"
                " VALUES ($1, (SELECT internal_id FROM market_pairs WHERE internal_id = $2), $3, $4, $5, $6, $7, $8,"
                " 'refused', $9, $10, $11, $12, $13, $14, $15, 'none')"
                # Its row may be written already (with the intent, while it was being signed): refused now.
                " ON CONFLICT (client_order_id) DO UPDATE SET status = 'refused', reason = EXCLUDED.reason,"
                " resolved_by = 'none', updated_at = now()",
                o.client_order_id, _uuid(o.pair_id), o.venue, o.market, o.side, o.outcome, o.price, o.size,
                _uuid(o.intent_id), o.pair_id, o.leg, o.purpose, o.tif, o.user_ref, result.reason,
            )
            await append_audit(conn, ACTOR, "order_refused", o.client_order_id, {
                **_order_detail(o), "step": result.refused_at, "reason": result.reason,
            })  # fmt: skip

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
        """Insert the order's fills (each venue trade once) and move the position by the new ones, in one
        transaction; returns how many were new. Re-recording the same fills changes nothing."""
        o = result.order
        n = 0
        async with self.pool.acquire() as conn, conn.transaction():
            order_uuid = await conn.fetchval("SELECT id FROM orders WHERE client_order_id = $1", o.client_order_id)
            if order_uuid is None:
                raise StoreError(f"no order row for client order id {o.client_order_id}")
            new: list[Fill] = []
            for f in result.fills:
                at = datetime.fromtimestamp(f.executed_at_ms / 1000, tz=UTC) if f.executed_at_ms else datetime.now(UTC)
                inserted = await conn.fetchval(
                    "INSERT INTO trades (order_id, venue, venue_trade_id, price, size, fee, executed_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (venue, venue_trade_id) DO NOTHING RETURNING id",
                    order_uuid, o.venue, f.venue_trade_id, f.price, f.size, f.fee, at,
                )
                if inserted is not None:
                    new.append(f)
            n = len(new)
            if new:
                pos = await self._position_for_update(conn, o)
                for f in new:
                    pos.apply(o.side, f.price, f.size, f.fee)
                await self._save_position(conn, pos)
                await append_audit(conn, ACTOR, "fills_recorded", o.client_order_id, {
                    "new": n, "venue": o.venue, "market": o.market, "outcome": o.outcome, "user": o.user_ref,
                    "position": str(pos.quantity), "realized_pnl": str(pos.realized_pnl),
                })  # fmt: skip
        return n

    async def _position_for_update(self, conn: Any, o: LegOrder) -> Position:
        row = await conn.fetchrow(
            "SELECT * FROM positions WHERE user_ref = $1 AND venue = $2 AND market = $3 AND outcome = $4 FOR UPDATE",
            o.user_ref, o.venue, o.market, o.outcome,
        )
        if row is None:
            return Position(o.user_ref, o.venue, o.market, o.outcome, o.pair_id)
        return _position(row)

    @staticmethod
    async def _save_position(conn: Any, p: Position) -> None:
        await conn.execute(
            "INSERT INTO positions (user_ref, venue, market, outcome, pair_ref, quantity, cost, realized_pnl, fees,"
            " bought, sold, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now())"
            " ON CONFLICT (user_ref, venue, market, outcome) DO UPDATE SET pair_ref = EXCLUDED.pair_ref,"
            " quantity = EXCLUDED.quantity, cost = EXCLUDED.cost, realized_pnl = EXCLUDED.realized_pnl,"
            " fees = EXCLUDED.fees, bought = EXCLUDED.bought, sold = EXCLUDED.sold, updated_at = now()",
            p.user_ref, p.venue, p.market, p.outcome, p.pair_ref, p.quantity, p.cost, p.realized_pnl, p.fees,
            p.bought, p.sold,
        )

    # -- kill switch ---------------------------------------------------------------------------------
    async def kill_reason(self, user_ref: str) -> str | None:
        async with self.pool.acquire() as conn:
            reason = await conn.fetchval("SELECT reason FROM kill_switches WHERE user_ref = $1", user_ref)
        return None if reason is None else str(reason)

    async def set_kill(self, user_ref: str, reason: str | None, by: str = "") -> None:
        """Engage (``reason``) or release (None) the user's kill switch; audited either way."""
        async with self.pool.acquire() as conn, conn.transaction():
            if reason is None:
                await conn.execute("DELETE FROM kill_switches WHERE user_ref = $1", user_ref)
            else:
                await conn.execute(
                    "INSERT INTO kill_switches (user_ref, reason, engaged_by) VALUES ($1, $2, $3)"
                    " ON CONFLICT (user_ref) DO UPDATE SET reason = EXCLUDED.reason, engaged_at = now(),"
                    " engaged_by = EXCLUDED.engaged_by",
                    user_ref, reason, by,
                )
            await append_audit(conn, ACTOR, "kill_switch_engaged" if reason else "kill_switch_released",
                               user_ref, {"reason": reason, "by": by})  # fmt: skip

    async def mark_cancelled(self, user_ref: str, venue: str, venue_order_ids: list[str], why: str) -> int:
        """Open orders the venue confirmed cancelled; returns how many rows changed."""
        if not venue_order_ids:
            return 0
        async with self.pool.acquire() as conn, conn.transaction():
            changed = await conn.fetch(
                "UPDATE orders SET status = 'cancelled', reason = $4, updated_at = now() WHERE user_ref = $1"
                " AND venue = $2 AND venue_order_id = ANY($3::text[]) AND status = 'open' RETURNING client_order_id",
                user_ref, venue, venue_order_ids, why,
            )
            for row in changed:
                await append_audit(conn, ACTOR, "order_cancelled", row["client_order_id"], {"venue": venue, "why": why})
        return len(changed)

    # -- reading (crossbook orders / positions) --------------------------------------------------
    async def positions(self, user_ref: str | None = None, *, include_flat: bool = False) -> list[Position]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT * FROM positions WHERE ($1::text IS NULL OR user_ref = $1)"
                " AND ($2 OR quantity <> 0) ORDER BY user_ref, pair_ref, venue, market, outcome",
                user_ref, include_flat,
            )
        return [_position(r) for r in rows]

    async def orders(
        self, user_ref: str | None = None, *, limit: int = 50, open_only: bool = False
    ) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT o.*, (SELECT count(*) FROM trades t WHERE t.order_id = o.id) AS trades FROM orders o"
                " WHERE ($1::text IS NULL OR o.user_ref = $1)"
                " AND (NOT $2 OR o.status IN ('submitting', 'unknown', 'open'))"
                " ORDER BY o.created_at DESC LIMIT $3",
                user_ref, open_only, limit,
            )
        return [dict(r) for r in rows]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _position(r: Any) -> Position:
    return Position(r["user_ref"], r["venue"], r["market"], r["outcome"], r["pair_ref"], r["quantity"], r["cost"],
                    r["realized_pnl"], r["fees"], r["bought"], r["sold"])  # fmt: skip


_INSERT_INTENT = (
    "INSERT INTO execution_intents (id, kind, pair_ref, spec, status, legs, user_ref, owner)"
    " VALUES ($1, $2, $3, $4::jsonb, 'new', $5::jsonb, $6, $7)"
)


def _insert_order(first: int) -> str:
    """The ``submitting`` row of an order, its 15 values numbered from ``$first`` (:func:`_order_values`)."""
    n = [f"${first + i}" for i in range(15)]
    return ("INSERT INTO orders (client_order_id, pair_id, venue, market, side, outcome, price, size, status,"
            " venue_order_id, intent_id, pair_ref, leg, purpose, time_in_force, user_ref)"
            # pair_id only when the store knows the pair (a config-only pair id stays in pair_ref).
            f" VALUES ({n[0]}, (SELECT internal_id FROM market_pairs WHERE internal_id = {n[1]}), {n[2]}, {n[3]},"
            f" {n[4]}, {n[5]}, {n[6]}, {n[7]}, 'submitting', {', '.join(n[8:])})")  # fmt: skip


def _order_values(o: LegOrder) -> list[Any]:
    return [o.client_order_id, _uuid(o.pair_id), o.venue, o.market, o.side, o.outcome, o.price, o.size,
            o.venue_order_id, _uuid(o.intent_id), o.pair_id, o.leg, o.purpose, o.tif, o.user_ref]  # fmt: skip


def _order_detail(o: LegOrder) -> dict[str, Any]:
    return {
        "venue": o.venue, "market": o.market, "side": o.side, "outcome": o.outcome, "price": str(o.price),
        "size": str(o.size), "tif": o.tif, "purpose": o.purpose, "leg": o.leg, "intent": o.intent_id,
        "venue_order_id": o.venue_order_id, "user": o.user_ref,
    }  # fmt: skip
