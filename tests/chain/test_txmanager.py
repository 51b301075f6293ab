"""The transaction manager against anvil --no-mining: replacement, drop, base-fee spike, reorg, restart."""

from __future__ import annotations

from typing import Any

import pytest

from crossbook.chain.rpc import http_web3, raw
from crossbook.chain.signer import LocalKeySigner
from crossbook.chain.store import PgChainStore
from crossbook.chain.txmanager import GWEI, FeePolicy, TxEvent, TxManager, initial_fees, pct_up, replacement_fees
from crossbook.errors import ChainError
from tests.chain.conftest import Anvil

# anvil's well-known dev account #1 (test only)
KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
OTHER = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"
POLICY = FeePolicy(tip_floor_wei=25 * GWEI, fee_cap_wei=300 * GWEI, bump_pct=20, base_timeout_s=0.0,
                   max_timeout_s=10.0)


def test_fee_math_bumps_both_fees_with_floor_and_cap() -> None:
    p = FeePolicy()
    fee, tip = initial_fees(base_fee=30 * GWEI, market_tip=1 * GWEI, policy=p)
    assert (fee, tip) == (85 * GWEI, 25 * GWEI)  # tip floor 25 gwei; 2 × base + tip
    nf, nt = replacement_fees(fee, tip, 30 * GWEI, p) or (0, 0)
    assert nf * 100 >= fee * 120 and nt * 100 >= tip * 120  # both ≥ +20 %
    assert replacement_fees(10, 1, 0, p) == (max(pct_up(10, 20), 2 * 0 + 25 * GWEI), 25 * GWEI)
    capped = FeePolicy(fee_cap_wei=100 * GWEI)
    assert replacement_fees(85 * GWEI, 25 * GWEI, 300 * GWEI, capped) == (100 * GWEI, 30 * GWEI)  # held at the cap
    assert replacement_fees(95 * GWEI, 25 * GWEI, 30 * GWEI, capped) is None  # < +10 % left: nodes would refuse
    with pytest.raises(ChainError):
        initial_fees(200 * GWEI, 0, capped)
    for f, t in ((10**9, 10**9), (3, 1), (123_456_789_123, 25 * GWEI)):  # integer math, rounded up
        nf, nt = replacement_fees(f, t, 0, p) or (0, 0)
        assert nf >= -(-f * 12 // 10) and nt >= -(-t * 12 // 10)


async def _mgr(anvil: Anvil, pool: Any, **kw: Any) -> tuple[Any, TxManager, list[TxEvent]]:
    w3 = http_web3(anvil.url)
    m = TxManager(w3, LocalKeySigner(KEY), PgChainStore(pool), chain_id=137, policy=kw.pop("policy", POLICY),
                  confirmations=3, **kw)
    events: list[TxEvent] = []
    m.add_listener(events.append)
    await m.start(run=False)
    return w3, m, events


async def _mine(w3: Any, n: int = 1) -> None:
    for _ in range(n):
        await raw(w3, "evm_mine", [])


async def _landed(w3: Any, m: TxManager, tx_id: int) -> list[str]:
    """Hashes of this tx's attempts that have a receipt: exactly one may."""
    out = []
    for a in (await m.store.get_tx(tx_id)).attempts:
        try:
            await w3.eth.get_transaction_receipt(a.tx_hash)
            out.append(a.tx_hash)
        except Exception:
            pass
    return out


async def test_stuck_tx_is_replaced_and_exactly_one_lands(anvil_nomine: Anvil, pool: Any) -> None:
    w3, m, events = await _mgr(anvil_nomine, pool)
    q = m.subscribe()
    tx = await m.send(OTHER, value=10**15, gas=21_000)
    assert tx.nonce == 0 and tx.status == "broadcasting" and tx.max_tip_wei == 25 * GWEI
    await m.tick()  # not mined, timeout 0: replaced
    await m.tick()  # and again (exponential backoff: 0 × 2^n)
    rec = m.get(tx.id)
    assert len(rec.attempts) == 3
    for a, b in zip(rec.attempts, rec.attempts[1:], strict=False):
        assert b.max_fee_wei * 100 >= a.max_fee_wei * 120 and b.max_tip_wei * 100 >= a.max_tip_wei * 120
        assert b.max_fee_wei <= POLICY.fee_cap_wei
    pool_content = await raw(w3, "txpool_content", [])
    assert len(pool_content["pending"]) == 1 and len(next(iter(pool_content["pending"].values()))) == 1
    await _mine(w3)
    await m.tick()
    assert m.get(tx.id).status == "mined"
    assert await _landed(w3, m, tx.id) == [rec.attempts[-1].tx_hash]
    await _mine(w3, 3)
    await m.tick()
    assert (await m.store.get_tx(tx.id)).status == "confirmed" and m.open() == []
    assert [e.gauge for e in events][-2:] == ["Mined", "Confirmed"] and q.qsize() == len(events)
    assert await w3.eth.get_transaction_count(w3.to_checksum_address(m.address)) == 1
    await m.stop()


async def test_cancel_is_a_same_nonce_self_transfer(anvil_nomine: Anvil, pool: Any) -> None:
    w3, m, _ = await _mgr(anvil_nomine, pool, policy=FeePolicy(base_timeout_s=3600, fee_cap_wei=300 * GWEI))
    tx = await m.send(OTHER, value=10**18, gas=21_000)
    await m.cancel(tx.id)
    await _mine(w3)
    await m.tick()
    rec = m.get(tx.id)
    assert rec.status == "mined" and rec.kind == "cancel" and await _landed(w3, m, tx.id) == [rec.tx_hash]
    landed = await w3.eth.get_transaction(rec.tx_hash)
    assert landed["to"].lower() == m.address and landed["value"] == 0 and landed["nonce"] == tx.nonce
    await m.stop()


async def test_nonce_too_low_looks_up_receipts_of_every_hash(anvil_nomine: Anvil, pool: Any) -> None:
    w3, m, events = await _mgr(anvil_nomine, pool, policy=FeePolicy(base_timeout_s=3600, fee_cap_wei=300 * GWEI))
    tx = await m.send(OTHER, value=1, gas=21_000)
    await _mine(w3)  # the original lands, the manager has not looked yet
    rec = await m.speed_up(tx.id)  # the node answers "nonce too low"
    assert rec.status == "mined" and rec.tx_hash == tx.attempts[0].tx_hash
    assert "nonce too low" in events[-1].note
    await m.stop()


async def test_dropped_tx_is_resent(anvil_nomine: Anvil, pool: Any) -> None:
    w3, m, events = await _mgr(anvil_nomine, pool, policy=FeePolicy(base_timeout_s=3600, fee_cap_wei=300 * GWEI))
    tx = await m.send(OTHER, value=1, gas=21_000)
    await raw(w3, "anvil_dropTransaction", [tx.attempts[0].tx_hash])
    assert (await raw(w3, "txpool_status", []))["pending"] == "0x0"
    await m.tick()
    assert "dropped" in events[-1].note and len(m.get(tx.id).attempts) == 1  # same bytes, same hash
    assert (await raw(w3, "txpool_status", []))["pending"] == "0x1"
    await _mine(w3)
    await m.tick()
    assert m.get(tx.id).status == "mined" and m.get(tx.id).tx_hash == tx.attempts[0].tx_hash
    await m.stop()


async def test_base_fee_spike_triggers_a_bump_within_the_cap(anvil_nomine: Anvil, pool: Any) -> None:
    policy = FeePolicy(base_timeout_s=3600, fee_cap_wei=300 * GWEI)
    w3, m, events = await _mgr(anvil_nomine, pool, policy=policy)
    tx = await m.send(OTHER, value=1, gas=21_000)
    assert (tx.max_fee_wei or 0) < 50 * GWEI
    await raw(w3, "anvil_setNextBlockBaseFeePerGas", [hex(200 * GWEI)])
    await m.tick()  # long timeout, but the next base fee is above our max fee: bump now
    rec = m.get(tx.id)
    assert len(rec.attempts) == 2 and "base fee" in events[-1].note
    assert rec.max_fee_wei == policy.fee_cap_wei  # 2 × 200 + tip would be 430 gwei: held at the cap
    assert (rec.max_tip_wei or 0) * 100 >= (tx.max_tip_wei or 0) * 120
    await _mine(w3)
    await m.tick()
    assert m.get(tx.id).status == "mined" and await _landed(w3, m, tx.id) == [rec.attempts[-1].tx_hash]
    await m.stop()


async def test_deep_reorg_returns_mined_tx_to_broadcasting_and_it_lands_again(anvil_nomine: Anvil, pool: Any) -> None:
    w3, m, events = await _mgr(anvil_nomine, pool, policy=FeePolicy(base_timeout_s=3600, fee_cap_wei=300 * GWEI))
    await _mine(w3, 2)
    tx = await m.send(OTHER, value=1, gas=21_000)
    await _mine(w3)
    await m.tick()
    first = m.get(tx.id)
    assert first.status == "mined"
    await raw(w3, "anvil_reorg", [2, []])  # replaces the tx's block and the one before
    await m.tick()
    gauges = [e.gauge for e in events]
    assert gauges[-2:] == ["Broadcasting", "Broadcasting"] and "reorg" in events[-2].note
    await _mine(w3)
    await m.tick()
    again = m.get(tx.id)
    assert again.status == "mined" and again.mined_block_hash != first.mined_block_hash
    assert await _landed(w3, m, tx.id) == [tx.attempts[0].tx_hash]
    await _mine(w3, 3)
    await m.tick()
    assert (await m.store.get_tx(tx.id)).status == "confirmed"
    await m.stop()


async def test_restart_mid_flight_loses_nothing(anvil_nomine: Anvil, pool: Any) -> None:
    policy = FeePolicy(base_timeout_s=3600, fee_cap_wei=300 * GWEI)
    w3, a, _ = await _mgr(anvil_nomine, pool, policy=policy)
    t1 = await a.send(OTHER, value=1, gas=21_000)  # broadcast
    t2 = await a.prepare(OTHER, value=2, gas=21_000)  # signed + persisted, crash before sending
    # a second writer for the same account is refused while the first lives
    with pytest.raises(ChainError, match="another transaction manager"):
        await _mgr(anvil_nomine, pool, policy=policy)
    # crash: the lease's connection dies with the process, nothing is cleaned up
    a._lease.conn.terminate()
    await a.store.pool.release(a._lease.conn)
    a._lease = None
    await _mine(w3)  # t1 lands while we are down
    _, b, _events = await _mgr(anvil_nomine, pool, policy=policy)
    assert {t.id for t in b.open()} == {t1.id, t2.id}
    await b.tick()  # t1: receipt found → Mined; t2: stored bytes re-sent
    assert b.get(t1.id).status == "mined" and b.get(t2.id).status == "broadcasting"
    t3 = await b.send(OTHER, value=3, gas=21_000)
    assert (t1.nonce, t2.nonce, t3.nonce) == (0, 1, 2)
    await _mine(w3)
    await b.tick()
    await _mine(w3, 3)
    await b.tick()
    for t in (t1, t2, t3):
        rec = await b.store.get_tx(t.id)
        assert rec.status == "confirmed" and await _landed(w3, b, t.id) == [rec.tx_hash]
    assert await w3.eth.get_transaction_count(w3.to_checksum_address(b.address)) == 3
    await b.stop()


async def test_cli_chain_status_shows_gauge_and_watcher_lag(
    anvil_nomine: Anvil, pool: Any, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from crossbook.chain.cli import collect
    from crossbook.chain.uma import UmaWatcher, WatcherConfig
    from crossbook.cli import main
    from crossbook.safety.breaker import Breaker

    w3, m, _ = await _mgr(anvil_nomine, pool, policy=FeePolicy(base_timeout_s=3600, fee_cap_wei=300 * GWEI))
    tx = await m.send(OTHER, value=1, gas=21_000)
    await _mine(w3, 5)
    watcher = UmaWatcher(w3, Breaker(None), m.store, WatcherConfig(adapters=(), oracles=(OTHER,)))  # type: ignore[arg-type]
    await watcher.poll_once()
    out = await collect(db_url)
    assert out["transactions"][0]["gauge"] == "Broadcasting" and out["transactions"][0]["nonce"] == tx.nonce
    (wst,) = out["watchers"]
    assert wst["head"] == 5 and wst["finalized"] == 3 and wst["lag"] == 2 and wst["finality"] == "tag"
    await m.stop()
    import asyncio

    rc = await asyncio.to_thread(main, ["chain", "status", "--db-url", db_url])
    text = capsys.readouterr().out
    assert rc == 0 and "Broadcasting" in text and "lag 2 blocks" in text and "finalized 3" in text
