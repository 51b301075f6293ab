"""The daemon opens users' private tunnels itself: config (hub.proxies + a 0600 accounts file) → the
daemon's start_hub → real venue simulators behind real pproxy HTTP CONNECT and SOCKS5 proxies."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.client import connect

from crossbook.book.service import MarketData
from crossbook.config import load_config
from crossbook.daemon import build_safety, start_hub
from crossbook.errors import ConfigError
from crossbook.hub import FileUserStore, InMemoryUserStore
from crossbook.hub.accounts import load_accounts, polymarket_user_url
from crossbook.signing import LocalHeaderSigner
from crossbook.store.embedded_redis import EmbeddedRedis
from crossbook.venues.kalshi.sim import KalshiSim
from crossbook.venues.polymarket.sim import PolymarketSim
from tests.conftest import eventually
from tests.hub.conftest import ProxyProc
from tests.hub.test_tunnels import POLY_PASS, POLY_SECRET, Inbox, fill, open_inbox, order
from tests.signer.conftest import KALSHI_KAT, Signer

USERS = ("alice", "bob")


def fill_subs(kalshi: Any) -> int:
    """Live ``fill`` subscriptions at the Kalshi sim."""
    return sum(1 for s in kalshi.subscriptions() if s["channel"] == "fill")
ROOT = Path(__file__).resolve().parents[2]


def write_accounts(tmp_path: Path, keys: dict[str, rsa.RSAPrivateKey]) -> Path:
    body = ""
    for u, k in keys.items():
        pem = tmp_path / f"{u}.pem"
        pem.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
        body += textwrap.dedent(f"""
            [{u}.kalshi]
            api_key_id = "key-{u}"
            private_key_path = "{pem}"
            [{u}.polymarket]
            api_key = "api-{u}"
            secret = "{POLY_SECRET[u]}"
            passphrase = "{POLY_PASS[u]}"
            """)
    path = tmp_path / "accounts.toml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(body)
    return path


async def test_daemon_opens_each_users_tunnels_through_the_configured_proxies(
    proxies: tuple[ProxyProc, ProxyProc], tmp_path: Path,
) -> None:
    keys = {u: rsa.generate_private_key(public_exponent=65537, key_size=2048) for u in USERS}
    kalshi = KalshiSim(api_keys={f"key-{u}": k.public_key() for u, k in keys.items()}, tick_interval=0.5)
    poly = PolymarketSim(tick_interval=0.5)
    for u in USERS:
        poly.add_api_creds(f"api-{u}", POLY_SECRET[u], POLY_PASS[u])
    await kalshi.start()
    await poly.start()
    accounts = write_accounts(tmp_path, keys)
    http, socks = proxies
    cfg_file = tmp_path / "crossbook.toml"
    cfg_file.write_text(textwrap.dedent(f"""
        state_dir = "{tmp_path / 'state'}"
        [polymarket]
        ws_url = "{poly.ws_url}"
        [kalshi]
        ws_url = "{kalshi.ws_url}"
        [hub]
        port = 0
        proxies = ["{http.url}", "{socks.url}"]
        accounts_file = "{accounts}"
        tunnel_grace_s = 0.2
        """))
    cfg = load_config(cfg_file, env={})
    assert polymarket_user_url(cfg.polymarket.ws_url) == f"ws://127.0.0.1:{poly.port}/ws/user"
    md = MarketData(cfg, LocalHeaderSigner(), None)
    breaker, _ = build_safety(cfg, md)
    users = InMemoryUserStore()
    tokens = {u: users.add_user_sync(u) for u in (*USERS, "carol")}
    node = await start_hub(cfg, md, breaker, None, users=users)
    try:
        assert node.hub.tunnels is not None and node.proxies is not None
        topics = ["private:kalshi", "private:polymarket"]
        boxes = {u: await open_inbox(node.hub, tokens[u], topics) for u in USERS}
        for u, v in itertools.product(USERS, ("kalshi", "polymarket")):
            await eventually(lambda u=u, v=v: (t := node.hub.tunnels.get(u, v)) is not None and t.connected,  # type: ignore[union-attr]
                             timeout=15, what=f"{u}'s {v} tunnel up")
        used = {t.proxy_label for t in node.hub.tunnels.tunnels.values()}
        assert used == {node.proxies.label(http.url), node.proxies.label(socks.url)}, used
        # one upstream per user; each pushed event below reaches exactly one subscription (push_user_event
        # returns 1), i.e. the venue saw each user's handshake signed with that user's own key
        # (a tunnel is up once its socket is; the venue takes its subscription a moment later)
        await eventually(lambda: fill_subs(kalshi) == 2 and sorted(poly.user_subscribers()) == ["api-alice", "api-bob"],
                         timeout=10, what="both users' subscriptions at the venues")  # fmt: skip

        for n in range(4):
            for u in USERS:
                assert kalshi.push_user_event(f"key-{u}", "fill", fill(u, n)) == 1
                assert poly.push_user_event(f"api-{u}", order(u, n)) == 1
        await eventually(lambda: all(len(b.private("kalshi")) == 4 and len(b.private("polymarket")) == 4
                                     for b in boxes.values()), timeout=10, what="every private event")
        await asyncio.sleep(0.3)
        for me, other in (("alice", "bob"), ("bob", "alice")):
            raw = orjson.dumps(boxes[me].msgs).decode()
            assert other not in raw, f"{me} saw {other}'s data"
            assert [m["data"]["msg"]["trade_id"] for m in boxes[me].private("kalshi")] == [
                f"{me}-fill-{n}" for n in range(4)]
            assert [m["data"]["id"] for m in boxes[me].private("polymarket")] == [
                f"0x{me}-order-{n}" for n in range(4)]

        async with connect(node.hub.url) as carol:  # no venue credentials on file
            await carol.send(orjson.dumps({"op": "auth", "token": tokens["carol"]}))
            assert orjson.loads(await carol.recv())["type"] == "auth_ok"
            await carol.send(orjson.dumps({"op": "subscribe", "topics": ["private:kalshi"]}))
            ack = orjson.loads(await carol.recv())
            assert ack["topics"] == [] and ack["failed"][0]["code"] == "no_credentials", ack
            # the daemon's hub counts market demand against its own feeds: a market it does not stream
            await carol.send(orjson.dumps({"op": "subscribe", "topics": ["kalshi:NOT-STREAMED"]}))
            ack = orjson.loads(await carol.recv())
            assert ack["failed"][0]["code"] == "unknown_market", ack
        for b in boxes.values():
            await b.ws.close()
        await eventually(lambda: not node.hub.tunnels.tunnels, timeout=5, what="tunnels closed after grace")  # type: ignore[union-attr]
    finally:
        await node.stop()
        await kalshi.stop()
        await poly.stop()


def test_accounts_file_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text('[alice.polymarket]\napi_key = "k"\nsecret = "s3cr3t-value"\npassphrase = "p"\n')
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_accounts(path)
    path.chmod(0o600)
    assert load_accounts(path).polymarket("alice") is not None
    path.write_text('[alice.kalshi]\napi_key_id = "k"\n')
    with pytest.raises(ConfigError, match="exactly one of signer_socket"):
        load_accounts(path)
    path.write_text('[alice.polymarket]\napi_key = "k"\nsecret = "s3cr3t-value"\n')
    with pytest.raises(ConfigError, match="needs passphrase") as exc:
        load_accounts(path)
    assert "s3cr3t-value" not in str(exc.value)
    path.write_text('[alice.kalshi]\napi_key_id = "k"\nsigner_socket = "/run/x.sock"\n')
    signer = load_accounts(path).kalshi("alice")
    assert signer is not None and hasattr(signer, "kalshi_headers_async")  # the signer service's client
    cfg = tmp_path / "c.toml"
    cfg.write_text('[hub]\nproxies = ["http://127.0.0.1:3128"]\n')
    from crossbook.hub.accounts import build_tunnels

    with pytest.raises(ConfigError, match=r"both hub\.proxies"):
        build_tunnels(load_config(cfg, env={}))


async def test_kalshi_tunnel_handshake_signed_by_the_signer_service(
    proxies: tuple[ProxyProc, ProxyProc], signer_env: Signer, tmp_path: Path,
) -> None:
    """Production shape: the account names a signer socket; the daemon never loads that Kalshi key."""
    signer_env.write_config(header_keys=True)  # the signer holds the Kalshi known-answer key (KMS-sealed)
    signer_env.start()
    kat = json.loads(KALSHI_KAT.read_text())
    kalshi = KalshiSim(api_keys={kat["api_key_id"]: kat["public_key_pem"]}, tick_interval=0.5)
    await kalshi.start()
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(f'[alice.kalshi]\napi_key_id = "{kat["api_key_id"]}"\nsigner_socket = "{signer_env.socket}"\n')
    accounts.chmod(0o600)
    http, socks = proxies
    cfg = load_config(None, env={})
    cfg.kalshi.ws_url, cfg.hub.port = kalshi.ws_url, 0
    cfg.hub.proxies, cfg.hub.accounts_file, cfg.hub.tunnel_grace_s = [http.url, socks.url], str(accounts), 0.2
    md = MarketData(cfg, LocalHeaderSigner(), None)
    breaker, _ = build_safety(cfg, md)
    users = InMemoryUserStore()
    token = users.add_user_sync("alice")
    node = await start_hub(cfg, md, breaker, None, users=users)
    signer: Any = None
    try:
        assert node.hub.tunnels is not None
        signer = node.hub.tunnels.credentials.kalshi("alice")
        assert type(signer).__name__ == "SignerClient"  # no key in this process: a client of the signer
        box = await open_inbox(node.hub, token, ["private:kalshi"])
        tunnels = node.hub.tunnels
        await eventually(lambda: (t := tunnels.get("alice", "kalshi")) is not None and t.connected,
                         timeout=15, what="tunnel up with a signer-signed handshake")
        await eventually(lambda: fill_subs(kalshi) == 1, timeout=10, what="the fill subscription at the venue")
        for n in range(3):
            assert kalshi.push_user_event(kat["api_key_id"], "fill", fill("alice", n)) == 1
        await eventually(lambda: len(box.private("kalshi")) == 3, timeout=10, what="fills relayed")
        assert [m["data"]["msg"]["trade_id"] for m in box.private("kalshi")] == [f"alice-fill-{n}" for n in range(3)]
        await box.ws.close()
    finally:
        await node.stop()
        await kalshi.stop()
        if signer is not None:
            await signer.close()  # the gRPC channel to the signer


async def test_a_redis_fed_hub_node_opens_private_tunnels_from_the_config(
    proxies: tuple[ProxyProc, ProxyProc], redis_server: EmbeddedRedis, tmp_path: Path,
) -> None:
    keys = {u: rsa.generate_private_key(public_exponent=65537, key_size=2048) for u in USERS}
    kalshi = KalshiSim(api_keys={f"key-{u}": k.public_key() for u, k in keys.items()}, tick_interval=0.5)
    await kalshi.start()
    accounts = write_accounts(tmp_path, keys)
    http, socks = proxies
    cfg_file = tmp_path / "node.toml"
    cfg_file.write_text(textwrap.dedent(f"""
        [kalshi]
        ws_url = "{kalshi.ws_url}"
        [hub]
        proxies = ["{http.url}", "{socks.url}"]
        accounts_file = "{accounts}"
        """))
    users = FileUserStore(tmp_path / "users.json")
    tokens = {u: users.add_user_sync(u) for u in USERS}
    redis_server.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crossbook", "hub", "--redis", redis_server.url, "--port", "0", "--users",
        str(tmp_path / "users.json"), "--config", str(cfg_file), "--prefix", "t:priv", "--seconds", "60",
        stdout=asyncio.subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "python")})
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("hub listening on ws://"), line
        url = line.split()[3]
        boxes = {}
        for u in USERS:
            ws = await connect(url, compression=None)
            await ws.send(orjson.dumps({"op": "auth", "token": tokens[u]}))
            assert orjson.loads(await ws.recv())["type"] == "auth_ok"
            await ws.send(orjson.dumps({"op": "subscribe", "topics": ["private:kalshi"]}))
            assert orjson.loads(await ws.recv())["topics"] == ["private:kalshi"]
            boxes[u] = Inbox(ws)
            boxes[u].task = asyncio.get_running_loop().create_task(boxes[u]._run())
        await eventually(lambda: all("up" in b.states("kalshi") for b in boxes.values()), timeout=15,
                         what="both users' tunnels up on the Redis-fed node")
        await eventually(lambda: fill_subs(kalshi) >= 2, timeout=10, what="both fill subscriptions at the venue")
        for n in range(3):
            for u in USERS:
                assert kalshi.push_user_event(f"key-{u}", "fill", fill(u, n)) == 1
        await eventually(lambda: all(len(b.private("kalshi")) == 3 for b in boxes.values()), timeout=10,
                         what="fills relayed by the node")
        for me, other in (("alice", "bob"), ("bob", "alice")):
            assert other not in orjson.dumps(boxes[me].msgs).decode()
        for b in boxes.values():
            await b.ws.close()
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
        await kalshi.stop()
