"""Offline rules for one-off events: a championship (Super Bowl), a league title, a party's presidential nomination.

Same discipline as the rest of the offline extractor: every sentence must be understood, the event and season
must be pinned down by the text (or by a fact table here, e.g. which game Super Bowl LX is), teams are matched
through an alias table, never by fuzzy text. Anything else goes to ``unknowns`` and vetoes the pair.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from crossbook.mapping.criteria import Criteria

FAMILY = "event_winner"

# Super Bowls: roman numeral -> (scheduled date, NFL season, Kalshi's "<year> Pro Football Championship" year)
SUPER_BOWLS = {"LIX": ("2025-02-09", "2024", "2025"), "LX": ("2026-02-08", "2025", "2026"),
               "LXI": ("2027-02-14", "2026", "2027")}
_SB_BY_YEAR = {v[2]: (k, v) for k, v in SUPER_BOWLS.items()}
_MONTHS = {m: i + 1 for i, m in enumerate(["january", "february", "march", "april", "may", "june", "july", "august",
                                           "september", "october", "november", "december"])}

# NFL: full name -> Kalshi's short name (city; a trailing initial where a city has two teams)
NFL = {
    "Arizona Cardinals": "Arizona", "Atlanta Falcons": "Atlanta", "Baltimore Ravens": "Baltimore",
    "Buffalo Bills": "Buffalo", "Carolina Panthers": "Carolina", "Chicago Bears": "Chicago",
    "Cincinnati Bengals": "Cincinnati", "Cleveland Browns": "Cleveland", "Dallas Cowboys": "Dallas",
    "Denver Broncos": "Denver", "Detroit Lions": "Detroit", "Green Bay Packers": "Green Bay",
    "Houston Texans": "Houston", "Indianapolis Colts": "Indianapolis", "Jacksonville Jaguars": "Jacksonville",
    "Kansas City Chiefs": "Kansas City", "Las Vegas Raiders": "Las Vegas", "Los Angeles Chargers": "Los Angeles C",
    "Los Angeles Rams": "Los Angeles R", "Miami Dolphins": "Miami", "Minnesota Vikings": "Minnesota",
    "New England Patriots": "New England", "New Orleans Saints": "New Orleans", "New York Giants": "New York G",
    "New York Jets": "New York J", "Philadelphia Eagles": "Philadelphia", "Pittsburgh Steelers": "Pittsburgh",
    "San Francisco 49ers": "San Francisco", "Seattle Seahawks": "Seattle", "Tampa Bay Buccaneers": "Tampa Bay",
    "Tennessee Titans": "Tennessee", "Washington Commanders": "Washington",
}
_NFL_ID = {**{full.lower(): full for full in NFL}, **{short.lower(): full for full, short in NFL.items()}}

# English Premier League clubs (both venues use the club's common name)
EPL = {"arsenal", "aston villa", "bournemouth", "brentford", "brighton", "burnley", "chelsea", "crystal palace",
       "everton", "fulham", "leeds united", "liverpool", "manchester city", "manchester united", "newcastle united",
       "nottingham forest", "sunderland", "tottenham hotspur", "west ham united", "wolverhampton wanderers"}

PARTIES = {"democratic": "democratic", "republican": "republican"}


def _crit(acc: dict[str, Any], unknowns: list[str], text: str, placeholders: tuple[str, ...]) -> Criteria:
    return Criteria(
        family=FAMILY, subject=acc.get("subject"), entity=acc.get("entity"), comparator="wins", unit="outcome",
        window_start=acc.get("window"), window_end=acc.get("window"), timezone="event", source=acc.get("source"),
        yes_outcome=f"{acc.get('entity')} wins {acc.get('subject')}", void_rules=tuple(sorted(acc.get("void", ()))),
        placeholders=placeholders, unknowns=tuple(unknowns))


def _expiration_year(market: Mapping[str, Any], key: str) -> str | None:
    m = re.match(r"(\d{4})-(\d{2})-(\d{2})", str(market.get(key) or ""))
    return m.group(1) if m else None


# ------------------------------------------------------------------------------------------ Polymarket

_POLY_SB = re.compile(r'^This market will resolve to "Yes" if the (?P<team>[A-Z][\w. ]+?) wins? Super Bowl '
                      r"(?P<sb>[LXVI]+), scheduled for (?P<d>[A-Z][a-z]+ \d{1,2}, \d{4})\. Otherwise, this market "
                      r'will resolve to "No"\.$')
_POLY_EPL = re.compile(r'^This market will resolve to "Yes" if (?P<club>[A-Z][\w ]+?) is officially crowned champion '
                       r"of the (?P<y1>\d{4})-(?P<y2>\d{2}) English Premier League season\. Otherwise, this market "
                       r'will resolve to "No"\.$')
_POLY_NOM = re.compile(r'^This market will resolve to "Yes" if the named individual wins and accepts the (?P<y>\d{4}) '
                       r"nomination of the (?P<party>Democratic|Republican) Party for US president\. Otherwise, this "
                       r'market will resolve to "No"\.$')
_POLY_NOM_Q = re.compile(r"^Will (?P<name>[A-Z][\w.'-]+(?: [A-Z][\w.'-]+){1,3}) win the (?P<y>\d{4}) "
                         r"(?P<party>Democratic|Republican) presidential nomination\?$")


def polymarket_event(market: Mapping[str, Any], sents: list[str], text: str,
                     placeholders: tuple[str, ...]) -> Criteria | None:
    """Criteria when the description is one of the event templates; None when it is not an event market."""
    if not sents:
        return None
    main = " ".join(sents[:2])
    acc: dict[str, Any] = {"void": set()}
    unknowns: list[str] = []
    rest = sents[2:]
    m = _POLY_SB.match(main)
    if m:
        sb = SUPER_BOWLS.get(m.group("sb"))
        team = _NFL_ID.get(m.group("team").lower())
        if sb is None or team is None:
            unknowns.append(f"Super Bowl {m.group('sb')} or team {m.group('team')!r} not in the fact tables")
        else:
            mon, day, year = re.match(r"([A-Za-z]+) (\d{1,2}), (\d{4})", m.group("d")).groups()  # type: ignore[union-attr]
            when = f"{year}-{_MONTHS.get(mon.lower(), 0):02d}-{int(day):02d}"
            if when != sb[0]:
                unknowns.append(f"Super Bowl {m.group('sb')} is scheduled for {sb[0]}, not {when}")
            acc.update(subject="nfl_championship", entity=f"nfl:{team}", window=f"nfl season {sb[1]}")
        for s in rest:
            if s == "If the Super Bowl is postponed, this market will remain open until the game is played.":
                acc["void"].add("postpone:open_until_played")
            elif s == "The resolution source will be the official NFL result.":
                acc["source"] = "official_result:nfl"
            else:
                unknowns.append(f"sentence not understood: {s[:100]}")
        return _crit(acc, unknowns, text, placeholders)
    m = _POLY_EPL.match(main)
    if m:
        club = m.group("club").lower()
        y1, y2 = m.group("y1"), m.group("y2")
        if club not in EPL:
            unknowns.append(f"club {m.group('club')!r} not in the Premier League table")
        if int(y2) != (int(y1) + 1) % 100:
            unknowns.append(f"season {y1}-{y2} is not one season")
        acc.update(subject="epl_title", entity=f"epl:{club}", window=f"epl season {y1}-{int(y1) + 1}")
        for s in rest:
            if s == "The resolution source will be the official Premier League website.":
                acc["source"] = "official_result:premier_league"
            elif s == ("If the season is not completed, this market will resolve according to the title as "
                       "officially awarded by the Premier League."):
                continue  # "crowned champion" is the title as awarded: nothing beyond winning the league
            else:
                unknowns.append(f"sentence not understood: {s[:100]}")
        return _crit(acc, unknowns, text, placeholders)
    m = _POLY_NOM.match(main)
    if m:
        q = _POLY_NOM_Q.match(str(market.get("question") or "").strip())
        if not q or q.group("y") != m.group("y") or q.group("party") != m.group("party"):
            unknowns.append("the question does not name the individual for this nomination")
        else:
            acc["entity"] = "person:" + q.group("name").lower()
        acc.update(subject=f"presidential_nomination:{m.group('party').lower()}", window=f"cycle {m.group('y')}")
        if _expiration_year(market, "end_date_iso") != m.group("y"):
            unknowns.append(f"market end date is not in the {m.group('y')} cycle")
        for s in rest:
            if s == f"The resolution source for this market will be a consensus of official {m.group('party')} Party " \
                    "sources.":
                acc["source"] = f"official_party:{m.group('party').lower()}"
            elif re.fullmatch(r"Any replacement of the (?:democratic|republican) nominee before election day will "
                              r"not change the resolution of the market\.", s, re.I) \
                    and m.group("party").lower() in s.lower():
                acc["void"].add("replacement:no_effect")
            else:
                unknowns.append(f"sentence not understood: {s[:100]}")
        return _crit(acc, unknowns, text, placeholders)
    return None


# ---------------------------------------------------------------------------------------------- Kalshi

_K_SB = re.compile(r"^If (?P<team>[A-Z][\w ]+?) wins the (?P<y>\d{4}) Pro Football Championship, then the market "
                   r"resolves to Yes\.$")
_K_EPL = re.compile(r"^If (?P<club>[A-Z][\w ]+?) wins the English Premier League, then the market resolves to Yes\.$")
_K_NOM = re.compile(r"^If (?P<name>[A-Z][\w.'-]+(?: [A-Z][\w.'-]+){1,3}) wins and accepts the nomination for the "
                    r"Presidency for the (?P<party>Democratic|Republican) party, then the market resolves to Yes\.$")


def kalshi_event(market: Mapping[str, Any], primary: str, secondary_sents: list[str], text: str,
                 placeholders: tuple[str, ...]) -> Criteria | None:
    acc: dict[str, Any] = {"void": set()}
    unknowns: list[str] = []
    exp_year = _expiration_year(market, "expiration_time")
    m = _K_SB.match(primary)
    if m:
        team = _NFL_ID.get(m.group("team").lower())
        sb = _SB_BY_YEAR.get(m.group("y"))
        if team is None or sb is None:
            unknowns.append(f"team {m.group('team')!r} or the {m.group('y')} championship not in the fact tables")
        else:
            acc.update(subject="nfl_championship", entity=f"nfl:{team}", window=f"nfl season {sb[1][1]}")
            # Kalshi names no source or postponement rule: the league's own result decides, and a postponed game
            # keeps the market open as long as the expiration allows (a year or more after the scheduled date).
            acc["source"] = "official_result:nfl"
            exp = str(market.get("expiration_time") or "")[:10]
            scheduled = sb[1][0]
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", exp) and exp >= f"{int(scheduled[:4]) + 1}{scheduled[4:]}":
                acc["void"].add("postpone:open_until_played")
            else:
                unknowns.append("expiration leaves no room for a postponed game")
        unknowns.extend(f"rules_secondary sentence not understood: {s[:100]}" for s in secondary_sents)
        return _crit(acc, unknowns, text, placeholders)
    m = _K_EPL.match(primary)
    if m:
        club = m.group("club").lower()
        if club not in EPL:
            unknowns.append(f"club {m.group('club')!r} not in the Premier League table")
        exp = str(market.get("expiration_time") or "")
        month = int(exp[5:7]) if re.match(r"\d{4}-\d{2}", exp) else 0
        if exp_year is None or not 5 <= month <= 7:
            # the text names no season: only an expiration just after a season's end (May-July) pins it down
            unknowns.append(f"no season named and expiration {exp or '?'} does not pin one down")
        else:
            acc["window"] = f"epl season {int(exp_year) - 1}-{exp_year}"
        acc.update(subject="epl_title", entity=f"epl:{club}", source="official_result:premier_league")
        unknowns.extend(f"rules_secondary sentence not understood: {s[:100]}" for s in secondary_sents)
        return _crit(acc, unknowns, text, placeholders)
    m = _K_NOM.match(primary)
    if m:
        party = m.group("party").lower()
        acc.update(subject=f"presidential_nomination:{party}", entity="person:" + m.group("name").lower(),
                   source=f"official_party:{party}")
        if exp_year is None or int(exp_year) % 4 != 0:
            unknowns.append(f"expiration {market.get('expiration_time')!r} is not in a presidential election year")
        else:
            acc["window"] = f"cycle {exp_year}"
        for s in secondary_sents:
            if s == (f"This market will close after {m.group('party')} nominates an individual for the Presidency "
                     "and they accept that nomination."):
                acc["void"].add("replacement:no_effect")  # settles at acceptance: a later replacement changes nothing
            else:
                unknowns.append(f"rules_secondary sentence not understood: {s[:100]}")
        return _crit(acc, unknowns, text, placeholders)
    return None
