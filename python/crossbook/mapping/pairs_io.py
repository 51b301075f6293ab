"""Reading candidate pairs in the ``shared/pairs`` schema, with errors that name the input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from crossbook.errors import ConfigError


def load_pairs(path: str | Path) -> list[dict[str, Any]]:
    """A JSON array of pairs, or JSON lines of pairs; ``-`` reads stdin."""
    import sys

    p = str(path)
    raw = sys.stdin.buffer.read() if p == "-" else Path(p).read_bytes()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            data = [orjson.loads(line) for line in raw.splitlines() if line.strip()]
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"{p}: not JSON (array or lines of pairs): {exc}") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ConfigError(f"{p}: expected a JSON array of pairs, got {type(data).__name__}")
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("polymarket"), dict) \
                or not isinstance(item.get("kalshi"), dict):
            raise ConfigError(f"{p}: pair #{i} needs 'polymarket' and 'kalshi' objects (see shared/pairs/README.md)")
        item.setdefault("id", f"#{i}")
    return data
