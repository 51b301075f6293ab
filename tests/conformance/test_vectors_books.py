"""Every shared Polymarket and Kalshi vector through the real ``BookSet``.

Book-bearing vectors are checked level by level against values derived here from the message
itself (with ``decimal``, independently of the Rust code); non-book messages must be accepted;
signing vectors and REST-shaped payloads must not crash the parser nor touch any book.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crossbook._core import BookSet
from crossbook.errors import FrameError

VECTORS = Path(os.environ.get("CROSSBOOK_VECTORS") or Path(__file__).parents[2].parent / "shared" / "vectors")
POLY = VECTORS / "polymarket"
KALSHI = VECTORS / "kalshi"

if not POLY.is_dir() or not KALSHI.is_dir():
    pytest.skip(f"shared vectors not found at {VECTORS} (set CROSSBOOK_VECTORS)", allow_module_level=True)

RECV_NS = 1_766_790_000_123_456_789
RECV_MS = RECV_NS // 1_000_000

# Signing known-answer vectors and REST responses: not WebSocket frames.
NOT_FRAMES = {
    "nt_rs_clob_book_response.json",
    "nt_rs_http_order_response_ok.json",
    "nt_rs_http_signed_order.json",
    "nt_http_orderbook.json",
    "ws_nt_py_trades.json",
}

# Vectors that carry book state, each with its own exact test below.
BOOK_BEARING = {
    "polymarket": {
        "ws_nt_py_book.json",
        "ws_nt_py_price_change.json",
        "ws_nt_py_price_change_v2.json",
        "ws_nt_py_tick_size_change.json",
        "nt_rs_ws_market_book_msg.json",
        "nt_rs_ws_market_price_change_msg.json",
        "nt_rs_ws_market_tick_size_msg.json",
        "nt_rs_ws_market_resolved_msg.json",
    },
    "kalshi": {
        "nt_ws_orderbook_snapshot.json",
        "nt_ws_orderbook_delta.json",
        "spec_orderbook_snapshot.json",
        "spec_orderbook_delta.json",
    },
}


def _files() -> list[tuple[str, Path]]:
    return [("polymarket", p) for p in sorted(POLY.glob("*.json"))] + [
        ("kalshi", p) for p in sorted(KALSHI.glob("*.json"))
    ]


def _not_a_frame(name: str) -> bool:
    return name.startswith("kat_") or name.startswith("nt_rs_http_") or name in NOT_FRAMES


def load(venue: str, name: str) -> Any:
    return json.loads((VECTORS / venue / name).read_bytes())


def raw(venue: str, name: str) -> bytes:
    return (VECTORS / venue / name).read_bytes()


def poly_str(d: Decimal) -> str:
    """Polymarket output form: minimal decimal ("0.5", "200", "1142.85")."""
    s = format(d.normalize(), "f")
    return s


def kalshi_str(d: Decimal, places: int) -> str:
    """Kalshi output form: at least ``places`` decimals, more only if needed."""
    s = format(d.normalize(), "f")
    whole, _, frac = s.partition(".")
    return f"{whole}.{frac.ljust(places, '0')}"


def poly_side(levels: list[dict[str, str]], best_high: bool) -> list[list[str]]:
    kept = [(Decimal(lv["price"]), Decimal(lv["size"])) for lv in levels if Decimal(lv["size"]) != 0]
    kept.sort(key=lambda pq: pq[0], reverse=best_high)
    return [[poly_str(p), poly_str(q)] for p, q in kept]


def kalshi_expected(msg: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    yes = [(Decimal(p), Decimal(q)) for p, q in msg.get("yes_dollars_fp", [])]
    no = [(Decimal(p), Decimal(q)) for p, q in msg.get("no_dollars_fp", [])]
    bids = sorted(yes, key=lambda pq: pq[0], reverse=True)
    asks = sorted(((1 - p, q) for p, q in no), key=lambda pq: pq[0])
    return (
        [[kalshi_str(p, 4), kalshi_str(q, 2)] for p, q in bids],
        [[kalshi_str(p, 4), kalshi_str(q, 2)] for p, q in asks],
    )


def synthetic_book(asset: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> bytes:
    return json.dumps(
        {
            "event_type": "book",
            "asset_id": asset,
            "market": "0x00",
            "bids": [{"price": p, "size": s} for p, s in bids],
            "asks": [{"price": p, "size": s} for p, s in asks],
            "timestamp": "1",
        }
    ).encode()


# ---------------------------------------------------------------------------------------------
# Every file


def test_vectors_present_and_classified() -> None:
    names = {(v, p.name) for v, p in _files()}
    assert len(names) >= 40
    for venue, expected in BOOK_BEARING.items():
        missing = expected - {n for v, n in names if v == venue}
        assert not missing, f"book-bearing vectors missing: {missing}"


@pytest.mark.parametrize(("venue", "path"), _files(), ids=lambda x: x.name if isinstance(x, Path) else x)
def test_every_vector(venue: str, path: Path) -> None:
    bs = BookSet()
    # A live book that no vector may disturb unless it is about that market.
    seed_market = "SEED-MARKET" if venue == "kalshi" else "1"
    if venue == "kalshi":
        bs.apply(
            "kalshi",
            b'{"type":"orderbook_snapshot","sid":900,"seq":1,"msg":{"market_ticker":"SEED-MARKET",'
            b'"yes_dollars_fp":[["0.4000","1.00"]],"no_dollars_fp":[["0.5000","2.00"]]}}',
            RECV_NS,
        )
    else:
        bs.apply("polymarket", synthetic_book(seed_market, [("0.4", "1")], [("0.6", "2")]), RECV_NS)
    seed_before = bs.book(venue, seed_market)
    data = path.read_bytes()

    if _not_a_frame(path.name):
        books_before = bs.books()
        try:
            n = bs.apply(venue, data, RECV_NS)
        except FrameError as e:
            assert len(str(e)) < 400
        else:
            assert n >= 0
        assert bs.books() == books_before, "a non-frame payload changed a book"
        return

    n = bs.apply(venue, data, RECV_NS)
    assert n >= 1, f"{path.name} was not recognised as a known message"
    assert bs.stats()["malformed"] == 0
    assert bs.book(venue, seed_market) == seed_before
    if path.name not in BOOK_BEARING[venue]:
        assert len(bs) == 1, "a non-book message created a book"
        assert bs.take_changed() == [(venue, seed_market)]


@pytest.mark.parametrize(("venue", "path"), _files(), ids=lambda x: x.name if isinstance(x, Path) else x)
def test_every_vector_as_str_and_in_array(venue: str, path: Path) -> None:
    """The same bytes as ``str`` give the same result; Polymarket events also work inside arrays."""
    if _not_a_frame(path.name):
        return
    a, b = BookSet(), BookSet()
    assert a.apply(venue, path.read_bytes(), RECV_NS) == b.apply(venue, path.read_text(), RECV_NS)
    assert a.books() == b.books()
    if venue == "polymarket":
        c = BookSet()
        c.apply(venue, b"[" + path.read_bytes() + b"," + path.read_bytes() + b"]", RECV_NS)
        assert c.books() == a.books()
        assert c.stats()["events"] == 2 * a.stats()["events"]


# ---------------------------------------------------------------------------------------------
# Polymarket books


def test_ws_nt_py_book_full_depth() -> None:
    msg = load("polymarket", "ws_nt_py_book.json")
    bs = BookSet()
    assert bs.apply("poly", raw("polymarket", "ws_nt_py_book.json"), RECV_NS) == 1
    asset = msg["asset_id"]
    book = bs.book("polymarket", asset)
    assert book == {
        "venue": "polymarket",
        "market": asset,
        "bids": poly_side(msg["bids"], best_high=True),
        "asks": poly_side(msg["asks"], best_high=False),
        "valid": True,
        "reason": None,
    }
    assert len(book["bids"]) == 76 and len(book["asks"]) == 86
    assert bs.top("poly", asset) == {
        "bid": "0.511",
        "bid_size": "1304.72",
        "ask": "0.514",
        "ask_size": "20230.87",
        "ts": RECV_MS,
        "valid": True,
    }
    assert bs.book("poly", asset, depth=2)["asks"] == [["0.514", "20230.87"], ["0.515", "43551.96"]]
    assert bs.last_update_ns("poly", asset) == RECV_NS
    assert bs.take_changed() == [("polymarket", asset)]


def test_ws_nt_py_price_change_legacy_shape() -> None:
    msg = load("polymarket", "ws_nt_py_price_change.json")
    bs = BookSet()
    # Without a snapshot the book exists but stays invalid and empty.
    assert bs.apply("poly", raw("polymarket", "ws_nt_py_price_change.json")) == 1
    assert bs.book("poly", msg["asset_id"]) == {
        "venue": "polymarket",
        "market": msg["asset_id"],
        "bids": [],
        "asks": [],
        "valid": False,
        "reason": "no book snapshot yet",
    }
    assert bs.top("poly", msg["asset_id"])["ts"] == int(msg["timestamp"])
    assert bs.stats()["ignored"] == 1
    # Same asset as ws_nt_py_book: SELL 0.514 sets the ask level's aggregate size.
    bs.apply("poly", raw("polymarket", "ws_nt_py_book.json"))
    bs.apply("poly", raw("polymarket", "ws_nt_py_price_change.json"))
    top = bs.top("poly", msg["asset_id"])
    assert (top["ask"], top["ask_size"], top["bid"], top["valid"]) == ("0.514", "21574.08", "0.511", True)
    book = bs.book("poly", msg["asset_id"])
    expected = poly_side(load("polymarket", "ws_nt_py_book.json")["asks"], best_high=False)
    expected[0] = ["0.514", "21574.08"]
    assert book["asks"] == expected


def test_ws_nt_py_price_change_v2_batched() -> None:
    msg = load("polymarket", "ws_nt_py_price_change_v2.json")
    assert msg.get("event_type") == "price_change"  # SOURCES.md says it has none; it does (last key)
    asset = msg["price_changes"][0]["asset_id"]
    bs = BookSet()
    bs.apply("poly", synthetic_book(asset, [("0.6", "100")], [("0.7", "50")]))
    assert bs.apply("poly", raw("polymarket", "ws_nt_py_price_change_v2.json"), RECV_NS) == 1
    book = bs.book("poly", asset)
    assert book["bids"] == [["0.7", "3400"], ["0.6", "3300"], ["0.5", "3400"]]
    assert book["asks"] == [["0.7", "50"]]
    # The third change (a BUY at 0.7) contradicts its own best_bid of 0.6: counted, not fatal.
    assert bs.stats()["bba_mismatch"] == 1
    assert book["valid"] is True


def test_nt_rs_book_price_change_and_tick_size() -> None:
    bs = BookSet()
    book_msg = load("polymarket", "nt_rs_ws_market_book_msg.json")
    asset = book_msg["asset_id"]
    assert bs.apply("poly", raw("polymarket", "nt_rs_ws_market_book_msg.json")) == 1
    assert bs.book("poly", asset) == {
        "venue": "polymarket",
        "market": asset,
        "bids": [["0.5", "200"], ["0.49", "350"]],
        "asks": [["0.51", "150"], ["0.52", "250"]],
        "valid": True,
        "reason": None,
    }
    assert bs.top("poly", asset)["ts"] == 1703875200000  # no recv_ns: the venue's timestamp
    assert bs.apply("poly", raw("polymarket", "nt_rs_ws_market_price_change_msg.json")) == 1
    assert bs.book("poly", asset)["bids"] == [["0.51", "150"], ["0.5", "200"], ["0.49", "350"]]
    assert bs.top("poly", asset)["ts"] == 1703875201000
    # The fixture's best_ask 0.52 disagrees with a book whose ask is still 0.51.
    assert bs.stats()["bba_mismatch"] == 1
    bs.take_changed()

    assert bs.apply("poly", raw("polymarket", "nt_rs_ws_market_tick_size_msg.json")) == 1
    book = bs.book("poly", asset)
    assert (book["bids"], book["asks"], book["valid"]) == ([], [], False)
    assert book["reason"] == "tick size changed 0.1 -> 0.01; waiting for a new book snapshot"
    assert bs.take_changed() == [("polymarket", asset)]
    # Updates in the new epoch wait for the next snapshot.
    bs.apply("poly", raw("polymarket", "nt_rs_ws_market_price_change_msg.json"))
    assert bs.book("poly", asset)["bids"] == []
    bs.apply("poly", raw("polymarket", "nt_rs_ws_market_book_msg.json"))
    assert bs.top("poly", asset)["valid"] is True


def test_ws_nt_py_tick_size_change() -> None:
    msg = load("polymarket", "ws_nt_py_tick_size_change.json")
    bs = BookSet()
    bs.apply("poly", synthetic_book(msg["asset_id"], [("0.5", "10")], [("0.51", "10")]))
    assert bs.apply("poly", raw("polymarket", "ws_nt_py_tick_size_change.json"), RECV_NS) == 1
    book = bs.book("poly", msg["asset_id"])
    assert (book["bids"], book["asks"], book["valid"]) == ([], [], False)
    assert book["reason"] == "tick size changed 0.01 -> 0.001; waiting for a new book snapshot"
    assert bs.top("poly", msg["asset_id"])["ts"] == RECV_MS


def test_nt_rs_market_resolved() -> None:
    msg = load("polymarket", "nt_rs_ws_market_resolved_msg.json")
    bs = BookSet()
    for a in msg["assets_ids"]:
        bs.apply("poly", synthetic_book(a, [("0.5", "1")], [("0.6", "1")]))
    bs.apply("poly", synthetic_book("other", [("0.5", "1")], []))
    assert bs.apply("poly", raw("polymarket", "nt_rs_ws_market_resolved_msg.json")) == 1
    for a in msg["assets_ids"]:
        book = bs.book("poly", a)
        assert book["valid"] is False
        assert book["reason"] == f"market resolved (winning outcome: {msg['winning_outcome']})"
    assert bs.book("poly", "other")["valid"] is True
    # Assets without a book are not created.
    assert BookSet().apply("poly", raw("polymarket", "nt_rs_ws_market_resolved_msg.json")) == 1


# ---------------------------------------------------------------------------------------------
# Kalshi books


def test_kalshi_nt_snapshot_then_delta() -> None:
    snap = load("kalshi", "nt_ws_orderbook_snapshot.json")
    ticker = snap["msg"]["market_ticker"]
    bs = BookSet()
    assert bs.apply("kalshi", raw("kalshi", "nt_ws_orderbook_snapshot.json"), RECV_NS) == 1
    bids, asks = kalshi_expected(snap["msg"])
    assert bids == [["0.4200", "13.00"], ["0.3500", "200.00"]]
    # YES ask = 1 - best NO bid = 1 - 0.56
    assert asks == [["0.4400", "17.00"], ["0.4600", "400.00"]]
    assert bs.book("kalshi", ticker) == {
        "venue": "kalshi",
        "market": ticker,
        "bids": bids,
        "asks": asks,
        "valid": True,
        "reason": None,
    }
    delta = load("kalshi", "nt_ws_orderbook_delta.json")
    assert delta["seq"] == snap["seq"] + 1 and delta["sid"] == snap["sid"]
    assert bs.apply("kalshi", raw("kalshi", "nt_ws_orderbook_delta.json"), RECV_NS + 1) == 1
    new_size = Decimal("13.00") + Decimal(delta["msg"]["delta_fp"])
    assert bs.top("kalshi", ticker) == {
        "bid": "0.4200",
        "bid_size": kalshi_str(new_size, 2),
        "ask": "0.4400",
        "ask_size": "17.00",
        "ts": RECV_MS,
        "valid": True,
    }
    assert bs.top("kalshi", ticker)["bid_size"] == "63.00"
    assert bs.stats()["gaps"] == 0


def test_kalshi_nt_delta_without_snapshot() -> None:
    delta = load("kalshi", "nt_ws_orderbook_delta.json")
    bs = BookSet()
    assert bs.apply("kalshi", raw("kalshi", "nt_ws_orderbook_delta.json")) == 1
    book = bs.book("kalshi", delta["msg"]["market_ticker"])
    assert (book["bids"], book["asks"], book["valid"], book["reason"]) == ([], [], False, "no book snapshot yet")
    assert bs.stats()["ignored"] == 1


def test_kalshi_spec_snapshot_then_delta() -> None:
    snap = load("kalshi", "spec_orderbook_snapshot.json")
    ticker = snap["msg"]["market_ticker"]
    bs = BookSet()
    assert bs.apply("kalshi", raw("kalshi", "spec_orderbook_snapshot.json")) == 1
    bids, asks = kalshi_expected(snap["msg"])
    assert bids == [["0.2200", "333.00"], ["0.0800", "300.00"]]
    assert asks == [["0.4400", "146.00"], ["0.4600", "20.00"]]
    book = bs.book("kalshi", ticker)
    assert (book["bids"], book["asks"], book["valid"]) == (bids, asks, True)
    # The spec's example delta removes 54 contracts at YES 0.96, a level the spec's snapshot does
    # not have: the book cannot be trusted any more and must be resynced.
    delta = load("kalshi", "spec_orderbook_delta.json")
    assert (delta["sid"], delta["seq"]) == (snap["sid"], snap["seq"] + 1)
    bs.take_changed()
    assert bs.apply("kalshi", raw("kalshi", "spec_orderbook_delta.json")) == 1
    book = bs.book("kalshi", ticker)
    assert book["valid"] is False
    assert book["reason"] is not None and "-54.00" in book["reason"] and "0.9600" in book["reason"]
    assert (book["bids"], book["asks"]) == (bids, asks)
    assert bs.take_resync() == [(snap["sid"], ticker)]
    assert bs.take_changed() == [("kalshi", ticker)]
    assert bs.top("kalshi", ticker)["ts"] == delta["msg"]["ts_ms"]


def test_kalshi_use_yes_price_reads_no_levels_as_asks() -> None:
    snap = load("kalshi", "nt_ws_orderbook_snapshot.json")
    bs = BookSet(kalshi_use_yes_price=True)
    bs.apply("kalshi", raw("kalshi", "nt_ws_orderbook_snapshot.json"))
    no = sorted(((Decimal(p), Decimal(q)) for p, q in snap["msg"]["no_dollars_fp"]), key=lambda x: x[0])
    assert bs.book("kalshi", snap["msg"]["market_ticker"])["asks"] == [
        [kalshi_str(p, 4), kalshi_str(q, 2)] for p, q in no
    ]
