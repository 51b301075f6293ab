"""A real executor process (``crossbook trade ...``) against the simulators and PostgreSQL of a test:
config and development key files in a temp dir, the CLI run as a subprocess."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from crossbook.signing import PrivateKey
from crossbook.venues.kalshi.sim import KalshiSim
from crossbook.venues.polymarket.sim import PolymarketSim

WALLET_HEX = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # anvil's well-known key 0
API_KEY = "00000000-0000-0000-0000-00000000e8ed"
KEY_ID = "exec-proc-key"


@dataclass
class ProcRig:
    poly: PolymarketSim
    kal: KalshiSim
    pg_url: str
    pair_id: str
    dir: Path
    config: Path

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for k in list(env):
            if k.startswith("CROSSBOOK_"):
                del env[k]
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crossbook", *args, "--config", str(self.config), "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip

    async def run(self, *args: str, timeout: float = 60) -> tuple[int, dict[str, Any], str]:
        proc = await self.start(*args)
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        text = out.decode()
        try:
            doc = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError:
            raise AssertionError(f"not JSON on stdout: {text!r}\nstderr:\n{err.decode()}") from None
        return int(proc.returncode or 0), doc, err.decode()


async def make_proc_rig(
    pg_url: str, tmp: Path, seed: int = 2, extra: list[str] | None = None, **execution: Any
) -> ProcRig:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    poly = PolymarketSim(seed=seed, markets=1, tick_interval=0.05)
    kal = KalshiSim(seed=seed, markets=1, tick_interval=0.05, api_keys={KEY_ID: key.public_key()})
    conn = await asyncpg.connect(pg_url)
    try:
        pair_id = str(await conn.fetchval(
            "INSERT INTO market_pairs (poly_condition_id, kalshi_ticker, logic_status, polarity)"
            " VALUES ($1, $2, 'Verified', 'same') RETURNING internal_id", poly.conditions[poly.markets[0]],
            kal.markets[0],
        ))  # fmt: skip
    finally:
        await conn.close()
    await poly.start()
    await kal.start()
    secret = base64.urlsafe_b64encode(os.urandom(32)).decode()
    poly.add_api_creds(API_KEY, secret, "pass-proc", address=PrivateKey(WALLET_HEX).address)
    (tmp / "kalshi.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    (tmp / "wallet.hex").write_text(WALLET_HEX)
    (tmp / "creds.json").write_text(json.dumps({"api_key": API_KEY, "secret": secret, "passphrase": "pass-proc"}))
    for f in ("kalshi.pem", "wallet.hex", "creds.json"):
        os.chmod(tmp / f, 0o600)
    yes = poly.markets[0]
    ex = {
        "user": "alice", "polymarket_key_path": str(tmp / "wallet.hex"),
        "polymarket_api_creds_path": str(tmp / "creds.json"), "order_timeout_s": 60.0, "resolve_timeout_s": 3.0,
        "ready_timeout_s": 20.0, **execution,
    }  # fmt: skip
    lines = [
        f'state_dir = "{tmp / "state"}"',
        'log_level = "WARNING"',
        "[feed]", "stale_after_ms = 1000", "reconnect_min_s = 0.05", "reconnect_max_s = 0.2",
        "[polymarket]", f'ws_url = "{poly.ws_url}"', f'rest_url = "{poly.rest_url}"', "ping_interval_s = 0.1",
        "pong_timeout_s = 0.8",
        "[kalshi]", f'ws_url = "{kal.ws_url}"', f'rest_url = "{kal.rest_url}/trade-api/v2"', "ping_interval_s = 0.1",
        "pong_timeout_s = 0.8", f'api_key_id = "{KEY_ID}"', f'private_key_path = "{tmp / "kalshi.pem"}"',
        "[postgres]", f'url = "{pg_url}"',
        "[execution]", *[f"{k} = {json.dumps(v)}" for k, v in ex.items()],
        *(extra or []),
        "[[pairs]]", f'pair_id = "{pair_id}"', f'poly_asset = "{yes}"', f'poly_no_asset = "{poly.no_token(yes)}"',
        f'kalshi_ticker = "{kal.markets[0]}"', f'condition_id = "{poly.conditions[yes]}"', "verified = true",
    ]  # fmt: skip
    config = tmp / "crossbook.toml"
    config.write_text("\n".join(lines) + "\n")
    return ProcRig(poly, kal, pg_url, pair_id, tmp, config)
