"""``_core.prepare_order_frame``: the signer client's PreparePolymarketOrder frame made in one compiled call.
It must carry exactly the message the client builds with protobuf (the signer's fingerprint is taken over
the canonical form, so both makings of one request are one request), and hand back None, never a wrong
frame, for whatever only the client's own rules may judge."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from crossbook._core import PolymarketOrderRequest, prepare_order_frame
from crossbook._proto import signer_pb2 as pb
from crossbook.signing.client import SignerClient
from crossbook.signing.fastframe import HEADER, METHOD_IDS

METHOD = METHOD_IDS["PreparePolymarketOrder"]
FIELDS = ["salt", "maker", "signer", "tokenId", "makerAmount", "takerAmount", "side", "signatureType",
          "timestamp", "metadata", "builder", "expiration", "ünïcode", ""]  # fmt: skip


def random_order(rng: random.Random) -> dict[str, object]:
    order: dict[str, object] = {}
    for name in rng.sample(FIELDS, rng.randint(0, len(FIELDS))):
        kind = rng.random()
        if kind < 0.5:
            order[name] = "".join(rng.choice("0123456789abcdefxBUYSELL é€\x00") for _ in range(rng.randint(0, 70)))
        elif kind < 0.9:
            order[name] = rng.choice([0, -1, 1, 2**63, 2**64 + 5, -(2**100), rng.randrange(10**30)])
        else:
            order[name] = None
    return order


def test_the_frame_carries_the_message_the_client_builds() -> None:
    rng = random.Random(7)
    client = SignerClient("/nonexistent.sock")
    for n in range(600):
        order = random_order(rng)
        wallet, session = (f"w{n}", None) if n % 2 else (None, f"s{n}" if n % 3 else "")
        rid = rng.choice(["", "r" * rng.randint(1, 80), f"id-{n}"])
        account, otype = rng.choice(["acct", "", "ключ"]), rng.choice(["FOK", "FAK", "GTC", ""])
        call_id = rng.randrange(2**32)
        frame = prepare_order_frame(METHOD, call_id, rid, order, account=account, order_type=otype, wallet=wallet,
                                    session_id=session)  # fmt: skip
        assert frame is not None
        length, kind, cid = HEADER.unpack_from(frame)
        assert (length, kind, cid) == (len(frame) - 4, METHOD, call_id)
        got = pb.PreparePolymarketOrderRequest.FromString(frame[HEADER.size :])
        want = client._prepare_request(order, account, otype, wallet, session, rid or None)
        if not rid:  # the client makes an id when given none; the frame is made with the id the client chose
            want.request_id = ""
        assert got == want
        # ... and in canonical form: what the signer fingerprints, byte for byte
        assert frame[HEADER.size :] == want.SerializeToString(deterministic=True)
        if rid:
            assert PolymarketOrderRequest(frame[HEADER.size :]).fingerprint == PolymarketOrderRequest(
                want.SerializeToString()
            ).fingerprint


@pytest.mark.parametrize(
    ("order", "keys"),
    [
        ({"salt": True}, {"wallet": "w"}),  # bool is not an amount
        ({"salt": 1.5}, {"wallet": "w"}),
        ({"makerAmount": Decimal("1")}, {"wallet": "w"}),
        ({"salt": 2**130}, {"wallet": "w"}),  # past 128 bits: protobuf's str() decides
        ({1: "x"}, {"wallet": "w"}),  # a key that is not text
        ({"salt": "1"}, {}),  # neither key
        ({"salt": "1"}, {"wallet": "w", "session_id": "s"}),  # both
    ],
)
def test_what_only_the_client_may_judge_gets_none(order: dict[Any, object], keys: dict[str, str]) -> None:
    assert prepare_order_frame(METHOD, 1, "r", order, account="a", order_type="FOK", **keys) is None
