"""PreparePolymarketOrder: one signer call for a Polymarket order (signature, exact POST body, L2 headers).

The real signer process (moto KMS), the real client, both transports: the one call must give exactly what
the two-call path gives (SignPolymarketOrder, then PolymarketL2Headers over the body), under the same
session policy and the same request-id idempotency.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import orjson
import pytest

from crossbook.execution.signer import LocalSigner, ServiceSigner
from crossbook.signing import (
    ApiCreds,
    HmacKey,
    LocalHeaderSigner,
    PrivateKey,
    SigningInputError,
    l2_headers,
    polymarket_order_body,
    sign_polymarket_order,
)
from crossbook.signing.client import PreparedOrderReply, SignerClient, SignerPolicyError
from crossbook.venues.polymarket.sim import recover_order_signer
from tests.signer.conftest import ANVIL_ADDR, ANVIL_KEY, API_KEY, API_PASSPHRASE, API_SECRET, Signer
from tests.signer.test_signer_service import OTHER_TOKEN, TOKEN, v2_order

TS = 1_700_000_123


def trader_struct(maker: str, salt: int = 7, maker_amount: int = 5_000_000) -> dict[str, object]:
    """An order as the Polymarket trader builds it (typed values: int salt, "BUY", int signatureType)."""
    return {
        "salt": salt,
        "maker": maker,
        "signer": maker,
        "tokenId": TOKEN,
        "makerAmount": str(maker_amount),
        "takerAmount": "10000000",
        "side": "BUY",
        "signatureType": 0,
        "timestamp": "1700000000000",
        "metadata": "0x" + "00" * 32,
        "builder": "0x" + "00" * 32,
    }


def test_body_is_the_same_bytes_from_typed_or_string_values() -> None:
    struct = trader_struct(ANVIL_ADDR)
    sig = "0x" + "ab" * 65
    body = polymarket_order_body(struct, sig, API_KEY, "FOK")
    # What the trader sent before this function existed, byte for byte.
    legacy = orjson.dumps({"order": {**struct, "expiration": "0", "signature": sig}, "owner": API_KEY,
                           "orderType": "FOK", "deferExec": False, "postOnly": False})  # fmt: skip
    assert body == legacy
    as_strings = {k: str(v) for k, v in struct.items()}  # what the signer receives (a string map)
    assert polymarket_order_body(as_strings, sig, API_KEY, "FOK") == body
    assert polymarket_order_body({**as_strings, "side": "0"}, sig, API_KEY, "FOK") == body
    with pytest.raises(SigningInputError, match="order_type"):
        polymarket_order_body(struct, sig, API_KEY, "IOC")
    with pytest.raises(SigningInputError, match="salt"):
        polymarket_order_body({**struct, "salt": "-1"}, sig, API_KEY, "FOK")


async def test_local_signer_prepares_what_the_two_calls_give() -> None:
    key = PrivateKey(ANVIL_KEY)
    creds = ApiCreds(API_KEY, HmacKey(API_SECRET), API_PASSPHRASE)
    local = LocalSigner(key, creds, LocalHeaderSigner())
    struct = trader_struct(ANVIL_ADDR)
    ready = await local.prepare_polymarket_order(struct, order_type="FAK", request_id="x")
    signed = sign_polymarket_order(struct, key)
    body = polymarket_order_body(struct, signed.signature, API_KEY, "FAK")
    assert (ready.hash, ready.signature, ready.body) == (signed.hash, signed.signature, body)
    ts = int(ready.headers["POLY_TIMESTAMP"])
    assert ready.headers == l2_headers(creds, ANVIL_ADDR, "POST", "/order", body, timestamp=ts)


async def test_one_call_equals_the_two_call_path_on_both_transports(signer_env: Signer) -> None:
    signer_env.write_config(header_keys=True)
    signer_env.start()
    async with SignerClient(signer_env.socket) as fast, SignerClient(signer_env.socket, fast=False) as slow:
        for client, tag in ((fast, "f"), (slow, "g")):
            struct = trader_struct(ANVIL_ADDR, salt=11)
            got = await client.prepare_polymarket_order(
                struct, account="main", order_type="FOK", wallet="main", timestamp=TS, request_id=f"prep-{tag}"
            )
            signed = await client.sign_polymarket_order(struct, wallet="main", request_id=f"sign-{tag}")
            body = polymarket_order_body(struct, signed.signature, API_KEY, "FOK")
            headers = await client.l2_headers("main", "POST", "/order", body, timestamp=TS)
            assert (got.hash, got.signature) == (signed.hash, signed.signature)
            assert got.body == body and got.headers == headers
            assert got.audit["key"] == "wallet:main" and got.audit["notional"] == "5" and not got.audit["replayed"]
            # Idempotent: the same id is answered with the first reply (same body, same L2 timestamp).
            again = await client.prepare_polymarket_order(
                struct, account="main", order_type="FOK", wallet="main", timestamp=TS, request_id=f"prep-{tag}"
            )
            assert (again.body, again.headers, again.signature) == (got.body, got.headers, got.signature)
            assert again.audit["replayed"]
            with pytest.raises(Exception, match="different request"):
                await client.prepare_polymarket_order(
                    struct, account="main", order_type="FAK", wallet="main", timestamp=TS, request_id=f"prep-{tag}"
                )
        assert fast.fast_connected and not slow.fast_connected
        # The execution interface: ServiceSigner names the L2 account by its API key, as the daemon's config
        # does; this signer's account is "main", so the wrapper is checked against it under that name.
        svc = ServiceSigner(fast, address=ANVIL_ADDR, api_key="main", wallet="main")
        ready = await svc.prepare_polymarket_order(trader_struct(ANVIL_ADDR, salt=12), order_type="GTC",
                                                   request_id="svc-1")  # fmt: skip
        assert orjson.loads(ready.body)["owner"] == API_KEY and orjson.loads(ready.body)["orderType"] == "GTC"
        assert ready.headers["POLY_API_KEY"] == API_KEY and ready.headers["POLY_ADDRESS"] == ANVIL_ADDR
        with pytest.raises(Exception, match="no Polymarket API account named 'nope'"):
            await fast.prepare_polymarket_order(struct, account="nope", order_type="FOK", wallet="main")
        with pytest.raises(SigningInputError, match="order_type"):
            await fast.prepare_polymarket_order(struct, account="main", order_type="IOC", wallet="main")
    await asyncio.sleep(0.05)  # the signer logs after it replies
    log = signer_env.stderr()
    assert log.count("signed request_id=prep-f ") == 1 and API_SECRET not in log and API_PASSPHRASE not in log


async def test_session_policy_holds_and_counts_once(signer_env: Signer) -> None:
    signer_env.write_config(header_keys=True)
    signer_env.start()
    async with SignerClient(signer_env.socket) as client:
        s = await client.authorize_session(
            "user-p",
            "0x" + "ef" * 20,
            expires_at=int(time.time()) + 3600,
            max_order_notional=Decimal("10"),
            max_total_notional=Decimal("20"),
            allowed_token_ids=[TOKEN],
        )

        async def prepare(rid: str, **kw: object) -> PreparedOrderReply:
            return await client.prepare_polymarket_order(
                v2_order(s.address, **kw),  # type: ignore[arg-type]
                account="main",
                order_type="FOK",
                session_id=s.session_id,
                request_id=rid,
            )

        first = await prepare("s-1", maker_amount=8_000_000)
        assert first.audit["cumulative"] == "8" and first.session_blob
        # Signed by the session key, and the body is one the venue takes: the simulator recovers that signer.
        wire = orjson.loads(first.body)
        assert recover_order_signer(wire["order"]) == (first.hash, s.address.lower())
        assert wire["owner"] == API_KEY and first.headers["POLY_SIGNATURE"]
        replay = await prepare("s-1", maker_amount=8_000_000)
        assert replay.audit["replayed"] and replay.audit["cumulative"] == "8" and replay.body == first.body
        for rid, kw, rule in (
            ("s-2", {"maker_amount": 10_500_000, "salt": 2}, "max_order_notional"),
            ("s-3", {"token": OTHER_TOKEN, "salt": 3}, "market_not_allowed"),
        ):
            with pytest.raises(SignerPolicyError) as exc:
                await prepare(rid, **kw)
            assert exc.value.rule == rule and rid in str(exc.value)
        with pytest.raises(SignerPolicyError) as exc:  # a refusal is remembered: the same id, the same rule
            await prepare("s-2", maker_amount=10_500_000, salt=2)
        assert exc.value.rule == "max_order_notional"
        # The one-call and the two-call paths share the session's total: 8 + 9 = 17, then 4 more is over 20.
        signed = await client.sign_polymarket_order(
            v2_order(s.address, maker_amount=9_000_000, salt=4), session_id=s.session_id, request_id="s-4"
        )
        assert signed.audit["cumulative"] == "17"
        with pytest.raises(SignerPolicyError) as exc:
            await prepare("s-5", maker_amount=4_000_000, salt=5)
        assert exc.value.rule == "max_total_notional"
        await client.revoke_session(s.session_id)
        with pytest.raises(SignerPolicyError) as exc:
            await prepare("s-6", maker_amount=1_000_000, salt=6)
        assert exc.value.rule == "revoked"
