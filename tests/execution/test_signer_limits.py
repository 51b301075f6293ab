"""Session limit reached → refused inside the signer. The real signer process (moto KMS in server
mode) holds the user's session key, the Polymarket L2 API account and the Kalshi key; the executor
signs through :class:`ServiceSigner` under the session. An order over the per-order limit, or one
that would take the session past its cumulative limit, is refused by the signer: the executor names
the step and the rule, and nothing reaches the venue."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from crossbook_signer.envelope import context, seal
from cryptography.hazmat.primitives import serialization

from crossbook.execution import Executor, IntentRefused, KalshiTrader, PairIntent, PolymarketTrader, ServiceSigner
from crossbook.execution.trigger import EdgeIntent, EdgeTrigger, Firing
from crossbook.signing.client import SignerClient
from tests.conftest import eventually
from tests.execution.test_scenarios import KEY, KEY_ID, Rig, rig, rows
from tests.signer.conftest import Signer

__all__ = ["rig"]
SESSION_API_KEY = "11111111-0000-0000-0000-00000000e8ec"


async def session_signer(signer: Signer, r: Rig, *, per_order: str, total: str) -> tuple[SignerClient, str, str]:
    """Authorize a session for the pair's Polymarket tokens, then restart the signer with that session,
    an L2 API account bound to the session's address, and the Kalshi key (all KMS-sealed)."""
    signer.write_config()
    await asyncio.to_thread(signer.start)  # its wait loop blocks: keep the feeds (this loop) running
    yes = r.poly.markets[0]
    async with SignerClient(signer.socket) as c:
        s = await c.authorize_session(
            "alice", "0x" + "ab" * 20, expires_at=int(time.time()) + 3600, max_order_notional=Decimal(per_order),
            max_total_notional=Decimal(total), allowed_token_ids=[yes, r.poly.no_token(yes)], request_id="auth-a",
        )  # fmt: skip
    await asyncio.to_thread(signer.stop)
    secret = base64.urlsafe_b64encode(os.urandom(32)).decode()
    kms = signer.kms

    def sealed(data: bytes, name: str, purpose: str) -> str:
        return seal(kms.client, kms.key_id, data, context(name, purpose))

    pem = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    doc = [
        f"allowed_uids = [{os.getuid()}]",
        "test_mode = true",
        f"sessions = {json.dumps([s.session_blob.decode()])}",
        "[kms]", f'key_id = "{kms.key_id}"',
        "[wallets.main]",
        f'private_key = "{sealed(bytes.fromhex("ab" * 32), "main", "polymarket-key")}"',
        f'[polymarket_api."{SESSION_API_KEY}"]', f'api_key = "{SESSION_API_KEY}"', f'address = "{s.address}"',
        f'secret = "{sealed(secret.encode(), SESSION_API_KEY, "polymarket-api-secret")}"',
        f'passphrase = "{sealed(b"pass-s", SESSION_API_KEY, "polymarket-api-passphrase")}"',
        "[kalshi]", f'key_id = "{KEY_ID}"',
        f'private_key = "{sealed(pem, KEY_ID, "kalshi-rsa-key")}"',
    ]  # fmt: skip
    with open(signer.config, "w") as f:  # noqa: ASYNC230 - a small file written before the signer starts
        f.write("\n".join(doc) + "\n")
    await asyncio.to_thread(signer.start)
    r.poly.add_api_creds(SESSION_API_KEY, secret, "pass-s", address=s.address)
    return SignerClient(signer.socket, timeout=3.0), s.session_id, s.address


@pytest.fixture
async def signed_rig(rig: Rig, signer_env: Signer) -> AsyncIterator[tuple[Rig, Executor, SignerClient]]:
    # Limits from the live price (Polymarket NO near 0.35 with seed 2, but the book walks): a 20-share leg
    # costs n20; 40 shares (≈ 2 × n20) break the per-order limit, and a second 20 the cumulative one.
    no_ask = 1 - Decimal(str(rig.md.books.top("polymarket", rig.poly.markets[0])["bid"]))
    n20 = 20 * no_ask
    cent = Decimal("0.01")
    # The total leaves room for one 20-share leg and a quarter: the third order is refused for any price above
    # a quarter of today's (1.6 let a book that walked 20 % down fit a second leg: a flaky test).
    per_order, total = (n20 * Decimal("1.4")).quantize(cent), (n20 * Decimal("1.25")).quantize(cent)
    client, session_id, address = await session_signer(signer_env, rig, per_order=str(per_order), total=str(total))
    await eventually(lambda: rig.breaker.evaluate(rig.pair_id).enabled, timeout=10, what="pair enabled again")
    signer = ServiceSigner(client, address=address, api_key=SESSION_API_KEY, session_id=session_id)
    traders = {
        "polymarket": PolymarketTrader(rig.poly.rest_url, signer, timeout=2.0),
        "kalshi": KalshiTrader(rig.kal.rest_url + "/trade-api/v2", signer, timeout=2.0),
    }
    ex = rig.executor
    executor = Executor(gate=ex.gate, books=ex.books, traders=traders, markets=ex.markets, store=ex.store,  # type: ignore[arg-type]
                        unwind=ex.unwind_policy, resolve_timeout=3.0, user_ref="alice")  # fmt: skip
    try:
        yield rig, executor, client
    finally:
        for t in traders.values():
            await t.close()
        await client.close()


async def test_session_limits_refuse_inside_the_signer_nothing_sent(
    signed_rig: tuple[Rig, Executor, SignerClient],
) -> None:
    r, executor, _ = signed_rig
    # Over the per-order limit: the first leg is refused by the signer; nothing is sent anywhere.
    with pytest.raises(IntentRefused) as refused:
        await executor.pair_trade(PairIntent(r.pair_id, Decimal(40), edge=Decimal("0.02"), yes_venue="kalshi"))
    assert refused.value.step.startswith("signer")
    assert "max_order_notional" in str(refused.value) and "per-order limit" in str(refused.value)
    assert (r.poly.orders_accepted, r.kal.orders_accepted) == (0, 0)

    # Within limits: both legs go through the signer (session key, L2 and Kalshi headers) and fill.
    res = await executor.pair_trade(PairIntent(r.pair_id, Decimal(20), edge=Decimal("0.02"), yes_venue="kalshi"))
    assert res.status == "hedged", res.reasons
    assert (r.poly.orders_accepted, r.kal.orders_accepted) == (1, 1)

    # The next one would take the session past its cumulative limit (≈ 2 × n20 > 1.25 × n20): refused, nothing sent.
    with pytest.raises(IntentRefused) as refused:
        await executor.pair_trade(PairIntent(r.pair_id, Decimal(20), edge=Decimal("0.02"), yes_venue="kalshi"))
    assert refused.value.step.startswith("signer") and "max_total_notional" in str(refused.value)
    assert (r.poly.orders_accepted, r.kal.orders_accepted) == (1, 1)
    assert r.poly.stats["orders_duplicate"] == r.kal.stats["orders_duplicate"] == 0

    orders = await rows(r.pg_url, "SELECT venue, status, reason FROM orders ORDER BY created_at")
    assert [(o["venue"], o["status"]) for o in orders] == [
        ("polymarket", "refused"), ("polymarket", "filled"), ("kalshi", "filled"), ("polymarket", "refused"),
    ]
    assert "max_total_notional" in str(orders[-1]["reason"])
    intents = await rows(r.pg_url, "SELECT status FROM execution_intents ORDER BY created_at")
    assert [i["status"] for i in intents] == ["refused", "hedged", "refused"]
    actions = [a["action"] for a in await rows(r.pg_url, "SELECT action FROM audit_log ORDER BY id")]
    assert actions.count("order_refused") == 2


async def test_a_fire_under_a_session_sends_the_compiled_request_and_records_the_signers_hash(
    signed_rig: tuple[Rig, Executor, SignerClient],
) -> None:
    # An armed trigger over the live books with the session-signed executor and its records: the compiled check
    # makes the first leg's request (a session key), the order's hash is recorded before the send from that
    # request, and it is the hash the signer signed and the venue holds.
    r, executor, client = signed_rig
    await client.health()  # the fast path is up (the daemon connects it at start)
    r.poly.pause_updates()
    r.kal.pause_updates()
    await asyncio.sleep(0.2)  # the last ticks reach our books
    written: list[object] = []
    send = client.send_prepare_frame

    def spy(frame: bytes, call_id: int) -> object:
        sent = send(frame, call_id)
        written.append(sent)
        return sent

    client.send_prepare_frame = spy  # type: ignore[method-assign]
    done: list[Firing] = []
    trigger = EdgeTrigger(executor, rearm="manual", on_done=done.append)
    trigger.attach(r.md)
    # the direction the scenario books show an edge in (YES on Kalshi, NO on Polymarket), at any edge
    trigger.arm(EdgeIntent(r.pair_id, Decimal(20), Decimal(0), yes_venue="kalshi"))
    watch = trigger._armed[r.pair_id].watch
    assert watch is not None and watch.first_leg
    try:
        await eventually(lambda: done, timeout=15, what="the armed trigger's intent to finish")
    finally:
        await trigger.stop()
    (firing,) = done
    assert firing.result is not None and firing.result.status == "hedged", firing
    assert len(written) == 1 and written[0] is not None  # the compiled request, written by the trigger
    leg1 = firing.result.legs[0].order
    assert leg1.venue == "polymarket" and leg1.venue_order_id in r.poly.orders
    (row,) = await rows(r.pg_url, "SELECT venue_order_id FROM orders WHERE client_order_id = $1",
                        leg1.client_order_id)  # fmt: skip
    assert row["venue_order_id"] == leg1.venue_order_id
