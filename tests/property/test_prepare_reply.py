"""``crossbook._core.decode_prepare_reply`` (how the order path reads the signer's PreparePolymarketOrder reply,
in one compiled call) against protobuf (upb) reading the same bytes through the client's own conversion
(``_prepared_reply``): the same hash, signature, body, headers, audit and session blob for every reply the
signer can send (its Rust encoder's and protobuf's serializations, random field contents, unknown fields,
repeated fields and map keys) and, for mutated bytes, a ValueError wherever upb refuses them."""

from __future__ import annotations

import random

from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from crossbook._core import decode_prepare_reply
from crossbook._proto import signer_pb2 as pb
from crossbook.signing.client import PreparedOrderReply, _prepared_reply

text = st.text(max_size=40)
replies = st.builds(
    lambda h, s, body, headers, a, blob: pb.PreparePolymarketOrderReply(
        hash=h, signature=s, body=body, headers=headers, audit=pb.Audit(**a), session_blob=blob
    ),
    text, text, st.binary(max_size=300), st.dictionaries(text, text, max_size=6),
    st.fixed_dictionaries({
        "request_id": text, "decision": st.sampled_from(["", "signed"]), "key": text, "notional": text,
        "cumulative": text, "signed_at_ms": st.integers(-(2**63), 2**63 - 1), "replayed": st.booleans(),
    }),
    st.binary(max_size=100),
)  # fmt: skip


def _upb(data: bytes) -> PreparedOrderReply | None:
    try:
        return _prepared_reply(pb.PreparePolymarketOrderReply.FromString(data))
    except DecodeError:
        return None


def _unknown(rng: random.Random) -> bytes:
    """One unknown field (number 7..40) of a random wire type, or a known number with the wrong wire type."""
    field = rng.choice([rng.randrange(7, 41), rng.randrange(1, 7)])
    wt = rng.choice([0, 1, 2, 5] if field >= 7 else [0, 1, 5])  # every known field is length-delimited
    tag = bytes([(field << 3 | wt)]) if field < 16 else bytes([(field << 3 | wt) & 0x7F | 0x80, (field << 3) >> 7])
    if wt == 0:
        return tag + bytes([rng.randrange(128)])
    if wt == 1:
        return tag + rng.randbytes(8)
    if wt == 5:
        return tag + rng.randbytes(4)
    payload = rng.randbytes(rng.randrange(6))
    return tag + bytes([len(payload)]) + payload


@settings(max_examples=400, deadline=None)
@given(m=replies, seed=st.integers(0, 2**32), deterministic=st.booleans())
def test_the_compiled_reader_reads_what_protobuf_reads(m: pb.PreparePolymarketOrderReply, seed: int,
                                                       deterministic: bool) -> None:  # fmt: skip
    rng = random.Random(seed)
    data = m.SerializeToString(deterministic=deterministic)
    # as sent: the same reply
    assert PreparedOrderReply(*decode_prepare_reply(data)) == _upb(data)
    # unknown fields, a repeated field or a second audit (merged), a header sent twice (the last wins)
    extra = pb.PreparePolymarketOrderReply(hash=rng.choice(["", "0xab"]), audit=pb.Audit(key="k2"),
                                           headers={rng.choice(list(m.headers) or ["x"]): "again"})  # fmt: skip
    odd = _unknown(rng) + data + _unknown(rng) + extra.SerializeToString() + _unknown(rng)
    want = _upb(odd)
    assert want is not None
    assert PreparedOrderReply(*decode_prepare_reply(odd)) == want
    # mutated bytes: a ValueError wherever protobuf refuses them, else (almost always) the same reply
    bad = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        if bad:
            i = rng.randrange(len(bad))
            bad[i] = rng.randrange(256) if rng.random() < 0.7 else 0xFF
    bad = bad[: rng.randrange(len(bad) + 1)] if rng.random() < 0.3 else bad
    want = _upb(bytes(bad))
    try:
        got = PreparedOrderReply(*decode_prepare_reply(bytes(bad)))
    except ValueError:
        got = None
    if want is None:
        assert got is None
    elif got is not None:
        assert got == want


def test_the_signers_own_reply_bytes() -> None:
    # What the signer's Rust encoder writes (field order, the audit's fixed "signed"): read as protobuf reads it.
    from tests.signer.test_prepare_compiled import make_service, prepare_request

    svc = make_service()
    for i in range(20):
        data = svc.prepare_order_raw(prepare_request(f"r-{i}", salt=i + 1).SerializeToString())
        assert isinstance(data, bytes)
        got = PreparedOrderReply(*decode_prepare_reply(data))
        assert got == _upb(data) and got.audit["decision"] == "signed" and got.headers["POLY_API_KEY"]
