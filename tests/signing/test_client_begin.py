"""SignerClient.begin_prepare_polymarket_order: the request is written before the call returns (the
signer works while the caller goes on), and the task gives the reply the awaited call would. Against a
server on a real Unix socket speaking the fast-path framing, in a thread, so "written" is observed by
another reader while the event loop has not run a single turn."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from crossbook._core import PolymarketOrderRequest, prepare_order_frame
from crossbook._proto import signer_pb2 as pb
from crossbook.aio import poll_until_done
from crossbook.errors import SignerError
from crossbook.signing.client import CLIENT_CALL_IDS, PreparedOrderReply, SignerClient, SignerPolicyError, SignerTimeout
from crossbook.signing.fastframe import ERROR, HEADER, METHOD_IDS, OK, encode
from tests.conftest import eventually

ORDER = {"salt": 7, "maker": "0x" + "ab" * 20, "signer": "0x" + "ab" * 20, "tokenId": "123", "makerAmount": "8000000",
         "takerAmount": "20000000", "side": "BUY", "signatureType": 0, "timestamp": "1700000000000"}  # fmt: skip


class FastServer(threading.Thread):
    """Accepts one connection; records each request frame the moment it is read; answers when told."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.got = threading.Event()
        self.answer = threading.Event()
        self.frames: list[tuple[int, int, bytes]] = []
        self.error: pb.CallError | None = None  # answer orders with this ERROR frame instead

    def run(self) -> None:
        conn, _ = self.listener.accept()
        self.conn = conn
        with conn, contextlib.suppress(OSError):  # the client may hang up mid-call (a test does)
            while True:
                head = conn.recv(HEADER.size, socket.MSG_WAITALL)
                if len(head) < HEADER.size:
                    return
                length, kind, call_id = HEADER.unpack(head)
                payload = conn.recv(length - 5, socket.MSG_WAITALL)
                self.frames.append((kind, call_id, payload))
                self.got.set()
                if kind == METHOD_IDS["Health"]:
                    conn.sendall(encode(OK, call_id, pb.HealthReply(status="ok").SerializeToString()))
                    continue
                self.answer.wait(5)
                if self.error is not None:
                    conn.sendall(encode(ERROR, call_id, self.error.SerializeToString()))
                    continue
                req = pb.PreparePolymarketOrderRequest.FromString(payload)
                reply = pb.PreparePolymarketOrderReply(
                    hash="0x" + "11" * 32, signature="0x" + "22" * 65, body=b'{"order":1}',
                    headers={"POLY_API_KEY": req.account},
                )
                conn.sendall(encode(OK, call_id, reply.SerializeToString()))


@pytest.fixture
def server(tmp_path: Path) -> FastServer:
    sock = str(tmp_path / "signer.sock")
    srv = FastServer(sock + ".fast")
    srv.start()
    return srv


async def test_begin_writes_the_request_before_it_returns(server: FastServer, tmp_path: Path) -> None:
    client = SignerClient(str(tmp_path / "signer.sock"), timeout=2.0, fast=True)
    await client.health()  # connects the fast path
    assert client.fast_connected
    # The signer thread is this process: on our CPUs, so no busy-polling and no priming (it would spin on the
    # CPU our order needs).
    assert client.signer_on_other_cpus is False and client.prime() is False
    server.got.clear()
    task = client.begin_prepare_polymarket_order(ORDER, account="acct", order_type="FOK", wallet="main",
                                                 request_id="rid-1")  # fmt: skip
    # No await since the call: the loop has not turned, yet the server thread reads the request.
    assert server.got.wait(5), "begin() returned without writing the request"
    kind, _, payload = server.frames[-1]
    req = pb.PreparePolymarketOrderRequest.FromString(payload)
    assert kind == METHOD_IDS["PreparePolymarketOrder"] and req.request_id == "rid-1"
    assert dict(req.order)["makerAmount"] == "8000000" and req.key.wallet == "main" and req.order_type == "FOK"
    server.answer.set()
    reply = await task
    assert reply.hash == "0x" + "11" * 32 and reply.headers == {"POLY_API_KEY": "acct"}
    # the same message as the awaited call (that one made by protobuf, this one in Rust, canonically ordered):
    # one fingerprint at the signer whichever way the order was asked
    await client.prepare_polymarket_order(ORDER, account="acct", order_type="FOK", wallet="main", request_id="rid-1")
    awaited = server.frames[-1][2]
    assert pb.PreparePolymarketOrderRequest.FromString(awaited) == req
    assert PolymarketOrderRequest(awaited).fingerprint == PolymarketOrderRequest(payload).fingerprint
    # the dry (keep-warm) build sends nothing
    n = len(server.frames)
    client.warm_prepare_polymarket_order(ORDER, account="acct", order_type="FOK", wallet="main", request_id="w")
    await client.health()
    assert [k for k, _, _ in server.frames[n:]] == [METHOD_IDS["Health"]]
    await client.close()


async def test_begin_without_a_fast_connection_starts_at_the_next_turn(server: FastServer, tmp_path: Path) -> None:
    client = SignerClient(str(tmp_path / "signer.sock"), timeout=2.0, fast=True)
    assert not client.fast_connected
    server.answer.set()
    task = client.begin_prepare_polymarket_order(ORDER, account="acct", order_type="FOK", wallet="main",
                                                 request_id="rid-2")  # fmt: skip
    reply = await task  # connects, then sends: the same reply as the awaited call
    assert reply.signature == "0x" + "22" * 65
    await client.close()


async def test_the_order_path_gets_the_reply_the_turn_it_is_read_and_errors_as_before(
    server: FastServer, tmp_path: Path
) -> None:
    client = SignerClient(str(tmp_path / "signer.sock"), timeout=2.0, fast=True)
    await client.health()
    conn = client._fast_conn
    assert conn is not None
    server.answer.set()
    fut = client.begin_prepare_polymarket_order(ORDER, account="acct", order_type="FOK", wallet="main",
                                                request_id="rid-e1")  # fmt: skip
    assert len(conn.early) == 1  # a handler waits for this call's reply frame
    reply = await fut
    assert reply.body == b'{"order":1}' and not conn.early
    # An error reply goes through the call's own task: the same exception (and rule) as the awaited call.
    server.error = pb.CallError(code=7, message="over the session's limit", rule="max_total_notional")
    fut = client.begin_prepare_polymarket_order(ORDER, account="acct", order_type="FOK", wallet="main",
                                                request_id="rid-e2")  # fmt: skip
    with pytest.raises(SignerPolicyError, match="over the session's limit") as refused:
        await fut
    assert refused.value.rule == "max_total_notional" and not conn.early
    with pytest.raises(SignerPolicyError):
        await client.prepare_polymarket_order(ORDER, account="acct", order_type="FOK", wallet="main",
                                              request_id="rid-e3")  # fmt: skip
    # A signer gone mid-call: the begun call fails as the awaited one would (nothing left waiting).
    server.error = None
    server.answer.clear()
    fut = client.begin_prepare_polymarket_order(ORDER, account="acct", order_type="FOK", wallet="main",
                                                request_id="rid-e4")  # fmt: skip
    assert conn.transport is not None
    conn.transport.abort()
    with pytest.raises(SignerError):
        await fut
    assert not conn.early and not conn.pending
    server.answer.set()
    await client.close()


async def test_poll_until_done_turns_the_loop_until_the_reply_then_stops() -> None:
    loop = asyncio.get_running_loop()
    turns = 0

    def count() -> None:
        nonlocal turns
        turns += 1

    fut: asyncio.Future[int] = loop.create_future()
    threading.Timer(0.02, lambda: loop.call_soon_threadsafe(fut.set_result, 1)).start()
    poll_until_done(fut, 2.0)
    handle = loop.call_later(0.005, count)  # a timer still fires while polling
    assert await fut == 1
    assert turns == 1 and handle.cancelled() is False
    # bounded: a future that never completes is polled for max_s only, then the loop may sleep again
    never: asyncio.Future[int] = loop.create_future()
    poll_until_done(never, 0.01)
    await asyncio.sleep(0.05)
    ready = getattr(loop, "_ready", None)
    if ready is not None:  # the default loop exposes its queue: nothing left polling
        assert len(ready) == 0
    never.cancel()


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or (os.cpu_count() or 1) < 2, reason="needs 2 CPUs")
def test_busy_polling_only_for_a_signer_on_cpus_of_its_own(tmp_path: Path) -> None:
    from crossbook.signing.client import _on_other_cpus

    mine = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {0})
        for peer_cpus, expected in (({1}, True), ({0, 1}, False)):
            path = str(tmp_path / f"peer{len(peer_cpus)}.sock")
            code = (
                "import os, socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1); "
                f"os.sched_setaffinity(0, {peer_cpus!r}); print('up', flush=True); c, _ = s.accept(); c.recv(1)"
            )
            peer = subprocess.Popen([sys.executable, "-c", code, path], stdout=subprocess.PIPE)
            try:
                assert peer.stdout is not None and peer.stdout.readline().strip() == b"up"
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(path)
                    assert _on_other_cpus(s) is expected, peer_cpus
                    s.send(b"x")
            finally:
                peer.wait(5)
        assert _on_other_cpus(None) is False
    finally:
        os.sched_setaffinity(0, mine)


async def test_the_protobuf_message_is_made_only_when_the_fast_reply_does_not_settle_the_call(
    server: FastServer, tmp_path: Path
) -> None:
    # A request written by Rust (prepare_order_frame) needs no protobuf message unless it must be sent again:
    # the call's task makes it only then, so its first step (while the signer signs) stays short.
    client = SignerClient(str(tmp_path / "signer.sock"), timeout=2.0, fast=True)
    await client.health()
    made: list[str] = []
    build = client._prepare_request
    client._prepare_request = lambda *a: made.append(str(a[-1])) or build(*a)  # type: ignore[method-assign]
    server.answer.set()
    reply = await client.begin_prepare_polymarket_order(ORDER, account="acct", order_type="FOK", wallet="main",
                                                        request_id="rid-m1")  # fmt: skip
    assert reply.body == b'{"order":1}'
    await asyncio.sleep(0.01)  # the call's own task ends too
    assert made == []
    # The connection lost under the call: it is sent again under the same request id, built by protobuf now.
    server.answer.clear()
    fut = client.begin_prepare_polymarket_order(ORDER, account="acct", order_type="FOK", wallet="main",
                                                request_id="rid-m2")  # fmt: skip
    conn = client._fast_conn
    assert conn is not None and conn.transport is not None
    conn.transport.abort()
    with pytest.raises(SignerError, match="rid-m2"):
        await fut
    assert made == ["rid-m2"]
    server.answer.set()
    await client.close()


async def test_a_frame_made_elsewhere_is_written_now_and_its_reply_reaches_the_call(
    server: FastServer, tmp_path: Path
) -> None:
    # EdgeWatch makes the first leg's frame under a call id from the high half; the client writes it at once and
    # the call begun with it (sent=) gets its reply; the client's own ids stay in the low half.
    client = SignerClient(str(tmp_path / "signer.sock"), timeout=2.0, fast=True)
    assert client.send_prepare_frame(b"never written", 0x80000001) is None  # not connected: nothing written
    await client.health()
    n = len(server.frames)
    frame = prepare_order_frame(METHOD_IDS["PreparePolymarketOrder"], 0x80000002, "rid-x", ORDER, account="acct",
                                order_type="FOK", wallet="main")  # fmt: skip
    assert frame is not None
    assert client.send_prepare_frame(frame, 0x1234) is None  # a low-half id is the client's own: refused
    server.got.clear()
    sent = client.send_prepare_frame(frame, 0x80000002)
    assert sent is not None
    assert server.got.wait(5), "send_prepare_frame returned without writing the frame"
    assert client.send_prepare_frame(frame, 0x80000002) is None  # that id is pending: refused
    assert server.frames[n:] == [(METHOD_IDS["PreparePolymarketOrder"], 0x80000002, frame[9:])]
    call = client.begin_prepare_polymarket_order(ORDER, account="acct", order_type="FOK", wallet="main",
                                                 request_id="rid-x", sent=sent)  # fmt: skip
    server.answer.set()
    reply = await call
    assert reply.hash == "0x" + "11" * 32 and reply.headers == {"POLY_API_KEY": "acct"}
    assert len(server.frames) == n + 1  # the call wrote nothing more
    await client.health()
    assert all(call_id <= CLIENT_CALL_IDS for _, call_id, _ in server.frames[n + 1 :])
    await client.close()


def _call_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if getattr(t.get_coro(), "__qualname__", "").endswith("._prepared")]


async def test_a_begun_call_runs_no_task_for_an_ok_reply_and_reports_a_timeout_as_the_awaited_call(
    server: FastServer, tmp_path: Path
) -> None:
    client = SignerClient(str(tmp_path / "signer.sock"), timeout=0.3, fast=True)
    await client.health()
    conn = client._fast_conn
    assert conn is not None
    server.answer.set()
    fut = client.begin_prepare_polymarket_order(ORDER, account="acct", order_type="FOK", wallet="main",
                                                request_id="rid-t1")  # fmt: skip
    assert _call_tasks() == []  # written: the reply alone settles the call
    reply = await fut
    await asyncio.sleep(0)
    assert reply.body == b'{"order":1}' and _call_tasks() == [] and not conn.early and not conn.pending
    # No reply within the client's timeout: the call's task starts and reports it, as the awaited call does.
    server.answer.clear()
    fut = client.begin_prepare_polymarket_order(ORDER, account="acct", order_type="FOK", wallet="main",
                                                request_id="rid-t2")  # fmt: skip
    with pytest.raises(SignerTimeout, match="did not answer PreparePolymarketOrder"):
        await fut
    assert not conn.early and not conn.pending
    server.answer.set()
    await client.close()


async def test_spin_for_reply_reads_the_reply_without_turning_the_loop(server: FastServer, tmp_path: Path) -> None:
    client = SignerClient(str(tmp_path / "signer.sock"), timeout=2.0, fast=True)
    await client.health()
    conn = client._fast_conn
    assert conn is not None and conn.fd >= 0
    loop = asyncio.get_running_loop()

    def begin(rid: str) -> asyncio.Future[PreparedOrderReply]:
        return client.begin_prepare_polymarket_order(ORDER, account="acct", order_type="FOK", wallet="main",
                                                     request_id=rid)  # fmt: skip

    # A signer sharing our CPUs (as here): no spinning, whatever is asked.
    server.answer.clear()
    fut = begin("rid-s0")
    assert client.spin_for_reply(fut, 0.5) is False and not fut.done()
    server.answer.set()
    assert (await fut).signature == "0x" + "22" * 65
    conn.own_cpus = True  # as if the signer ran on CPUs of its own
    # The reply lands 20 ms after the request: read where the transport would read it, the loop held meanwhile.
    server.answer.clear()
    fut = begin("rid-s1")
    turned: list[int] = []
    loop.call_soon(turned.append, 1)
    threading.Timer(0.02, server.answer.set).start()
    assert client.spin_for_reply(fut, 5.0) is True
    assert fut.done() and fut.result().headers == {"POLY_API_KEY": "acct"} and not conn.early and not conn.pending
    assert turned == []  # the loop never turned: the caller goes on in the same turn
    await asyncio.sleep(0)
    assert turned == [1]
    # No reply within max_s: False, nothing lost; the transport reads the reply when it comes.
    server.answer.clear()
    fut = begin("rid-s2")
    assert client.spin_for_reply(fut, 0.01) is False and not fut.done()
    server.answer.set()
    assert (await fut).body == b'{"order":1}'
    # An error reply stops the spin at once; the call's task reports it as ever.
    server.error = pb.CallError(code=7, message="over the session's limit", rule="max_total_notional")
    fut = begin("rid-s3")
    assert client.spin_for_reply(fut, 5.0) is False and not fut.done()
    with pytest.raises(SignerPolicyError, match="over the session's limit"):
        await fut
    # A call's task (no fast path at its start) settles only in a later turn: no spinning for it.
    task = loop.create_task(asyncio.sleep(1))
    assert client.spin_for_reply(task, 5.0) is False
    task.cancel()
    # The signer gone mid-spin: the spin stops and leaves the loss to the transport, which reports it.
    server.error = None
    server.answer.clear()
    fut = begin("rid-s4")
    assert server.got.wait(5)
    threading.Timer(0.02, lambda: server.conn.shutdown(socket.SHUT_RDWR)).start()
    assert client.spin_for_reply(fut, 5.0) is False and not fut.done()
    with pytest.raises(SignerError):
        await fut
    server.answer.set()
    await client.close()


async def test_take_prepared_reply_reads_a_written_frames_reply_now_or_leaves_it_to_the_call(
    server: FastServer, tmp_path: Path
) -> None:
    # The executor's direct route: a frame written by send_prepare_frame, its reply taken in the same turn
    # (spinning, for a signer on CPUs of its own) and decoded; anything else is left to the call begun with it.
    client = SignerClient(str(tmp_path / "signer.sock"), timeout=2.0, fast=True)
    await client.health()
    conn = client._fast_conn
    assert conn is not None
    loop = asyncio.get_running_loop()
    ids = iter(range(0x80000010, 0x80000100))

    def write(rid: str) -> object:
        call_id = next(ids)
        frame = prepare_order_frame(METHOD_IDS["PreparePolymarketOrder"], call_id, rid, ORDER, account="acct",
                                    order_type="FOK", wallet="main")  # fmt: skip
        assert frame is not None
        sent = client.send_prepare_frame(frame, call_id)
        assert sent is not None
        return sent

    def begin(rid: str, sent: object) -> asyncio.Future[PreparedOrderReply]:
        return client.begin_prepare_polymarket_order(ORDER, account="acct", order_type="FOK", wallet="main",
                                                     request_id=rid, sent=sent)  # type: ignore[arg-type]

    # A signer sharing our CPUs: not waited for; the call begun with the frame gets its reply as ever.
    server.answer.clear()
    sent = write("rid-t0")
    assert client.take_prepared_reply(sent, 0.5) is None  # type: ignore[arg-type]
    server.answer.set()
    assert (await begin("rid-t0", sent)).signature == "0x" + "22" * 65
    conn.own_cpus = True
    # The reply lands 20 ms later: read by the spin, decoded, and the call is over (nothing left pending).
    server.answer.clear()
    sent = write("rid-t1")
    turned: list[int] = []
    loop.call_soon(turned.append, 1)
    threading.Timer(0.02, server.answer.set).start()
    reply = client.take_prepared_reply(sent, 5.0)  # type: ignore[arg-type]
    assert reply is not None and turned == []  # in this turn
    assert (reply.hash, reply.body, reply.headers) == ("0x" + "11" * 32, b'{"order":1}', {"POLY_API_KEY": "acct"})
    assert not conn.pending and not conn.early
    # Read already (the loop turned meanwhile): taken without waiting, even for a signer on our CPUs.
    conn.own_cpus = False
    sent = write("rid-t2")
    await eventually(lambda: sent[2].done(), what="the reply read by the transport")  # type: ignore[index]
    reply = client.take_prepared_reply(sent, 0.0)  # type: ignore[arg-type]
    assert reply is not None and reply.signature == "0x" + "22" * 65
    conn.own_cpus = True
    # No reply within the bound: None, nothing lost; the call begun with the frame gets it.
    server.answer.clear()
    sent = write("rid-t3")
    assert client.take_prepared_reply(sent, 0.01) is None  # type: ignore[arg-type]
    server.answer.set()
    assert (await begin("rid-t3", sent)).body == b'{"order":1}'
    # An error reply: None at once; the call begun with the frame raises the signer's refusal with its rule.
    server.error = pb.CallError(code=7, message="over the session's limit", rule="max_total_notional")
    sent = write("rid-t4")
    assert client.take_prepared_reply(sent, 5.0) is None  # type: ignore[arg-type]
    with pytest.raises(SignerPolicyError, match="over the session's limit"):
        await begin("rid-t4", sent)
    # Forgotten (the order was refused after its request left): the reply is read and dropped when it comes.
    server.error = None
    server.answer.clear()
    sent = write("rid-t5")
    client.forget(sent)  # type: ignore[arg-type]
    assert not conn.pending and sent[2].cancelled()  # type: ignore[index]
    server.answer.set()
    await client.health()  # answered after the forgotten reply: that one was read, and nothing broke
    assert client.fast_connected and not conn.pending
    await client.close()


async def test_a_reply_waited_for_spinning_already_is_only_polled_for(server: FastServer, tmp_path: Path) -> None:
    # ServiceSigner.poll_reply(spun=True): the direct send's spin ran out (take_reply); the order path then keeps
    # the loop polling for the rest of SIGNER_POLL_S and does not hold the loop spinning a second time.
    from crossbook.execution.signer import SIGNER_SPIN_S, ServiceSigner

    client = SignerClient(str(tmp_path / "signer.sock"), timeout=2.0, fast=True)
    await client.health()
    assert client._fast_conn is not None
    client._fast_conn.own_cpus = True  # as if the signer ran on CPUs of its own
    signer = ServiceSigner(client, address="0x" + "ab" * 20, api_key="acct", wallet="main")
    spun: list[float] = []
    spin = client.spin_for_reply
    client.spin_for_reply = lambda fut, max_s: spun.append(max_s) or spin(fut, max_s)  # type: ignore[method-assign,func-returns-value]
    server.answer.clear()
    fut = client.begin_prepare_polymarket_order(ORDER, account="acct", order_type="FOK", wallet="main",
                                                request_id="rid-p1")  # fmt: skip
    signer.poll_reply(fut, spun=True)
    assert spun == [] and not fut.done()  # polled (the loop turned), never spun
    signer.poll_reply(fut)
    assert spun == [SIGNER_SPIN_S] and not fut.done()  # the first wait spins
    server.answer.set()
    assert (await fut).signature == "0x" + "22" * 65
    await client.close()
