"""The signer service end to end: moto KMS (server mode), the real signer process, the real client."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import time
from decimal import Decimal
from pathlib import Path

import pytest

from crossbook.signing import PrivateKey, sign_polymarket_order
from crossbook.signing.client import SignerClient, SignerPolicyError, SignerUnavailable
from tests.signer.conftest import ANVIL_ADDR, ANVIL_KEY, Signer

TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
OTHER_TOKEN = "52114319501245915516055106046884209969926127482827954674443846427813813222426"


def v2_order(
    maker: str,
    *,
    maker_amount: int = 5_000_000,
    taker_amount: int = 10_000_000,
    side: int = 0,
    token: str = TOKEN,
    salt: int = 479249096354,
    sig_type: int = 0,
) -> dict[str, object]:
    return {
        "salt": salt,
        "maker": maker,
        "signer": maker,
        "tokenId": token,
        "makerAmount": maker_amount,
        "takerAmount": taker_amount,
        "side": side,
        "signatureType": sig_type,
        "timestamp": 1_700_000_000,
        "metadata": "0x" + "00" * 32,
        "builder": "0x" + "00" * 32,
    }


async def test_v2_order_matches_local_signing_and_hardening_is_on(signer: Signer) -> None:
    async with SignerClient(signer.socket) as client:
        order = v2_order(ANVIL_ADDR)
        got = await client.sign_polymarket_order(order, wallet="main", request_id="o-1")
        want = sign_polymarket_order(order, PrivateKey(ANVIL_KEY))
        assert (got.hash, got.signature) == (want.hash, want.signature)
        assert got.audit["key"] == "wallet:main" and got.audit["notional"] == "5"
        neg = await client.sign_polymarket_order(order, wallet="main", neg_risk=True, request_id="o-2")
        assert neg.signature == sign_polymarket_order(order, PrivateKey(ANVIL_KEY), neg_risk=True).signature
        health = await client.health()
        assert health["landlock"] and health["landlock_abi"] >= 1
        assert health["non_dumpable"] and health["keys_locked"] and health["wallets"] == ["main"]
        # Landlock: the signer can no longer open any file, even one it could read before.
        probe = signer.config
        assert Path(probe).read_bytes()  # noqa: ASYNC240 readable for us (root) and for the signer before it restricted itself
        opened, error = await client.probe_open(probe)
        assert not opened and "PermissionError" in error
        opened, error = await client.probe_open("/etc/hostname")
        assert not opened and "Errno 13" in error
    assert stat.S_IMODE(os.stat(signer.socket).st_mode) == 0o600
    assert ANVIL_KEY not in signer.stderr()


async def test_wrong_encryption_context_is_refused(signer_env: Signer) -> None:
    signer_env.write_config(wallet_ctx_name="other-wallet")  # sealed for another wallet than [wallets.main]
    proc = signer_env.start(expect_ready=False)
    assert proc.wait(20) == 2
    err = signer_env.stderr()
    assert "wallets.main.private_key" in err and "InvalidCiphertextException" in err and "encryption context" in err
    assert not Path(signer_env.socket).exists()  # noqa: ASYNC240


async def test_session_policy(signer: Signer) -> None:
    async with SignerClient(signer.socket) as client:
        s = await client.authorize_session(
            "user-1",
            "0x" + "ab" * 20,
            expires_at=int(time.time()) + 3600,
            max_order_notional=Decimal("10"),
            max_total_notional=Decimal("25"),
            allowed_token_ids=[TOKEN],
            request_id="auth-1",
        )
        assert s.address.startswith("0x") and len(s.session_blob) > 100 and s.cumulative == 0
        assert "blob" not in repr(s)

        async def sign(rid: str, **kw: object) -> object:
            return await client.sign_polymarket_order(
                v2_order(s.address, **kw),
                session_id=s.session_id,  # type: ignore[arg-type]
                request_id=rid,
            )

        r1 = await sign("s-1", maker_amount=8_000_000)
        assert r1.audit["cumulative"] == "8"  # type: ignore[attr-defined]
        again = await sign("s-1", maker_amount=8_000_000)  # same id: same reply, counted once
        assert again.signature == r1.signature and again.audit["replayed"]  # type: ignore[attr-defined]
        with pytest.raises(SignerPolicyError) as exc:
            await sign("s-2", maker_amount=10_500_000)
        assert exc.value.rule == "max_order_notional" and "per-order limit" in str(exc.value)
        with pytest.raises(SignerPolicyError) as exc:
            await sign("s-3", token=OTHER_TOKEN)
        assert exc.value.rule == "market_not_allowed"
        await sign("s-4", side=1, taker_amount=9_000_000, maker_amount=20_000_000)  # SELL: takerAmount is USDC
        with pytest.raises(SignerPolicyError) as exc:
            await sign("s-5", maker_amount=9_000_000)  # 8 + 9 + 9 > 25
        assert exc.value.rule == "max_total_notional"
        with pytest.raises(Exception, match="different request"):
            await sign("s-1", maker_amount=1_000_000)  # reused id, other content
        revoked = await client.revoke_session(s.session_id, request_id="rev-1")
        assert revoked.revoked and revoked.cumulative == Decimal("17")
        with pytest.raises(SignerPolicyError) as exc:
            await sign("s-6", maker_amount=1_000_000)
        assert exc.value.rule == "revoked"

        short = await client.authorize_session(
            "user-2",
            "0x" + "cd" * 20,
            expires_at=int(time.time()) + 2,
            max_order_notional=Decimal("10"),
            max_total_notional=Decimal("100"),
            allowed_token_ids=[TOKEN],
        )
        await client.sign_polymarket_order(v2_order(short.address), session_id=short.session_id)
        blob_before_expiry = short.session_blob
        live = await client.authorize_session(
            "user-3",
            "0x" + "ef" * 20,
            expires_at=int(time.time()) + 3600,
            max_order_notional=Decimal("10"),
            max_total_notional=Decimal("100"),
            allowed_token_ids=[TOKEN],
        )
        r = await client.sign_polymarket_order(v2_order(live.address), session_id=live.session_id)
        live_blob = r.session_blob
        await asyncio.sleep(max(0.0, short.expires_at - time.time()) + 0.05)
        with pytest.raises(SignerPolicyError) as exc:
            await client.sign_polymarket_order(v2_order(short.address, salt=2), session_id=short.session_id)
        assert exc.value.rule == "expired"

    # Restart from the blobs the daemon kept: the live session keeps its key and its spent amount,
    # the revoked one stays revoked.
    signer.stop()
    signer.write_config(sessions=[live_blob, revoked.session_blob, blob_before_expiry])
    signer.start()
    async with SignerClient(signer.socket) as client:
        assert (await client.health())["sessions"] == 3
        r = await client.sign_polymarket_order(v2_order(live.address, salt=7), session_id=live.session_id)
        assert r.audit["cumulative"] == "10"
        with pytest.raises(SignerPolicyError) as exc:
            await client.sign_polymarket_order(v2_order(s.address, salt=7), session_id=s.session_id)
        assert exc.value.rule == "revoked"


def _connect_as(uid: int, path: str) -> str:
    """Fork, drop to ``uid``, try a gRPC call; returns what the child saw."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no asyncio, no grpc state from the parent is used
        try:
            os.close(r)
            os.setgid(uid)
            os.setuid(uid)
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                s.settimeout(5)
                data = s.recv(100)
                result = "closed" if not data else "answered"
            except (ConnectionResetError, BrokenPipeError):  # the signer aborts a refused peer (RST)
                result = "closed"  # EPIPE: the abort came before our send
            except PermissionError:
                result = "EACCES"
            except OSError as exc:
                result = f"error {exc.errno}"
            os.write(w, result.encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    out = os.read(r, 100).decode()
    os.close(r)
    return out


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a client as another uid")
async def test_a_disallowed_uid_is_refused(signer: Signer) -> None:
    nobody = 65534
    # Layer 1: the socket is 0600, so the kernel refuses the connect itself.
    assert _connect_as(nobody, signer.socket) == "EACCES"
    # Layer 2: even with the file mode opened up, the signer's SO_PEERCRED check drops the peer.
    os.chmod(os.path.dirname(signer.socket), 0o755)
    os.chmod(signer.socket, 0o666)
    assert _connect_as(nobody, signer.socket) == "closed"
    assert f"refused peer uid={nobody}" in signer.stderr()
    assert _connect_as(0, signer.socket) == "answered"  # an allowed uid gets the server's HTTP/2 preface


async def test_kill9_mid_stream_then_reconnect(signer: Signer) -> None:
    async with SignerClient(signer.socket, timeout=3.0) as client:
        order = v2_order(ANVIL_ADDR)
        first = await client.sign_polymarket_order(order, wallet="main", request_id="k-1")
        results: list[object] = []

        async def stream() -> None:
            i = 0
            while True:
                i += 1
                try:
                    results.append(await client.sign_polymarket_order(v2_order(ANVIL_ADDR, salt=i), wallet="main"))
                except SignerUnavailable as exc:
                    results.append(exc)
                    return

        task = asyncio.create_task(stream())
        await asyncio.sleep(0.2)
        signer.kill9()
        await asyncio.wait_for(task, 5)
        err = results[-1]
        assert isinstance(err, SignerUnavailable) and isinstance(err, ConnectionError)
        assert "unavailable" in str(err) and "request_id" in str(err)
        assert len(results) > 5
        with pytest.raises(SignerUnavailable):
            await client.health()

        signer.start()
        again = await client.sign_polymarket_order(order, wallet="main", request_id="k-1")
        assert again.signature == first.signature
        assert not again.audit["replayed"]  # a new signer life: its first answer to k-1
        once_more = await client.sign_polymarket_order(order, wallet="main", request_id="k-1")
        assert once_more.audit["replayed"] and once_more.signature == first.signature
        assert await signer.logged("signed request_id=k-1") == 1
