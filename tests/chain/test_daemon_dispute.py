"""The daemon as an operator runs it, with a real chain: a UMA dispute on anvil disables the pair
(published in Redis with the reason), settling it at finality re-arms it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import redis.asyncio as aioredis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from crossbook.store.embedded_redis import EmbeddedRedis
from crossbook.venues.kalshi.sim import KalshiSim
from crossbook.venues.polymarket.sim import PolymarketSim
from tests.chain.conftest import Anvil, mine
from tests.chain.test_uma_watcher import _rig
from tests.conftest import eventually


async def test_dispute_on_chain_disables_the_pair_in_the_running_daemon(
    anvil: Anvil, pool: object, db_url: str, tmp_path: Path, redis_server: EmbeddedRedis,
    redis_client: aioredis.Redis,
) -> None:
    r = await _rig(anvil, pool)
    data, qid, cid = r.question("will the daemon see it")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "k.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    poly = PolymarketSim(seed=9, markets=1)
    kal = KalshiSim(seed=9, markets=1, api_keys={"k1": key.public_key()})
    await poly.start()
    await kal.start()
    cfg = tmp_path / "crossbook.toml"
    cfg.write_text(f"""
state_dir = "{tmp_path / 'state'}"
[hub]
enabled = false
[redis]
url = "{redis_server.url}"
[postgres]
url = "{db_url}"
[chain]
enabled = true
rpc_url = "{anvil.url}"
poll_s = 0.05
confirmations = 4
oracles = ["{r.oo.address.lower()}"]
adapters = ["{r.adapter.address.lower()}"]
[polymarket]
ws_url = "{poly.ws_url}"
[kalshi]
ws_url = "{kal.ws_url}"
api_key_id = "k1"
private_key_path = "{pem}"
[[pairs]]
pair_id = "p1"
poly_asset = "{poly.markets[0]}"
kalshi_ticker = "{kal.markets[0]}"
condition_id = "{cid}"
verified = true
""")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crossbook", "daemon", "--config", str(cfg), "--seconds", "40",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)

    async def state() -> dict[bytes, bytes]:
        return await redis_client.hgetall("state:pair:p1")

    try:
        await eventually(lambda: _enabled(state), timeout=15, what="pair enabled with live books")
        rcpt = await r.dispute(data)

        async def disputed() -> bytes | None:
            h = await state()
            return h.get(b"reasons") if h.get(b"enabled") == b"0" else None

        why = await eventually(disputed, timeout=10, what="pair disabled by the dispute")
        assert f"UMA dispute on {qid}, since block {rcpt['blockNumber']}".encode() in why
        await r.settle(data)
        await mine(r.w3, 6)  # past finality (anvil's finalized tag / confirmation fallback)
        await eventually(lambda: _enabled(state), timeout=10, what="re-armed after the settle is final")

        # an operator halts the pair in PostgreSQL (as `crossbook pairs halt` does): disabled, then resumed
        await pool.execute(  # type: ignore[attr-defined]
            "INSERT INTO market_pairs (poly_condition_id, kalshi_ticker, logic_status, polarity, is_halted)"
            " VALUES ($1, $2, 'Verified', 'same', true)", cid, kal.markets[0])

        async def halted() -> bool:
            return (await state()).get(b"reasons") == b"pair halted"

        await eventually(halted, timeout=10, what="pair halted from the store")
        await pool.execute("UPDATE market_pairs SET is_halted = false")  # type: ignore[attr-defined]
        await eventually(lambda: _enabled(state), timeout=10, what="resumed from the store")

        # the audit rows follow the published state (written by the same sync, after it publishes)
        async def trail_ends_resumed() -> bool:
            trail = await pool.fetch(  # type: ignore[attr-defined]
                "SELECT action FROM audit_log WHERE actor = 'breaker' AND subject = 'p1' ORDER BY id")
            return [r["action"] for r in trail][-2:] == ["execute_disabled", "execute_enabled"]

        await eventually(trail_ends_resumed, timeout=10, what="halt and resume in the audit log")
    finally:
        proc.send_signal(2)
        _out, err = await asyncio.wait_for(proc.communicate(), 30)
        await poly.stop()
        await kal.stop()
    assert proc.returncode == 0, err.decode()[-3000:]
    assert "UMA watcher on" in err.decode()


async def _enabled(state: object) -> bool:
    h = await state()  # type: ignore[operator]
    return bool(h.get(b"enabled") == b"1")
