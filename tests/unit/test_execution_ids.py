"""crossbook.execution.models.new_id: the canonical text of a random version-4 UUID."""

from __future__ import annotations

import uuid

from crossbook.execution.models import LegOrder, new_id


def test_new_id_is_a_canonical_random_v4_uuid() -> None:
    ids = [new_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        u = uuid.UUID(text)
        assert str(u) == text and u.version == 4 and u.variant == uuid.RFC_4122
    # all four variant digits occur (the variant nibble keeps two random bits)
    assert {text[19] for text in ids} == set("89ab")


def test_leg_orders_get_fresh_client_order_ids() -> None:
    from decimal import Decimal

    a, b = (LegOrder("kalshi", "T", "buy", "yes", Decimal("0.5"), Decimal(1), "FOK", "entry", "leg1", "i", "p")
            for _ in range(2))  # fmt: skip
    assert a.client_order_id != b.client_order_id and uuid.UUID(a.client_order_id).version == 4
