"""`crossbook book replay` as a user runs it: a subprocess, files in, JSON out, exit 0."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "crossbook", *args], input=stdin, capture_output=True, timeout=60)


K = "FED-23DEC-T3.00"


def kalshi_frames() -> list[str]:
    snap = {"type": "orderbook_snapshot", "sid": 2, "seq": 1, "msg": {
        "market_ticker": K, "yes_dollars_fp": [["0.0800", "300.00"], ["0.2200", "333.00"]],
        "no_dollars_fp": [["0.5400", "20.00"], ["0.5600", "146.00"]]}}
    d1 = {"type": "orderbook_delta", "sid": 2, "seq": 2, "msg": {
        "market_ticker": K, "price_dollars": "0.2200", "delta_fp": "-33.00", "side": "yes", "ts_ms": 1}}
    d2 = {"type": "orderbook_delta", "sid": 2, "seq": 3, "msg": {
        "market_ticker": K, "price_dollars": "0.5600", "delta_fp": "-146.00", "side": "no", "ts_ms": 2}}
    return [json.dumps(snap), "PONG?garbage", json.dumps(d1), json.dumps({"type": "mystery", "msg": {}}),
            json.dumps(d2)]


def test_replay_jsonl_with_noise(tmp_path: Path) -> None:
    f = tmp_path / "k.jsonl"
    f.write_text("\n".join(kalshi_frames()) + "\n")
    p = run("book", "replay", "--venue", "kalshi", str(f))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    (book,) = out["books"]
    assert book["venue"] == "kalshi" and book["market"] == K and book["valid"] is True
    assert [[Decimal(a), Decimal(b)] for a, b in book["bids"]] == [
        [Decimal("0.22"), Decimal("300")], [Decimal("0.08"), Decimal("300")]]
    # asks derived from NO bids: 1 - 0.54 = 0.46 (0.56 level removed by the delta)
    assert [[Decimal(a), Decimal(b)] for a, b in book["asks"]] == [[Decimal("0.46"), Decimal("20")]]
    err = p.stderr.decode()
    assert "k.jsonl#2" in err  # the garbage line is reported with where it was
    assert "unknown" in err


def test_replay_gap_never_healed_is_invalid_with_a_reason(tmp_path: Path) -> None:
    frames = [json.loads(x) for x in kalshi_frames() if x.startswith("{")]
    frames = [fr for fr in frames if fr["type"] != "mystery"]
    del frames[1]  # lose seq 2
    f = tmp_path / "k.json"
    f.write_text(json.dumps(frames))
    p = run("book", "replay", "--venue", "kalshi", str(f))
    assert p.returncode == 0
    (book,) = json.loads(p.stdout)["books"]
    assert book["valid"] is False
    assert "gap" in book["reason"]


def test_replay_polymarket_directory_of_messages(tmp_path: Path) -> None:
    asset = "123"
    (tmp_path / "01.json").write_text(json.dumps({"event_type": "book", "asset_id": asset, "market": "0xabc",
        "bids": [{"price": ".48", "size": "30"}, {"price": ".49", "size": "20"}],
        "asks": [{"price": ".52", "size": "25"}], "timestamp": "1", "hash": "h"}))
    (tmp_path / "02.json").write_text("PONG")
    (tmp_path / "03.json").write_text(json.dumps({"event_type": "price_change", "market": "0xabc",
        "price_changes": [{"asset_id": asset, "price": "0.49", "size": "0", "side": "BUY"},
                          {"asset_id": asset, "price": "0.51", "size": "5", "side": "SELL"}],
        "timestamp": "2"}))
    p = run("book", "replay", "--venue", "polymarket", str(tmp_path))
    assert p.returncode == 0, p.stderr
    (book,) = json.loads(p.stdout)["books"]
    assert [[Decimal(a), Decimal(b)] for a, b in book["bids"]] == [[Decimal("0.48"), Decimal("30")]]
    assert [[Decimal(a), Decimal(b)] for a, b in book["asks"]] == [
        [Decimal("0.51"), Decimal("5")], [Decimal("0.52"), Decimal("25")]]
    assert book["valid"] is True and book["reason"] is None


def test_replay_missing_file_is_a_clear_error() -> None:
    p = run("book", "replay", "--venue", "kalshi", "/nonexistent.jsonl")
    assert p.returncode == 1
    assert b"no such file" in p.stderr


def test_help_explains_commands() -> None:
    p = run("--help")
    assert p.returncode == 0
    for word in (b"demo", b"daemon", b"book"):
        assert word in p.stdout


def test_verify_top_invalidates_a_book_that_disagrees_with_the_venue() -> None:
    from crossbook import BookSet

    book = json.dumps({"event_type": "book", "asset_id": "A", "market": "0xm", "timestamp": "1",
                       "bids": [{"price": "0.40", "size": "10"}], "asks": [{"price": "0.45", "size": "10"}]})
    ok = json.dumps({"event_type": "price_change", "market": "0xm", "timestamp": "2", "price_changes": [
        {"asset_id": "A", "price": "0.41", "size": "5", "side": "BUY", "best_bid": "0.41", "best_ask": "0.45"}]})
    bad = json.dumps({"event_type": "price_change", "market": "0xm", "timestamp": "3", "price_changes": [
        {"asset_id": "A", "price": "0.30", "size": "5", "side": "BUY", "best_bid": "0.42", "best_ask": "0.45"}]})
    for strict in (False, True):
        b = BookSet(polymarket_verify_top=strict)
        for f in (book, ok, bad):
            b.apply("polymarket", f)
        assert b.stats()["bba_mismatch"] == 1
        assert b.book("polymarket", "A")["valid"] is not strict
        assert b.take_poly_resync() == (["A"] if strict else [])
        if strict:
            assert "best bid/ask (0.42/0.45 vs ours 0.41/0.45)" in b.book("polymarket", "A")["reason"]
            b.apply("polymarket", book)
            assert b.book("polymarket", "A")["valid"]
