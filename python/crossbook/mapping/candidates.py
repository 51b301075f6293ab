"""Cheap candidate generation: which Polymarket/Kalshi markets are worth a (costly) consensus run.

Blocking first (a pair must share a year, compatible thresholds and, where Kalshi's YES subtitle names someone,
that name), then rapidfuzz on normalized titles. Candidates only decide what gets judged: a candidate is never
more than a question, so generous blocking costs judge time, not safety.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from rapidfuzz import fuzz

from crossbook.mapping.offline import DATE_RE, parse_date

MIN_SCORE = Decimal(45)  # rapidfuzz 0..100 on normalized titles; below this a pair is not judged
PER_MARKET = 6  # at most this many Kalshi candidates per Polymarket market (best scores first)
SAME_DAY_BONUS = Decimal(25)  # recurring markets (a team's games, daily highs) differ only by their date

_STOP = {"will", "the", "a", "an", "be", "of", "in", "on", "at", "for", "to", "by", "or", "and", "is", "win",
         "wins", "winner", "vs", "v", "what", "which", "who", "when", "how", "than", "this", "that", "market"}
# Kalshi YES subtitles that describe a bucket, not a named entity.
_GENERIC_SUB = {"above", "below", "before", "after", "cut", "hike", "hold", "yes", "no", "or", "to", "more", "less",
                "than", "between", "declared", "recession", "at", "least", "most", "over", "under", "president", "of"}


def normalize_title(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    t = re.sub(r"\bvs\.?\b", " vs ", t)
    t = re.sub(r"[^a-z0-9$%.' ]+", " ", t)
    return " ".join(w.strip(".'") for w in t.split() if w.strip(".'") and w.strip(".'") not in _STOP)


def years(*texts: str) -> set[int]:
    out: set[int] = set()
    for t in texts:
        out.update(int(y) for y in re.findall(r"\b(20\d\d)\b", t))
        for a, b in re.findall(r"\b(20\d\d)[-–/](\d\d)\b", t):  # "2025-26" season
            out.add(int(a[:2] + b))
    return out


_THRESH = re.compile(r"(?P<dollar>\$)?(?P<n>\d[\d,]*(?:\.\d+)?)(?P<k>k\b)?\s*(?P<unit>°|%|bps|basis points)?",
                     re.I)


def thresholds(text: str) -> set[Decimal]:
    """Numbers that look like a strike: with $, °, %, bps, or right after above/below/than/least/most."""
    out: set[Decimal] = set()
    for m in _THRESH.finditer(text):
        before = text[max(0, m.start() - 12):m.start()].lower()
        cue = re.search(r"(?:above|below|than|least|most|over|under)\s*$", before)
        if not (m.group("dollar") or m.group("unit") or cue):
            continue
        try:
            v = Decimal(m.group("n").replace(",", ""))
        except InvalidOperation:
            continue
        out.add(v * 1000 if m.group("k") else v)
    return out


def thresholds_compatible(a: set[Decimal], b: set[Decimal]) -> bool:
    """No strike on one side, or two strikes within one unit or 1% (90 vs 89, $3,999.99 vs $4,000)."""
    if not a or not b:
        return True
    return any(abs(x - y) <= 1 or abs(x - y) <= abs(y) / 100 for x in a for y in b)


def dates(*texts: str) -> set[str]:
    """Calendar days named in full ("March 12, 2026", "Mar 12, 2026") as ISO dates."""
    out: set[str] = set()
    for t in texts:
        for m in re.finditer(DATE_RE, t):
            try:
                out.add(parse_date(m.group(0)).isoformat())
            except ValueError:
                continue
    return out


def _entity_tokens(sub: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z][A-Za-z'.]{2,}", sub) if w.lower() not in _GENERIC_SUB}


@dataclass(frozen=True)
class Candidate:
    poly: Mapping[str, Any]
    kalshi: Mapping[str, Any]
    score: Decimal


@dataclass(frozen=True)
class _K:
    market: Mapping[str, Any]
    title: str
    years: frozenset[int]
    strikes: frozenset[Decimal]
    entity: frozenset[str]
    days: frozenset[str]


def generate(polys: Sequence[Mapping[str, Any]], kalshis: Sequence[Mapping[str, Any]], *,
             min_score: Decimal = MIN_SCORE, per_market: int = PER_MARKET) -> list[Candidate]:
    """Candidate pairs, best first per Polymarket market; markets are dicts in the shared/pairs side schema."""
    by_year: dict[int, list[_K]] = defaultdict(list)
    by_name: dict[str, list[_K]] = defaultdict(list)
    for km in kalshis:
        title = f"{km.get('title') or ''} {km.get('yes_sub_title') or ''}"
        ys = years(title, str(km.get("rules_primary") or ""), str(km.get("close_time") or ""),
                   str(km.get("expiration_time") or ""))
        item = _K(km, normalize_title(title), frozenset(ys), frozenset(thresholds(title)),
                  frozenset(_entity_tokens(str(km.get("yes_sub_title") or ""))),
                  frozenset(dates(title, str(km.get("rules_primary") or ""), str(km.get("rules_secondary") or ""))))
        for y in ys:
            by_year[y].append(item)
        for w in item.entity:  # long-dated "before 2029" markets share no year but name their subject
            by_name[w].append(item)
    out: list[Candidate] = []
    for p in polys:
        q, desc = str(p.get("question") or ""), str(p.get("description") or "")
        ys = years(q, desc, str(p.get("end_date_iso") or ""))
        strikes, words = thresholds(q), set(re.findall(r"[a-z][a-z'.]+", f"{q} {desc}".lower()))
        pool = {id(k): k for y in ys for k in by_year.get(y, ())}
        pool.update((id(k), k) for w in words for k in by_name.get(w, ()))
        pq, pd = normalize_title(q), normalize_title(desc[:400])
        days = dates(q, desc)
        scored: list[Candidate] = []
        for k in pool.values():
            if not thresholds_compatible(strikes, set(k.strikes)):
                continue
            if k.entity and not (k.entity & words):
                continue
            rules = normalize_title(str(k.market.get("rules_primary") or ""))
            # the description names the teams/people in full where the question uses nicknames
            best = max(fuzz.token_set_ratio(pq, k.title), fuzz.token_set_ratio(pq, rules),
                       fuzz.token_set_ratio(pd, k.title) - 10)
            score = Decimal(str(round(best, 1)))
            if days & k.days:
                score += SAME_DAY_BONUS
            if score >= min_score:
                scored.append(Candidate(p, k.market, score))
        scored.sort(key=lambda c: (-c.score, str(c.kalshi.get("ticker"))))
        out.extend(scored[:per_market])
    return out
