"""Chain persistence: the watcher's cursor and logs, the nonce allocator and the transactions with every
signed attempt. A small Protocol so the watcher and the manager do not care where it lives; the
implementation is PostgreSQL through asyncpg (tables from store/migrations/050_chain.sql)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Protocol

from crossbook.chain.abi import OracleLog
from crossbook.errors import ChainError


@dataclass(frozen=True)
class Cursor:
    last_block: int  # every block up to this one has been scanned
    last_hash: str  # its hash when scanned: a different hash later means a reorg
    head: int = 0
    finalized: int = 0
    finality: str = "tag"  # "tag": the node's `finalized` block; "confirmations": head - N fallback


@dataclass(frozen=True)
class Attempt:
    tx_hash: str
    max_fee_wei: int
    max_tip_wei: int
    raw: str  # 0x hex of the signed transaction: re-sendable as is


@dataclass(frozen=True)
class TxRecord:
    id: int
    chain_id: int
    from_address: str
    nonce: int
    status: str  # new | broadcasting | mined | confirmed | failed
    kind: str  # send | cancel
    to_address: str | None
    value_wei: int
    data: str
    gas: int
    purpose: str = ""
    max_fee_wei: int | None = None
    max_tip_wei: int | None = None
    attempts: tuple[Attempt, ...] = field(default=())
    last_sent_at: float | None = None  # epoch seconds
    tx_hash: str | None = None  # the hash that landed (mined/confirmed)
    mined_block: int | None = None
    mined_block_hash: str | None = None
    error: str | None = None

    def with_(self, **changes: Any) -> TxRecord:
        return replace(self, **changes)


class WatchStore(Protocol):
    async def load_watch(self, name: str) -> tuple[Cursor | None, list[OracleLog]]: ...

    async def commit_watch(
        self, name: str, chain_id: int, cursor: Cursor, add: Sequence[OracleLog], drop_block_hashes: Sequence[str]
    ) -> None: ...


class TxStore(Protocol):
    async def allocate(self, chain_id: int, address: str, chain_nonce: int, tx: dict[str, Any]) -> TxRecord: ...
    async def add_attempt(self, tx_id: int, attempt: Attempt, **tx_fields: Any) -> None: ...
    async def update_tx(self, tx_id: int, **fields: Any) -> None: ...
    async def open_txs(self, chain_id: int, address: str) -> list[TxRecord]: ...
    async def get_tx(self, tx_id: int) -> TxRecord: ...


_TX_COLUMNS = {"status", "kind", "to_address", "value_wei", "data", "gas", "max_fee_wei", "max_tip_wei",
               "attempts", "last_sent_at", "tx_hash", "mined_block", "mined_block_hash", "error"}


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


class WriterLease:
    """A held PostgreSQL session advisory lock: the one writer for (chain, account)."""

    def __init__(self, conn: Any, key: int) -> None:
        self.conn = conn
        self.key = key


def _writer_key(chain_id: int, address: str) -> int:
    digest = hashlib.sha256(f"crossbook-tx:{chain_id}:{address.lower()}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PgChainStore:
    """WatchStore + TxStore over an asyncpg pool (``acquire()``/``release()``)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    # -- watcher -------------------------------------------------------------------------------
    async def load_watch(self, name: str) -> tuple[Cursor | None, list[OracleLog]]:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM chain_watch_cursors WHERE name = $1", name)
            rows = await conn.fetch(
                "SELECT * FROM chain_oracle_logs WHERE watcher = $1 ORDER BY block_number, log_index", name
            )
        cursor = None
        if row is not None:
            cursor = Cursor(int(row["last_block"]), str(row["last_hash"]), int(row["head"]), int(row["finalized"]),
                            str(row["finality"]))
        logs = [OracleLog(int(r["block_number"]), r["block_hash"], int(r["log_index"]), r["tx_hash"], r["address"],
                          r["event"], r["question_id"], r["condition_id"]) for r in rows]
        return cursor, logs

    async def commit_watch(
        self, name: str, chain_id: int, cursor: Cursor, add: Sequence[OracleLog], drop_block_hashes: Sequence[str]
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO chain_watch_cursors (name, chain_id, last_block, last_hash, head, finalized, finality)"
                " VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (name) DO UPDATE SET last_block = EXCLUDED.last_block,"
                " last_hash = EXCLUDED.last_hash, head = EXCLUDED.head, finalized = EXCLUDED.finalized,"
                " finality = EXCLUDED.finality, updated_at = now()",
                name, chain_id, cursor.last_block, cursor.last_hash, cursor.head, cursor.finalized, cursor.finality,
            )
            if drop_block_hashes:
                await conn.execute("DELETE FROM chain_oracle_logs WHERE watcher = $1 AND block_hash = ANY($2::text[])",
                                   name, list(drop_block_hashes))
            if add:
                await conn.executemany(
                    "INSERT INTO chain_oracle_logs (watcher, block_number, block_hash, log_index, tx_hash, address,"
                    " event, question_id, condition_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)"
                    " ON CONFLICT (watcher, block_hash, log_index) DO NOTHING",
                    [(name, lg.block_number, lg.block_hash, lg.log_index, lg.tx_hash, lg.address, lg.event,
                      lg.question_id, lg.condition_id) for lg in add],
                )

    # -- transactions --------------------------------------------------------------------------
    async def acquire_writer(self, chain_id: int, address: str) -> WriterLease:
        """Become the one writer for this account (held until release, or until the connection dies)."""
        key = _writer_key(chain_id, address)
        conn = await self.pool.acquire()
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            await self.pool.release(conn)
            raise ChainError(f"another transaction manager already writes for {address} on chain {chain_id}; "
                             "run one writer per account")
        return WriterLease(conn, key)

    async def release_writer(self, lease: WriterLease) -> None:
        try:
            await lease.conn.execute("SELECT pg_advisory_unlock($1)", lease.key)
        finally:
            await self.pool.release(lease.conn)

    async def allocate(self, chain_id: int, address: str, chain_nonce: int, tx: dict[str, Any]) -> TxRecord:
        """Take the next nonce (max of ours and the node's pending count) and record the tx, atomically."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO chain_nonces (chain_id, address, next_nonce) VALUES ($1, $2, $3)"
                " ON CONFLICT DO NOTHING", chain_id, address, chain_nonce,
            )
            ours = await conn.fetchval(
                "SELECT next_nonce FROM chain_nonces WHERE chain_id = $1 AND address = $2 FOR UPDATE",
                chain_id, address,
            )
            nonce = max(int(ours), chain_nonce)
            await conn.execute(
                "UPDATE chain_nonces SET next_nonce = $3, updated_at = now() WHERE chain_id = $1 AND address = $2",
                chain_id, address, nonce + 1,
            )
            tx_id = await conn.fetchval(
                "INSERT INTO chain_txs (chain_id, from_address, nonce, purpose, status, kind, to_address, value_wei,"
                " data, gas, raw) VALUES ($1,$2,$3,$4,'new','send',$5,$6,$7,$8,$9::jsonb) RETURNING id",
                chain_id, address, nonce, str(tx.get("purpose", "")), tx.get("to"), Decimal(int(tx.get("value", 0))),
                str(tx.get("data", "0x")), int(tx["gas"]), json.dumps({"request": {k: str(v) for k, v in tx.items()}}),
            )
        return await self.get_tx(int(tx_id))

    async def add_attempt(self, tx_id: int, attempt: Attempt, **tx_fields: Any) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO chain_tx_attempts (tx_hash, tx_id, max_fee_wei, max_tip_wei, raw)"
                " VALUES ($1,$2,$3,$4,$5) ON CONFLICT (tx_hash) DO NOTHING",
                attempt.tx_hash, tx_id, Decimal(attempt.max_fee_wei), Decimal(attempt.max_tip_wei), attempt.raw,
            )
            await self._update(conn, tx_id, {"max_fee_wei": attempt.max_fee_wei, "max_tip_wei": attempt.max_tip_wei,
                                              **tx_fields})

    async def update_tx(self, tx_id: int, **fields: Any) -> None:
        async with self.pool.acquire() as conn:
            await self._update(conn, tx_id, fields)

    async def _update(self, conn: Any, tx_id: int, fields: dict[str, Any]) -> None:
        bad = set(fields) - _TX_COLUMNS
        if bad:
            raise ChainError(f"chain_txs has no column(s) {sorted(bad)}")
        if not fields:
            return
        sets, args = [], []
        for i, (k, v) in enumerate(fields.items(), start=2):
            if k == "last_sent_at":
                sets.append(f"{k} = to_timestamp(${i})")
            else:
                sets.append(f"{k} = ${i}")
            args.append(Decimal(v) if k in ("value_wei", "max_fee_wei", "max_tip_wei") and v is not None else v)
        await conn.execute(f"UPDATE chain_txs SET {', '.join(sets)}, updated_at = now() WHERE id = $1", tx_id, *args)

    async def open_txs(self, chain_id: int, address: str) -> list[TxRecord]:
        async with self.pool.acquire() as conn:
            ids = await conn.fetch(
                "SELECT id FROM chain_txs WHERE chain_id = $1 AND from_address = $2"
                " AND status IN ('new', 'broadcasting', 'mined') ORDER BY nonce", chain_id, address,
            )
        return [await self.get_tx(int(r["id"])) for r in ids]

    async def list_txs(self, only_open: bool = True, limit: int = 200) -> list[TxRecord]:
        where = "WHERE status IN ('new', 'broadcasting', 'mined')" if only_open else ""
        async with self.pool.acquire() as conn:
            ids = await conn.fetch(f"SELECT id FROM chain_txs {where} ORDER BY id DESC LIMIT $1", limit)
        return [await self.get_tx(int(r["id"])) for r in ids]

    async def cursors(self) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT * FROM chain_watch_cursors ORDER BY name")
        return [dict(r) for r in rows]

    async def get_tx(self, tx_id: int) -> TxRecord:
        async with self.pool.acquire() as conn:
            r = await conn.fetchrow(
                "SELECT *, extract(epoch FROM last_sent_at)::float8 AS sent_epoch FROM chain_txs WHERE id = $1", tx_id
            )
            if r is None:
                raise ChainError(f"no chain transaction with id {tx_id}")
            atts = await conn.fetch(
                "SELECT * FROM chain_tx_attempts WHERE tx_id = $1 ORDER BY created_at, max_fee_wei", tx_id
            )
        return TxRecord(
            id=int(r["id"]), chain_id=int(r["chain_id"]), from_address=r["from_address"], nonce=int(r["nonce"]),
            status=r["status"], kind=r["kind"], to_address=r["to_address"], value_wei=int(r["value_wei"]),
            data=r["data"], gas=int(r["gas"]), purpose=r["purpose"], max_fee_wei=_int(r["max_fee_wei"]),
            max_tip_wei=_int(r["max_tip_wei"]),
            attempts=tuple(Attempt(a["tx_hash"], int(a["max_fee_wei"]), int(a["max_tip_wei"]), a["raw"]) for a in atts),
            last_sent_at=r["sent_epoch"], tx_hash=r["tx_hash"], mined_block=_int(r["mined_block"]),
            mined_block_hash=r["mined_block_hash"], error=r["error"],
        )

