"""``crossbook book replay``: apply recorded frames and print the resulting books as JSON."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from crossbook._core import BookSet
from crossbook.errors import FrameError


def _frames_from_text(data: bytes) -> Iterator[bytes]:
    """A JSON array of frames, one JSON message, or JSON lines (anything unparsable stays a frame)."""
    stripped = data.strip()
    if not stripped:
        return
    try:
        doc: Any = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        doc = None
    else:
        if isinstance(doc, list):
            for item in doc:
                yield item.encode() if isinstance(item, str) else orjson.dumps(item)
            return
        yield stripped
        return
    for line in stripped.splitlines():
        line = line.strip()
        if line:
            yield line


def read_frames(source: str) -> Iterator[tuple[str, bytes]]:
    """Yield (where, frame) from a file, a directory of one-message files (sorted), or '-'."""
    if source == "-":
        for i, f in enumerate(_frames_from_text(sys.stdin.buffer.read()), 1):
            yield f"<stdin>#{i}", f
        return
    p = Path(source)
    paths = sorted(x for x in p.iterdir() if x.is_file()) if p.is_dir() else [p]
    for path in paths:
        for i, f in enumerate(_frames_from_text(path.read_bytes()), 1):
            yield f"{path.name}#{i}", f


def replay(
    venue: str,
    sources: list[str],
    *,
    kalshi_use_yes_price: bool = False,
    depth: int | None = None,
    err: IO[str] | None = None,
) -> dict[str, Any]:
    err = err or sys.stderr
    books = BookSet(kalshi_use_yes_price=kalshi_use_yes_price)
    applied = skipped = unknown = 0
    for where, frame in (wf for s in sources for wf in read_frames(s)):
        before = books.stats()["unknown"]
        try:
            n = books.apply(venue, frame)
        except FrameError as exc:
            skipped += 1
            print(f"skipped {where}: {exc}", file=err)
            continue
        if n == 0 and books.stats()["unknown"] > before:
            unknown += 1
            print(f"skipped {where}: unknown message type: {frame[:120]!r}", file=err)
            continue
        applied += 1
    print(f"replay: {applied} frames applied, {skipped} malformed, {unknown} unknown", file=err)
    return {"books": [books.book(b["venue"], b["market"], depth) for b in books.books()]}
