"""The commands a person runs, as subprocesses: `crossbook demo --seconds` and `crossbook daemon`."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from decimal import Decimal
from pathlib import Path

import redis.asyncio as aioredis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from crossbook.store.embedded_redis import EmbeddedRedis
from crossbook.venues.kalshi.sim import KalshiSim
from crossbook.venues.polymarket.sim import PolymarketSim
from tests.conftest import eventually


async def test_demo_runs_and_stops_by_itself() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crossbook", "demo", "--seconds", "4", "--markets", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "polymarket" in text and "kalshi" in text
    assert text.count("live") >= 6, text[-3000:]  # 3 markets per venue shown live
    assert "demo stopped cleanly" in text
    assert "hub: ws://127.0.0.1:" in text and "token: cb_" in text


async def test_daemon_streams_both_venues_into_redis(tmp_path: Path, redis_server: EmbeddedRedis,
                                                     redis_client: aioredis.Redis) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "kalshi.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    pem.chmod(0o600)
    poly = PolymarketSim(seed=5, markets=2)
    kal = KalshiSim(seed=5, markets=2, api_keys={"k1": key.public_key()})
    await poly.start()
    await kal.start()
    cfg = tmp_path / "crossbook.toml"
    cfg.write_text(f"""
state_dir = "{tmp_path / 'state'}"
[hub]
port = 0
[redis]
url = "{redis_server.url}"
[polymarket]
ws_url = "{poly.ws_url}"
assets = {list(poly.markets)!r}
[kalshi]
ws_url = "{kal.ws_url}"
markets = {list(kal.markets)!r}
api_key_id = "k1"
private_key_path = "{pem}"
[[pairs]]
pair_id = "p1"
poly_asset = "{poly.markets[0]}"
kalshi_ticker = "{kal.markets[0]}"
verified = true
""".replace("'", '"'))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crossbook", "daemon", "--config", str(cfg), "--seconds", "20",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        async def four_valid_books() -> bool:
            keys = await redis_client.keys("book:*")
            if len(keys) != 4:
                return False
            vals = [await redis_client.hgetall(k) for k in keys]
            return all(v.get(b"valid") == b"1" for v in vals)

        await eventually(four_valid_books, timeout=15, what="4 valid books in Redis")
        for m in kal.markets:
            h = await redis_client.hgetall(f"book:kalshi:{m}")
            assert Decimal(h[b"bid"].decode()) < Decimal(h[b"ask"].decode())
        for m in poly.markets:
            h = await redis_client.hgetall(f"book:poly:{m}")
            assert Decimal(h[b"bid"].decode()) < Decimal(h[b"ask"].decode())
            assert int(h[b"ts"]) > 1_700_000_000_000
        # the breaker's verdict for the pair, as an operator reads it
        async def pair_enabled() -> bool:
            return (await redis_client.hget("state:pair:p1", "enabled")) == b"1"

        await eventually(pair_enabled, timeout=10, what="pair p1 enabled")
        st = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crossbook", "status", "--json", "--redis", redis_server.url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        sout, serr = await asyncio.wait_for(st.communicate(), 30)
        assert st.returncode == 0, serr.decode()
        status = json.loads(sout)
        assert status["pairs"]["p1"]["enabled"] == "1"
        assert len(status["books"]) == 4
        await poly.stop()  # the Polymarket leg goes away: the pair must be disabled, with the reason

        async def pair_disabled() -> bytes | None:
            h = await redis_client.hgetall("state:pair:p1")
            return h.get(b"reasons") if h.get(b"enabled") == b"0" else None

        why = await eventually(pair_disabled, timeout=10, what="pair p1 disabled")
        assert b"Polymarket" in why
    finally:
        proc.send_signal(2)  # Ctrl-C: a clean stop
        _out, err = await asyncio.wait_for(proc.communicate(), 20)
        await poly.stop()
        await kal.stop()
    log = err.decode()
    assert proc.returncode == 0, log[-2000:]
    assert "connected to" in log and "stopped" in log
    assert "BEGIN" not in log and "PRIVATE" not in log  # no key material in logs
