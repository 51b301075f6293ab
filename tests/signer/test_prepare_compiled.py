"""The compiled PreparePolymarketOrder (``crossbook._core.PolymarketOrderRequest`` behind
``SignerService.prepare_order_raw``) against the Python path it replaced, with real keys and real sessions:

- its decoder accepts exactly what protobuf (upb) accepts, and its canonical form is upb's deterministic
  serialization, so the idempotency fingerprint is the same whichever way a request came;
- over many randomized requests (sides, amounts, token ids, salts, signature types, exchange/chain/neg_risk,
  timestamp, defer_exec/post_only, path, wallet and session keys, malformed values) it answers what the
  Python handler answers: the same hash, signature, body bytes, L2 headers, audit and session spend, or the
  same refusal;
- the real signer process serves it on both transports: replay, a retry on the other transport recognized,
  an id reused for another request refused, an id in flight waited for, malformed payloads answered with an
  error (the fast-path connection stays usable).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import grpc
import grpc.aio
import orjson
import pytest
from crossbook_signer.policy import Policy, PolicyRefusal, Usage
from crossbook_signer.service import PREPARE, Hardening, Keys, Refusal, SignerService
from crossbook_signer.sessions import Session
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError

from crossbook._core import PolymarketOrderRequest
from crossbook._proto import signer_pb2 as pb
from crossbook.signing import ApiCreds, HmacKey, PrivateKey, l2_headers, polymarket_exchange
from crossbook.signing.client import SignerClient
from crossbook.signing.fastframe import HEADER, OK, encode
from tests.signer.conftest import ANVIL_ADDR, ANVIL_KEY, API_KEY, API_PASSPHRASE, API_SECRET, Kms, Signer
from tests.signer.test_fast_path import assert_alive, call_error, raw_connect, read_frame
from tests.signer.test_signer_service import OTHER_TOKEN, TOKEN, v2_order

Req = pb.PreparePolymarketOrderRequest
Reply = pb.PreparePolymarketOrderReply
SERVICE = "/crossbook.signer.v1.Signer/PreparePolymarketOrder"
ZERO32 = "0x" + "00" * 32


def fingerprint(m: Req) -> bytes:
    return hashlib.sha256(PREPARE.encode() + b"\0" + m.SerializeToString(deterministic=True)).digest()


# --- the decoder against upb --------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _tag(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _sub(field: int, payload: bytes) -> bytes:
    return _tag(field, 2) + _varint(len(payload)) + payload


class WireGen:
    """Random PreparePolymarketOrderRequest wire bytes, often odd: fields in any order and repeated, map
    entries with missing/repeated/unknown parts, unknown fields of every wire type (groups nested), known
    numbers with the wrong wire type, non-ASCII and control characters; half of them mutated (bytes
    changed, dropped, inserted, the tail cut)."""

    STRS = ("", "a", "main", "0", "1", "BUY", "sell", "é€", "😀", '\x00\n"', "x" * 130)

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def text(self) -> bytes:
        rng = self.rng
        if rng.random() < 0.7:
            return rng.choice(self.STRS).encode()
        cps = (
            rng.choice((rng.randrange(32, 127), rng.randrange(0x800), rng.randrange(0x1000, 0xD7FF))) for _ in range(4)
        )
        return "".join(map(chr, cps)).encode()

    def unknown(self, depth: int = 0) -> bytes:
        rng = self.rng
        field = rng.choice((13, 20, 99, 2**29 - 1, rng.randrange(1, 1000)))
        wt = rng.choice((0, 1, 2, 3, 5))
        if wt == 0:
            return _tag(field, 0) + _varint(rng.getrandbits(rng.choice((1, 7, 64))))
        if wt in (1, 5):
            return _tag(field, wt) + rng.randbytes(8 if wt == 1 else 4)
        if wt == 2:
            return _sub(field, rng.randbytes(rng.randrange(4)))
        inner = b"".join(self.unknown(depth + 1) for _ in range(rng.randrange(3))) if depth < 3 else b""
        return _tag(field, 3) + inner + _tag(field, 4)

    def field(self) -> bytes:
        rng = self.rng
        c = rng.randrange(16)
        if c == 1:
            parts = (
                rng.choice((_sub(1, self.text()), _sub(2, self.text()), self.unknown(), b"\x08\x03"))
                for _ in range(rng.randrange(3))
            )
            return _sub(2, b"".join(parts))
        if c in (2, 3, 4):
            choices = (
                lambda: _sub(1, self.text()),
                lambda: _sub(2, self.text()),
                lambda: self.unknown() if rng.random() < 0.3 else b"",
            )
            return _sub(3, b"".join(rng.choice(choices)() for _ in range(rng.randrange(4))))
        if c == 5:
            return _tag(4, 0) + _varint(rng.getrandbits(rng.choice((0, 8, 64))))
        if c == 6:
            return _tag(5, 0) + _varint(rng.choice((0, 1, 2, 300)))
        if c == 7:
            return _sub(rng.choice((6, 7, 8, 11)), self.text())
        if c == 8:
            return _tag(rng.choice((9, 10)), 0) + _varint(rng.choice((0, 1, 5)))
        if c == 9:
            return _tag(12, 0) + _varint(rng.getrandbits(64))
        if c == 10:
            return self.unknown()
        if c == 11:  # a known number with another wire type
            return _tag(rng.randrange(1, 13), rng.choice((0, 1, 5))) + (b"\x01" if rng.random() < 0.5 else bytes(8))
        return _sub(1, self.text())

    def mutate(self, b: bytes) -> bytes:
        rng, out = self.rng, bytearray(b)
        for _ in range(rng.randrange(1, 4)):
            if not out:
                out.append(rng.randrange(256))
                continue
            i = rng.randrange(len(out))
            match rng.randrange(4):
                case 0:
                    out[i] = rng.randrange(256)
                case 1:
                    del out[i]
                case 2:
                    out.insert(i, rng.randrange(256))
                case _:
                    del out[i:]
        return bytes(out)

    def message(self) -> bytes:
        b = b"".join(self.field() for _ in range(self.rng.randrange(8)))
        return self.mutate(b) if self.rng.random() < 0.5 else b


def test_decoder_accepts_what_protobuf_accepts_and_serializes_as_it_does() -> None:
    gen = WireGen(20240501)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(6000):
        data = gen.message()
        try:
            m: Req | None = Req.FromString(data)
        except DecodeError:
            m = None
        try:
            p: PolymarketOrderRequest | None = PolymarketOrderRequest(data)
        except ValueError as exc:
            assert "not a valid PreparePolymarketOrderRequest" in str(exc) and "at byte" in str(exc)
            p = None
        assert (m is None) == (p is None), data.hex()
        if m is None or p is None:
            outcomes["refused"] += 1
            continue
        outcomes["parsed"] += 1
        assert p.canonical() == m.SerializeToString(deterministic=True), data.hex()
        assert p.fingerprint == fingerprint(m)
        assert (p.request_id, p.account, p.order_type, p.exchange, p.path) == (
            m.request_id,
            m.account,
            m.order_type,
            m.exchange,
            m.path,
        )
        assert (p.chain_id, p.neg_risk, p.defer_exec, p.post_only, p.timestamp) == (
            m.chain_id,
            m.neg_risk,
            m.defer_exec,
            m.post_only,
            m.timestamp,
        )
        assert p.order() == dict(m.order)
        assert p.key_kind == m.key.WhichOneof("key")
        assert p.key_name == (getattr(m.key, p.key_kind) if p.key_kind else "")
    assert min(outcomes.values()) > 1000, outcomes  # both branches well covered


def test_fingerprint_is_the_deterministic_serializations_for_any_field_order() -> None:
    rng = random.Random(7)
    for i in range(300):
        order = {
            k: str(rng.randrange(10**9)) for k in rng.sample(["salt", "tokenId", "makerAmount", "b", "", "ab", "a"], 5)
        }
        m = Req(
            request_id=f"r{i}",
            key=pb.KeyRef(wallet="main"),
            order=order,
            chain_id=rng.choice((0, 137)),
            account="main",
            order_type="FOK",
            timestamp=rng.choice((0, -1, 1_700_000_000)),
        )
        # The same message with its fields and map entries in another order on the wire.
        fields = [_sub(1, m.request_id.encode()), _sub(2, m.key.SerializeToString())]
        fields += [_sub(3, _sub(1, k.encode()) + _sub(2, v.encode())) for k, v in order.items()]
        fields += [_sub(7, b"main"), _sub(8, b"FOK")]
        if m.chain_id:
            fields.append(_tag(4, 0) + _varint(m.chain_id))
        if m.timestamp:
            fields.append(_tag(12, 0) + _varint(m.timestamp % 2**64))
        rng.shuffle(fields)
        shuffled = b"".join(fields)
        assert Req.FromString(shuffled) == m
        assert PolymarketOrderRequest(shuffled).fingerprint == PolymarketOrderRequest(m.SerializeToString()).fingerprint
        assert PolymarketOrderRequest(shuffled).fingerprint == fingerprint(m)


# --- the order step against the Python path ------------------------------------------------------------

OTHER_KEY = PrivateKey("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")
SESSION_KEY = PrivateKey("5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a")
SID = "0123456789abcdef0123456789abcdef"


def make_session(policy: Policy) -> Session:
    aead = AESGCM(os.urandom(32))
    return Session(SID, "user", "0x" + "ef" * 20, SESSION_KEY, policy, Usage(), b"edk", b"n" * 12, b"ct", aead)


def make_service() -> SignerService:
    creds = ApiCreds(API_KEY, HmacKey(API_SECRET), API_PASSPHRASE)
    keys = Keys(wallets={"main": PrivateKey(ANVIL_KEY)}, polymarket_api={"main": (creds, ANVIL_ADDR)})
    policy = Policy(int(time.time()) + 3600, Decimal("60"), Decimal("150"), frozenset({TOKEN}))
    return SignerService(keys, {SID: make_session(policy)}, None, "", Hardening())


class OrderGen:
    """Randomized requests: mostly orders a venue would take, each field sometimes odd or wrong."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def pick(self, good: Callable[[], str], *odd: str, p_odd: float = 0.05) -> str:
        return self.rng.choice(odd) if odd and self.rng.random() < p_odd else good()

    def amount(self) -> str:
        rng = self.rng
        return self.pick(
            lambda: str(rng.randrange(1, 10 ** rng.randrange(4, 9))),
            "0",
            "000100",
            "0x10",
            "",
            "-5",
            "²",
            "١٢",
            "9" * 29,
            "1" + "0" * 27,
            "12345678901234567890123456789",
        )

    def order(self, signer: str) -> dict[str, str]:
        rng = self.rng
        o: dict[str, str] = {
            "salt": self.pick(
                lambda: str(rng.randrange(2 ** rng.choice((16, 40, 64)))),
                "0",
                "007",
                "0x1f",
                "",
                "-1",
                "1.5",
                "١",
                str(2**64 - 1),
                str(2**64),
                str(2**200),
            ),
            "maker": self.pick(lambda: signer, signer.lower(), OTHER_KEY.address, "0x12", signer[2:], signer.upper()),
            "signer": self.pick(lambda: signer, signer.lower(), OTHER_KEY.address, "0x1234", signer[2:]),
            "tokenId": self.pick(
                lambda: rng.choice((TOKEN, TOKEN, TOKEN, OTHER_TOKEN, str(rng.randrange(2**256)))),
                "0x" + "ab" * 32,
                "",
                "abc",
                str(2**256),
                "1e9",
            ),
            "makerAmount": self.amount(),
            "takerAmount": self.amount(),
            "side": self.pick(
                lambda: rng.choice(("BUY", "SELL", "0", "1", "buy", "Sell")),
                "00",
                "01",
                "+1",
                "2",
                "256",
                "",
                "١",
                "ſell",
                "x",
                p_odd=0.12,
            ),
            "signatureType": self.pick(
                lambda: rng.choice(("0", "0", "1", "2", "EOA", "POLY_PROXY")),
                "3",
                "POLY_1271",
                "4",
                "eoa",
                "03",
                "٢",
                "²",
                "+1",
                "",
                "999",
                p_odd=0.12,
            ),
            "timestamp": self.pick(lambda: str(1_700_000_000_000 + rng.randrange(10**9)), "0x10", "", "-1"),
        }
        for name in ("metadata", "builder"):
            if rng.random() < 0.5:
                o[name] = self.pick(lambda: rng.choice((ZERO32, "0x" + "ab" * 32)), "0x12", "ab" * 32, "")
        if rng.random() < 0.4:
            o["expiration"] = rng.choice(("0", "", "1700000000", 'a"b\\c\n\x01', "é😀"))
        if rng.random() < 0.1:
            o["feeRateBps"] = "0"
        for name in list(o):
            if rng.random() < 0.01:
                del o[name]
        return o

    def request(self, i: int) -> Req:
        rng = self.rng
        kind = rng.random()
        if kind < 0.55:
            key, signer = pb.KeyRef(wallet="main"), ANVIL_ADDR
        elif kind < 0.9:
            key, signer = pb.KeyRef(session_id=SID), SESSION_KEY.address
        else:
            key, signer = (
                rng.choice((pb.KeyRef(wallet="nope"), pb.KeyRef(session_id="nope"), pb.KeyRef(), None)),
                ANVIL_ADDR,
            )
        exchange = self.pick(
            lambda: "",
            polymarket_exchange(137, False) or "",
            (polymarket_exchange(137, True) or "").lower(),
            "0x12",
            "0xE111180000D2663C0091e4f400237545B87B996B",
            p_odd=0.15,
        )
        return Req(
            request_id=f"r-{i}",
            key=key,
            order=self.order(signer),
            chain_id=self.pick(lambda: rng.choice((0, 137)), 80002, 1),
            neg_risk=rng.random() < 0.3,
            exchange=exchange,
            account=self.pick(lambda: "main", "other", ""),
            order_type=self.pick(lambda: rng.choice(("FOK", "FAK", "GTC", "GTD")), "IOC", "", "fok", "it's"),
            defer_exec=rng.random() < 0.3,
            post_only=rng.random() < 0.3,
            path=rng.choice(("", "/order", "/order?x=1")),
            timestamp=self.pick(lambda: rng.choice((1_700_000_123, 1_800_000_000)), 0, -5, 2**40, p_odd=0.1),
        )


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except Exception as exc:  # compared below: type, message, policy rule
        return "error", exc


def test_compiled_answers_what_the_python_path_answers() -> None:
    """The same randomized requests through both handlers of two identical services (each with its own copy of
    the same session): every reply the same bytes but for the signing time and the (randomly sealed) session
    blob, every refusal the same exception, and the sessions' spend the same all along."""
    py, compiled = make_service(), make_service()
    gen = OrderGen(99)
    counts = {"ok": 0, "error": 0, "python rules": 0, "session signed": 0}
    rules: set[str] = set()
    for i in range(700):
        m = gen.request(i)
        data = m.SerializeToString()
        p = PolymarketOrderRequest(data)
        counts["python rules"] += p.needs_python_rules
        kind_a, a = outcome(lambda: py._prepare_order(m))  # noqa: B023
        kind_b, b = outcome(lambda: compiled._prepare_compiled(p))  # noqa: B023
        assert kind_a == kind_b, (i, m, a, b)
        counts[kind_a] += 1
        if kind_a == "error":
            assert type(a) is type(b) and str(a) == str(b), (i, m, a, b)
            if isinstance(a, PolicyRefusal):
                assert isinstance(b, PolicyRefusal) and a.rule == b.rule
                rules.add(a.rule)
        else:
            got = Reply.FromString(b)
            counts["session signed"] += bool(got.session_blob)
            assert bool(got.session_blob) == bool(a.session_blob)
            if m.timestamp == 0 and got.headers != a.headers:  # "now" may have ticked between the two
                ts = int(got.headers["POLY_TIMESTAMP"])
                assert abs(ts - int(a.headers["POLY_TIMESTAMP"])) <= 2
                creds = ApiCreds(API_KEY, HmacKey(API_SECRET), API_PASSPHRASE)
                del a.headers["POLY_TIMESTAMP"], a.headers["POLY_SIGNATURE"]
                a.headers.update(l2_headers(creds, ANVIL_ADDR, "POST", m.path or "/order", a.body, timestamp=ts))
            assert abs(got.audit.signed_at_ms - a.audit.signed_at_ms) < 5_000
            a.audit.signed_at_ms = got.audit.signed_at_ms
            a.session_blob = got.session_blob
            assert b == a.SerializeToString(deterministic=True), (i, m)
        assert compiled.sessions[SID].usage == py.sessions[SID].usage
    # Every branch was exercised: successes, refusals, both key kinds, policy rules, the Python-rules hand-off.
    assert counts["ok"] > 150 and counts["error"] > 150 and counts["session signed"] > 50, counts
    assert counts["python rules"] > 20, counts
    assert {"market_not_allowed", "max_order_notional", "max_total_notional"} <= rules, (rules, counts)


def test_compiled_reply_is_the_python_replys_bytes_for_plain_orders() -> None:
    """A well-formed order, each option varied: the compiled reply is byte for byte the deterministic
    serialization of the message the Python path builds (signing time aside)."""
    py, compiled = make_service(), make_service()
    rng = random.Random(3)
    for i in range(150):
        order = {
            k: str(v)
            for k, v in v2_order(
                ANVIL_ADDR,
                maker_amount=rng.randrange(1, 10**8),
                taker_amount=rng.randrange(1, 10**8),
                side=rng.randrange(2),
                salt=rng.randrange(2**63),
            ).items()
        }
        order["side"] = rng.choice((order["side"], ("BUY", "SELL")[int(order["side"])]))
        m = Req(
            request_id=f"p-{i}",
            key=pb.KeyRef(wallet="main"),
            order=order,
            chain_id=rng.choice((0, 137)),
            neg_risk=rng.random() < 0.5,
            account="main",
            order_type=rng.choice(("FOK", "FAK", "GTC", "GTD")),
            defer_exec=rng.random() < 0.5,
            post_only=rng.random() < 0.5,
            path=rng.choice(("", "/order")),
            timestamp=1_700_000_000 + i,
        )
        want = py._prepare_order(m)
        got = compiled.prepare_order_raw(m.SerializeToString())
        assert isinstance(got, bytes)
        want.audit.signed_at_ms = Reply.FromString(got).audit.signed_at_ms
        assert got == want.SerializeToString(deterministic=True)
        wire = orjson.loads(Reply.FromString(got).body)
        assert wire["order"]["side"] in ("BUY", "SELL") and wire["deferExec"] == m.defer_exec


def _normalized(reply: bytes, like: bytes) -> bytes:
    """``reply`` with the signing time (and, for a request without a timestamp, the L2 headers' time) of
    ``like``: what two signatures of one request may differ by."""
    a, b = Reply.FromString(reply), Reply.FromString(like)
    assert abs(a.audit.signed_at_ms - b.audit.signed_at_ms) < 5_000
    a.audit.signed_at_ms = b.audit.signed_at_ms
    if a.headers != b.headers:
        assert abs(int(a.headers["POLY_TIMESTAMP"]) - int(b.headers["POLY_TIMESTAMP"])) <= 2
        for h in ("POLY_TIMESTAMP", "POLY_SIGNATURE"):
            a.headers[h] = b.headers[h]
    return a.SerializeToString(deterministic=True)


def test_the_wallet_frame_step_answers_as_the_general_path() -> None:
    """The fast path's one-step wallet case (``prepare_wallet_frame`` + ``remember_wallet_frame``) against
    ``prepare_order_raw`` on a twin service, over the randomized requests: it takes exactly the wallet
    requests that sign, answers them with the same reply bytes (signing time aside) in a whole frame for the
    call id, and leaves every other request (sessions, refusals, odd values) to the general path; after it,
    the service's memory is the general path's (a retry replays, another request under the id is refused)."""
    fast, general = make_service(), make_service()
    gen = OrderGen(7)
    taken = left = 0
    for i in range(700):
        m = gen.request(i)
        data = m.SerializeToString()
        kind_b, b = outcome(lambda: general.prepare_order_raw(data))  # noqa: B023
        made = fast.prepare_wallet_frame(data, OK, 0x80000000 + i)
        if made is None:
            left += 1
            kind_a, a = outcome(lambda: fast.prepare_order_raw(data))  # noqa: B023
            assert kind_a == kind_b, (i, m, a, b)
            if kind_a == "error":
                assert type(a) is type(b) and str(a) == str(b)
            else:
                # only a session signature (or values Python's rules judge) is left to the general path
                assert m.key.WhichOneof("key") == "session_id" or PolymarketOrderRequest(data).needs_python_rules
                assert _normalized(a, b) != b"" and Reply.FromString(a).audit.key == Reply.FromString(b).audit.key
            continue
        taken += 1
        frame, req = made
        fast.remember_wallet_frame(req, frame)
        assert kind_b == "ok" and m.key.WhichOneof("key") == "wallet", (i, m, b)
        assert frame[:9] == HEADER.pack(len(frame) - 4, OK, 0x80000000 + i)
        assert _normalized(frame[9:], b) == b, (i, m)
        # remembered as the general path remembers it: a retry replays the first reply, marked
        again = fast.prepare_order_raw(data)
        assert isinstance(again, bytes) and Reply.FromString(again).audit.replayed
        assert Reply.FromString(again).body == Reply.FromString(frame[9:]).body
        assert fast.prepare_wallet_frame(data, OK, 1) is None
    assert taken > 100 and left > 300, (taken, left)
    assert fast.calls == general.calls + taken  # the general path counts each request once, the retries too
    other = prepare_request("w-1")
    made = fast.prepare_wallet_frame(other.SerializeToString(), OK, 5)
    assert made is not None
    fast.remember_wallet_frame(made[1], made[0])
    changed = prepare_request("w-1", salt=9)
    assert fast.prepare_wallet_frame(changed.SerializeToString(), OK, 6) is None
    assert refusal(lambda: fast.prepare_order_raw(changed.SerializeToString())).code == (
        grpc.StatusCode.FAILED_PRECONDITION
    )


# --- the service entry, in process ------------------------------------------------------------------------


def prepare_request(rid: str, *, key: pb.KeyRef | None = None, salt: int = 1, **kw: Any) -> Req:
    signer = SESSION_KEY.address if key and key.session_id else ANVIL_ADDR
    order = {k: str(v) for k, v in v2_order(signer, salt=salt).items()}
    order.update(kw.pop("order", {}))
    fields: dict[str, Any] = {"account": "main", "order_type": "FOK", "timestamp": 1_700_000_000, **kw}
    return Req(request_id=rid, key=key or pb.KeyRef(wallet="main"), order=order, **fields)


def refusal(fn: Callable[[], Any]) -> Refusal:
    with pytest.raises(Refusal) as exc:
        fn()
    return exc.value


def test_raw_entry_keeps_the_services_rules() -> None:
    svc = make_service()
    m = prepare_request("a-1")
    first = svc.prepare_order_raw(m.SerializeToString())
    assert isinstance(first, bytes) and not Reply.FromString(first).audit.replayed
    # Replay: the first reply, marked; also when the retry's bytes are ordered otherwise or come as a message.
    again = svc.prepare_order_raw(m.SerializeToString(deterministic=True))
    assert isinstance(again, bytes)
    r = Reply.FromString(again)
    assert r.audit.replayed and (r.body, r.signature, dict(r.headers)) == (
        Reply.FromString(first).body,
        Reply.FromString(first).signature,
        dict(Reply.FromString(first).headers),
    )
    via_call = svc.call(PREPARE, m)
    assert isinstance(via_call, Reply) and via_call.audit.replayed and via_call.body == r.body
    # The same id for another request; no id; not a request at all (not counted, not remembered).
    other = prepare_request("a-1", salt=2)
    assert refusal(lambda: svc.prepare_order_raw(other.SerializeToString())).code == grpc.StatusCode.FAILED_PRECONDITION
    assert (
        "request_id is required"
        in refusal(lambda: svc.prepare_order_raw(prepare_request("").SerializeToString())).message
    )
    calls = svc.calls
    bad = refusal(lambda: svc.prepare_order_raw(b"\x0a\x05ab"))
    assert (
        bad.code == grpc.StatusCode.INVALID_ARGUMENT and "runs past the end" in bad.message and "at byte" in bad.message
    )
    assert svc.calls == calls
    # Refusals are remembered as today: input, not found, policy — the same id gets the same refusal.
    for rid, req, code in (
        ("a-2", prepare_request("a-2", order_type="IOC"), grpc.StatusCode.INVALID_ARGUMENT),
        ("a-3", prepare_request("a-3", key=pb.KeyRef(wallet="nope")), grpc.StatusCode.NOT_FOUND),
        ("a-4", prepare_request("a-4", account="nope"), grpc.StatusCode.NOT_FOUND),
        ("a-5", prepare_request("a-5", key=pb.KeyRef(session_id="nope")), grpc.StatusCode.NOT_FOUND),
        (
            "a-6",
            prepare_request("a-6", key=pb.KeyRef(session_id=SID), order={"tokenId": OTHER_TOKEN}),
            grpc.StatusCode.PERMISSION_DENIED,
        ),
    ):
        data = req.SerializeToString()
        first_refusal = refusal(lambda: svc.prepare_order_raw(data))  # noqa: B023
        assert first_refusal.code == code, (rid, first_refusal.message)
        assert refusal(lambda: svc.prepare_order_raw(data)).message == first_refusal.message  # noqa: B023
    assert refusal(lambda: svc.prepare_order_raw(prepare_request("a-6").SerializeToString())).code == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    # A session signature: spend recorded once, the blob in the reply, the audit strings as the Python path's.
    s = svc.sessions[SID]
    sm = prepare_request("a-7", key=pb.KeyRef(session_id=SID), order={"makerAmount": "12500000"})
    out = Reply.FromString(svc.prepare_order_raw(sm.SerializeToString()))  # type: ignore[arg-type]
    assert (out.audit.key, out.audit.notional, out.audit.cumulative) == (f"session:{SID}", "12.5", "12.5")
    assert out.session_blob and s.usage.spent == Decimal("12.5") and s.usage.seq == 1
    assert Reply.FromString(svc.prepare_order_raw(sm.SerializeToString())).audit.replayed  # type: ignore[arg-type]
    assert s.usage.spent == Decimal("12.5") and s.usage.seq == 1


def test_warm_runs_the_compiled_path_and_touches_nothing() -> None:
    svc = make_service()
    svc.warm()
    svc.warm()
    assert svc.calls == 0 and not svc._done and svc.sessions[SID].usage == Usage()


async def test_an_id_in_flight_is_waited_for(kms: Kms) -> None:
    """AuthorizeSession awaits KMS with its id in flight; a PreparePolymarketOrder with that id waits for it,
    then is refused as a different request (and the session request's own retry gets its reply)."""
    svc = make_service()
    svc.kms, svc.kms_key_id = kms.client, kms.key_id
    auth = pb.AuthorizeSessionRequest(
        request_id="dup",
        user="u",
        smart_account="0x" + "ef" * 20,
        expires_at=int(time.time()) + 600,
        max_order_notional="1",
        max_total_notional="1",
        allowed_token_ids=[TOKEN],
    )
    pending = svc.call("AuthorizeSession", auth)
    assert not isinstance(pending, pb.SessionReply)
    task = asyncio.ensure_future(pending)
    await asyncio.sleep(0)  # the session request now holds the id
    waiting = svc.prepare_order_raw(prepare_request("dup").SerializeToString())
    assert not isinstance(waiting, bytes)
    with pytest.raises(Refusal) as exc:
        await waiting
    assert exc.value.code == grpc.StatusCode.FAILED_PRECONDITION
    session = await task
    assert isinstance(session, pb.SessionReply) and session.session_id


# --- the real signer process, both transports --------------------------------------------------------------


def _reordered(m: Req) -> bytes:
    """``m`` on the wire the other way round: fields in reverse, map entries reversed."""
    fields = [_sub(1, m.request_id.encode()), _sub(2, m.key.SerializeToString())]
    fields += [_sub(3, _sub(1, k.encode()) + _sub(2, v.encode())) for k, v in sorted(m.order.items())]
    fields += [_sub(7, m.account.encode()), _sub(8, m.order_type.encode()), _tag(12, 0) + _varint(m.timestamp)]
    fields += [_tag(4, 0) + _varint(m.chain_id), _sub(11, m.path.encode())]
    data = b"".join(reversed(fields))
    assert Req.FromString(data) == m and data != m.SerializeToString(deterministic=True)
    return data


async def test_both_transports_one_implementation(signer_env: Signer) -> None:
    signer_env.write_config(header_keys=True)
    signer_env.start()
    channel = grpc.aio.insecure_channel(f"unix:{signer_env.socket}")
    grpc_raw = channel.unary_unary(SERVICE, request_serializer=None, response_deserializer=None)
    s = raw_connect(signer_env.socket + ".fast")
    try:
        async with SignerClient(signer_env.socket) as fast, SignerClient(signer_env.socket, fast=False) as slow:
            for tag, first, retry in (("f", fast, slow), ("g", slow, fast)):
                struct = v2_order(ANVIL_ADDR, salt=len(tag) + ord(tag))
                kw: dict[str, Any] = {
                    "account": "main",
                    "order_type": "GTC",
                    "wallet": "main",
                    "timestamp": 1_700_000_500,
                }
                a = await first.prepare_polymarket_order(struct, request_id=f"x-{tag}", **kw)
                b = await retry.prepare_polymarket_order(struct, request_id=f"x-{tag}", **kw)  # the other transport
                assert not a.audit["replayed"] and b.audit["replayed"]
                assert (a.hash, a.signature, a.body, a.headers) == (b.hash, b.signature, b.body, b.headers)
                with pytest.raises(Exception, match="different request"):
                    await retry.prepare_polymarket_order(struct, request_id=f"x-{tag}", **{**kw, "post_only": True})

            # The same logical request, serialized another way, first raw on the fast path, then by the client
            # over gRPC: one fingerprint.
            m = prepare_request("x-raw", salt=77, chain_id=137, path="/order")  # the client's defaults
            s.sendall(encode(pb.FAST_PREPARE_POLYMARKET_ORDER, 5, _reordered(m)))
            kind, cid, payload = read_frame(s)
            assert (kind, cid) == (OK, 5)
            raw_reply = Reply.FromString(payload)
            order = {k: v for k, v in m.order.items()}
            again = await slow.prepare_polymarket_order(
                order, account="main", order_type="FOK", wallet="main", timestamp=m.timestamp, request_id="x-raw"
            )
            assert again.audit["replayed"] and again.body == raw_reply.body and again.signature == raw_reply.signature
            # And the other way round: the client on the fast path first, raw bytes over gRPC after.
            m2 = prepare_request("x-raw-2", salt=78, chain_id=137, path="/order")
            got = await fast.prepare_polymarket_order(
                {k: v for k, v in m2.order.items()},
                account="main",
                order_type="FOK",
                wallet="main",
                timestamp=m2.timestamp,
                request_id="x-raw-2",
            )
            over_grpc = Reply.FromString(await grpc_raw(_reordered(m2)))
            assert over_grpc.audit.replayed and over_grpc.body == got.body

        # Malformed payloads: an error naming the problem on both transports; the fast connection stays usable.
        bad_payloads = (
            b"\x0a\x05ab",  # a length past the end
            b"\x0a\x01\xff",  # not UTF-8
            b"\x0f",  # wire type 7
            b"\xa3\x01" * 101 + b"\xa4\x01" * 101,  # groups nested too deep
            prepare_request("x-cut").SerializeToString()[:-3],
        )
        for i, data in enumerate(bad_payloads):
            s.sendall(encode(pb.FAST_PREPARE_POLYMARKET_ORDER, 100 + i, data))
            kind, cid, payload = read_frame(s)
            err = call_error(kind, payload)
            assert cid == 100 + i and err.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
            assert "not a valid PreparePolymarketOrderRequest" in err.message and "at byte" in err.message
            assert_alive(s, 200 + i)
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await grpc_raw(data)
            assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert exc.value.details() == err.message
        # A bad value inside a well-formed request: refused by the order step, naming the field.
        s.sendall(
            encode(
                pb.FAST_PREPARE_POLYMARKET_ORDER,
                300,
                prepare_request("x-bad", order={"salt": "0x10"}).SerializeToString(),
            )
        )
        err = call_error(*read_frame(s)[::2])
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and err.message.startswith("salt: ")
        assert_alive(s, 301)
    finally:
        s.close()
        await channel.close()
    log = signer_env.stderr()
    assert log.count("signed request_id=x-f ") == 1 and log.count("replay request_id=x-f ") >= 1
    assert API_SECRET not in log and API_PASSPHRASE not in log and ANVIL_KEY not in log


async def test_session_policy_through_the_compiled_path(signer_env: Signer) -> None:
    signer_env.write_config(header_keys=True)
    signer_env.start()
    async with SignerClient(signer_env.socket) as fast, SignerClient(signer_env.socket, fast=False) as slow:
        s = await fast.authorize_session(
            "user-c",
            "0x" + "ef" * 20,
            expires_at=int(time.time()) + 600,
            max_order_notional=Decimal("10"),
            max_total_notional=Decimal("15"),
            allowed_token_ids=[TOKEN],
        )

        async def prepare(client: SignerClient, rid: str, **kw: Any) -> Any:
            return await client.prepare_polymarket_order(
                v2_order(s.address, **kw), account="main", order_type="FOK", session_id=s.session_id, request_id=rid
            )

        one = await prepare(fast, "c-1", maker_amount=7_250_000)
        assert (one.audit["key"], one.audit["notional"], one.audit["cumulative"]) == (
            f"session:{s.session_id}",
            "7.25",
            "7.25",
        )
        assert one.session_blob
        # Replayed over gRPC: counted once.
        assert (await prepare(slow, "c-1", maker_amount=7_250_000)).audit["cumulative"] == "7.25"
        two = await prepare(slow, "c-2", maker_amount=7_000_000, salt=2)
        assert two.audit["cumulative"] == "14.25"
        for client in (fast, slow):  # refused, and remembered as refused, on either transport
            with pytest.raises(Exception) as exc:
                await prepare(client, "c-3", maker_amount=1_000_000, salt=3)
            assert getattr(exc.value, "rule", None) == "max_total_notional"
        sell = await prepare(fast, "c-4", side=1, maker_amount=1, taker_amount=750_000, salt=4)
        assert sell.audit["notional"] == "0.75" and sell.audit["cumulative"] == "15.00"  # Decimal sums keep places


def test_no_secret_in_reprs_or_errors() -> None:
    p = PolymarketOrderRequest(prepare_request("z-1").SerializeToString())
    p.sign(PrivateKey(ANVIL_KEY), HmacKey(API_SECRET), API_KEY, API_PASSPHRASE, ANVIL_ADDR)
    assert API_PASSPHRASE not in repr(p) and API_SECRET not in repr(p)
    bad = PolymarketOrderRequest(prepare_request("z-2", order={"signer": OTHER_KEY.address}).SerializeToString())
    with pytest.raises(ValueError) as exc:
        bad.sign(PrivateKey(ANVIL_KEY), HmacKey(API_SECRET), API_KEY, API_PASSPHRASE, ANVIL_ADDR)
    assert str(exc.value).startswith("signer: ") and ANVIL_KEY not in str(exc.value)
    with pytest.raises(RuntimeError, match="sign"):
        PolymarketOrderRequest(b"").reply("wallet:main")
