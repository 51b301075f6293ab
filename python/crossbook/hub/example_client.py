"""Minimal hub client: python -m crossbook.hub.example_client ws://127.0.0.1:8765/ TOKEN kalshi:TICKER ..."""

from __future__ import annotations

import asyncio
import json
import sys

from websockets.asyncio.client import connect


async def main(url: str, token: str, topics: list[str]) -> None:
    async with connect(url) as ws:
        await ws.send(json.dumps({"op": "auth", "token": token}))
        print(await ws.recv())
        await ws.send(json.dumps({"op": "subscribe", "topics": topics}))
        last: dict[str, int] = {}
        async for raw in ws:
            msg = json.loads(raw)
            if msg["type"] in ("snapshot", "update"):
                t, seq = msg["topic"], msg["seq"]
                if msg["type"] == "update" and t in last and seq != last[t] + 1:
                    print(f"gap on {t}: {last[t]} -> {seq}; asking for a snapshot")
                    await ws.send(json.dumps({"op": "snapshot", "topic": t}))
                last[t] = seq
            print(msg)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
