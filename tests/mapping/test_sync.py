"""`crossbook pairs sync` against the real venue simulators and a real (embedded) PostgreSQL.

Covers candidate generation on the public pairs, a full sync, idempotent re-runs, verdict keys, the
market_pairs policy, and a sync killed with SIGKILL half-way and run again: nothing lost, nothing re-judged.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from crossbook.errors import FeedError
from crossbook.mapping.candidates import generate, thresholds_compatible
from crossbook.mapping.consensus import offline_consensus
from crossbook.mapping.sync import (
    _kalshi_market_list,
    fetch_kalshi,
    fetch_kalshi_catalog,
    fetch_polymarket,
    gamma_markets_url,
    kalshi_events_url,
    kalshi_markets_url,
    run_sync,
    texts_key,
)
from crossbook.store.postgres import list_pairs, migrate
from crossbook.venues.kalshi.sim import CATALOG as KALSHI_CATALOG
from crossbook.venues.kalshi.sim import KalshiSim
from crossbook.venues.polymarket.sim import CATALOG as POLY_CATALOG
from crossbook.venues.polymarket.sim import PolymarketSim

PAIRS = Path("/work/shared/pairs/public_pairs.json")
for _up in Path(__file__).resolve().parents:
    if (_up / "shared" / "pairs" / "public_pairs.json").exists():
        PAIRS = _up / "shared" / "pairs" / "public_pairs.json"
        break

# Pairs in the sims' catalogs that are truly the same contract (labelled equivalent / inverted in shared/pairs).
TRUE_PAIRS = {
    "nba-nyk-por-2026-03-12~KXNBAGAME-26MAR12NYKPOR-NYK", "nba-nyk-por-2026-03-12~KXNBAGAME-26MAR12NYKPOR-POR",
    "nfl-kc-buf-2025-11-02~KXNFLGAME-25NOV02KCBUF-KC", "june-2026-cpi-mom-above-0pt3~KXCPI-26JUN-T0.3",
    "highest-temperature-in-chicago-90f-or-higher-july-20-2026~KXHIGHCHI-26JUL20-T89",
    "ethereum-above-3999-on-september-30-5pm-et~KXETHD-26SEP3017-T3999.99",
    "highest-temperature-in-philadelphia-80f-or-higher-may-18-2026~KXHIGHPHIL-26MAY18-T80",
    "fed-decreases-interest-rates-by-25-bps-after-march-2026-meeting~KXFEDDECISION-26MAR-C25",
    "will-the-seattle-seahawks-win-super-bowl-2026~KXSB-26-SEA",
    "will-arsenal-win-the-2025-26-english-premier-league~KXPREMIERLEAGUE-26-ARS",
    "will-gavin-newsom-win-the-2028-democratic-presidential-nomination-568~KXPRESNOMD-28-GN",
}


@pytest.fixture
async def sims() -> AsyncIterator[tuple[PolymarketSim, KalshiSim]]:
    poly, kal = PolymarketSim(catalog=POLY_CATALOG), KalshiSim(catalog=KALSHI_CATALOG)
    await poly.start()
    await kal.start()
    try:
        yield poly, kal
    finally:
        await poly.stop()
        await kal.stop()


def test_catalog_slugs_are_the_ones_the_tests_name() -> None:
    slugs = {e[1] for e in POLY_CATALOG}
    tickers = {e[0] for e in KALSHI_CATALOG}
    for ref in TRUE_PAIRS:
        slug, ticker = ref.split("~")
        assert slug in slugs and ticker in tickers, ref


@pytest.mark.skipif(not PAIRS.exists(), reason="shared/pairs not present")
def test_candidates_cover_every_true_public_pair() -> None:
    pairs = json.loads(PAIRS.read_text())
    polys = [dict(p["polymarket"], _id=p["id"]) for p in pairs]
    kals = [dict(p["kalshi"], _id=p["id"]) for p in pairs]
    got = {(c.poly["_id"], c.kalshi["_id"]) for c in generate(polys, kals)}
    missed = [p["id"] for p in pairs if p["label"] != "different" and (p["id"], p["id"]) not in got]
    assert missed == []
    assert len(got) <= 3 * len(pairs)  # blocking keeps the judge's work near linear, not 30 x 30


def test_threshold_blocking() -> None:
    from decimal import Decimal as D

    assert thresholds_compatible({D("3999.99")}, {D(4000)})
    assert thresholds_compatible({D(90)}, {D(89)})
    assert not thresholds_compatible({D(90)}, {D(95)})
    assert thresholds_compatible(set(), {D(95)})


def test_urls_from_config() -> None:
    assert gamma_markets_url("https://clob.polymarket.com") == "https://gamma-api.polymarket.com/markets"
    assert gamma_markets_url("http://127.0.0.1:9/") == "http://127.0.0.1:9/gamma/markets"
    assert kalshi_markets_url("https://api.elections.kalshi.com/trade-api/v2") == \
        "https://api.elections.kalshi.com/trade-api/v2/markets"
    assert kalshi_markets_url("http://127.0.0.1:9") == "http://127.0.0.1:9/trade-api/v2/markets"


async def test_catalogs_carry_what_the_extractor_needs(sims: tuple[PolymarketSim, KalshiSim]) -> None:
    poly, kal = sims
    polys = await fetch_polymarket(gamma_markets_url(poly.rest_url))
    kals = await fetch_kalshi(kalshi_markets_url(kal.rest_url))
    assert len(polys) == len(POLY_CATALOG) + len(poly.markets)
    assert len(kals) == len(KALSHI_CATALOG) + len(kal.markets)
    nba = next(p for p in polys if p["slug"] == "nba-nyk-por-2026-03-12")
    assert nba["outcomes"] == ["Yes", "No"] and nba["condition_id"].startswith("0x") and len(nba["clob_token_ids"]) == 2
    assert nba["end_date_iso"] == "2026-03-13T05:00:00Z" and "official final score" in nba["description"]
    k = next(m for m in kals if m["ticker"] == "KXNBAGAME-26MAR12NYKPOR-NYK")
    assert k["rules_secondary"] and k["close_time"] and k["expiration_time"] and k["yes_sub_title"] == "New York"


async def test_kalshi_cursor_paging(sims: tuple[PolymarketSim, KalshiSim]) -> None:
    import crossbook.mapping.sync as sync

    _, kal = sims
    old = sync.KALSHI_PAGE
    sync.KALSHI_PAGE = 3
    try:
        kals = await fetch_kalshi(kalshi_markets_url(kal.rest_url))
    finally:
        sync.KALSHI_PAGE = old
    assert [m["ticker"] for m in kals] == list(kal.markets) + [e[0] for e in KALSHI_CATALOG]


async def test_kalshi_events_api_nested_markets_and_cursor_paging(sims: tuple[PolymarketSim, KalshiSim]) -> None:
    """GET /trade-api/v2/events?with_nested_markets=true, two events a page: the same markets as the markets API,
    each carrying its event ticker, every page's cursor followed to the end."""
    import crossbook.mapping.sync as sync

    _, kal = sims
    assert kalshi_events_url(kal.rest_url) == kal.rest_url.rstrip("/") + "/trade-api/v2/events"
    raw = await sync.fetch_json(kalshi_events_url(kal.rest_url) + "?limit=2")
    assert len(raw["events"]) == 2 and raw["cursor"] and "markets" not in raw["events"][0]  # not nested unless asked
    pages: list[int] = []
    old = sync.KALSHI_EVENTS_PAGE
    sync.KALSHI_EVENTS_PAGE = 2
    try:
        by_events = await fetch_kalshi_catalog(kalshi_events_url(kal.rest_url), on_page=pages.append)
    finally:
        sync.KALSHI_EVENTS_PAGE = old
    by_markets = await fetch_kalshi_catalog(kalshi_markets_url(kal.rest_url))
    events = {e[1] for e in KALSHI_CATALOG} | {t.rsplit("-", 1)[0] for t in kal.markets}
    assert len(pages) == -(-len(events) // 2) and pages == sorted(pages) and pages[-1] == len(by_events)
    assert sorted(m["ticker"] for m in by_events) == sorted(m["ticker"] for m in by_markets)
    nyk = next(m for m in by_events if m["ticker"] == "KXNBAGAME-26MAR12NYKPOR-NYK")
    assert nyk["event_ticker"] == "KXNBAGAME-26MAR12NYKPOR" and nyk["rules_secondary"] and nyk["expiration_time"]


def test_kalshi_catalog_errors_are_clear() -> None:
    with pytest.raises(FeedError, match="nested 'markets'"):
        _kalshi_market_list({"events": [{"event_ticker": "KXSB-26"}], "cursor": ""}, "http://x/events")
    with pytest.raises(FeedError, match="expected"):
        _kalshi_market_list({"markets": []}, "http://x/events")
    with pytest.raises(FeedError, match="ends in /trade-api/v2/events or"):
        asyncio.run(fetch_kalshi_catalog("http://127.0.0.1:9/trade-api/v2/series"))


async def _counts(conn: Any) -> tuple[int, int]:
    v = await conn.fetchval("SELECT count(*) FROM verdicts")
    a = await conn.fetchval("SELECT count(*) FROM audit_log WHERE actor = 'mapping-sync'")
    return int(v), int(a)


async def test_sync_stores_verdicts_and_is_idempotent(sims: tuple[PolymarketSim, KalshiSim], pg_url: str) -> None:
    poly, kal = sims
    await migrate(pg_url)
    polys = await fetch_polymarket(gamma_markets_url(poly.rest_url))
    kals = await fetch_kalshi(kalshi_markets_url(kal.rest_url))
    conn = await asyncpg.connect(pg_url)
    try:
        rep = await run_sync(conn, polys, kals, offline_consensus(), progress=False)
        assert rep.judged == rep.candidates > 0 and rep.already_judged == 0
        assert set(rep.verified_pairs) <= TRUE_PAIRS, set(rep.verified_pairs) - TRUE_PAIRS
        assert len(rep.verified_pairs) >= 8
        verdicts, audits = await _counts(conn)
        assert verdicts == audits == rep.judged
        stored = await list_pairs(conn)
        assert stored and all(p["logic_status"] == "Verified" for p in stored)
        # one pair per market on each venue: the Knicks market pairs with NYK (same) or POR (inverted), not both
        nyk = [p for p in stored if p["kalshi_ticker"].startswith("KXNBAGAME-26MAR12NYKPOR")]
        assert len(nyk) == 1 and rep.conflicts == 1
        # a re-run judges nothing
        again = await run_sync(conn, polys, kals, offline_consensus(), progress=False)
        assert again.judged == 0 and again.already_judged == rep.candidates
        assert await _counts(conn) == (verdicts, audits)
        # a changed rule text is a new question: only that pair is judged again, and a lost Verified is demoted
        kal_nyk = next(m for m in kals if m["ticker"] == nyk[0]["kalshi_ticker"])
        kal_nyk["rules_secondary"] += " The market may be settled at the Exchange's discretion."
        third = await run_sync(conn, polys, kals, offline_consensus(), progress=False)
        assert third.judged >= 1 and third.verified == 0
        row = next(p for p in await list_pairs(conn) if p["kalshi_ticker"] == nyk[0]["kalshi_ticker"])
        assert row["logic_status"] == "Unverified" and row["polarity"] is None
        # every verdict is keyed; keys are unique per (texts, extractors, judge)
        dup = await conn.fetchval("SELECT count(*) - count(DISTINCT texts_sha256) FROM verdicts")
        assert dup == 0
    finally:
        await conn.close()


def test_texts_key_changes_with_any_resolution_text() -> None:
    p = {"polymarket": {"condition_id": "0x1", "question": "q", "description": "d", "outcomes": ["Yes", "No"],
                        "end_date_iso": "2026-01-01T00:00:00Z"},
         "kalshi": {"ticker": "KX", "title": "t", "yes_sub_title": "s", "rules_primary": "r", "rules_secondary": "",
                    "close_time": "c", "expiration_time": "e"}}
    base = texts_key(p)
    for side, k in (("polymarket", "description"), ("kalshi", "rules_secondary"), ("kalshi", "expiration_time")):
        q = json.loads(json.dumps(p))
        q[side][k] += "x"
        assert texts_key(q) != base
    q = json.loads(json.dumps(p))
    q["polymarket"]["slug"] = "other"  # not a resolution text
    assert texts_key(q) == base


def _games(n: int) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, str, str, str, str, str, str, str]]]:
    """n copies of the Knicks/Blazers game on different days (each a true pair with its own Kalshi market)."""
    q, _slug, desc, _end = POLY_CATALOG[0]
    kal = KALSHI_CATALOG[0]
    polys, kals = [], []
    for i in range(n):
        day = 1 + i % 28
        month, mon = ("March", "Mar") if i < 28 else ("April", "Apr")
        polys.append((q, f"nba-nyk-por-2026-{month[:3].lower()}-{day:02d}",
                      desc.replace("March 12, 2026", f"{month} {day}, 2026"), f"2026-{3 + (i >= 28):02d}-{day:02d}"))
        t = f"KXNBAGAME-26{mon.upper()}{day:02d}NYKPOR-NYK"
        # two weeks after the game, as the rules say (a market expiring before its game is not verifiable)
        closes = (datetime(2026, 3 + (i >= 28), day, 5, tzinfo=UTC) + timedelta(days=14)).strftime("%Y-%m-%dT%H:%M:%SZ")
        kals.append((t, t.rsplit("-", 1)[0], kal[2], kal[3], kal[4].replace("Mar 12, 2026", f"{mon} {day}, 2026"),
                     kal[5].replace("Mar 12, 2026", f"{mon} {day}, 2026"), closes, closes))
    return polys, kals


async def _run_cli(args: list[str]) -> asyncio.subprocess.Process:
    env = {**os.environ, "CROSSBOOK_POSTGRES_URL": ""}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crossbook.cli", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)


async def test_sync_killed_midway_loses_nothing_and_rejudges_nothing(pg_url: str) -> None:
    pc, kc = _games(40)
    poly, kal = PolymarketSim(markets=1, catalog=pc), KalshiSim(markets=1, catalog=kc)
    await poly.start()
    await kal.start()
    await migrate(pg_url)
    args = ["pairs", "sync", "--offline", "--no-progress", "--gamma-url", gamma_markets_url(poly.rest_url),
            "--kalshi-url", kalshi_events_url(kal.rest_url), "--db-url", pg_url]
    conn = await asyncpg.connect(pg_url)
    try:
        proc = await _run_cli([*args, "--rate", "40", "--concurrency", "4"])
        for _ in range(600):  # wait until some, not all, verdicts are in, then SIGKILL (no cleanup at all)
            if (await _counts(conn))[0] >= 15:
                break
            await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        before = {r["texts_sha256"]: r["id"] for r in await conn.fetch("SELECT id, texts_sha256 FROM verdicts")}
        assert 15 <= len(before), "the sync finished or never started before the kill"
        proc = await _run_cli(args)
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()[-2000:]
        rep = json.loads(out)
        assert rep["already_judged"] == len(before) and rep["judged"] == rep["candidates"] - len(before) > 0
        after = {r["texts_sha256"]: r["id"] for r in await conn.fetch("SELECT id, texts_sha256 FROM verdicts")}
        assert len(after) == rep["candidates"] and all(after[k] == v for k, v in before.items())
        verdicts, audits = await _counts(conn)
        assert verdicts == audits == rep["candidates"]
        assert len([p for p in await list_pairs(conn) if p["logic_status"] == "Verified"]) == 40
        proc = await _run_cli(args)  # and once more: nothing to do
        out, _ = await proc.communicate()
        assert json.loads(out)["judged"] == 0
        proc = await _run_cli(["pairs", "list", "--json", "--db-url", pg_url])
        out, _ = await proc.communicate()
        assert len(json.loads(out)) == 40
        proc = await _run_cli(["pairs", "list", "--db-url", pg_url])
        out, _ = await proc.communicate()
        assert b"verified of 40" in out and b"KXNBAGAME-26MAR01NYKPOR-NYK" in out
    finally:
        await conn.close()
        await poly.stop()
        await kal.stop()
