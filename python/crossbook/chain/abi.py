"""UMA OptimisticOracleV2 / Managed OOv2 and Polymarket UmaCtfAdapter events: signatures, topic0s, decoding.

Signatures and addresses are from ../shared/reference/chain-and-custody.md §1 (UMAprotocol/protocol
OptimisticOracleV2Interface.sol, Polymarket/uma-ctf-adapter IUmaCtfAdapter.sol). topic0 is
keccak256 of the canonical signature; tests check these against the reference's values and against
the compiled test contracts' ABI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

# Polygon mainnet defaults (reference §1.1); config overrides them.
OOV2_POLYGON = "0xee3afe347d5c74317041e2618c49534daf887c24"
MOOV2_POLYGON = "0x2c0367a9db231ddebd88a94b4f6461a6e47c58b1"
ADAPTERS_POLYGON = (
    "0x6a9d222616c90fca5754cd1333cfd9b7fb6a4f74",  # UmaCtfAdapter v2
    "0x157ce2d672854c848c9b79c49a8cc6cc89176a49",  # v3.1 (third-party source)
    "0x2f5e3684cb1f318ec51b00edba38d79ac2c0aa9d",  # NegRisk adapter (third-party source)
    "0x65070be91477460d8a7aeeb94ef92fe056c2f2a7",  # v4 on MOOv2 (third-party source)
    "0x69c47de9d4d3dad79590d61b9e05918e03775f24",  # v4 NegRisk on MOOv2 (third-party source)
)

ORACLE_SIGNATURES = {
    "RequestPrice": "RequestPrice(address,bytes32,uint256,bytes,address,uint256,uint256)",
    "ProposePrice": "ProposePrice(address,address,bytes32,uint256,bytes,int256,uint256,address)",
    "DisputePrice": "DisputePrice(address,address,address,bytes32,uint256,bytes,int256)",
    "Settle": "Settle(address,address,address,bytes32,uint256,bytes,int256,uint256)",
}
# the non-indexed fields, in order, as they sit in `data`
ORACLE_DATA_TYPES = {
    "RequestPrice": ["bytes32", "uint256", "bytes", "address", "uint256", "uint256"],
    "ProposePrice": ["bytes32", "uint256", "bytes", "int256", "uint256", "address"],
    "DisputePrice": ["bytes32", "uint256", "bytes", "int256"],
    "Settle": ["bytes32", "uint256", "bytes", "int256", "uint256"],
}
ADAPTER_SIGNATURES = {
    "QuestionInitialized": "QuestionInitialized(bytes32,uint256,address,bytes,address,uint256,uint256)",
    "QuestionReset": "QuestionReset(bytes32)",
    "QuestionResolved": "QuestionResolved(bytes32,int256,uint256[])",
    "QuestionFlagged": "QuestionFlagged(bytes32)",
    "QuestionPaused": "QuestionPaused(bytes32)",
    "QuestionUnpaused": "QuestionUnpaused(bytes32)",
    "QuestionManuallyResolved": "QuestionManuallyResolved(bytes32,uint256[])",
}


def topic0(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


ORACLE_TOPICS = {name: topic0(sig) for name, sig in ORACLE_SIGNATURES.items()}
ADAPTER_TOPICS = {name: topic0(sig) for name, sig in ADAPTER_SIGNATURES.items()}
EVENT_BY_TOPIC = {t: n for n, t in (ORACLE_TOPICS | ADAPTER_TOPICS).items()}


def hexstr(value: Any) -> str:
    """0x-prefixed lowercase hex of bytes / HexBytes / hex str."""
    if isinstance(value, str):
        return value.lower() if value.startswith("0x") else "0x" + value.lower()
    return "0x" + bytes(value).hex()


def condition_id(adapter: str, question_id: str) -> str:
    """The CTF condition the adapter prepares: keccak256(abi.encodePacked(adapter, questionID, uint256(2)))."""
    packed = bytes.fromhex(adapter[2:]) + bytes.fromhex(question_id[2:]) + (2).to_bytes(32, "big")
    return "0x" + keccak(packed).hex()


@dataclass(frozen=True)
class OracleLog:
    """One watched log, reduced to what decides a pair's dispute state."""

    block_number: int
    block_hash: str
    log_index: int
    tx_hash: str
    address: str  # emitting contract, lowercase
    event: str
    question_id: str
    condition_id: str


def decode_log(log: Any, adapters: frozenset[str]) -> OracleLog | None:
    """An OracleLog, or None when the log is not ours (unknown topic, or an OO request whose requester
    is not a known adapter: other protocols use the same oracle)."""
    topics = [hexstr(t) for t in log["topics"]]
    if not topics or topics[0] not in EVENT_BY_TOPIC:
        return None
    event = EVENT_BY_TOPIC[topics[0]]
    address = hexstr(log["address"])
    if event in ORACLE_SIGNATURES:
        requester = "0x" + topics[1][-40:]
        if requester not in adapters:
            return None
        fields = abi_decode(ORACLE_DATA_TYPES[event], bytes(log["data"]))
        ancillary: bytes = fields[2]
        qid = "0x" + keccak(ancillary).hex()
        adapter = requester
    else:
        if address not in adapters:
            return None
        qid = topics[1]
        adapter = address
    return OracleLog(
        block_number=int(log["blockNumber"]),
        block_hash=hexstr(log["blockHash"]),
        log_index=int(log["logIndex"]),
        tx_hash=hexstr(log["transactionHash"]),
        address=address,
        event=event,
        question_id=qid,
        condition_id=condition_id(adapter, qid),
    )


def checksum(address: str) -> str:
    return str(to_checksum_address(address))
