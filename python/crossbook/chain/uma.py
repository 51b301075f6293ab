"""The UMA dispute watcher: oracle and adapter logs → question id → condition id → Breaker.set_dispute.

Polling over HTTP is the source of truth (``eth_getLogs`` by address + topic0 from the last processed
block); a WebSocket ``newHeads`` subscription, when configured, only wakes the poll at once.

- Keying: an OO log counts only if its requester is a known adapter; questionID = keccak(ancillaryData)
  (never the request timestamp: it changes on every reset); conditionId = keccak(adapter, questionID, 2).
- Opening is immediate (a dispute, flag or pause trips the pair in the poll that sees its block);
  clearing (Settle, QuestionResolved, QuestionManuallyResolved, QuestionUnpaused) counts only once its
  block is final: the node's ``finalized`` block, or head - ``confirmations`` when the node has no tag.
  A finality lag beyond ``max_finality_lag`` blocks raises an alarm (log + status).
- Reorgs: the cursor block's hash is re-checked each poll (a mismatch walks back to the fork point and
  rescans), and every unfinalized log's block hash is re-checked; logs of replaced blocks are dropped,
  which re-opens nothing and settles what only they opened.
- Restart: cursor and logs are persisted (WatchStore); a new watcher resumes after the last block.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from web3 import AsyncWeb3

from crossbook.aio import cancel_and_wait, wait_event
from crossbook.chain.abi import (
    ADAPTER_TOPICS,
    ADAPTERS_POLYGON,
    MOOV2_POLYGON,
    OOV2_POLYGON,
    ORACLE_TOPICS,
    OracleLog,
    checksum,
    decode_log,
    hexstr,
)
from crossbook.chain.rpc import DEFAULT_TIMEOUT_S, rpc
from crossbook.chain.store import Cursor, WatchStore
from crossbook.errors import ChainError
from crossbook.safety.breaker import Dispute

log = logging.getLogger("crossbook.chain.uma")

OPENS = {"DisputePrice": "disputed", "QuestionFlagged": "flagged", "QuestionPaused": "paused"}
CLEARS = {
    "Settle": ("disputed",),
    "QuestionResolved": ("disputed", "flagged", "paused"),
    "QuestionManuallyResolved": ("disputed", "flagged", "paused"),
    "QuestionUnpaused": ("paused",),
}
_WORDS = {"disputed": "", "flagged": " (flagged by the adapter admin)", "paused": " (paused by the adapter admin)"}


@dataclass(frozen=True)
class WatcherConfig:
    chain_id: int = 137
    oracles: tuple[str, ...] = (OOV2_POLYGON, MOOV2_POLYGON)
    adapters: tuple[str, ...] = ADAPTERS_POLYGON
    start_block: int = 0  # where a watcher with no saved cursor begins
    poll_s: float = 1.0
    confirmations: int = 32  # finality fallback when the node has no `finalized` tag
    max_finality_lag: int = 256  # blocks between head and finalized before the alarm
    max_range: int = 2_000  # blocks per eth_getLogs
    rpc_timeout_s: float = DEFAULT_TIMEOUT_S
    name: str = "uma"


@dataclass
class WatcherStatus:
    head: int = 0
    finalized: int = 0
    finality: str = "tag"
    last_block: int = 0
    lag_alarm: bool = False
    reorgs: int = 0
    open: dict[str, Dispute] = field(default_factory=dict)

    @property
    def lag(self) -> int:
        return max(0, self.head - self.finalized)


def fold(logs: Iterable[OracleLog], finalized: int) -> dict[str, Dispute]:
    """Open disputes by condition id, from logs in chain order. Clearing needs a final block."""
    reasons: dict[str, dict[str, tuple[int, str]]] = {}
    for lg in sorted(logs, key=lambda x: (x.block_number, x.log_index)):
        open_ = reasons.setdefault(lg.condition_id, {})
        if lg.event in OPENS:
            open_.setdefault(OPENS[lg.event], (lg.block_number, lg.question_id))
        elif lg.event in CLEARS and lg.block_number <= finalized:
            for r in CLEARS[lg.event]:
                open_.pop(r, None)
    out: dict[str, Dispute] = {}
    for cid, open_ in reasons.items():
        if open_:
            kind, (since, qid) = min(open_.items(), key=lambda kv: kv[1][0])
            out[cid] = Dispute(f"{qid}{_WORDS[kind]}", since)
    return out


class UmaWatcher:
    def __init__(
        self,
        w3: AsyncWeb3[Any],
        breaker: Any,  # anything with set_dispute(condition_id, Dispute | None)
        store: WatchStore,
        config: WatcherConfig | None = None,
        *,
        ws_url: str | None = None,
    ) -> None:
        self.w3 = w3
        self.breaker = breaker
        self.store = store
        self.cfg = config or WatcherConfig()
        self.ws_url = ws_url
        self.adapters = frozenset(a.lower() for a in self.cfg.adapters)
        self.addresses = [checksum(a) for a in (*self.cfg.oracles, *self.cfg.adapters)]
        self.topics = [*ORACLE_TOPICS.values(), *ADAPTER_TOPICS.values()]
        self.status = WatcherStatus()
        self._cursor: Cursor | None = None
        self._logs: dict[tuple[str, int], OracleLog] = {}
        self._recent: dict[int, str] = {}  # block number -> hash we scanned through (reorg walk-back)
        self._published: dict[str, Dispute] = {}
        self._listeners: list[Callable[[str, Dispute | None], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._ws_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.polls = 0

    def add_listener(self, fn: Callable[[str, Dispute | None], None]) -> None:
        self._listeners.append(fn)

    # -- lifecycle -----------------------------------------------------------------------------
    async def load(self) -> None:
        cursor, logs = await self.store.load_watch(self.cfg.name)
        self._cursor = cursor
        self._logs = {(lg.block_hash, lg.log_index): lg for lg in logs}
        if cursor is not None:
            self._recent[cursor.last_block] = cursor.last_hash
            self.status.last_block = cursor.last_block
            self.status.finalized = cursor.finalized
        self._publish(fold(self._logs.values(), cursor.finalized if cursor else -1))

    async def start(self) -> None:
        await self.load()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="uma-watcher")
        if self.ws_url:
            self._ws_task = asyncio.get_running_loop().create_task(self._ws_heads(), name="uma-watcher-ws")

    async def stop(self) -> None:
        await cancel_and_wait(self._ws_task)
        await cancel_and_wait(self._task)
        self._task = self._ws_task = None

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except ChainError as exc:
                log.warning("uma watcher: %s (retrying in %.1fs)", exc, self.cfg.poll_s)
            except Exception:  # one bad poll must not end the watcher
                log.exception("uma watcher poll failed")
            self._wake.clear()
            await wait_event(self._wake, self.cfg.poll_s)

    async def _ws_heads(self) -> None:
        """Wake the poll on every new head; on any WebSocket trouble, polling simply carries on."""
        from web3 import WebSocketProvider

        assert self.ws_url is not None
        delay = 1.0
        while True:
            try:
                async with AsyncWeb3(WebSocketProvider(self.ws_url)) as ws:
                    await rpc("eth_subscribe newHeads", ws.eth.subscribe("newHeads"), self.cfg.rpc_timeout_s)
                    delay = 1.0
                    async for _msg in ws.socket.process_subscriptions():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("uma watcher: WebSocket heads unavailable (%s); polling every %.1fs", exc, self.cfg.poll_s)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    # -- one step ------------------------------------------------------------------------------
    async def _block(self, ident: Any) -> Any:
        return await rpc(f"eth_getBlockByNumber({ident})", self.w3.eth.get_block(ident), self.cfg.rpc_timeout_s)

    async def _hash_at(self, number: int) -> str | None:
        try:
            return hexstr((await self._block(number))["hash"])
        except ChainError:
            raise
        except Exception:  # block not found: the chain got shorter
            return None

    async def _finalized(self, head: int) -> tuple[int, str]:
        try:
            blk = await self._block("finalized")
            return int(blk["number"]), "tag"
        except ChainError:
            raise
        except Exception:  # node without the tag
            return max(0, head - self.cfg.confirmations), "confirmations"

    async def poll_once(self) -> None:
        head_blk = await self._block("latest")
        head, head_hash = int(head_blk["number"]), hexstr(head_blk["hash"])
        finalized, how = await self._finalized(head)
        drop: set[str] = set()
        cursor = self._cursor or Cursor(self.cfg.start_block - 1, "", head, finalized, how)
        # 1. the cursor block still ours? if not, walk back to the newest block we saw that still is
        if self._cursor is not None and cursor.last_block >= 0:
            now_hash = await self._hash_at(cursor.last_block)
            if now_hash != cursor.last_hash:
                fork = await self._fork_point(cursor.last_block, finalized)
                self.status.reorgs += 1
                log.warning("uma watcher: reorg below block %d; rescanning from %d", cursor.last_block, fork + 1)
                cursor = Cursor(fork, self._recent.get(fork, ""), head, finalized, how)
        # 2. every unfinalized log's block still canonical?
        for bn, bh in sorted({(lg.block_number, lg.block_hash) for lg in self._logs.values()
                              if lg.block_number > finalized}):
            if bh in drop:
                continue
            if await self._hash_at(bn) != bh:
                drop.add(bh)
                cursor = Cursor(min(cursor.last_block, bn - 1), "", head, finalized, how)
        for key in [k for k, lg in self._logs.items() if lg.block_hash in drop or lg.block_number > cursor.last_block]:
            drop.add(key[0])
            del self._logs[key]
        if drop:
            log.warning("uma watcher: dropped logs of %d replaced block(s)", len(drop))
        # 3. scan forward
        added: list[OracleLog] = []
        start = cursor.last_block + 1
        while start <= head:
            end = min(head, start + self.cfg.max_range - 1)
            flt: Any = {"fromBlock": start, "toBlock": end, "address": self.addresses, "topics": [self.topics]}
            raw_logs = await rpc(f"eth_getLogs({start}..{end})", self.w3.eth.get_logs(flt), self.cfg.rpc_timeout_s)
            for rl in raw_logs:
                if rl.get("removed"):
                    continue
                lg = decode_log(rl, self.adapters)
                if lg is not None and (lg.block_hash, lg.log_index) not in self._logs:
                    self._logs[(lg.block_hash, lg.log_index)] = lg
                    added.append(lg)
            start = end + 1
        new_cursor = Cursor(head, head_hash, head, finalized, how)
        self._recent[head] = head_hash
        for bn in [b for b in self._recent if b < finalized - 1]:
            del self._recent[bn]
        await self.store.commit_watch(self.cfg.name, self.cfg.chain_id, new_cursor, added, sorted(drop))
        self._cursor = new_cursor
        self.polls += 1
        lagging = head - finalized > self.cfg.max_finality_lag
        if lagging and not self.status.lag_alarm:
            log.error("uma watcher: finality lags %d blocks behind head %d (limit %d): resolutions stay unconfirmed",
                      head - finalized, head, self.cfg.max_finality_lag)
        self.status.head, self.status.finalized, self.status.finality = head, finalized, how
        self.status.last_block, self.status.lag_alarm = head, lagging
        self._publish(fold(self._logs.values(), finalized))

    async def _fork_point(self, below: int, finalized: int) -> int:
        for bn in sorted((b for b in self._recent if b < below), reverse=True):
            if await self._hash_at(bn) == self._recent[bn]:
                return bn
        return max(self.cfg.start_block - 1, finalized - 1)

    def _publish(self, now: dict[str, Dispute]) -> None:
        self.status.open = dict(now)
        for cid in sorted(set(now) | set(self._published)):
            new, old = now.get(cid), self._published.get(cid)
            if new == old:
                continue
            pairs = self.breaker.set_dispute(cid, new)
            if new is not None:
                log.warning("UMA dispute on condition %s (%s, since block %d): pairs %s", cid, new.request,
                            new.since_block, pairs or "none")
            else:
                log.info("UMA dispute on condition %s settled (final): pairs %s", cid, pairs or "none")
            for fn in self._listeners:
                try:
                    fn(cid, new)
                except Exception:
                    log.exception("uma watcher listener failed")
        self._published = dict(now)

    def logs(self) -> Sequence[OracleLog]:
        return sorted(self._logs.values(), key=lambda x: (x.block_number, x.log_index))

