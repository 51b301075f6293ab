"""Offline rules for tennis match winners (ITF / ATP / WTA singles), Polymarket's and Kalshi's templates.

A match is pinned down by the tour, the tournament, the round, the date and both players; the YES player must be
named in full on both venues (two players can share a surname in one draw). What happens when the match does not
start, when a player retires or is disqualified, and when it is postponed are void tags that must agree. Anything
off-template is an unknown, which vetoes the pair.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from crossbook.mapping.criteria import Criteria

_MONTHS = {m: i + 1 for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                           "nov", "dec"])}
_DATE = r"(?:January|February|March|April|May|June|July|August|September|October|November|December) \d{1,2}, \d{4}"
_NAME = r"[A-Z][A-Za-z'-]*(?: [A-Z][A-Za-z'-]*)*"  # a player's name: capitalised words (no template syntax)
_ROUND = (r"Round of (?:128|64|32|16)|First Round|Second Round|Third Round|Fourth Round|Quarterfinals?|"
          r"Semifinals?|Final|Qualifying(?: Round \d)?")
_TOUR = r"ITF|ATP|WTA"

_POLY_INTRO = re.compile(rf"This market refers to the (?P<a>{_NAME}) vs (?P<b>{_NAME}) (?P<g>men|women)'s singles "
                         rf"match in the (?P<round>{_ROUND}) of the (?P<tour>{_TOUR}) (?P<t>[A-Z0-9][\w .'-]*?), "
                         rf"scheduled for (?P<d>{_DATE})\.")
_POLY_YES = re.compile(rf'This market will resolve to "Yes" if (?P<yes>{_NAME}) wins the match\.')
_POLY_NO = re.compile(rf'It will resolve to "No" if (?P<no>{_NAME}) wins\.')
_POLY_VOID = {
    "If the match does not start (walkover, withdrawal before the first ball, or cancellation), this market will "
    "resolve 50-50.": "nostart:5050",
    "If a player retires or is disqualified after the match has started, the player who advances will be "
    "considered the winner.": "retire:advancer_wins",
    "If the match is postponed, this market will remain open until it is completed, up to two weeks after the "
    "scheduled date.": "postpone:open_14d",
}
_POLY_SOURCE = re.compile(rf"The resolution source is the official (?P<tour>{_TOUR}) website\.")

_K_PRIMARY = re.compile(rf"If (?P<yes>{_NAME}) wins the (?P<a>{_NAME}) vs (?P<b>{_NAME}) professional tennis match "
                        rf"in the (?P<y>\d{{4}}) (?P<t>[A-Z0-9][\w .'-]*?) (?P<round>{_ROUND}) after a ball has been "
                        r"played, then the market resolves to Yes\.")
_K_VOID = {
    "If the match does not occur (signaled by a ball being played) due to a player injury, walkover, forfeiture, "
    "or any other cancellation (all before the match starts), all markets will resolve to $0.50.": "nostart:5050",
    # the player who withdraws or forfeits after the start resolves No, i.e. the one who advances wins
    "If a player withdraws or forfeits after a match has started, that player will resolve to No.":
        "retire:advancer_wins",
    "If this match is postponed or delayed, the market will remain open and close after the rescheduled match has "
    "finished (within two weeks).": "postpone:open_14d",
}
_K_TICKER = re.compile(r"KX(?P<series>ITF|ITFW|ATP|WTA)MATCH-(?P<yy>\d{2})(?P<mon>[A-Z]{3})(?P<dd>\d{2})[A-Z0-9]+-"
                       r"[A-Z0-9]+")


def _norm_round(r: str) -> str:
    return r.lower().removesuffix("s")  # "Quarterfinals" = "Quarterfinal"


def _iso(text: str) -> str:
    m = re.fullmatch(r"([A-Za-z]+) (\d{1,2}), (\d{4})", text)
    assert m is not None
    return date(int(m.group(3)), _MONTHS[m.group(1)[:3].lower()], int(m.group(2))).isoformat()


def _gender(tour: str, tournament: str) -> str | None:
    """men/women from the tour, or from an ITF tournament's category letter (M15, W25)."""
    if tour == "ATP":
        return "men"
    if tour == "WTA":
        return "women"
    first = tournament[:1]
    return {"M": "men", "W": "women"}.get(first) if re.match(r"[MW]\d", tournament) else None


def _players(yes: str, a: str, b: str, unknowns: list[str]) -> tuple[str | None, str | None]:
    """The YES player's full name and the opponent as named in "a vs b" (surnames); None when inconsistent."""
    words = yes.split()
    if len(words) < 2:
        unknowns.append(f"YES player {yes!r} is not named in full (a draw can hold two players of one surname)")
        return None, None
    if yes.endswith(" " + a) and not yes.endswith(" " + b):
        return yes, b
    if yes.endswith(" " + b) and not yes.endswith(" " + a):
        return yes, a
    unknowns.append(f"YES player {yes!r} is not exactly one of {a!r}, {b!r}")
    return None, None


def _crit(f: dict[str, Any], void: set[str], unknowns: list[str], placeholders: tuple[str, ...]) -> Criteria:
    subject = None
    if all(f.get(k) for k in ("tour", "gender", "tournament", "round", "year")):
        subject = f"tennis_match|{f['tour']}|{f['gender']}|{f['tournament']}|{f['round']}|{f['year']}"
    return Criteria(
        family="game_winner", subject=subject, entity=f.get("yes"), counterparty=f.get("no"), comparator="wins",
        unit="outcome", window_start=f.get("date"), window_end=f.get("date"), timezone="scheduled date",
        source=f.get("source"), yes_outcome=f"{f.get('yes')} wins the match", void_rules=tuple(sorted(void)),
        draws_possible=False, placeholders=placeholders, unknowns=tuple(unknowns))


def polymarket_tennis(sents: list[str], placeholders: tuple[str, ...]) -> Criteria | None:
    """Criteria when the description is the tennis match template; None when it is not a tennis market."""
    if not sents or not sents[0].startswith("This market refers to the ") or "singles match" not in sents[0]:
        return None
    unknowns: list[str] = []
    f: dict[str, Any] = {}
    void: set[str] = set()
    m = _POLY_INTRO.fullmatch(sents[0])
    if not m:
        return _crit(f, void, [f"tennis intro not understood: {sents[0][:100]}"], placeholders)
    a, b = m.group("a"), m.group("b")
    f.update(tour=m.group("tour").lower(), tournament=m.group("t").lower(), round=_norm_round(m.group("round")),
             date=_iso(m.group("d")), year=m.group("d")[-4:])
    gender = _gender(m.group("tour"), m.group("t"))
    if gender != m.group("g"):
        unknowns.append(f"{m.group('g')}'s singles does not fit {m.group('tour')} {m.group('t')}")
    f["gender"] = gender if gender == m.group("g") else None
    yes_name = no_name = None
    for s in sents[1:]:
        if (y := _POLY_YES.fullmatch(s)) is not None:
            yes_name = y.group("yes")
        elif (n := _POLY_NO.fullmatch(s)) is not None:
            no_name = n.group("no")
        elif s in _POLY_VOID:
            void.add(_POLY_VOID[s])
        elif (src := _POLY_SOURCE.fullmatch(s)) is not None:
            if src.group("tour") != m.group("tour"):
                unknowns.append(f"source {src.group('tour')} is not the match's tour {m.group('tour')}")
            f["source"] = f"official_result:{src.group('tour').lower()}"
        else:
            unknowns.append(f"sentence not understood: {s[:100]}")
    if yes_name is None or no_name is None:
        unknowns.append("the YES and NO players are not both named")
    else:
        yes, other = _players(yes_name, a, b, unknowns)
        if other is not None and no_name != other:
            unknowns.append(f"NO player {no_name!r} is not the YES player's opponent {other!r}")
        f.update(yes=yes, no=other)
    return _crit(f, void, unknowns, placeholders)


def kalshi_tennis(market: Mapping[str, Any], primary: str, secondary_sents: list[str],
                  placeholders: tuple[str, ...]) -> Criteria | None:
    if "professional tennis match" not in primary:
        return None
    unknowns: list[str] = []
    f: dict[str, Any] = {}
    void: set[str] = set()
    m = _K_PRIMARY.fullmatch(primary)
    if not m:
        return _crit(f, void, [f"rules_primary not understood: {primary[:100]}"], placeholders)
    tm = _K_TICKER.fullmatch(str(market.get("ticker") or ""))
    if tm is None:
        unknowns.append(f"ticker {market.get('ticker')!r} does not name a tennis tour's match series")
    else:
        series = tm.group("series")
        tour = "itf" if series.startswith("ITF") else series.lower()
        mon = _MONTHS.get(tm.group("mon").lower())
        if mon is None:
            unknowns.append(f"ticker month {tm.group('mon')!r} is not a month")
        else:
            f["date"] = date(2000 + int(tm.group("yy")), mon, int(tm.group("dd"))).isoformat()
            if f["date"][:4] != m.group("y"):
                unknowns.append(f"ticker date {f['date']} is not in the rules' year {m.group('y')}")
        gender = "women" if series == "ITFW" else _gender(tour.upper(), m.group("t"))
        if series == "ITF" and gender == "women":
            gender = None  # a women's tournament in the men's series: contradictory
        if gender is None:
            unknowns.append(f"cannot tell the draw (men/women) of {series} {m.group('t')}")
        f.update(tour=tour, gender=gender, source=f"official_result:{tour}")
    f.update(tournament=m.group("t").lower(), round=_norm_round(m.group("round")), year=m.group("y"))
    yes, other = _players(m.group("yes"), m.group("a"), m.group("b"), unknowns)
    f.update(yes=yes, no=other)
    intro = f"The following market refers to the {m.group('a')} vs {m.group('b')} professional tennis match in the " \
            f"{m.group('y')} {m.group('t')} {m.group('round')} after a ball has been played."
    for s in secondary_sents:
        if s == intro:
            continue
        if s in _K_VOID:
            void.add(_K_VOID[s])
        else:
            unknowns.append(f"rules_secondary sentence not understood: {s[:100]}")
    return _crit(f, void, unknowns, placeholders)
