"""`crossbook chain status`: pending transactions with their confidence gauge; the watcher's head,
finalized block and lag (from PostgreSQL, as the daemon last wrote them)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from crossbook.chain.store import PgChainStore, TxRecord
from crossbook.chain.txmanager import GAUGE


def register(sub: Any) -> None:
    chain = sub.add_parser("chain", help="Polygon: UMA watcher and transaction manager state")
    csub = chain.add_subparsers(dest="chain_cmd", required=True)
    st = csub.add_parser("status", help="pending transactions with their gauge; watcher head, finalized block, lag")
    st.add_argument("--db-url", default=None,
                    help="PostgreSQL URL (default: CROSSBOOK_POSTGRES_URL, or the embedded server in --state-dir)")
    st.add_argument("--state-dir", default=".crossbook", help="where the embedded PostgreSQL keeps its data")
    st.add_argument("--all", action="store_true", help="also show confirmed and failed transactions")
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")
    st.set_defaults(func=status)


def _tx_json(t: TxRecord) -> dict[str, Any]:
    return {"id": t.id, "from": t.from_address, "nonce": t.nonce, "gauge": GAUGE[t.status], "kind": t.kind,
            "hash": t.tx_hash or (t.attempts[-1].tx_hash if t.attempts else None), "attempts": len(t.attempts),
            "max_fee_wei": str(t.max_fee_wei) if t.max_fee_wei is not None else None,
            "max_tip_wei": str(t.max_tip_wei) if t.max_tip_wei is not None else None,
            "block": t.mined_block, "purpose": t.purpose, "error": t.error}


async def collect(url: str, include_done: bool = False) -> dict[str, Any]:
    from crossbook.store.postgres import create_pool

    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        store = PgChainStore(pool)
        txs = await store.list_txs(only_open=not include_done)
        watchers = [{"name": c["name"], "chain_id": c["chain_id"], "head": c["head"], "finalized": c["finalized"],
                     "lag": max(0, int(c["head"]) - int(c["finalized"])), "finality": c["finality"],
                     "last_block": c["last_block"], "updated_at": c["updated_at"].isoformat()}
                    for c in await store.cursors()]
    finally:
        await pool.close()
    return {"transactions": [_tx_json(t) for t in txs], "watchers": watchers}


def status(args: argparse.Namespace) -> int:
    from crossbook.store.postgres import migrate, postgres_url, postgres_url_from_env

    async def go() -> dict[str, Any]:
        url0 = str(args.db_url) if args.db_url is not None else postgres_url_from_env()
        async with postgres_url(url0, args.state_dir) as url:
            await migrate(url)
            return await collect(url, args.all)

    out = asyncio.run(go())
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    w = sys.stdout.write
    if not out["watchers"]:
        w("watcher: no state yet (the UMA watcher has not run against this database)\n")
    for c in out["watchers"]:
        w(f"watcher {c['name']} (chain {c['chain_id']}): head {c['head']}, finalized {c['finalized']} "
          f"({c['finality']}), lag {c['lag']} blocks, scanned through {c['last_block']}, at {c['updated_at']}\n")
    if not out["transactions"]:
        w("transactions: none pending\n")
    for t in out["transactions"]:
        w(f"tx {t['id']:>5} {t['from']} nonce {t['nonce']:>6} {t['gauge']:<12} {t['hash']} "
          f"attempts {t['attempts']} fee {t['max_fee_wei']}/{t['max_tip_wei']} wei"
          f"{' block ' + str(t['block']) if t['block'] else ''}{' ERROR ' + t['error'] if t['error'] else ''}\n")
    return 0
