"""The records written before an order leaves: with ``intent_started(first=order)`` the intent, the first
order's ``submitting`` row (under the id it will be sent with) and both audit entries are one statement,
all or nothing; a refusal afterwards turns that row into a refused one, never a second row. The executor
writes it while the signer signs and sends nothing whose signed id differs from the recorded one."""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg  # type: ignore[import-untyped]
import pytest

from crossbook.execution import ExecutionStore
from crossbook.execution.models import LegOrder, OrderResult, new_id
from crossbook.signing import PrivateKey
from crossbook.signing.orders import order_hash, sign_polymarket_order
from crossbook.store.postgres import migrate


def order(intent_id: str, cid: str | None = None) -> LegOrder:
    o = LegOrder("polymarket", "123", "buy", "yes", Decimal("0.40"), Decimal("20"), "FOK", "entry", "leg1", intent_id,
                 "pair-x", cid or new_id())  # fmt: skip
    o.venue_order_id = "0x" + "ab" * 32
    return o


@pytest.mark.parametrize("commit", ["durable", "async"])
async def test_intent_and_first_order_are_written_together_or_not_at_all(pg_url: str, commit: str) -> None:
    await migrate(pg_url)
    store = await ExecutionStore.connect(pg_url, commit)
    conn = await asyncpg.connect(pg_url)
    try:
        intent = str(uuid.uuid4())
        first = order(intent)
        await store.intent_started(intent, "pair", "pair-x", {"size": "20"}, legs=[{"leg": "leg1"}], first=first)
        row = await conn.fetchrow("SELECT status, venue_order_id, intent_id, price, size FROM orders"
                                  " WHERE client_order_id = $1", first.client_order_id)  # fmt: skip
        assert dict(row) == {"status": "submitting", "venue_order_id": first.venue_order_id, "size": Decimal("20"),
                             "intent_id": uuid.UUID(intent), "price": Decimal("0.40")}  # fmt: skip
        audit = await conn.fetch("SELECT action, subject FROM audit_log WHERE subject IN ($1, $2) ORDER BY id", intent,
                                 first.client_order_id)  # fmt: skip
        assert [(a["action"], a["subject"]) for a in audit] == [("intent_started", intent),
                                                               ("order_submitting", first.client_order_id)]  # fmt: skip
        # A second intent whose first order reuses that client order id: the statement fails whole.
        other = str(uuid.uuid4())
        with pytest.raises(asyncpg.UniqueViolationError):
            await store.intent_started(other, "pair", "pair-x", {}, first=order(other, first.client_order_id))
        assert await conn.fetchval("SELECT count(*) FROM execution_intents WHERE id = $1", uuid.UUID(other)) == 0
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE subject = $1", other) == 0
        # Refused after it was recorded (by the signer, say): the same row, now refused, with why.
        await store.order_refused(OrderResult(first, "refused", reason="over the session limit", resolved_by="none",
                                              refused_at="signer"))  # fmt: skip
        rows = await conn.fetch("SELECT status, reason FROM orders WHERE client_order_id = $1", first.client_order_id)
        assert [(r["status"], r["reason"]) for r in rows] == [("refused", "over the session limit")]
        # Without a first order: the intent alone, as before.
        lone = str(uuid.uuid4())
        await store.intent_started(lone, "pair", "pair-x", {})
        assert await conn.fetchval("SELECT count(*) FROM orders WHERE intent_id = $1", uuid.UUID(lone)) == 0
        assert await conn.fetchval("SELECT action FROM audit_log WHERE subject = $1", lone) == "intent_started"
        # and a later order of the intent (a hedge): its own row and audit entry, in one statement
        hedge = order(intent)
        await store.order_submitting(hedge)
        assert await conn.fetchval("SELECT status FROM orders WHERE client_order_id = $1",
                                   hedge.client_order_id) == "submitting"  # fmt: skip
        assert await conn.fetchval("SELECT action FROM audit_log WHERE subject = $1",
                                   hedge.client_order_id) == "order_submitting"  # fmt: skip
        async with store.pool.acquire() as pooled:  # "async" is per statement: the session keeps its setting
            assert await pooled.fetchval("SHOW synchronous_commit") == "on"
    finally:
        await conn.close()
        await store.close()


def test_the_commit_mode_is_checked() -> None:
    with pytest.raises(ValueError, match="durable"):
        ExecutionStore(None, commit="sometimes")


def test_the_recorded_id_is_the_signed_orders_hash() -> None:
    """What the trader records before signing is what signing that struct gives (the scenario tests send through
    the signer service too, and a mismatch would refuse every order)."""
    key = PrivateKey("0x" + "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
    struct = {"salt": 1, "maker": key.address, "signer": key.address, "tokenId": "123", "makerAmount": "8000000",
              "takerAmount": "20000000", "side": "BUY", "signatureType": 0, "timestamp": "1700000000000",
              "metadata": "0x" + "00" * 32, "builder": "0x" + "00" * 32}  # fmt: skip
    h = order_hash(struct)
    assert h == sign_polymarket_order(struct, key).hash
    assert order_hash({**struct, "timestamp": "1700000000001"}) != h
