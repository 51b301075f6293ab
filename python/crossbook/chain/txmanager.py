"""The Polygon transaction manager: one writer per account, nonces persisted, a confidence gauge per tx.

Life of a transaction (``chain_txs.status``): ``new`` (nonce allocated, signed, persisted — not yet
accepted by a node) → **Broadcasting** (a node accepted it) → **Mined** (in a block; reversible) →
**Confirmed** (its block is at or below the ``finalized`` block, or N confirmations deep). Every change
is persisted before it is announced, and announced as a :class:`TxEvent`.

- Write-ahead: the signed bytes are stored before they are sent, so a restart at any point re-sends
  the same bytes (never a second transaction for the nonce).
- Stuck (not mined within ``timeout * 2^(attempts-1)``, or the next base fee above our fee cap): replaced
  at the same nonce with BOTH EIP-1559 fees raised ≥ ``bump_pct`` (default 20 %), tip ≥ ``tip_floor``,
  max fee ≤ ``fee_cap``. A replacement nodes would refuse (< +10 % on either fee) is not sent.
- Dropped (no node knows any of its hashes): the newest attempt is re-sent as is.
- "nonce too low": look up the receipts of every hash sent for that nonce; one of ours landed → Mined.
- A Mined tx whose block a reorg replaced goes back to Broadcasting and is re-sent.
- Cancel: a same-nonce self-transfer of 0 with bumped fees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_typing import HexStr
from web3 import AsyncWeb3
from web3.exceptions import TransactionNotFound, Web3RPCError

from crossbook.chain.abi import hexstr
from crossbook.chain.rpc import DEFAULT_TIMEOUT_S, rpc
from crossbook.chain.signer import TxSigner
from crossbook.chain.store import Attempt, PgChainStore, TxRecord
from crossbook.errors import ChainError

log = logging.getLogger("crossbook.chain.tx")

GWEI = 10**9
GAUGE = {"new": "Broadcasting", "broadcasting": "Broadcasting", "mined": "Mined", "confirmed": "Confirmed",
         "failed": "Failed"}
NODE_MIN_BUMP_PCT = 10  # geth/bor PriceBump: a replacement below +10 % on either fee is refused


@dataclass(frozen=True)
class FeePolicy:
    tip_floor_wei: int = 25 * GWEI  # Polygon's minimum priority fee
    fee_cap_wei: int = 1_000 * GWEI  # never offer more than this max fee per gas
    bump_pct: int = 20  # each replacement raises both fees by at least this much
    base_timeout_s: float = 30.0  # first replacement after this long unmined; doubles per attempt
    max_timeout_s: float = 600.0


def pct_up(value: int, pct: int) -> int:
    """ceil(value * (100 + pct) / 100) in integers."""
    return -(-value * (100 + pct) // 100)


def initial_fees(base_fee: int, market_tip: int, policy: FeePolicy) -> tuple[int, int]:
    """(max fee, tip): tip = max(floor, market); max fee = 2 × base fee + tip, within the cap."""
    tip = max(policy.tip_floor_wei, market_tip)
    fee = min(policy.fee_cap_wei, 2 * base_fee + tip)
    if fee < base_fee:
        raise ChainError(f"base fee {base_fee} wei is above the fee cap {policy.fee_cap_wei} wei; raise the cap "
                         "or wait for the spike to pass")
    return fee, min(tip, fee)


def replacement_fees(old_fee: int, old_tip: int, base_fee: int, policy: FeePolicy) -> tuple[int, int] | None:
    """(max fee, tip) for a same-nonce replacement, or None when the cap leaves no acceptable bump."""
    tip = max(pct_up(old_tip, policy.bump_pct), policy.tip_floor_wei)
    fee = min(max(pct_up(old_fee, policy.bump_pct), 2 * base_fee + tip), policy.fee_cap_wei)
    tip = min(tip, fee)
    if fee < pct_up(old_fee, NODE_MIN_BUMP_PCT) or tip < pct_up(old_tip, NODE_MIN_BUMP_PCT):
        return None
    return fee, tip


@dataclass(frozen=True)
class TxEvent:
    tx_id: int
    address: str
    nonce: int
    gauge: str  # Broadcasting | Mined | Confirmed | Failed
    tx_hash: str | None
    note: str
    block: int | None = None
    at_ns: int = 0


class TxManager:
    def __init__(
        self,
        w3: AsyncWeb3[Any],
        signer: TxSigner,
        store: PgChainStore,
        *,
        chain_id: int = 137,
        policy: FeePolicy | None = None,
        confirmations: int = 32,
        tick_s: float = 1.0,
        rpc_timeout_s: float = DEFAULT_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.w3 = w3
        self.signer = signer
        self.store = store
        self.chain_id = chain_id
        self.policy = policy or FeePolicy()
        self.confirmations = confirmations
        self.tick_s = tick_s
        self.rpc_timeout_s = rpc_timeout_s
        self.clock = clock
        self.address = signer.address.lower()
        self._txs: dict[int, TxRecord] = {}
        self._listeners: list[Callable[[TxEvent], None]] = []
        self._queues: list[asyncio.Queue[TxEvent]] = []
        self._lease: Any = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one writer inside the process too

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self, *, run: bool = True) -> None:
        """Take the account's writer lease (PostgreSQL advisory lock), load unfinished txs, run the loop."""
        self._lease = await self.store.acquire_writer(self.chain_id, self.address)
        for tx in await self.store.open_txs(self.chain_id, self.address):
            self._txs[tx.id] = tx
        if self._txs:
            log.info("tx manager %s: resuming %d unfinished transaction(s)", self.address, len(self._txs))
        if run:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"txmanager-{self.address}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._lease is not None:
            await self.store.release_writer(self._lease)
            self._lease = None

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except ChainError as exc:
                log.warning("tx manager %s: %s", self.address, exc)
            except Exception:
                log.exception("tx manager tick failed")
            await asyncio.sleep(self.tick_s)

    # -- events --------------------------------------------------------------------------------
    def add_listener(self, fn: Callable[[TxEvent], None]) -> None:
        self._listeners.append(fn)

    def subscribe(self) -> asyncio.Queue[TxEvent]:
        q: asyncio.Queue[TxEvent] = asyncio.Queue(maxsize=10_000)
        self._queues.append(q)
        return q

    def _emit(self, tx: TxRecord, note: str, tx_hash: str | None = None) -> None:
        ev = TxEvent(tx.id, tx.from_address, tx.nonce, GAUGE[tx.status], tx_hash or tx.tx_hash or
                     (tx.attempts[-1].tx_hash if tx.attempts else None), note, tx.mined_block, time.time_ns())
        log.info("tx %d nonce %d: %s (%s) %s", tx.id, tx.nonce, ev.gauge, ev.tx_hash, note)
        for fn in self._listeners:
            try:
                fn(ev)
            except Exception:
                log.exception("tx event listener failed")
        for q in self._queues:
            if q.full():
                q.get_nowait()  # a slow reader loses the oldest event, never blocks the manager
            q.put_nowait(ev)

    async def _set(self, tx: TxRecord, note: str | None = None, **fields: Any) -> TxRecord:
        db = dict(fields)
        if "attempts" in db:  # the row keeps the count; the record keeps the attempts themselves
            db["attempts"] = len(db["attempts"])
        await self.store.update_tx(tx.id, **db)
        new = tx.with_(**fields)
        self._txs[tx.id] = new
        if note is not None:
            self._emit(new, note)
        return new

    def get(self, tx_id: int) -> TxRecord:
        return self._txs[tx_id]

    def open(self) -> list[TxRecord]:
        return sorted(self._txs.values(), key=lambda t: t.nonce)

    # -- chain reads ---------------------------------------------------------------------------
    async def _pending_base_fee(self) -> int:
        blk = await rpc("eth_getBlockByNumber(pending)", self.w3.eth.get_block("pending"), self.rpc_timeout_s)
        return int(blk.get("baseFeePerGas", 0))

    async def _receipt(self, tx_hash: str) -> Any:
        try:
            return await rpc("eth_getTransactionReceipt", self.w3.eth.get_transaction_receipt(HexStr(tx_hash)),
                             self.rpc_timeout_s)
        except TransactionNotFound:
            return None

    async def _find_receipt(self, tx: TxRecord) -> Any:
        """The receipt of whichever hash sent for this nonce landed (at most one can)."""
        for a in reversed(tx.attempts):
            r = await self._receipt(a.tx_hash)
            if r is not None:
                return r
        return None

    async def _known(self, tx_hash: str) -> bool:
        try:
            await rpc("eth_getTransactionByHash", self.w3.eth.get_transaction(HexStr(tx_hash)),
                      self.rpc_timeout_s)
            return True
        except TransactionNotFound:
            return False

    async def _push(self, raw_hex: str) -> str:
        """Send; returns "ok", "known", "nonce_low" or "underpriced"; other refusals raise ChainError."""
        try:
            await rpc("eth_sendRawTransaction", self.w3.eth.send_raw_transaction(HexStr(raw_hex)), self.rpc_timeout_s)
            return "ok"
        except Web3RPCError as exc:
            msg = str(exc).lower()
            if "nonce too low" in msg or "nonce is too low" in msg:
                return "nonce_low"
            if "already known" in msg or "known transaction" in msg or "already imported" in msg:
                return "known"
            if "underpriced" in msg:
                return "underpriced"
            raise ChainError(f"node refused transaction: {exc}") from exc

    # -- sending -------------------------------------------------------------------------------
    async def send(self, to: str, value: int = 0, data: str = "0x", gas: int | None = None,
                   purpose: str = "") -> TxRecord:
        """Allocate the next nonce, sign, persist, broadcast. Returns the record (Broadcasting)."""
        tx = await self.prepare(to, value, data, gas, purpose)
        return await self._broadcast(self._txs[tx.id], tx.attempts[-1], "sent")

    async def prepare(self, to: str, value: int = 0, data: str = "0x", gas: int | None = None,
                      purpose: str = "") -> TxRecord:
        """Allocate + sign + persist without sending (the write-ahead half of :meth:`send`)."""
        if self._lease is None:
            raise ChainError("tx manager not started: call start() first (it takes the account's writer lease)")
        async with self._lock:
            if gas is None:
                gas = int(await rpc("eth_estimateGas", self.w3.eth.estimate_gas(
                    {"from": self.address, "to": to, "value": value, "data": data}), self.rpc_timeout_s))  # type: ignore[typeddict-item]
            chain_nonce = int(await rpc("eth_getTransactionCount", self.w3.eth.get_transaction_count(
                AsyncWeb3.to_checksum_address(self.address), "pending"), self.rpc_timeout_s))
            tx = await self.store.allocate(self.chain_id, self.address, chain_nonce,
                                           {"to": to.lower(), "value": value, "data": data, "gas": gas,
                                            "purpose": purpose})
            market_tip = int(await rpc("eth_maxPriorityFeePerGas", self.w3.eth.max_priority_fee, self.rpc_timeout_s))
            fee, tip = initial_fees(await self._pending_base_fee(), market_tip, self.policy)
            attempt = await self._sign(tx, fee, tip)
            await self.store.add_attempt(tx.id, attempt, attempts=1)
            tx = tx.with_(attempts=(attempt,), max_fee_wei=fee, max_tip_wei=tip)
            self._txs[tx.id] = tx
            return tx

    async def _sign(self, tx: TxRecord, fee: int, tip: int) -> Attempt:
        body = {"chainId": self.chain_id, "nonce": tx.nonce, "to": AsyncWeb3.to_checksum_address(tx.to_address or
                self.address), "value": tx.value_wei, "data": tx.data, "gas": tx.gas, "maxFeePerGas": fee,
                "maxPriorityFeePerGas": tip}
        signed = await self.signer.sign_transaction(body)
        return Attempt(signed.hash.lower(), fee, tip, signed.raw)

    async def _broadcast(self, tx: TxRecord, attempt: Attempt, note: str) -> TxRecord:
        outcome = await self._push(attempt.raw)
        if outcome == "nonce_low":
            return await self._reconcile(tx, "node said nonce too low")
        if outcome == "underpriced":
            log.warning("tx %d nonce %d: %s refused as underpriced; keeping the earlier attempt", tx.id, tx.nonce,
                        attempt.tx_hash)
            return tx
        return await self._set(tx, f"{note} ({outcome})", status="broadcasting", last_sent_at=self.clock(),
                               attempts=tx.attempts)

    async def _reconcile(self, tx: TxRecord, why: str) -> TxRecord:
        """'nonce too low': one of the hashes we sent for this nonce landed, or someone else used it."""
        rcpt = await self._find_receipt(tx)
        if rcpt is not None:
            return await self._mined(tx, rcpt, f"{why}: found the receipt of an earlier attempt")
        hashes = ", ".join(a.tx_hash for a in tx.attempts)
        return await self._set(tx, f"{why}; none of our hashes landed", status="failed",
                               error=f"nonce {tx.nonce} was used by a transaction this manager did not send "
                                     f"(our hashes: {hashes}); check the account for other writers")

    async def _mined(self, tx: TxRecord, rcpt: Any, note: str = "in a block") -> TxRecord:
        h = hexstr(rcpt["transactionHash"])
        ok = int(rcpt.get("status", 1)) == 1
        return await self._set(tx, note + ("" if ok else " (reverted)"), status="mined", tx_hash=h,
                               mined_block=int(rcpt["blockNumber"]), mined_block_hash=hexstr(rcpt["blockHash"]),
                               error=None if ok else "execution reverted")

    async def _replace(self, tx: TxRecord, base_fee: int, why: str, *, cancel: bool = False) -> TxRecord:
        old_fee = tx.max_fee_wei or tx.attempts[-1].max_fee_wei
        old_tip = tx.max_tip_wei or tx.attempts[-1].max_tip_wei
        fees = replacement_fees(old_fee, old_tip, base_fee, self.policy)
        if fees is None:
            log.error("tx %d nonce %d: stuck but the fee cap %d wei leaves no acceptable bump over %d/%d", tx.id,
                      tx.nonce, self.policy.fee_cap_wei, old_fee, old_tip)
            return await self._set(tx, last_sent_at=self.clock())  # wait another backoff period
        if cancel:
            tx = await self._set(tx, kind="cancel", to_address=self.address, value_wei=0, data="0x", gas=21_000)
        attempt = await self._sign(tx, *fees)
        await self.store.add_attempt(tx.id, attempt, attempts=len(tx.attempts) + 1)
        tx = tx.with_(attempts=(*tx.attempts, attempt), max_fee_wei=fees[0], max_tip_wei=fees[1])
        self._txs[tx.id] = tx
        return await self._broadcast(tx, attempt, f"{why}: replaced at fees {fees[0]}/{fees[1]} wei")

    async def cancel(self, tx_id: int) -> TxRecord:
        """Replace with a same-nonce self-transfer of 0 (fees bumped). If the original already landed the
        node answers "nonce too low" and the receipts decide: the record shows what actually landed."""
        async with self._lock:
            return await self._replace(self._txs[tx_id], await self._pending_base_fee(), "cancel", cancel=True)

    async def speed_up(self, tx_id: int) -> TxRecord:
        async with self._lock:
            return await self._replace(self._txs[tx_id], await self._pending_base_fee(), "speed-up")

    # -- the loop ------------------------------------------------------------------------------
    def _timeout(self, tx: TxRecord) -> float:
        n = max(0, len(tx.attempts) - 1)
        return float(min(self.policy.max_timeout_s, self.policy.base_timeout_s * 2**n))

    async def tick(self) -> None:
        async with self._lock:
            if not self._txs:
                return
            head = int(await rpc("eth_blockNumber", self.w3.eth.block_number, self.rpc_timeout_s))
            try:
                fin = await rpc("eth_getBlockByNumber(finalized)", self.w3.eth.get_block("finalized"),
                                self.rpc_timeout_s)
                final = int(fin["number"])
            except ChainError:
                raise
            except Exception:
                final = head - self.confirmations + 1
            base_fee = await self._pending_base_fee()
            for tx in sorted(self._txs.values(), key=lambda t: t.nonce):
                await self._advance(tx, final, base_fee)
            for tid in [t.id for t in self._txs.values() if t.status in ("confirmed", "failed")]:
                del self._txs[tid]

    async def _advance(self, tx: TxRecord, final: int, base_fee: int) -> None:
        if tx.status == "new":
            await self._broadcast(tx, tx.attempts[-1], "re-sent the stored signed bytes after a restart")
            return
        if tx.status == "broadcasting":
            rcpt = await self._find_receipt(tx)
            if rcpt is not None:
                tx = await self._mined(tx, rcpt)
            else:
                if not any([await self._known(a.tx_hash) for a in tx.attempts]):
                    await self._broadcast(tx, tx.attempts[-1], "dropped from the mempool: re-sent")
                    return
                age = self.clock() - (tx.last_sent_at or 0.0)
                if base_fee > (tx.max_fee_wei or 0):
                    await self._replace(tx, base_fee, f"next base fee {base_fee} wei above our max fee")
                elif age >= self._timeout(tx):
                    await self._replace(tx, base_fee, f"not mined after {age:.1f}s")
                return
        if tx.status == "mined":
            blk = await rpc("eth_getBlockByNumber", self.w3.eth.get_block(tx.mined_block or 0), self.rpc_timeout_s)
            if hexstr(blk["hash"]) != tx.mined_block_hash:
                rcpt = await self._find_receipt(tx)
                if rcpt is not None and hexstr(rcpt["blockHash"]) == hexstr(blk["hash"]):
                    await self._mined(tx, rcpt, "re-included in a new block after a reorg")
                    return
                landed = next((a for a in tx.attempts if a.tx_hash == tx.tx_hash), tx.attempts[-1])
                tx = await self._set(tx, "reorged out of its block: back to Broadcasting", status="broadcasting",
                                     mined_block=None, mined_block_hash=None, tx_hash=None)
                await self._broadcast(tx, landed, "re-sent after the reorg")
                return
            if (tx.mined_block or 0) <= final:
                await self._set(tx, "final", status="confirmed")
