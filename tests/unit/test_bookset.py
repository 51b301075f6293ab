"""crossbook._core.BookSet: the Python contract in _core.pyi, edge cases and properties."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossbook import BookSet
from crossbook.errors import CrossbookError, FrameError

STATS_KEYS = {"frames", "events", "malformed", "unknown", "pongs", "gaps", "ignored", "bba_mismatch"}


def pbook(asset: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]], **extra: str) -> bytes:
    return json.dumps(
        {
            "event_type": "book",
            "asset_id": asset,
            "bids": [{"price": p, "size": s} for p, s in bids],
            "asks": [{"price": p, "size": s} for p, s in asks],
            **extra,
        }
    ).encode()


def pchange(asset: str, *changes: tuple[str, str, str]) -> bytes:
    return json.dumps(
        {
            "event_type": "price_change",
            "market": "0x1",
            "price_changes": [{"asset_id": asset, "price": p, "side": s, "size": q} for p, s, q in changes],
            "timestamp": "1700000000000",
        }
    ).encode()


def ksnap(ticker: str, sid: int, seq: int, yes: list[list[str]], no: list[list[str]]) -> bytes:
    msg: dict[str, object] = {"market_ticker": ticker}
    if yes:
        msg["yes_dollars_fp"] = yes
    if no:
        msg["no_dollars_fp"] = no
    return json.dumps({"type": "orderbook_snapshot", "sid": sid, "seq": seq, "msg": msg}).encode()


def kdelta(ticker: str, sid: int, seq: int, side: str, price: str, delta: str) -> bytes:
    return json.dumps(
        {
            "type": "orderbook_delta",
            "sid": sid,
            "seq": seq,
            "msg": {"market_ticker": ticker, "price_dollars": price, "delta_fp": delta, "side": side},
        }
    ).encode()


def test_basic_contract() -> None:
    bs = BookSet()
    assert len(bs) == 0
    assert set(bs.stats()) == STATS_KEYS
    assert bs.apply("poly", pbook("A", [("0.40", "10"), ("0.45", "5.50")], [("0.55", "1")]), 2_000_000) == 1
    assert bs.apply("kalshi", ksnap("K", 1, 1, [["0.3000", "2.00"]], [["0.6000", "3.00"]]), 3_000_000) == 1
    assert len(bs) == 2
    assert bs.markets("polymarket") == ["A"] and bs.markets("poly") == ["A"] and bs.markets("kalshi") == ["K"]
    assert bs.top("polymarket", "A") == {
        "bid": "0.45",
        "bid_size": "5.5",
        "ask": "0.55",
        "ask_size": "1",
        "ts": 2,
        "valid": True,
    }
    assert bs.top("kalshi", "K") == {
        "bid": "0.3000",
        "bid_size": "2.00",
        "ask": "0.4000",
        "ask_size": "3.00",
        "ts": 3,
        "valid": True,
    }
    assert [b["venue"] for b in bs.books()] == ["polymarket", "kalshi"]
    assert bs.book("poly", "A", depth=1)["bids"] == [["0.45", "5.5"]]
    assert bs.book("poly", "A", depth=0)["bids"] == []
    assert bs.last_update_ns("poly", "A") == 2_000_000
    assert bs.last_update_ns("poly", "never") == 0
    assert bs.health("poly", "A") == (True, 2_000_000)  # the breaker's reading, in one call
    assert bs.take_changed() == [("polymarket", "A"), ("kalshi", "K")]
    assert bs.take_changed() == []
    assert "BookSet" in repr(bs)


def test_lookup_errors() -> None:
    bs = BookSet()
    with pytest.raises(KeyError):
        bs.book("poly", "nope")
    with pytest.raises(KeyError):
        bs.top("kalshi", "nope")
    with pytest.raises(KeyError):
        bs.health("kalshi", "nope")
    with pytest.raises(ValueError, match="unknown venue"):
        bs.apply("nyse", b"{}")
    with pytest.raises(ValueError, match="unknown venue"):
        bs.markets("Poly")
    bs.apply("poly", pbook("A", [], []))
    with pytest.raises(ValueError, match="depth"):
        bs.book("poly", "A", depth=-1)
    with pytest.raises(TypeError):
        bs.apply("poly", 42)  # type: ignore[arg-type]


def test_str_frames_pong_arrays_and_unknown() -> None:
    bs = BookSet()
    assert bs.apply("poly", "PONG") == 0
    assert bs.apply("poly", b"PONG") == 0
    assert bs.stats()["pongs"] == 2
    frame = b"[" + pbook("A", [("0.5", "1")], []) + b"," + pbook("B", [], [("0.6", "2")]) + b"]"
    assert bs.apply("poly", frame) == 2
    assert bs.markets("poly") == ["A", "B"]
    assert bs.apply("poly", '{"event_type":"something_new","asset_id":"A"}') == 0
    assert bs.apply("kalshi", '{"type":"something_new","sid":5,"msg":{}}') == 0
    assert bs.stats()["unknown"] == 2
    # Known non-book events count but change nothing.
    assert bs.apply("poly", b'{"event_type":"last_trade_price","asset_id":"Z","price":"0.5"}') == 1
    assert bs.apply("kalshi", b'{"type":"ticker","sid":3,"msg":{"market_ticker":"Z"}}') == 1
    assert len(bs) == 2


@pytest.mark.parametrize(
    ("venue", "frame", "needle"),
    [
        ("poly", b"{not json", "invalid JSON"),
        ("poly", b"", "empty"),
        ("poly", b'{"event_type":"book","asset_id":"A","bids":[{"price":"1.01","size":"1"}]}', "bids.price"),
        ("poly", b'{"event_type":"book","asset_id":"A","bids":[{"price":"-0.1","size":"1"}]}', "negative"),
        ("poly", b'{"event_type":"book","asset_id":"A","asks":[{"price":"0.1234567","size":"1"}]}', "decimal"),
        ("poly", pchange("A", ("0.5", "BUY", "lots")), "price_changes.size"),
        ("poly", b"\xff\xfe\x00", "UTF-8"),
        ("kalshi", kdelta("K", 1, 2, "yes", "0.5", "1e3"), "delta_fp"),
        ("kalshi", kdelta("K", 1, 2, "up", "0.5", "1"), "side"),
        ("kalshi", b"[]", "expected a JSON object"),
    ],
)
def test_garbage_raises_frame_error_and_changes_nothing(venue: str, frame: bytes, needle: str) -> None:
    bs = BookSet()
    bs.apply("poly", pbook("A", [("0.5", "1")], [("0.6", "1")]))
    bs.apply("kalshi", ksnap("K", 1, 1, [["0.5", "1"]], []))
    before = bs.books()
    bs.take_changed()
    with pytest.raises(FrameError) as ei:
        bs.apply(venue, frame)
    assert isinstance(ei.value, ValueError) and isinstance(ei.value, CrossbookError)
    msg = str(ei.value)
    assert msg.startswith("polymarket" if venue == "poly" else "kalshi")
    assert needle in msg
    assert bs.books() == before
    assert bs.take_changed() == []
    assert bs.stats()["malformed"] == 1
    assert bs.stats()["frames"] == 3


def test_error_message_is_short_for_huge_frames() -> None:
    bs = BookSet()
    huge = b'{"event_type":"book","asset_id":"' + b"x" * 100_000 + b'", "bids": [}'
    with pytest.raises(FrameError) as ei:
        bs.apply("poly", huge)
    assert len(str(ei.value)) < 300
    value = "9" * 5000
    with pytest.raises(FrameError) as ei:
        bs.apply("poly", pchange("A", (value, "BUY", "1")))
    assert len(str(ei.value)) < 300


def test_atomic_array() -> None:
    bs = BookSet()
    bs.apply("poly", pbook("A", [("0.5", "1")], []))
    frame = b"[" + pchange("A", ("0.5", "BUY", "0")) + b"," + pchange("A", ("0.4", "SELL", "x")) + b"]"
    with pytest.raises(FrameError):
        bs.apply("poly", frame)
    assert bs.book("poly", "A")["bids"] == [["0.5", "1"]]


def test_kalshi_gap_invalidates_and_queues_resync() -> None:
    bs = BookSet()
    bs.apply("kalshi", ksnap("A", 2, 1, [["0.40", "10"]], [["0.55", "4"]]))
    bs.apply("kalshi", ksnap("B", 2, 2, [["0.10", "1"]], []))
    bs.apply("kalshi", kdelta("A", 2, 3, "yes", "0.40", "-4"))
    assert bs.top("kalshi", "A")["bid_size"] == "6.00"
    bs.take_changed()
    bs.apply("kalshi", kdelta("A", 2, 7, "yes", "0.40", "1"))
    for t in ("A", "B"):
        book = bs.book("kalshi", t)
        assert book["valid"] is False
        assert book["reason"] == "sequence gap on sid 2: expected 4, got 7; waiting for a snapshot"
    assert bs.top("kalshi", "A")["bid_size"] == "6.00"  # the gap message itself is not applied
    assert bs.stats()["gaps"] == 1
    assert bs.take_resync() == [(2, "A"), (2, "B")]
    assert bs.take_resync() == []
    assert sorted(bs.take_changed()) == [("kalshi", "A"), ("kalshi", "B")]
    # Tracking goes on from 7: seq 8 is no gap; deltas are ignored until a snapshot arrives.
    bs.apply("kalshi", kdelta("A", 2, 8, "yes", "0.40", "1"))
    assert bs.stats()["gaps"] == 1 and bs.stats()["ignored"] == 2
    bs.apply("kalshi", ksnap("A", 2, 9, [["0.41", "1"]], []))
    assert bs.top("kalshi", "A") == {
        "bid": "0.4100",
        "bid_size": "1.00",
        "ask": None,
        "ask_size": None,
        "ts": 0,
        "valid": True,
    }
    assert bs.book("kalshi", "B")["valid"] is False
    # Other channels' sequence numbers never touch the books.
    bs.apply("kalshi", b'{"type":"trade","sid":5,"seq":1,"msg":{}}')
    bs.apply("kalshi", b'{"type":"trade","sid":5,"seq":9,"msg":{}}')
    assert bs.stats()["gaps"] == 1 and bs.book("kalshi", "A")["valid"] is True


def test_kalshi_negative_size_invalidates() -> None:
    bs = BookSet()
    bs.apply("kalshi", ksnap("A", 1, 1, [["0.40", "10"]], []))
    bs.apply("kalshi", kdelta("A", 1, 2, "yes", "0.40", "-11"))
    book = bs.book("kalshi", "A")
    assert book["valid"] is False and "would leave size -1.00" in (book["reason"] or "")
    assert book["bids"] == [["0.4000", "10.00"]]
    assert bs.take_resync() == [(1, "A")]


def test_kalshi_sub_cent_prices_and_fractional_sizes() -> None:
    bs = BookSet()
    bs.apply("kalshi", ksnap("A", 1, 1, [["0.0850", "1.5"]], [["0.905", "0.25"]]))
    book = bs.book("kalshi", "A")
    assert book["bids"] == [["0.0850", "1.50"]]
    assert book["asks"] == [["0.0950", "0.25"]]
    bs.apply("kalshi", kdelta("A", 1, 2, "yes", "0.08505", "1.125"))
    assert bs.book("kalshi", "A")["bids"][0] == ["0.08505", "1.125"]


def test_polymarket_tick_size_epoch() -> None:
    bs = BookSet()
    bs.apply("poly", pbook("A", [("0.5", "1")], [("0.6", "1")], tick_size="0.01"))
    bs.take_changed()
    tick = b'{"event_type":"tick_size_change","asset_id":"A","old_tick_size":"0.01","new_tick_size":"0.001"}'
    assert bs.apply("poly", tick) == 1
    book = bs.book("poly", "A")
    assert book["valid"] is False and book["bids"] == [] and book["asks"] == []
    assert book["reason"] == "tick size changed 0.01 -> 0.001; waiting for a new book snapshot"
    assert bs.take_changed() == [("polymarket", "A")]
    bs.apply("poly", pchange("A", ("0.555", "BUY", "3")))
    assert bs.book("poly", "A")["bids"] == []
    bs.apply("poly", pbook("A", [("0.555", "2")], []))
    assert bs.top("poly", "A")["valid"] is True
    bs.apply("poly", pchange("A", ("0.555", "BUY", "3")))
    assert bs.book("poly", "A")["bids"] == [["0.555", "3"]]


def test_price_change_without_snapshot_and_invalidate() -> None:
    bs = BookSet()
    bs.apply("poly", pchange("A", ("0.5", "BUY", "3")))
    assert bs.book("poly", "A") == {
        "venue": "polymarket",
        "market": "A",
        "bids": [],
        "asks": [],
        "valid": False,
        "reason": "no book snapshot yet",
    }
    bs.apply("poly", pbook("A", [("0.5", "1")], []))
    bs.apply("poly", pbook("B", [("0.5", "1")], []))
    bs.take_changed()
    assert bs.health("poly", "A")[0] is True
    bs.invalidate("poly", "A", "feed reconnecting")
    assert bs.book("poly", "A")["reason"] == "feed reconnecting"
    assert bs.health("poly", "A")[0] is False and bs.health("poly", "B")[0] is True
    assert bs.book("poly", "A")["bids"] == [["0.5", "1"]]
    assert bs.take_changed() == [("polymarket", "A")]
    bs.invalidate("polymarket", None, "all down")
    assert [b["reason"] for b in bs.books()] == ["all down", "all down"]
    bs.invalidate("poly", "never-seen", "x")  # a market never seen has nothing to invalidate
    assert len(bs) == 2


def test_clear_keeps_counters() -> None:
    bs = BookSet()
    bs.apply("poly", pbook("A", [("0.5", "1")], []))
    bs.clear()
    assert len(bs) == 0 and bs.books() == [] and bs.take_changed() == []
    assert bs.stats()["frames"] == 1


def test_ts_uses_venue_timestamp_without_recv_ns() -> None:
    bs = BookSet()
    bs.apply("poly", pbook("A", [], [], timestamp="1700000000999"))
    assert bs.top("poly", "A")["ts"] == 1700000000999
    bs.apply("poly", pbook("A", [], [], timestamp="1700000000999"), 1_800_000_000_000_000_000)
    assert bs.top("poly", "A")["ts"] == 1_800_000_000_000
    assert bs.last_update_ns("poly", "A") == 1_800_000_000_000_000_000


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["poly", "kalshi"]))
def test_any_bytes_never_crash(frame: bytes, venue: str) -> None:
    bs = BookSet()
    try:
        n = bs.apply(venue, frame)
    except FrameError:
        assert bs.stats()["malformed"] == 1
    else:
        assert n >= 0


def _fmt(d: Decimal) -> str:
    return format(d.normalize(), "f")


prices = st.integers(1, 999).map(lambda n: Decimal(n) / 1000)
sizes = st.integers(0, 10_000).map(lambda n: Decimal(n) / 100)
levels = st.lists(st.tuples(prices, sizes), max_size=6)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("book"), levels, levels),
        st.tuples(
            st.just("change"),
            st.lists(st.tuples(prices, st.sampled_from(["BUY", "SELL"]), sizes), min_size=1, max_size=4),
        ),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_polymarket_stream_matches_dict_model(stream: list[tuple[object, ...]]) -> None:
    bs = BookSet()
    model: dict[str, dict[Decimal, Decimal]] = {"BUY": {}, "SELL": {}}
    seen = False
    for op in stream:
        if op[0] == "book":
            bids, asks = op[1], op[2]
            assert isinstance(bids, list) and isinstance(asks, list)
            model = {"BUY": {}, "SELL": {}}
            for side, lv in (("BUY", bids), ("SELL", asks)):
                for p, q in lv:
                    model[side][p] = q
                model[side] = {p: q for p, q in model[side].items() if q != 0}
            bs.apply("poly", pbook("A", [(str(p), str(q)) for p, q in bids], [(str(p), str(q)) for p, q in asks]))
            seen = True
        else:
            changes = op[1]
            assert isinstance(changes, list)
            bs.apply("poly", pchange("A", *[(str(p), s, str(q)) for p, s, q in changes]))
            if seen:
                for p, s, q in changes:
                    if q == 0:
                        model[s].pop(p, None)
                    else:
                        model[s][p] = q
        book = bs.book("poly", "A")
        if not seen:
            assert book["bids"] == [] and book["valid"] is False
            continue
        assert book["bids"] == [[_fmt(p), _fmt(q)] for p, q in sorted(model["BUY"].items(), reverse=True)]
        assert book["asks"] == [[_fmt(p), _fmt(q)] for p, q in sorted(model["SELL"].items())]
