"""BookSet's Kalshi sequence state per (stream, sid) through the Python binding."""

from __future__ import annotations

import orjson
import pytest

from crossbook import BookSet


def snap(sid: int, seq: int, ticker: str) -> bytes:
    return orjson.dumps({"type": "orderbook_snapshot", "sid": sid, "seq": seq, "msg": {
        "market_ticker": ticker, "yes_dollars_fp": [["0.4200", "13.00"]], "no_dollars_fp": [["0.5400", "20.00"]]}})


def delta(sid: int, seq: int, ticker: str, size: str = "1.00") -> bytes:
    return orjson.dumps({"type": "orderbook_delta", "sid": sid, "seq": seq, "msg": {
        "market_ticker": ticker, "price_dollars": "0.4100", "delta_fp": size, "side": "yes", "ts_ms": 1}})


def test_streams_keep_their_own_sequence() -> None:
    bs = BookSet()
    assert bs.apply("kalshi", snap(1, 1, "A"), 1, stream=1) == 1
    assert bs.apply("kalshi", snap(1, 1, "B"), 1, 2) == 1  # positional too
    for seq in range(2, 6):
        bs.apply("kalshi", delta(1, seq, "A"), 1, stream=1)
        bs.apply("kalshi", delta(1, seq, "B"), 1, stream=2)
    assert bs.stats()["gaps"] == 0
    assert bs.take_resync_streams() == []
    # a gap on stream 2 names stream 2, and only its market goes invalid
    bs.apply("kalshi", delta(1, 9, "B"), 1, stream=2)
    assert (bs.top("kalshi", "A")["valid"], bs.top("kalshi", "B")["valid"]) == (True, False)
    assert bs.book("kalshi", "B")["reason"] == (
        "sequence gap on sid 1 (stream 2): expected 6, got 9; waiting for a snapshot")
    assert bs.take_resync_streams() == [(2, 1, "B")]
    bs.apply("kalshi", delta(1, 10, "B", "-99.00"), 1, stream=2)  # invalid: not applied, nothing queued
    assert bs.take_resync() == []


def test_forget_stream_and_restart_at_seq_one() -> None:
    bs = BookSet()
    bs.apply("kalshi", snap(1, 1, "A"), 1, stream=7)
    bs.apply("kalshi", delta(1, 2, "A"), 1, stream=7)
    bs.take_changed()
    assert bs.forget_stream("polymarket", 7) == 0
    assert bs.forget_stream("kalshi", 7) == 1
    assert bs.book("kalshi", "A")["reason"] == "feed disconnected; waiting for a fresh snapshot"
    assert bs.take_changed() == [("kalshi", "A")]
    assert bs.forget_stream("kalshi", 7, "gone") == 0  # already invalid: reason kept
    bs.apply("kalshi", snap(1, 1, "A"), 1, stream=7)
    bs.apply("kalshi", delta(1, 2, "A"), 1, stream=7)
    assert bs.stats()["gaps"] == 0 and bs.top("kalshi", "A")["valid"]
    # the default stream is 0, as before: one connection's replay
    bs.apply("kalshi", snap(1, 1, "Z"))
    bs.apply("kalshi", delta(1, 2, "Z"))
    assert bs.stats()["gaps"] == 0
    with pytest.raises(OverflowError):
        bs.apply("kalshi", delta(1, 3, "Z"), 1, stream=-1)
    with pytest.raises(ValueError):
        bs.forget_stream("nasdaq", 1)
