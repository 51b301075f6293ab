"""How the transaction manager gets signatures: one small interface. Production backs it with the signer
service (its own process); development and tests back it with a local key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from eth_account import Account


class SignedRaw(NamedTuple):
    raw: str  # 0x hex, ready for eth_sendRawTransaction
    hash: str  # 0x lowercase transaction hash


class TxSigner(Protocol):
    @property
    def address(self) -> str: ...

    async def sign_transaction(self, tx: Mapping[str, Any]) -> SignedRaw:
        """Sign an EIP-1559 transaction dict (chainId, nonce, to, value, data, gas, maxFeePerGas,
        maxPriorityFeePerGas; fees in wei as ints)."""
        ...


class LocalKeySigner:
    """A local eth-account key: development and tests only (the key lives in this process)."""

    def __init__(self, private_key: str) -> None:
        self._acct = Account.from_key(private_key)

    @property
    def address(self) -> str:
        return str(self._acct.address).lower()

    async def sign_transaction(self, tx: Mapping[str, Any]) -> SignedRaw:
        signed = self._acct.sign_transaction({**tx, "type": 2})
        return SignedRaw("0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex())
