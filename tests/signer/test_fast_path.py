"""The signer's fast path end to end: the real signer process (moto KMS), the real client, raw frames.

Both transports reach the same request handling, so the properties checked over gRPC in
test_signer_service.py must hold here too, plus what is specific to framing: malformed frames get a
clear error (or a disconnect) and never take the signer down.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import stat
import struct
import time
from decimal import Decimal

import pytest

from crossbook._proto import signer_pb2 as pb
from crossbook.signing import (
    ApiCreds,
    HmacKey,
    PrivateKey,
    SigningInputError,
    kalshi_verify,
    l1_headers,
    l2_headers,
    sign_eip1559,
    sign_polymarket_order,
)
from crossbook.signing.client import SignerClient, SignerPolicyError, SignerTimeout, SignerUnavailable
from crossbook.signing.fastframe import ERROR, HEADER, MAX_FRAME, OK, encode
from tests.signer.conftest import ANVIL_ADDR, ANVIL_KEY, API_KEY, API_PASSPHRASE, API_SECRET, KALSHI_KAT, Signer
from tests.signer.test_signer_service import OTHER_TOKEN, TOKEN, v2_order

# --- raw frames ----------------------------------------------------------------------------------


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def read_frame(s: socket.socket) -> tuple[int, int, bytes]:
    length, kind, call_id = HEADER.unpack(_recv_exact(s, HEADER.size))
    return kind, call_id, _recv_exact(s, length + 4 - HEADER.size)


def raw_connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    return s


def health_frame(call_id: int) -> bytes:
    return encode(pb.FAST_HEALTH, call_id, pb.HealthRequest(request_id="h").SerializeToString())


def assert_alive(s: socket.socket, call_id: int = 99) -> None:
    """The connection (and so the signer) still answers a well-formed request."""
    s.sendall(health_frame(call_id))
    kind, cid, payload = read_frame(s)
    assert (kind, cid) == (OK, call_id)
    assert pb.HealthReply.FromString(payload).status == "ok"


def call_error(kind: int, payload: bytes) -> pb.CallError:
    assert kind == ERROR
    return pb.CallError.FromString(payload)


# --- same answers as gRPC and as local signing ---------------------------------------------------


async def test_fast_path_signs_like_grpc_and_local(signer_env: Signer) -> None:
    signer_env.write_config(header_keys=True)
    signer_env.start()
    fast_sock = signer_env.socket + ".fast"
    assert stat.S_IMODE(os.stat(fast_sock).st_mode) == 0o600
    key = PrivateKey(ANVIL_KEY)
    kat = json.loads(KALSHI_KAT.read_text())
    async with SignerClient(signer_env.socket) as fast, SignerClient(signer_env.socket, fast=False) as slow:
        for neg_risk, salt in ((False, 1), (True, 2), (False, 3)):
            order = v2_order(ANVIL_ADDR, salt=salt)
            a = await fast.sign_polymarket_order(order, wallet="main", neg_risk=neg_risk, request_id=f"f-{salt}")
            b = await slow.sign_polymarket_order(order, wallet="main", neg_risk=neg_risk, request_id=f"g-{salt}")
            want = sign_polymarket_order(order, key, neg_risk=neg_risk)
            assert (a.hash, a.signature) == (b.hash, b.signature) == (want.hash, want.signature)
            assert a.audit["key"] == b.audit["key"] == "wallet:main"
            assert a.audit["notional"] == b.audit["notional"] == "5"
            assert a.audit["request_id"] == f"f-{salt}" and not a.audit["replayed"]
        assert fast.fast_connected and not slow.fast_connected

        # Headers: deterministic ones compare byte for byte; RSA-PSS is salted, so it is verified.
        h1 = await fast.l1_headers("main", timestamp=1_700_000_000, nonce=3)
        assert h1 == await slow.l1_headers("main", timestamp=1_700_000_000, nonce=3)
        assert h1 == l1_headers(key, timestamp=1_700_000_000, nonce=3)
        body = b'{"order": {"salt": 1}}'
        h2 = await fast.l2_headers("main", "POST", "/order", body, timestamp=1_700_000_001)
        assert h2 == await slow.l2_headers("main", "POST", "/order", body, timestamp=1_700_000_001)
        creds = ApiCreds(API_KEY, HmacKey(API_SECRET), API_PASSPHRASE)
        assert h2 == l2_headers(creds, ANVIL_ADDR, "POST", "/order", body, timestamp=1_700_000_001)
        k = await fast.kalshi_headers_async("GET", "/trade-api/ws/v2")
        assert k["KALSHI-ACCESS-KEY"] == kat["api_key_id"]
        assert kalshi_verify(
            kat["public_key_pem"], k["KALSHI-ACCESS-TIMESTAMP"], "GET", "/trade-api/ws/v2", k["KALSHI-ACCESS-SIGNATURE"]
        )
        tx = {
            "chainId": 137,
            "nonce": 5,
            "maxPriorityFeePerGas": 30 * 10**9,
            "maxFeePerGas": 200 * 10**9,
            "gas": 21000,
            "to": ANVIL_ADDR,
            "value": 1,
            "data": b"",
        }
        signed = await fast.sign_transaction("main", tx)
        assert signed == await slow.sign_transaction("main", tx) == sign_eip1559(key, tx)

        # Many overlapping calls on the one connection: every reply reaches its own caller.
        orders = [v2_order(ANVIL_ADDR, salt=100 + i) for i in range(40)]
        replies = await asyncio.gather(
            *(fast.sign_polymarket_order(o, wallet="main", request_id=f"c-{i}") for i, o in enumerate(orders))
        )
        for i, (o, r) in enumerate(zip(orders, replies, strict=True)):
            assert r.signature == sign_polymarket_order(o, key).signature and r.audit["request_id"] == f"c-{i}"
    log = signer_env.stderr()
    assert "f-1" in log and API_SECRET not in log and API_PASSPHRASE not in log and ANVIL_KEY not in log
    signer_env.stop()  # a clean stop removes its sockets (Landlock still lets it, beneath their directory)
    assert not os.path.exists(fast_sock) and not os.path.exists(signer_env.socket)  # noqa: ASYNC240


async def test_without_a_fast_path_the_client_uses_grpc(signer_env: Signer) -> None:
    signer_env.write_config(fast_path=False)
    signer_env.start()
    assert not os.path.exists(signer_env.socket + ".fast")  # noqa: ASYNC240 (a stat in a test)
    async with SignerClient(signer_env.socket) as client:
        order = v2_order(ANVIL_ADDR)
        r = await client.sign_polymarket_order(order, wallet="main", request_id="nf-1")
        assert r.signature == sign_polymarket_order(order, PrivateKey(ANVIL_KEY)).signature
        assert not client.fast_connected
        assert (await client.health())["status"] == "ok"


# --- policy, idempotency -------------------------------------------------------------------------


async def test_policy_refusals_over_the_fast_path_name_the_rule(signer: Signer) -> None:
    async with SignerClient(signer.socket) as client:
        s = await client.authorize_session(
            "user-1",
            "0x" + "ab" * 20,
            expires_at=int(time.time()) + 3600,
            max_order_notional=Decimal("10"),
            max_total_notional=Decimal("25"),
            allowed_token_ids=[TOKEN],
        )

        async def sign(rid: str, **kw: object) -> object:
            return await client.sign_polymarket_order(
                v2_order(s.address, **kw),  # type: ignore[arg-type]
                session_id=s.session_id,
                request_id=rid,
            )

        r = await sign("p-1", maker_amount=8_000_000)
        assert client.fast_connected and r.audit["cumulative"] == "8"  # type: ignore[attr-defined]
        for rid, kw, rule in (
            ("p-2", {"maker_amount": 10_500_000}, "max_order_notional"),
            ("p-3", {"token": OTHER_TOKEN}, "market_not_allowed"),
            ("p-4", {"maker_amount": 9_000_000, "salt": 9}, None),
            ("p-5", {"maker_amount": 9_000_000, "salt": 10}, "max_total_notional"),
        ):
            if rule is None:
                await sign(rid, **kw)
                continue
            with pytest.raises(SignerPolicyError) as exc:
                await sign(rid, **kw)
            assert exc.value.rule == rule and rid in str(exc.value)
        # A refusal is remembered like a signature: the same id is refused again, by the same rule.
        with pytest.raises(SignerPolicyError) as exc:
            await sign("p-2", maker_amount=10_500_000)
        assert exc.value.rule == "max_order_notional"
        with pytest.raises(Exception, match="different request"):
            await sign("p-1", maker_amount=1_000_000)
        with pytest.raises(SigningInputError, match="side"):
            await client.sign_polymarket_order({**v2_order(s.address), "side": 7}, session_id=s.session_id)
        with pytest.raises(Exception, match="no wallet named 'nope'"):
            await client.sign_polymarket_order(v2_order(ANVIL_ADDR), wallet="nope")
        await client.revoke_session(s.session_id)
        with pytest.raises(SignerPolicyError) as exc:
            await sign("p-6", maker_amount=1_000_000, salt=11)
        assert exc.value.rule == "revoked"
        assert client.fast_connected


async def test_a_request_id_counts_once_over_both_transports(signer: Signer) -> None:
    async with SignerClient(signer.socket) as fast, SignerClient(signer.socket, fast=False) as slow:
        s = await slow.authorize_session(
            "user-2",
            "0x" + "cd" * 20,
            expires_at=int(time.time()) + 3600,
            max_order_notional=Decimal("10"),
            max_total_notional=Decimal("20"),
            allowed_token_ids=[TOKEN],
        )
        order = v2_order(s.address, maker_amount=8_000_000)
        first = await fast.sign_polymarket_order(order, session_id=s.session_id, request_id="once-1")
        again_grpc = await slow.sign_polymarket_order(order, session_id=s.session_id, request_id="once-1")
        again_fast = await fast.sign_polymarket_order(order, session_id=s.session_id, request_id="once-1")
        assert first.signature == again_grpc.signature == again_fast.signature
        assert not first.audit["replayed"] and again_grpc.audit["replayed"] and again_fast.audit["replayed"]
        assert first.audit["cumulative"] == again_grpc.audit["cumulative"] == "8"
        # Started over gRPC, repeated over the fast path: the same.
        o2 = v2_order(s.address, maker_amount=8_000_000, salt=2)
        r2 = await slow.sign_polymarket_order(o2, session_id=s.session_id, request_id="once-2")
        r2b = await fast.sign_polymarket_order(o2, session_id=s.session_id, request_id="once-2")
        assert r2.audit["cumulative"] == r2b.audit["cumulative"] == "16" and r2b.audit["replayed"]
        # 16 counted, not 32: a third order of 4 fits the limit of 20 exactly, a fourth does not.
        await fast.sign_polymarket_order(
            v2_order(s.address, maker_amount=4_000_000, salt=3), session_id=s.session_id, request_id="once-3"
        )
        with pytest.raises(SignerPolicyError) as exc:
            await fast.sign_polymarket_order(
                v2_order(s.address, maker_amount=1_000_000, salt=4), session_id=s.session_id, request_id="once-4"
            )
        assert exc.value.rule == "max_total_notional"
    await asyncio.sleep(0.05)  # the signer logs after it replies
    log = signer.stderr()
    assert log.count("signed request_id=once-1 ") == 1 and log.count("signed request_id=once-2 ") == 1


# --- peers and sockets ---------------------------------------------------------------------------


def _fast_call_as(uid: int, path: str) -> str:
    """Fork, drop to ``uid``, send a Health frame on the fast socket; returns what the child saw."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no asyncio state from the parent is used
        try:
            os.close(r)
            os.setgid(uid)
            os.setuid(uid)
            try:
                s = raw_connect(path)
                s.sendall(health_frame(1))
                data = s.recv(100)
                result = "answered" if data else "closed"
            except (ConnectionResetError, BrokenPipeError):
                result = "closed"
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
async def test_a_disallowed_uid_is_refused_on_the_fast_path(signer: Signer) -> None:
    fast_sock = signer.socket + ".fast"
    nobody = 65534
    assert stat.S_IMODE(os.stat(fast_sock).st_mode) == 0o600
    assert _fast_call_as(nobody, fast_sock) == "EACCES"  # the kernel, by the socket's mode
    os.chmod(os.path.dirname(fast_sock), 0o755)
    os.chmod(fast_sock, 0o666)
    assert _fast_call_as(nobody, fast_sock) == "closed"  # SO_PEERCRED, before a byte is read
    assert f"refused peer uid={nobody}" in signer.stderr() and "on the fast path" in signer.stderr()
    assert _fast_call_as(0, fast_sock) == "answered"


async def test_a_signer_refusing_our_uid_is_unavailable_not_a_hang(signer_env: Signer) -> None:
    signer_env.write_config(allowed_uids=[os.getuid() + 1])
    signer_env.start()
    async with SignerClient(signer_env.socket, timeout=2.0) as client:
        with pytest.raises(SignerUnavailable) as exc:
            await client.sign_polymarket_order(v2_order(ANVIL_ADDR), wallet="main", request_id="u-1")
        assert "allowed_uids" in str(exc.value) and "u-1" in str(exc.value)


# --- malformed frames ----------------------------------------------------------------------------


async def test_malformed_frames_get_a_clear_error_and_never_crash_the_signer(signer: Signer) -> None:
    fast_sock = signer.socket + ".fast"
    s = raw_connect(fast_sock)
    assert_alive(s, 1)

    s.sendall(encode(250, 7, b""))  # unknown method: an error naming it, the connection stays
    err = call_error(*read_frame(s)[::2])
    assert err.code == 12 and "unknown fast-path method id 250" in err.message  # UNIMPLEMENTED
    assert_alive(s, 2)

    s.sendall(encode(pb.FAST_SIGN_POLYMARKET_ORDER, 8, b"\xff\xff\xff\xff garbage"))
    kind, cid, payload = read_frame(s)
    err = call_error(kind, payload)
    assert cid == 8 and err.code == 3 and "not a valid SignPolymarketOrderRequest" in err.message
    assert_alive(s, 3)

    s.sendall(encode(pb.FAST_SIGN_POLYMARKET_ORDER, 9, pb.SignPolymarketOrderRequest().SerializeToString()))
    kind, cid, payload = read_frame(s)
    assert cid == 9 and "request_id is required" in call_error(kind, payload).message

    # Two requests in one write, and one request split byte by byte: framing is by length only.
    s.sendall(health_frame(10) + health_frame(11))
    assert [read_frame(s)[1] for _ in range(2)] == [10, 11]
    for b in health_frame(12):
        s.send(bytes([b]))
    assert read_frame(s)[1] == 12
    s.close()

    # Impossible lengths lose the framing: an error frame with call id 0, then the signer hangs up.
    for length in (0, 4, MAX_FRAME + 1, 0xFFFFFFFF):
        s = raw_connect(fast_sock)
        s.sendall(struct.pack("!I", length) + b"\x01" * 16)
        kind, cid, payload = read_frame(s)
        err = call_error(kind, payload)
        assert cid == 0 and err.code == 3 and "frame length" in err.message and "closes" in err.message
        assert s.recv(10) == b""
        s.close()

    # A half-sent frame then a hang-up; random junk of every size.
    s = raw_connect(fast_sock)
    s.sendall(health_frame(13)[:7])
    s.close()
    rng = random.Random(4)
    for _ in range(50):
        s = raw_connect(fast_sock)
        try:
            s.sendall(rng.randbytes(rng.randint(1, 600)))
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
        except (ConnectionResetError, BrokenPipeError):
            pass
        s.close()

    assert signer.proc is not None and signer.proc.poll() is None
    s = raw_connect(fast_sock)
    assert_alive(s, 14)
    s.close()
    async with SignerClient(signer.socket) as client:
        r = await client.sign_polymarket_order(v2_order(ANVIL_ADDR), wallet="main", request_id="after-junk")
        assert r.signature == sign_polymarket_order(v2_order(ANVIL_ADDR), PrivateKey(ANVIL_KEY)).signature
    assert "Traceback" not in signer.stderr()


# --- faults: kill -9, a stalled signer -----------------------------------------------------------


async def test_kill9_mid_request_then_reconnect_without_double_signing(signer: Signer) -> None:
    async with SignerClient(signer.socket, timeout=3.0) as client:
        order = v2_order(ANVIL_ADDR)
        first = await client.sign_polymarket_order(order, wallet="main", request_id="k9-1")
        assert client.fast_connected
        results: list[object] = []

        async def stream(worker: int) -> None:
            i = 0
            while True:
                i += 1
                try:
                    results.append(
                        await client.sign_polymarket_order(
                            v2_order(ANVIL_ADDR, salt=i), wallet="main", request_id=f"k9-w{worker}-{i}"
                        )
                    )
                except SignerUnavailable as exc:
                    results.append(exc)
                    return

        tasks = [asyncio.create_task(stream(w)) for w in range(4)]  # calls in flight when the signer dies
        await asyncio.sleep(0.2)
        signer.kill9()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        errors = [r for r in results if isinstance(r, SignerUnavailable)]
        assert len(errors) == 4 and len(results) > 8
        for err in errors:
            assert isinstance(err, ConnectionError) and "request_id=k9-w" in str(err)
            assert "retrying with the same request_id is safe" in str(err)
        # Calls in flight when the signer died learn it from the lost connection; a worker that was
        # between calls finds no signer on either socket. Both are SignerUnavailable.
        assert any("closed the fast-path connection" in str(err) for err in errors)
        assert not client.fast_connected
        with pytest.raises(SignerUnavailable):  # no signer at all: a clear error, not a hang
            await client.sign_polymarket_order(order, wallet="main", request_id="k9-down")

        signer.start()
        again = await client.sign_polymarket_order(order, wallet="main", request_id="k9-1")
        assert client.fast_connected  # back on the fast path at once
        assert again.signature == first.signature and not again.audit["replayed"]  # a new life
        once_more = await client.sign_polymarket_order(order, wallet="main", request_id="k9-1")
        assert once_more.audit["replayed"]
    assert await signer.logged("signed request_id=k9-1 ") == 1


async def test_a_stalled_signer_times_out_and_the_retry_is_not_signed_twice(signer: Signer) -> None:
    async with SignerClient(signer.socket, timeout=0.3) as client:
        order = v2_order(ANVIL_ADDR, salt=77)
        await client.health()
        assert signer.proc is not None
        os.kill(signer.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            with pytest.raises(SignerTimeout) as exc:
                await client.sign_polymarket_order(order, wallet="main", request_id="st-1")
            assert 0.25 < time.monotonic() - t0 < 2.0
            assert isinstance(exc.value, TimeoutError) and "st-1" in str(exc.value)
        finally:
            os.kill(signer.proc.pid, signal.SIGCONT)
        # The stalled request was signed when the signer resumed; its late reply was dropped. The retry
        # with the same id gets that signature back, counted once.
        retry = await client.sign_polymarket_order(order, wallet="main", request_id="st-1")
        assert retry.audit["replayed"]
        assert retry.signature == sign_polymarket_order(order, PrivateKey(ANVIL_KEY)).signature
        other = await client.sign_polymarket_order(v2_order(ANVIL_ADDR, salt=78), wallet="main", request_id="st-2")
        assert other.audit["request_id"] == "st-2" and not other.audit["replayed"]


async def test_keep_warm_is_invisible(signer: Signer) -> None:
    """The keep-warm signature (every 10 ms of idleness) uses a throwaway key: it is never remembered,
    logged or counted, and a real order after idling is signed as usual."""
    async with SignerClient(signer.socket) as client:
        await asyncio.sleep(0.15)
        order = v2_order(ANVIL_ADDR, salt=5)
        r = await client.sign_polymarket_order(order, wallet="main", request_id="warm")  # the id is free
        assert not r.audit["replayed"]
        assert r.signature == sign_polymarket_order(order, PrivateKey(ANVIL_KEY)).signature
    assert await signer.logged("request_id=warm") == 1


async def test_retry_for_rides_out_a_signer_restart(signer: Signer) -> None:
    """With ``retry_for``, a call made while the signer is down waits for the restarted one (same
    request id on every attempt) and lands on its fast path; it is signed once."""
    order = v2_order(ANVIL_ADDR, salt=31)
    async with SignerClient(signer.socket, retry_for=20.0) as client:
        await client.health()
        signer.kill9()
        restart = asyncio.get_running_loop().run_in_executor(None, signer.start)  # blocking: its own thread
        r = await client.sign_polymarket_order(order, wallet="main", request_id="rf-1")
        await restart
        assert r.signature == sign_polymarket_order(order, PrivateKey(ANVIL_KEY)).signature
        assert client.fast_connected and not r.audit["replayed"]
    assert await signer.logged("signed request_id=rf-1 ") == 1
