"""Deployment shapes of the hub with real parts: wss:// with a certificate made here, users hashed in
a real PostgreSQL (through `crossbook users add`), and a hub node added while users are connected."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import os
import ssl
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from crossbook.hub import FileUserStore, Hub, InMemoryUserStore, TopicPublisher
from crossbook.hub.auth import PgUserStore
from crossbook.hub.bridge import RedisBridgePublisher
from crossbook.hub.protocol import HubError
from crossbook.store.embedded_redis import EmbeddedRedis
from crossbook.store.postgres import migrate
from tests.conftest import eventually
from tests.hub.test_hub import Reader, client

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "python")}


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crossbook-hub-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = tmp_path / "hub.crt", tmp_path / "hub.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


async def test_wss_when_a_certificate_is_configured(tmp_path: Path) -> None:
    certfile, keyfile = self_signed(tmp_path)
    users = InMemoryUserStore()
    token = users.add_user_sync("tls")
    hub = await Hub(users, certfile=str(certfile), keyfile=str(keyfile)).start()
    try:
        assert hub.url.startswith("wss://127.0.0.1:")
        ctx = ssl.create_default_context(cafile=str(certfile))  # verifies the chain and 127.0.0.1
        pub = TopicPublisher([hub])
        ws = await client(hub.url, token, ["kalshi:K"], ssl=ctx)
        r = Reader(ws).start()
        for n in range(100):
            pub.publish("kalshi:K", {"n": n, "pad": "x" * 1500})  # TLS: the asyncio write path, not sendmsg
            if n % 10 == 0:
                await asyncio.sleep(0)
        await eventually(lambda: r.last.get("kalshi:K") == 100, 10, what="100 updates over TLS")
        assert r.seqs["kalshi:K"] == list(range(1, 101)) and r.gaps == 0
        await ws.close()
        with pytest.raises(ssl.SSLCertVerificationError):  # a client that does not trust it cannot talk
            await connect(hub.url, ssl=ssl.create_default_context(), open_timeout=5)
        with pytest.raises((InvalidHandshake, OSError, TimeoutError)):  # plain ws:// to the TLS port: nothing
            await connect(hub.url.replace("wss://", "ws://"), open_timeout=3)
    finally:
        await hub.stop()
    bad = tmp_path / "bad.crt"
    bad.write_text("not a certificate")
    with pytest.raises(HubError, match="cannot load"):
        await Hub(users, certfile=str(bad)).start()


@pytest.fixture
async def pg_url(hub_pg: Any) -> str:
    hub_pg.start()
    name = f"hub_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(hub_pg.url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = str(hub_pg.url.rsplit("/", 1)[0] + "/" + name)
    await migrate(url)
    return url


async def users_add(*args: str) -> tuple[str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crossbook", "users", "add", *args, cwd=ROOT, env=ENV,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip(), err.decode()


async def test_users_hashed_in_postgresql(pg_url: str, hub_pg: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "crossbook.toml"
    cfg.write_text(f'[postgres]\nurl = "{pg_url}"\n')
    token, note = await users_add("alice", "--config", str(cfg))
    assert token.startswith("cb_") and "PostgreSQL" in note and token not in note
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch("SELECT u.handle, s.token_hash, s.revoked_at FROM sessions s JOIN users u"
                                " ON u.id = s.user_id")
        assert [(r["handle"], bytes(r["token_hash"]), r["revoked_at"]) for r in rows] == [
            ("alice", hashlib.sha256(token.encode()).digest(), None)]
        dump = ""
        for table in ("users", "sessions"):
            dump += "".join(str(tuple(r)) for r in await conn.fetch(f"SELECT * FROM {table}"))
        assert token not in dump and token[3:] not in dump  # only the hash is stored
    finally:
        await conn.close()

    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=2)
    store = PgUserStore(pool)
    hub = await Hub(store).start()
    try:
        user = await store.authenticate(token)
        assert user is not None and user.name == "alice"
        ws = await client(hub.url, token, ["kalshi:K"])  # the hub authenticates against PostgreSQL
        await ws.close()
        assert await store.authenticate("cb_wrong") is None and await store.authenticate("nope") is None
        rotated, _ = await users_add("alice", "--postgres", pg_url)  # rotation: the old token stops working
        assert rotated != token
        assert await store.authenticate(token) is None
        assert (u := await store.authenticate(rotated)) is not None and u.name == "alice"
        await pool.execute("UPDATE users SET disabled = true WHERE handle = 'alice'")
        assert await store.authenticate(rotated) is None
        with pytest.raises(Exception, match="user name"):
            await store.add_user("bad name!")
        token3, _ = await users_add("bob", "--postgres", pg_url)
        await asyncio.to_thread(hub_pg.stop)  # PostgreSQL goes away: a clear error, not a hang
        async with connect(hub.url) as ws:
            await ws.send(orjson.dumps({"op": "auth", "token": token3}))
            err = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            assert err["code"] == "auth_unavailable", err
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1011
    finally:
        await hub.stop()
        await pool.close()
        await asyncio.to_thread(hub_pg.start)


async def test_a_hub_node_added_while_users_are_connected_keeps_their_sessions(
    redis_server: EmbeddedRedis, tmp_path: Path,
) -> None:
    redis = redis_server.start()
    users_file = tmp_path / "users.json"
    store = FileUserStore(users_file)
    token = store.add_user_sync("erin")
    local = await Hub(store).start()
    bridge = RedisBridgePublisher(redis.url, prefix="t:add")
    bridge.start()
    pub = TopicPublisher([local, bridge])
    procs: list[asyncio.subprocess.Process] = []
    stop = asyncio.Event()
    try:
        readers = [Reader(await client(local.url, token, ["polymarket:X", "execute:p"])).start() for _ in range(20)]
        conns_before = local.connections
        sent = 0

        async def pump() -> None:
            nonlocal sent
            while not stop.is_set():
                pub.publish("polymarket:X", {"n": sent})
                sent += 1
                await asyncio.sleep(0.005)

        pumping = asyncio.get_running_loop().create_task(pump())
        await eventually(lambda: all(r.last.get("polymarket:X", 0) >= 20 for r in readers), 10, what="streaming")
        remotes = []
        for _ in range(2):  # two nodes join, one after the other, under load
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "crossbook", "hub", "--redis", redis.url, "--port", "0",
                "--users", str(users_file), "--prefix", "t:add", "--seconds", "60",
                stdout=asyncio.subprocess.PIPE, cwd=ROOT, env=ENV)
            procs.append(proc)
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
            assert line.startswith("hub listening on ws://"), line
            remotes.append(Reader(await client(line.split()[3], token, ["polymarket:X"])).start())
        await eventually(lambda: all(r.last.get("polymarket:X", 0) >= 50 for r in remotes), 10, what="new nodes serve")
        stop.set()
        await pumping
        await bridge.flush()
        await eventually(lambda: all(r.last.get("polymarket:X") == sent for r in [*readers, *remotes]), 10,
                         what="everyone has the last update")
        assert local.connections == conns_before  # nobody on the first node was dropped or reconnected
        for r in readers:
            assert r.seqs["polymarket:X"] == list(range(1, sent + 1)) and r.gaps == 0
            assert not r.ws.close_code
        for r in remotes:  # a joining node's users start from a snapshot, then the same seqs, gap-free
            seqs = r.seqs["polymarket:X"]
            assert r.gaps == 0 and seqs == list(range(seqs[0], sent + 1))
        for r in [*readers, *remotes]:
            await r.ws.close()
    finally:
        stop.set()
        for p in procs:
            if p.returncode is None:
                p.terminate()
                await p.wait()
        await bridge.stop()
        await local.stop()


async def test_users_add_with_an_unreachable_postgresql_is_a_clear_error() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crossbook", "users", "add", "zed", "--postgres", "postgresql://u:pw@127.0.0.1:1/x",
        cwd=ROOT, env=ENV, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode != 0 and out == b""  # no token printed for a user that was not saved
    assert "PostgreSQL" in err.decode() and "Traceback" not in err.decode(), err.decode()
