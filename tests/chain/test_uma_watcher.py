"""The UMA watcher against anvil with ABI-identical test contracts: trip, finality, reorg, restart."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass
from typing import Any

from eth_utils.crypto import keccak

from crossbook.chain.abi import ADAPTER_TOPICS, ORACLE_TOPICS, condition_id, topic0
from crossbook.chain.rpc import http_web3, raw
from crossbook.chain.store import PgChainStore
from crossbook.chain.uma import UmaWatcher, WatcherConfig
from crossbook.safety.breaker import Breaker, PairLegs
from tests.chain.conftest import Anvil, artifact, deploy, mine

# topic0 values exactly as written in ../shared/reference/chain-and-custody.md §1.2
REFERENCE_TOPICS = {
    "RequestPrice": "0xf1679315ff325c257a944e0ca1bfe7b26616039e9511f9610d4ba3eca851027b",
    "ProposePrice": "0x6e51dd00371aabffa82cd401592f76ed51e98a9ea4b58751c70463a2c78b5ca1",
    "DisputePrice": "0x5165909c3d1c01c5d1e121ac6f6d01dda1ba24bc9e1f975b5a375339c15be7f3",
    "Settle": "0x3f384afb4bd9f0aef0298c80399950011420eb33b0e1a750b20966270247b9a0",
    "QuestionInitialized": "0xeee0897acd6893adcaf2ba5158191b3601098ab6bece35c5d57874340b64c5b7",
    "QuestionReset": "0x7981b5832932948db4e32a4a16a0f44b2ce7ff088574afb9364b313f70f82e8f",
    "QuestionResolved": "0x566c3fbdd12dd86bb341787f6d531f79fd7ad4ce7e3ae2d15ac0ca1b601af9df",
    "QuestionFlagged": "0x2435a0347185933b12027c6f394a5fd9c03646dba233e956f50658719dfc0b35",
    "QuestionPaused": "0x6ded7250a9d5f79aef5add44600fc20a74a0af6f4730baa4fc4ab87bf484b812",
    "QuestionManuallyResolved": "0x5909815fe7fe0a550d5fcb95fbf33821b580521d3c97089c6ce12808d1cd0566",
}
YES_OR_NO = b"YES_OR_NO_QUERY".ljust(32, b"\0")


def _abi_topics(name: str) -> dict[str, str]:
    out = {}
    for e in artifact(name)["abi"]:
        if e["type"] == "event":
            out[e["name"]] = topic0(f"{e['name']}({','.join(i['type'] for i in e['inputs'])})")
    return out


def test_compiled_events_match_reference_topics() -> None:
    compiled = _abi_topics("MockOptimisticOracleV2") | _abi_topics("MockUmaCtfAdapter")
    for name, want in REFERENCE_TOPICS.items():
        assert compiled[name] == want, name
        assert (ORACLE_TOPICS | ADAPTER_TOPICS)[name] == want, name
    # indexed flags as in the interfaces (they decide which fields are topics)
    dispute = next(e for e in artifact("MockOptimisticOracleV2")["abi"] if e.get("name") == "DisputePrice")
    assert [i["indexed"] for i in dispute["inputs"]] == [True, True, True, False, False, False, False]
    resolved = next(e for e in artifact("MockUmaCtfAdapter")["abi"] if e.get("name") == "QuestionResolved")
    assert [i["indexed"] for i in resolved["inputs"]] == [True, True, False]


@dataclass
class _Fresh:
    valid: bool = True
    connected: bool = True
    age_ms: float = 1.0
    reason: str | None = None


class _MD:
    """Market data stand-in: both legs fresh unless told otherwise."""

    def __init__(self) -> None:
        self.fresh = True

    def freshness(self, venue: str, market: str, now_ns: int | None = None) -> _Fresh:
        return _Fresh(age_ms=1.0 if self.fresh else 10_000.0)


@dataclass
class Rig:
    w3: Any
    oo: Any
    adapter: Any
    breaker: Breaker
    md: _MD
    store: PgChainStore
    cfg: WatcherConfig
    acct: str

    def question(self, text: str) -> tuple[bytes, str, str]:
        data = f"q: {text},initializer:{self.acct[2:].lower()}".encode()
        qid = "0x" + keccak(data).hex()
        return data, qid, condition_id(self.adapter.address.lower(), qid)

    def add_pair(self, pid: str, cid: str) -> None:
        self.breaker.add_pair(PairLegs(pid, f"poly-{pid}", f"KX-{pid}", cid))

    async def send(self, fn: Any) -> Any:
        h = await fn.transact({"from": self.acct})
        return await self.w3.eth.wait_for_transaction_receipt(h, timeout=10)

    async def dispute(self, data: bytes) -> Any:
        return await self.send(self.oo.functions.emitDisputePrice(
            self.adapter.address, self.acct, self.acct, YES_OR_NO, 1_700_000_000, data, 10**18))

    async def settle(self, data: bytes) -> Any:
        return await self.send(self.oo.functions.emitSettle(
            self.adapter.address, self.acct, self.acct, YES_OR_NO, 1_700_000_000, data, 0, 0))


async def _rig(anvil: Anvil, pool: Any, name: str = "uma") -> Rig:
    w3 = http_web3(anvil.url)
    oo = await deploy(w3, "MockOptimisticOracleV2")
    adapter = await deploy(w3, "MockUmaCtfAdapter")
    md = _MD()
    cfg = WatcherConfig(chain_id=137, oracles=(oo.address.lower(),), adapters=(adapter.address.lower(),),
                        poll_s=0.02, confirmations=4, name=name)
    return Rig(w3, oo, adapter, Breaker(md), md, PgChainStore(pool), cfg, (await w3.eth.accounts)[0])


async def _until(pred: Any, timeout: float = 5.0) -> float:
    t0 = time.perf_counter()
    while not pred():
        if time.perf_counter() - t0 > timeout:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.001)
    return time.perf_counter() - t0


async def test_condition_id_matches_contract(anvil: Anvil, pool: Any) -> None:
    r = await _rig(anvil, pool)
    _, qid, cid = r.question("x")
    assert "0x" + (await r.adapter.functions.conditionIdOf(bytes.fromhex(qid[2:])).call()).hex() == cid


async def test_dispute_trips_within_one_block_and_clears_only_when_final(anvil: Anvil, pool: Any) -> None:
    r = await _rig(anvil, pool)
    watcher = UmaWatcher(r.w3, r.breaker, r.store, r.cfg, ws_url=anvil.ws_url)
    await watcher.start()
    try:
        latencies_ms: list[float] = []
        for i in range(12):
            data, qid, cid = r.question(f"trip {i}")
            r.add_pair(f"p{i}", cid)
            assert r.breaker.evaluate(f"p{i}").enabled
            rcpt = await r.dispute(data)
            t_mined = time.perf_counter()
            await _until(lambda pid=f"p{i}": r.breaker.dispute_of(pid) is not None)
            latencies_ms.append((time.perf_counter() - t_mined) * 1000)
            d = r.breaker.dispute_of(f"p{i}")
            assert d is not None and d.request == qid and d.since_block == rcpt["blockNumber"]
            # seen in the poll that first saw the log's block: within one block of the log
            assert watcher.status.head - rcpt["blockNumber"] <= 1
            st = r.breaker.evaluate(f"p{i}")
            assert not st.enabled and f"UMA dispute on {qid}, since block {rcpt['blockNumber']}" in st.reasons
        lat = sorted(latencies_ms)
        p50, p99 = statistics.median(lat), lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        print(json.dumps({"trip_latency_ms": {"p50": round(p50, 1), "p99": round(p99, 1), "n": len(lat)}}))

        # Settle: the pair stays disputed until the settling block is finalized (anvil: head - 2)
        data, qid, cid = r.question("trip 0")
        rcpt = await r.settle(data)
        await asyncio.sleep(0.1)
        assert watcher.status.finalized < rcpt["blockNumber"]
        assert r.breaker.dispute_of("p0") is not None
        await mine(r.w3, 2)
        await _until(lambda: r.breaker.dispute_of("p0") is None)
        assert watcher.status.finalized >= rcpt["blockNumber"] and watcher.status.finality == "tag"
        assert r.breaker.evaluate("p0").enabled
        assert r.breaker.dispute_of("p1") is not None  # other questions untouched
    finally:
        await watcher.stop()


async def test_unknown_requester_is_ignored(anvil: Anvil, pool: Any) -> None:
    r = await _rig(anvil, pool)
    watcher = UmaWatcher(r.w3, r.breaker, r.store, r.cfg)
    data, _qid, cid = r.question("other protocol")
    r.add_pair("p", cid)
    await r.send(r.oo.functions.emitDisputePrice(r.acct, r.acct, r.acct, YES_OR_NO, 1, data, 0))
    await watcher.poll_once()
    assert r.breaker.dispute_of("p") is None and watcher.logs() == []


async def test_reorg_removing_the_dispute_rearms_once_data_is_fresh(anvil: Anvil, pool: Any) -> None:
    r = await _rig(anvil, pool)
    watcher = UmaWatcher(r.w3, r.breaker, r.store, r.cfg)
    await watcher.poll_once()
    data, _qid, cid = r.question("reorged")
    r.add_pair("p", cid)
    rcpt = await r.dispute(data)
    await watcher.poll_once()
    assert r.breaker.dispute_of("p") is not None
    r.md.fresh = False  # the legs went quiet meanwhile
    # replace the dispute's block (and the one after) with blocks that do not contain it
    await mine(r.w3, 1)
    await raw(r.w3, "anvil_reorg", [2, []])
    assert (await r.w3.eth.get_block(rcpt["blockNumber"]))["hash"] != rcpt["blockHash"]
    await watcher.poll_once()
    assert watcher.status.reorgs == 1 and watcher.logs() == []
    assert r.breaker.dispute_of("p") is None
    st = r.breaker.evaluate("p")
    assert not st.enabled and not st.disputed and st.stale  # not re-armed on stale data
    r.md.fresh = True
    assert r.breaker.evaluate("p").enabled  # re-armed: fresh data, no dispute
    # and the log is gone from the store too: a restarted watcher does not resurrect it
    w2 = UmaWatcher(r.w3, Breaker(r.md), r.store, r.cfg)
    await w2.load()
    assert w2.logs() == [] and w2.status.open == {}


async def test_restart_backfills_from_last_processed_block(anvil: Anvil, pool: Any) -> None:
    r = await _rig(anvil, pool)
    w1 = UmaWatcher(r.w3, r.breaker, r.store, r.cfg)
    await w1.start()
    data1, _, cid1 = r.question("before")
    r.add_pair("before", cid1)
    await r.dispute(data1)
    await _until(lambda: r.breaker.dispute_of("before") is not None)
    await w1.stop()
    stopped_at = w1.status.last_block
    # while the watcher is down: a dispute, a flag, and a pile of blocks
    data2, qid2, cid2 = r.question("while down")
    _data3, qid3, cid3 = r.question("flagged while down")
    await r.dispute(data2)
    await r.send(r.adapter.functions.emitQuestionFlagged(bytes.fromhex(qid3[2:])))
    await mine(r.w3, 20)
    # a fresh process: new breaker, state only from PostgreSQL + the chain
    b2 = Breaker(r.md)
    for pid, cid in (("before", cid1), ("down", cid2), ("flag", cid3)):
        b2.add_pair(PairLegs(pid, "a", "b", cid))
    w2 = UmaWatcher(r.w3, b2, r.store, r.cfg)
    await w2.load()
    assert w2.status.last_block == stopped_at
    assert b2.dispute_of("before") is not None  # restored from the store before touching the chain
    await w2.poll_once()
    assert b2.dispute_of("down") is not None and b2.dispute_of("down").request == qid2  # type: ignore[union-attr]
    flag = b2.dispute_of("flag")
    assert flag is not None and "flagged" in flag.request
    assert w2.status.head == await r.w3.eth.block_number


def test_committed_artifacts_are_what_the_sources_compile_to(tmp_path: Any) -> None:
    """contracts/build.sh run from the committed sources reproduces the committed JSON byte for byte."""
    import shutil
    import subprocess

    from tests.chain.conftest import ROOT

    work = tmp_path / "contracts"
    shutil.copytree(ROOT / "contracts" / "src", work / "src")
    shutil.copy(ROOT / "contracts" / "build.sh", work / "build.sh")
    (tmp_path / "tools").symlink_to(ROOT / "tools")
    subprocess.run([str(work / "build.sh")], check=True, capture_output=True, timeout=60)
    for name in ("MockOptimisticOracleV2", "MockUmaCtfAdapter"):
        committed = (ROOT / "contracts" / "artifacts" / f"{name}.json").read_text()
        assert (work / "artifacts" / f"{name}.json").read_text() == committed, f"re-run contracts/build.sh ({name})"
