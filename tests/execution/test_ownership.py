"""Recovery takes only intents whose executor is gone: a live executor's unfinished intent is never
touched by another, and a dead one's is claimed by exactly one recoverer."""

from __future__ import annotations

import uuid

from crossbook.execution import ExecutionStore
from crossbook.store.postgres import migrate


async def test_only_a_dead_owners_intents_are_claimed_and_only_once(pg_url: str) -> None:
    await migrate(pg_url)
    a, b, c = [await ExecutionStore.connect(pg_url) for _ in range(3)]
    try:
        intent = str(uuid.uuid4())
        await a.intent_started(intent, "pair", "p", {"size": "1"}, legs=[{"leg": "leg1", "client_order_id": "x"}])
        assert await b.open_intents() == []  # a is alive: hands off
        await a.release_owner()  # a dies (its session lock goes with its connection)
        claimed = await b.open_intents()
        assert [i["id"] for i in claimed] == [intent] and claimed[0]["legs"][0]["client_order_id"] == "x"
        assert await c.open_intents() == []  # b claimed it and is alive
        assert await b.open_intents() == []  # and b does not claim its own twice
    finally:
        for s in (a, b, c):
            await s.close()
