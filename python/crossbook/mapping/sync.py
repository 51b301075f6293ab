"""``crossbook pairs sync``: both catalogs -> candidates -> consensus -> verdicts in PostgreSQL.

Also turns verdicts into store records (``pairs judge --store``). Each verdict is committed on its own as
soon as it is known and keyed by a hash of both markets' texts (plus who judged), so a re-run judges
nothing twice and a run killed half-way loses at most the judgements that were in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from crossbook.errors import FeedError
from crossbook.mapping import candidates
from crossbook.mapping.consensus import Consensus, Verdict
from crossbook.store.postgres import VerdictRecord


def to_record(pair: Mapping[str, Any], v: Verdict) -> tuple[VerdictRecord, str, str]:
    poly = pair.get("polymarket") or {}
    kal = pair.get("kalshi") or {}
    cond = poly.get("condition_id") or poly.get("conditionId") or poly.get("slug")
    rec = VerdictRecord(
        pair_ref=v.id, poly_condition_id=str(cond) if cond else None,
        kalshi_ticker=str(kal["ticker"]) if kal.get("ticker") else None, status=v.status, polarity=v.polarity,
        extractor_a=v.extractor_a, extractor_b=v.extractor_b, judge=v.judge, reasons=v.reasons,
        extractions=v.extractions, checks=v.checks, prompts=v.prompts, raw_replies=v.raw_replies,
    )
    return rec, str(poly.get("question") or ""), str(kal.get("title") or "")


# ------------------------------------------------------------------------------------------- pairs sync

FETCH_TIMEOUT_S = 20.0
GAMMA_PAGE = 500
KALSHI_PAGE = 1000
MAX_PAGES = 200


def _get_json(url: str, timeout: float) -> Any:
    req = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "crossbook-sync"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return orjson.loads(resp.read())
    except (OSError, ValueError) as exc:
        raise FeedError(f"catalog fetch {url} failed: {exc}; check the venue URL (--gamma-url/--kalshi-url)") from exc


async def fetch_json(url: str, timeout: float = FETCH_TIMEOUT_S) -> Any:
    """GET a JSON document off the event loop (urllib in a thread), with a timeout."""
    return await asyncio.to_thread(_get_json, url, timeout)


def _json_list(v: Any) -> list[Any]:
    """Gamma sends ``outcomes`` and ``clobTokenIds`` as JSON-encoded strings."""
    if isinstance(v, str):
        try:
            v = orjson.loads(v)
        except orjson.JSONDecodeError:
            return []
    return list(v) if isinstance(v, list) else []


def polymarket_side(m: Mapping[str, Any]) -> dict[str, Any]:
    """A Gamma market in the shared/pairs ``polymarket`` schema (plus condition id and token ids)."""
    return {
        "question": str(m.get("question") or ""),
        "description": str(m.get("description") or ""),
        "outcomes": [str(o) for o in _json_list(m.get("outcomes"))],  # none: the verifier says unknown
        "end_date_iso": str(m.get("endDate") or m.get("end_date_iso") or ""),
        "slug": str(m.get("slug") or ""),
        "condition_id": str(m.get("conditionId") or m.get("condition_id") or ""),
        "clob_token_ids": [str(t) for t in _json_list(m.get("clobTokenIds"))],
    }


KALSHI_FIELDS = ("ticker", "title", "yes_sub_title", "rules_primary", "rules_secondary", "close_time",
                 "expiration_time")


def kalshi_side(m: Mapping[str, Any]) -> dict[str, Any]:
    """A Kalshi v2 market in the shared/pairs ``kalshi`` schema."""
    return {k: str(m.get(k) or "") for k in KALSHI_FIELDS}


async def fetch_polymarket(gamma_markets_url: str, timeout: float = FETCH_TIMEOUT_S) -> list[dict[str, Any]]:
    """Open Gamma markets, paged with limit/offset until a short page."""
    out: list[dict[str, Any]] = []
    sep = "&" if "?" in gamma_markets_url else "?"
    for page in range(MAX_PAGES):
        data = await fetch_json(f"{gamma_markets_url}{sep}active=true&closed=false&limit={GAMMA_PAGE}"
                                f"&offset={page * GAMMA_PAGE}", timeout)
        if not isinstance(data, list):
            raise FeedError(f"{gamma_markets_url}: expected a JSON array of markets, got {type(data).__name__}")
        out.extend(polymarket_side(m) for m in data if isinstance(m, dict))
        if len(data) < GAMMA_PAGE:
            break
    return [m for m in out if m["condition_id"] and m["description"]]


async def fetch_kalshi(markets_url: str, timeout: float = FETCH_TIMEOUT_S) -> list[dict[str, Any]]:
    """Open Kalshi markets, paged by cursor until it comes back empty."""
    out: list[dict[str, Any]] = []
    cursor = ""
    sep = "&" if "?" in markets_url else "?"
    for _ in range(MAX_PAGES):
        url = f"{markets_url}{sep}status=open&limit={KALSHI_PAGE}" + (f"&cursor={quote(cursor)}" if cursor else "")
        data = await fetch_json(url, timeout)
        if not isinstance(data, dict) or not isinstance(data.get("markets"), list):
            raise FeedError(f"{markets_url}: expected {{'markets': [...], 'cursor': ...}}")
        out.extend(kalshi_side(m) for m in data["markets"] if isinstance(m, dict))
        cursor = str(data.get("cursor") or "")
        if not cursor:
            break
    return [m for m in out if m["ticker"] and m["rules_primary"]]


KALSHI_EVENTS_PAGE = 200  # the venue's maximum page size for /events


def _kalshi_market_list(data: Any, url: str) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise FeedError(f"{url}: expected {{'events': [...], 'cursor': ...}}")
    out: list[dict[str, Any]] = []
    for ev in data["events"]:
        if not isinstance(ev, dict):
            continue
        markets = ev.get("markets")
        if not isinstance(markets, list):
            # without nested markets an event is useless here: say so rather than silently sync nothing
            raise FeedError(f"{url}: event {ev.get('event_ticker')!r} has no nested 'markets' list "
                            "(with_nested_markets=true not honoured?)")
        for m in markets:
            if isinstance(m, dict):
                out.append({**kalshi_side(m), "event_ticker": str(m.get("event_ticker") or ev.get("event_ticker")
                                                                  or "")})
    return out


async def fetch_kalshi_events(events_url: str, timeout: float = FETCH_TIMEOUT_S,
                              on_page: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Open Kalshi events with their markets nested (``GET /events?with_nested_markets=true``), paged by cursor.

    The events listing leaves out multivariate (combo) events, which never pair with a Polymarket market, so it is
    far smaller than ``/markets`` on the real venue. ``on_page`` gets the running market count after each page.
    """
    out: list[dict[str, Any]] = []
    cursor = ""
    sep = "&" if "?" in events_url else "?"
    for _ in range(MAX_PAGES):
        url = (f"{events_url}{sep}status=open&with_nested_markets=true&limit={KALSHI_EVENTS_PAGE}"
               + (f"&cursor={quote(cursor)}" if cursor else ""))
        data = await fetch_json(url, timeout)
        out.extend(_kalshi_market_list(data, events_url))
        if on_page is not None:
            on_page(len(out))
        cursor = str(data.get("cursor") or "")
        if not cursor:
            break
    else:
        raise FeedError(f"{events_url}: more than {MAX_PAGES} pages; refusing to sync a partial catalog")
    seen: set[str] = set()
    unique = []
    for m in out:  # a market listed twice across pages (the catalog moved under the cursor) is judged once
        if m["ticker"] and m["rules_primary"] and m["ticker"] not in seen:
            seen.add(m["ticker"])
            unique.append(m)
    return unique


async def fetch_kalshi_catalog(url: str, timeout: float = FETCH_TIMEOUT_S,
                               on_page: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """The events API for an ``.../events`` URL, the markets API for an ``.../markets`` URL."""
    path = url.split("?", 1)[0].rstrip("/")
    if path.endswith("/events"):
        return await fetch_kalshi_events(url, timeout, on_page)
    if path.endswith("/markets"):
        return await fetch_kalshi(url, timeout)
    raise FeedError(f"{url}: a Kalshi catalog URL ends in /trade-api/v2/events or /trade-api/v2/markets")


def texts_key(pair: Mapping[str, Any]) -> str:
    """sha256 over both markets' ids and resolution texts: the same key means the same question to judge."""
    poly, kal = pair.get("polymarket") or {}, pair.get("kalshi") or {}
    doc = {"polymarket": {k: poly.get(k) for k in ("condition_id", "question", "description", "outcomes",
                                                   "end_date_iso")},
           "kalshi": {k: kal.get(k) for k in KALSHI_FIELDS}}
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class SyncReport:
    polymarket_markets: int = 0
    kalshi_markets: int = 0
    candidates: int = 0
    already_judged: int = 0
    judged: int = 0
    verified: int = 0
    inverted: int = 0
    conflicts: int = 0
    extractor_a: str = ""
    extractor_b: str = ""
    judge: str = ""
    verified_pairs: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Pacer:
    """At most ``rate`` consensus starts per second (paid model APIs have rate limits); 0 means no limit."""

    def __init__(self, rate: Decimal) -> None:
        self.gap = 0.0 if rate <= 0 else float(1 / rate)
        self.next = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.gap:
            return
        async with self.lock:
            loop = asyncio.get_running_loop()
            delay = self.next - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.next = max(self.next, loop.time()) + self.gap


async def run_sync(conn: Any, polys: Sequence[Mapping[str, Any]], kalshis: Sequence[Mapping[str, Any]],
                   consensus: Consensus, *, concurrency: int = 8, rate: Decimal = Decimal(0),
                   progress: bool = True) -> SyncReport:
    """Judge every candidate not yet judged for the same texts; each verdict is committed as it arrives."""
    from crossbook.store.postgres import judged_keys, record_sync_verdict

    rep = SyncReport(len(polys), len(kalshis), extractor_a=consensus.a.name, extractor_b=consensus.b.name,
                     judge=consensus.judge_model.name)
    cands = candidates.generate(polys, kalshis)
    rep.candidates = len(cands)
    done = await judged_keys(conn, rep.extractor_a, rep.extractor_b, rep.judge)
    todo: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for c in cands:
        pair = {"id": f"{c.poly.get('slug') or c.poly.get('condition_id')}~{c.kalshi.get('ticker')}",
                "polymarket": dict(c.poly), "kalshi": dict(c.kalshi)}
        key = texts_key(pair)
        if key in done or key in seen:
            rep.already_judged += key in done
            continue
        seen.add(key)
        todo.append((key, pair))
    sem, pacer = asyncio.Semaphore(max(1, concurrency)), _Pacer(rate)

    async def one(key: str, pair: dict[str, Any]) -> tuple[str, dict[str, Any], Verdict]:
        async with sem:
            await pacer.wait()
            return key, pair, await consensus.run(pair)

    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("verified {task.fields[verified]}"), TimeElapsedColumn(), console=console,
                  disable=not progress, transient=False) as bar:
        task = bar.add_task("judging candidate pairs", total=len(todo), verified=0)
        tasks = [asyncio.ensure_future(one(k, p)) for k, p in todo]
        try:
            for fut in asyncio.as_completed(tasks):
                key, pair, v = await fut
                rec, pt, kt = to_record(pair, v)
                vid = await record_sync_verdict(conn, rec, key, pt, kt)
                if vid is None:
                    rep.already_judged += 1
                else:
                    rep.judged += 1
                    if v.status == "Verified":
                        rep.verified += 1
                        rep.inverted += v.polarity == "inverted"
                        rep.verified_pairs.append(v.id)
                bar.update(task, advance=1, verified=rep.verified)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    rep.conflicts = int(await conn.fetchval(
        "SELECT count(*) FROM audit_log WHERE actor = 'mapping-sync' AND detail->>'market_pairs' = 'conflict'"))
    rep.verified_pairs.sort()
    return rep


def gamma_markets_url(rest_url: str) -> str:
    """Gamma's markets endpoint for a configured Polymarket REST URL (the simulator serves it under /gamma)."""
    from crossbook.config import POLYMARKET_REST

    if rest_url.rstrip("/") == POLYMARKET_REST:
        return GAMMA_MARKETS
    return rest_url.rstrip("/") + "/gamma/markets"


def kalshi_markets_url(rest_url: str) -> str:
    base = rest_url.rstrip("/")
    return base + ("/markets" if base.endswith("/trade-api/v2") else "/trade-api/v2/markets")


def kalshi_events_url(rest_url: str) -> str:
    base = rest_url.rstrip("/")
    return base + ("/events" if base.endswith("/trade-api/v2") else "/trade-api/v2/events")


GAMMA_MARKETS = "https://gamma-api.polymarket.com/markets"
