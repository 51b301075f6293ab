"""EIP-712 building blocks (hashing in Rust), for checks and tooling."""

from __future__ import annotations

from crossbook import _core

__all__ = ["domain_separator", "keccak256"]


def domain_separator(name: str, version: str, chain_id: int, verifying_contract: str | None = None) -> str:
    """0x hex domain separator; without ``verifying_contract`` the three-field domain type is used."""
    return "0x" + _core.eip712_domain_separator(name, version, chain_id, verifying_contract).hex()


def keccak256(data: bytes) -> bytes:
    return _core.keccak256(data)
