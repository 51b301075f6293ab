"""Our Rust signatures against eth-account (an independent EIP-712 / secp256k1 implementation) over
random orders: every signature type, standard and neg-risk exchanges, V1/V2/V3, buy and sell."""

from __future__ import annotations

import hashlib
import hmac
import pickle
from base64 import urlsafe_b64decode, urlsafe_b64encode
from decimal import Decimal
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossbook import _core
from crossbook.errors import SignerError
from crossbook.signing import (
    ApiCreds,
    HmacKey,
    PrivateKey,
    SigningInputError,
    clob_auth_signature,
    order_hash,
    polymarket_exchange,
    sign_eip1559,
    sign_polymarket_order,
)

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
U256 = 2**256 - 1
HARDHAT0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"

V1_FIELDS = [
    ("salt", "uint256"),
    ("maker", "address"),
    ("signer", "address"),
    ("taker", "address"),
    ("tokenId", "uint256"),
    ("makerAmount", "uint256"),
    ("takerAmount", "uint256"),
    ("expiration", "uint256"),
    ("nonce", "uint256"),
    ("feeRateBps", "uint256"),
    ("side", "uint8"),
    ("signatureType", "uint8"),
]
V2_FIELDS = [
    ("salt", "uint256"),
    ("maker", "address"),
    ("signer", "address"),
    ("tokenId", "uint256"),
    ("makerAmount", "uint256"),
    ("takerAmount", "uint256"),
    ("side", "uint8"),
    ("signatureType", "uint8"),
    ("timestamp", "uint256"),
    ("metadata", "bytes32"),
    ("builder", "bytes32"),
]
DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def reference(order: dict[str, Any], key_hex: str, version: str, chain_id: int, exchange: str) -> tuple[str, str]:
    fields = V1_FIELDS if version == "1" else V2_FIELDS
    msg: dict[str, Any] = {}
    for name, typ in fields:
        v = order[name]
        if typ in ("uint256", "uint8"):
            v = {"BUY": 0, "SELL": 1}.get(v, v) if name == "side" else v
            msg[name] = int(v)
        else:
            msg[name] = v
    typed = {
        "types": {"EIP712Domain": DOMAIN_FIELDS, "Order": [{"name": n, "type": t} for n, t in fields]},
        "primaryType": "Order",
        "domain": {
            "name": "Polymarket CTF Exchange",
            "version": version,
            "chainId": chain_id,
            "verifyingContract": exchange,
        },
        "message": msg,
    }
    signable = encode_typed_data(full_message=typed)
    signed = Account.sign_message(signable, key_hex)
    return "0x" + bytes(signed.message_hash).hex(), "0x" + bytes(signed.signature).hex()


keys = st.integers(min_value=1, max_value=N - 1).map(lambda k: "0x" + k.to_bytes(32, "big").hex())
addresses = st.binary(min_size=20, max_size=20).map(lambda b: to_checksum_address("0x" + b.hex()))
u256 = st.integers(min_value=0, max_value=U256)
u256_in = u256.flatmap(lambda x: st.sampled_from([x, str(x)]))
b32 = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, Any], str, str, int, bool, str | None, str]:
    key_hex = draw(keys)
    me = Account.from_key(key_hex).address
    version = draw(st.sampled_from(["1", "2", "3"]))
    neg_risk = draw(st.booleans())
    chain_id = draw(st.sampled_from([137, 80002])) if version == "1" else 137
    known = _core.polymarket_exchange(chain_id, neg_risk, version)
    exchange: str | None = None if known and draw(st.booleans()) else draw(addresses)
    sig_type = draw(st.integers(0, 2 if version == "1" else 3))
    if sig_type == 0:
        maker = signer = me
    elif sig_type in (1, 2):
        maker, signer = draw(addresses), me  # funder proxy/safe, EOA signer
    else:
        maker = signer = draw(addresses)  # POLY_1271: the smart wallet is both
    side = draw(st.sampled_from([0, 1, "BUY", "SELL"]))
    order: dict[str, Any] = {
        "salt": draw(u256_in),
        "maker": draw(st.sampled_from([maker, maker.lower()])),
        "signer": signer,
        "tokenId": draw(u256_in),
        "makerAmount": draw(u256_in),
        "takerAmount": draw(u256_in),
        "side": side,
        "signatureType": sig_type,
    }
    if version == "1":
        order |= {
            "taker": draw(st.sampled_from(["0x0000000000000000000000000000000000000000", draw(addresses)])),
            "expiration": draw(u256_in),
            "nonce": draw(u256_in),
            "feeRateBps": draw(u256_in),
        }
    else:
        order |= {"timestamp": draw(u256_in), "metadata": draw(b32), "builder": draw(b32), "expiration": "0"}
    return order, key_hex, version, chain_id, neg_risk, exchange, known or ""


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_orders_match_eth_account(case: tuple[dict[str, Any], str, str, int, bool, str | None, str]) -> None:
    order, key_hex, version, chain_id, neg_risk, exchange, known = case
    got = sign_polymarket_order(
        order, PrivateKey(key_hex), neg_risk=neg_risk, chain_id=chain_id, version=version, exchange=exchange
    )
    want = reference(order, key_hex, version, chain_id, exchange or known)
    assert (got.hash, got.signature) == want
    assert order_hash(order, neg_risk=neg_risk, chain_id=chain_id, version=version, exchange=exchange) == got.hash


@settings(max_examples=50, deadline=None)
@given(keys, st.integers(0, 2**64), st.integers(0, U256), st.sampled_from([137, 80002]))
def test_clob_auth_matches_eth_account(key_hex: str, ts: int, nonce: int, chain_id: int) -> None:
    acct = Account.from_key(key_hex)
    typed = {
        "types": {
            "EIP712Domain": DOMAIN_FIELDS[:3],
            "ClobAuth": [
                {"name": "address", "type": "address"},
                {"name": "timestamp", "type": "string"},
                {"name": "nonce", "type": "uint256"},
                {"name": "message", "type": "string"},
            ],
        },
        "primaryType": "ClobAuth",
        "domain": {"name": "ClobAuthDomain", "version": "1", "chainId": chain_id},
        "message": {
            "address": acct.address,
            "timestamp": str(ts),
            "nonce": nonce,
            "message": "This message attests that I control the given wallet",
        },
    }
    want = "0x" + bytes(Account.sign_message(encode_typed_data(full_message=typed), key_hex).signature).hex()
    assert clob_auth_signature(PrivateKey(key_hex), ts, nonce, chain_id) == want


@settings(max_examples=50, deadline=None)
@given(
    keys,
    st.integers(0, 2**32),
    st.integers(0, 10**12),
    st.integers(0, 10**12),
    st.integers(21000, 30_000_000),
    st.one_of(st.none(), addresses),
    st.integers(0, 10**24),
    st.binary(max_size=300),
    st.lists(st.tuples(addresses, st.lists(b32, max_size=3)), max_size=2),
)
def test_eip1559_matches_eth_account(
    key_hex: str,
    nonce: int,
    tip: int,
    extra: int,
    gas: int,
    to: str | None,
    value: int,
    data: bytes,
    access: list[tuple[str, list[str]]],
) -> None:
    tx: dict[str, Any] = {
        "type": 2,
        "chainId": 137,
        "nonce": nonce,
        "maxPriorityFeePerGas": tip,
        "maxFeePerGas": tip + extra,
        "gas": gas,
        "value": value,
        "data": "0x" + data.hex(),
        "accessList": [{"address": a, "storageKeys": ks} for a, ks in access],
    }
    if to is not None:
        tx["to"] = to
    ref = Account.sign_transaction(tx, key_hex)
    got = sign_eip1559(PrivateKey(key_hex), tx)
    assert got.raw == bytes(ref.raw_transaction)
    assert got.hash == "0x" + bytes(ref.hash).hex()


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.text(max_size=20), st.text(max_size=40), st.binary(max_size=200))
def test_l2_hmac_matches_stdlib(secret: bytes, ts: str, path: str, body: bytes) -> None:
    b64 = urlsafe_b64encode(secret).decode()
    want = urlsafe_b64encode(
        hmac.new(urlsafe_b64decode(b64), ts.encode() + b"POST" + path.encode() + body, hashlib.sha256).digest()
    ).decode()
    assert HmacKey(b64).l2_signature(ts, "POST", path, body) == want
    assert HmacKey(b64.rstrip("=")).l2_signature(ts, "POST", path, body) == want


V2_ORDER: dict[str, Any] = {
    "salt": "123456789",
    "maker": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "signer": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "tokenId": "71321045679252212594626385532706912750332728571942532289631379312455583992563",
    "makerAmount": "100000000",
    "takerAmount": "50000000",
    "side": "BUY",
    "signatureType": "EOA",
    "timestamp": "1713398400000",
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("makerAmount", 1.5),
        ("makerAmount", Decimal("1")),
        ("makerAmount", -1),
        ("makerAmount", "-1"),
        ("makerAmount", "1e6"),
        ("makerAmount", 2**256),
        ("makerAmount", True),
        ("side", 2),
        ("side", "HOLD"),
        ("signatureType", 4),
        ("maker", "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),  # bad checksum
        ("maker", "0x1234"),
        ("metadata", "0x12"),
        ("signer", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),  # not the key's address
    ],
)
def test_bad_orders_are_refused_with_the_field_named(field: str, value: object) -> None:
    with pytest.raises(SigningInputError, match=field):
        sign_polymarket_order({**V2_ORDER, field: value}, PrivateKey(HARDHAT0))


def test_missing_field_and_unknown_exchange() -> None:
    order = dict(V2_ORDER)
    del order["timestamp"]
    with pytest.raises(SigningInputError, match="timestamp"):
        sign_polymarket_order(order, HARDHAT0)
    with pytest.raises(SigningInputError, match="exchange"):
        sign_polymarket_order(V2_ORDER, HARDHAT0, chain_id=80002)
    with pytest.raises(SigningInputError, match="version"):
        sign_polymarket_order(V2_ORDER, HARDHAT0, version="4")
    assert polymarket_exchange(137, True, "3") is None
    assert polymarket_exchange(137, False, "2") == "0xE111180000d2663C0091e4f400237545B87B996B"
    # SigningInputError is both a SignerError and a ValueError
    assert issubclass(SigningInputError, SignerError) and issubclass(SigningInputError, ValueError)


def test_keys_never_show_their_secret() -> None:
    k = PrivateKey(HARDHAT0)
    assert "ac0974" not in repr(k) and k.address in repr(k)
    assert k.locked
    with pytest.raises(TypeError):
        pickle.dumps(k)
    raw = bytearray(bytes.fromhex(HARDHAT0[2:]))
    assert PrivateKey(raw).address == k.address
    assert raw == bytearray(32), "the bytearray copy is wiped"
    with pytest.raises(SigningInputError) as e:
        PrivateKey("0x" + "ff" * 32)
    assert "ff" * 8 not in str(e.value)
    with pytest.raises(SigningInputError):
        PrivateKey("not hex")
    creds = ApiCreds("k", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "phrase-xyz")
    assert "phrase-xyz" not in repr(creds) and "AAAA" not in repr(creds)
    assert "hidden" in repr(creds.secret)


def test_signature_is_low_s_and_recovers() -> None:
    k = PrivateKey(HARDHAT0)
    for i in range(200):
        d = _core.keccak256(i.to_bytes(4, "big"))
        sig = k.sign_digest(d)
        assert sig[64] in (27, 28)
        assert int.from_bytes(sig[32:64], "big") <= N // 2
        assert _core.recover_address(d, sig) == k.address
