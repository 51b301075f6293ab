"""The hub's JSON wire protocol: topics, message builders, errors (spec: docs/hub-protocol.md)."""

from __future__ import annotations

import re
from typing import Any

import orjson

from crossbook.errors import CrossbookError

PROTOCOL_VERSION = 1

# "polymarket:<asset id>", "kalshi:<ticker>", "execute:<pair id>"
_TOPIC = re.compile(r"^(polymarket|kalshi|execute):([A-Za-z0-9._\-]{1,128})$")
# "private:<venue>": the authenticated user's own tunnel; it names no user, so it cannot name another's.
_PRIVATE = re.compile(r"^(private):(kalshi|polymarket)$")
MARKET_KINDS = ("polymarket", "kalshi")


class HubError(CrossbookError, RuntimeError):
    """The hub could not start or serve (bad certificate, port in use, ...)."""


class ProtocolError(CrossbookError, ValueError):
    """A client message broke the protocol; ``code`` is the machine-readable error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_topic(topic: object) -> tuple[str, str]:
    """Split and validate a topic; raises ProtocolError("bad_topic")."""
    if not isinstance(topic, str) or (m := _TOPIC.match(topic) or _PRIVATE.match(topic)) is None:
        if isinstance(topic, str) and topic.startswith("private:"):
            raise ProtocolError(
                "bad_topic",
                f"topic {topic!r}: private topics are exactly 'private:kalshi' or 'private:polymarket' "
                "and always mean your own account",
            )
        raise ProtocolError(
            "bad_topic",
            f"topic {topic!r} is not 'polymarket:<asset>', 'kalshi:<ticker>', 'execute:<pair id>' "
            "or 'private:<venue>'",
        )
    return m.group(1), m.group(2)


def is_private(topic: str) -> bool:
    return topic.startswith("private:")


def is_market(topic: str) -> bool:
    return topic.split(":", 1)[0] in MARKET_KINDS


def update_msg(topic: str, seq: int, data: Any) -> bytes:
    return orjson.dumps({"type": "update", "topic": topic, "seq": seq, "data": data})


def snapshot_msg(topic: str, seq: int, data: Any) -> bytes:
    return orjson.dumps({"type": "snapshot", "topic": topic, "seq": seq, "data": data})


def reply(kind: str, req_id: Any = None, **fields: Any) -> bytes:
    msg: dict[str, Any] = {"type": kind, **fields}
    if req_id is not None:
        msg["id"] = req_id
    return orjson.dumps(msg)


def error_msg(code: str, message: str, req_id: Any = None, **fields: Any) -> bytes:
    return reply("error", req_id, code=code, message=message, **fields)


def top_data(top: Any) -> dict[str, Any]:
    """Message ``data`` for a market from ``BookSet.top()`` (decimal strings; no prices when invalid)."""
    valid = bool(top["valid"])
    return {
        "bid": top["bid"] if valid else None,
        "bid_size": top["bid_size"] if valid else None,
        "ask": top["ask"] if valid else None,
        "ask_size": top["ask_size"] if valid else None,
        "ts": top["ts"],
        "valid": valid,
    }
