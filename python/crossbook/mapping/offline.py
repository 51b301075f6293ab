"""The built-in deterministic extractor: rules over the venues' own phrasing.

It plays model A and model B when no provider is configured. It is deliberately narrow: every sentence of
the resolution text must be understood by one of the rules below, or the sentence is listed in
``unknowns`` and the pair cannot be Verified. Families covered: head-to-head game winners, and one-sided
thresholds on a daily high temperature, a crypto index at an instant, an economic release (CPI-U, U-3)
and an FOMC rate decision.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from crossbook.mapping import events, tennis
from crossbook.mapping.criteria import Criteria

NAME = "offline-rules-v11"  # bump on any rule change: `pairs sync` re-judges what a new version may see
ET = ZoneInfo("America/New_York")
_MONTHS = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_DATE = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|" \
        r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.? \d{1,2}, \d{4}"
DATE_RE = _DATE  # "March 12, 2026" / "Mar. 12, 2026" (candidates use it too)
_NUM = r"\$?\d[\d,]*(?:\.\d+)?"
# A team's name: capitalised words, digits ("76ers"), periods and apostrophes; no template syntax (_ [] {} <>)
_TEAM = r"[A-Z][A-Za-z0-9.']*(?: [A-Za-z0-9.']+)*?"
# Unfilled template slots: "[Candidate]", "[strike price]", "<date>", "{{date}}", "{strike}", "__DATE__", "%DATE%"
PLACEHOLDER = re.compile(r"\[[A-Za-z][A-Za-z_ ]*\]|<[A-Za-z][A-Za-z_ ]*>|\{\{?\s*[A-Za-z_][A-Za-z_ .]*\}?\}"
                         r"|__[A-Za-z]+(?:_[A-Za-z]+)*__|%[A-Z][A-Z_]*%")
SPORTS = {"basketball": ("nba", False), "football": ("nfl", True), "baseball": ("mlb", True),
          "hockey": ("nhl", True), "soccer": ("soccer", True)}
LEAGUE_SPORT = {"nba": "basketball", "nfl": "football", "mlb": "baseball", "nhl": "hockey"}
SOURCE_STEP = {("index_avg60_before", "cf_benchmarks"): Decimal("0.01"), ("econ_release", "bls"): Decimal("0.1")}
DOUBLEHEADERS = {"mlb"}  # leagues that play two games between the same teams on one date


def parse_date(text: str) -> date:
    m = re.match(r"([A-Za-z]+)\.? (\d{1,2}), (\d{4})", text.strip())
    if not m or m.group(1)[:3].lower() not in _MONTHS:
        raise ValueError(f"not a date: {text!r}")
    return date(int(m.group(3)), _MONTHS[m.group(1)[:3].lower()], int(m.group(2)))


def _dec(text: str) -> Decimal:
    try:
        return Decimal(text.replace("$", "").replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"not a number: {text!r}") from None


def normalize(text: str) -> str:
    t = text.replace("“", '"').replace("”", '"').replace("’", "'").replace("\u00a0", " ").replace("–", "-")
    t = re.sub(r"\bU\.S\.", "US", t)
    t = re.sub(r"\bvs\.", "vs", t)
    return re.sub(r"[ \t]+", " ", t).strip()


def sentences(text: str) -> list[str]:
    out: list[str] = []
    for para in re.split(r"\n+", normalize(text)):
        out.extend(s.strip() for s in re.split(r'(?<=[.!?])\s+(?=[A-Z"$])', para) if s.strip())
    return out


# ---------------------------------------------------------------------------------- comparators

_U = r"(?P<u>°F|°C|°|%)?"
# The whole comparison phrase must be one of these (full match): a condition with anything after the number
# ("... for two days", "... at any time") is not a comparison this extractor understands.
_CMP_PATTERNS: list[tuple[str, str]] = [
    (rf"(?:is )?between (?P<a>{_NUM})\s*(?:°F|°C|°|%)? and (?P<b>{_NUM})\s*{_U}(?:, inclusive)?", "between"),
    (rf"(?:is )?(?P<a>{_NUM})\s*{_U} or (?:higher|more|above|greater)", ">="),
    (rf"(?:is )?(?P<a>{_NUM})\s*{_U} or (?:lower|less|below|fewer)", "<="),
    (rf"(?:is )?(?:at least|greater than or equal to|no less than) (?P<a>{_NUM})\s*{_U}", ">="),
    (rf"(?:is )?(?:at most|less than or equal to|no more than|no greater than) (?P<a>{_NUM})\s*{_U}", "<="),
    (rf"(?:is )?(?:greater than|more than|above|higher than) (?P<a>{_NUM})\s*{_U}", ">"),
    (rf"(?:is )?(?:less than|below|lower than|under) (?P<a>{_NUM})\s*{_U}", "<"),
]


def parse_comparator(text: str) -> tuple[str, Decimal, Decimal | None, str | None] | None:
    """(op, threshold, high, unit) when ``text`` is exactly one comparison ("90°F or higher", "greater than 89°",
    "above $3,999.99"); None for anything else, including a comparison followed by more words."""
    t = text.strip()
    for pat, op in _CMP_PATTERNS:
        m = re.fullmatch(pat, t)
        if m:
            a = _dec(m.group("a"))
            b = _dec(m.group("b")) if op == "between" else None
            if b is not None and b <= a:
                return None
            unit = m.groupdict().get("u") or ("usd" if m.group("a").startswith("$") else None)
            return op, a, b, {"°F": "degF", "°C": "degC", "°": "deg", "%": "percent"}.get(unit or "", unit)
    return None


# ----------------------------------------------------------------------------------- extraction


@dataclass
class _Acc:
    """What the sentence rules have found so far for one side."""

    fields: dict[str, Any] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    void: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)
    unknowns: list[str] = field(default_factory=list)

    def put(self, key: str, value: Any) -> None:
        old = self.fields.get(key)
        if old is not None and old != value:
            self.unknowns.append(f"conflicting {key}: {old!r} vs {value!r}")
        self.fields[key] = value


def _sources_in(text: str) -> set[str]:
    t = text.lower()
    out: set[str] = set()
    if "national weather service" in t or "nws" in t or "climatological report" in t:
        out.add("nws_cli")
    if "wunderground" in t:
        out.add("wunderground")
    if "cf benchmarks" in t:
        out.add("cf_benchmarks")
    if "binance" in t or ("coinbase" in t and "cf benchmarks" not in t):
        out.add("exchange_price")
    if "bureau of labor statistics" in t or re.search(r"\bbls\b", t):
        out.add("bls")
    if "bureau of economic analysis" in t or re.search(r"\bbea\b", t):
        out.add("bea")
    if "fomc" in t or "federalreserve.gov" in t or "federal reserve" in t:
        out.add("fomc_statement")
    return out


_ECON_TAGS: list[tuple[str, str]] = [
    (r"\bcpi-u\b|consumer price index for all urban consumers", "series:cpi_u"),
    (r"\bcore\b", "series:core"),
    (r"\bu-3\b", "series:u3"),
    (r"\bu-6\b", "series:u6"),
    (r"not seasonally adjusted|unadjusted", "adj:nsa"),
    (r"(?<!not )seasonally adjusted", "adj:sa"),
    (r"month-over-month", "change:mom"),
    (r"year-over-year|12-month", "change:yoy"),
    (r"quarter-over-quarter|annualized", "change:qoq_saar"),
    (r"first reported|initial release|revisions?[^.]*not (?:be )?considered", "release:first"),
    (r"advance estimate", "release:advance"),
]


def _econ_tags(text: str) -> set[str]:
    t = text.lower()
    return {tag for pat, tag in _ECON_TAGS if re.search(pat, t)}


def _station(name: str) -> str:
    """"chicago midway@il" for "Chicago Midway, IL": the name without generic words, and the state code (if any)
    after "@" so the comparison can tell Springfield, IL from Springfield, MO (criteria.same_station)."""
    # a parenthesis is part of the name ("New York (JFK)" is not "New York (LaGuardia)")
    m = re.search(r",\s*([A-Z]{2}|[A-Z][a-z]+(?: [A-Z][a-z]+)?)\s*$", name)  # ", IL" / ", New York"
    s = name[: m.start()] if m else name
    words = [w for w in re.sub(r"[^a-z0-9 ]+", " ", s.lower()).split()
             if w not in {"international", "intl", "airport", "station", "the", "weather"}]
    return " ".join(words) + (f"@{m.group(1).lower()}" if m else "")


def _instant(d: date, hour: int, minute: int, zone: str) -> str | None:
    """UTC ISO instant for a wall-clock time; None when the zone label contradicts the date (EDT in winter)."""
    z = zone.upper()
    if z == "UTC":
        return datetime(d.year, d.month, d.day, hour, minute).isoformat() + "Z"
    local = datetime(d.year, d.month, d.day, hour, minute, tzinfo=ET)
    dst = bool(local.dst())
    if (z == "EDT" and not dst) or (z == "EST" and dst) or z not in {"ET", "EDT", "EST"}:
        return None
    utc = local.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
    return utc.isoformat() + "Z"


def _hour(h: str, m: str | None, ampm: str) -> tuple[int, int]:
    hh = int(h) % 12 + (12 if ampm.lower() == "pm" else 0)
    return hh, int(m or 0)


# Sentence rules: (pattern, handler). A sentence is understood when at least one rule matches it.
Rule = tuple[re.Pattern[str], Callable[[re.Match[str], _Acc], None]]


_MONTH_NAME = (r"January|February|March|April|May|June|July|August|September|October|November|December")
_TIME = r"(?P<h>\d{1,2})(?::(?P<mi>\d{2}))? ?(?P<ap>[AaPp][Mm]) (?P<z>ET|EDT|EST|UTC)"
# A station name is a proper name: words, periods, hyphens, apostrophes, slashes, commas and a parenthesis; a
# name with a conjunction or a range word in it is more than one place or a window, not a station.
_STATION = r"(?P<st>[A-Z][\w.'/() -]*(?:, [A-Z]{2}|, [A-Z][a-z]+(?: [A-Z][a-z]+)?)?)"
# (case-sensitive: "OR" in "Portland, OR" is Oregon)
_NOT_A_NAME = re.compile(r"\b(?:and|or|between|through|to|any|each|either|both|nearest|average)\b")

# Polymarket's and Kalshi's phrasings of the same conditions. Each is matched against the WHOLE condition: a
# clause that is not part of a known phrasing makes the condition not understood (never silently dropped).
_TMAX = re.compile(rf"the highest temperature recorded (?:at|in) {_STATION},? (?:on|for) (?P<d>{_DATE}),? as "
                   r"reported (?:in|by) (?P<src>[^,]+?), is (?P<rest>.+)")
_NWS_CLI = re.compile(r"the National Weather Service(?:'s)? (?:Daily )?Climatological Report(?: \(Daily\))?"
                      r"(?: \(CLI(?:[A-Z]{3,4})?\))?(?: for [A-Z][\w .'-]* \(CLI[A-Z]{3,4}\))?")
# CF Benchmarks index codes and the names the venues print for them; a name for another asset is a contradiction
_IDX_NAMES = {"brti": ("Bitcoin", "Bitcoin-Dollar"), "ethusd_rti": ("Ether-Dollar", "Ether", "Ethereum"),
              "solusd_rti": ("Solana", "Solana-Dollar"), "xrpusd_rti": ("XRP", "XRP-Dollar"),
              "dogeusd_rti": ("Dogecoin", "Dogecoin-Dollar")}
_POLY_INDEX = re.compile(r"the CF Benchmarks (?P<name>[A-Z][\w-]*(?: [A-Z][\w-]*)?) Real[- ]Time Index "
                         r"\((?P<idx>BRTI|[A-Z]{2,6}USD_RTI)\), calculated as the simple average of the sixty "
                         rf"seconds of index values before {_TIME} on (?P<d>{_DATE}), is (?P<rest>.+)")
_KALSHI_INDEX = re.compile(r"the simple average of the sixty seconds of CF Benchmarks' (?P<name>[A-Z][\w-]*"
                           r"(?: [A-Z][\w-]*)?) Real-Time Index \((?P<idx>BRTI|[A-Z]{2,6}USD_RTI)\) before "
                           rf"{_TIME} is (?P<rest>.+?) on (?P<d>{_DATE}) at (?P<h2>\d{{1,2}})(?::(?P<mi2>\d{{2}}))? ?"
                           r"(?P<ap2>[ap]m) (?P<z2>ET|EDT|EST|UTC)")
_FOMC_POLY = re.compile(r"the upper bound of the target federal funds (?:rate|range) is (?P<dir>decreased|increased) "
                        r"by exactly (?P<bps>\d+) basis points at the conclusion of the FOMC meeting scheduled for "
                        rf"(?P<m>{_MONTH_NAME}) (?P<d1>\d{{1,2}}) ?- ?(?P<d>\d{{1,2}}), (?P<y>\d{{4}}), compared to "
                        r"the level it was prior to the meeting")
_FOMC_KALSHI = re.compile(r"the Federal Reserve (?P<dir>cuts|raises|lowers|hikes) the upper bound of the federal "
                          rf"funds target range by exactly (?P<bps>\d+) basis points at its (?P<full>{_DATE}) meeting")
_CPI_POLY = re.compile(r"the (?P<adj>(?:not )?seasonally adjusted) (?P<chg>month-over-month|year-over-year|12-month) "
                       r"percent change in the (?P<series>Consumer Price Index for All Urban Consumers \(CPI-U\)) for "
                       rf"(?P<mon>{_MONTH_NAME}) (?P<y>\d{{4}}), as (?:published|first reported) by the US Bureau of "
                       r"Labor Statistics, is (?P<rest>.+)")
_CPI_KALSHI = re.compile(rf"CPI increases by (?P<rest>.+?) in (?P<mon>{_MONTH_NAME}) (?P<y>\d{{4}})")
_U3_POLY = re.compile(rf"the US unemployment rate \(U-3, seasonally adjusted\) for (?P<mon>{_MONTH_NAME}) "
                      r"(?P<y>\d{4}), as first reported by the Bureau of Labor Statistics in the Employment Situation "
                      r"report, is (?P<rest>.+)")
_U3_KALSHI = re.compile(rf"the U-3 unemployment rate for (?P<mon>{_MONTH_NAME}) (?P<y>\d{{4}}) is (?P<rest>.+)")


def _main_condition(cond: str, acc: _Acc) -> None:
    """The sentence that says when YES pays, without its "This market will resolve..." framing.

    Every family is one full-match phrasing per venue; the comparison at its end must be exactly one comparison.
    Anything else is "condition not understood", which vetoes the pair.
    """
    acc.put("yes_outcome", cond)
    m = _TMAX.fullmatch(cond)
    if m:
        cmp = parse_comparator(m.group("rest"))
        if cmp is None or _NOT_A_NAME.search(m.group("st")):
            acc.unknowns.append(f"temperature condition not understood: {cond[:100]}")
            return
        if not _NWS_CLI.fullmatch(m.group("src")):
            # Wunderground, hourly observations, a "preliminary" report, ...: not the final daily CLI value
            acc.unknowns.append(f"temperature source is not the NWS daily climate report: {m.group('src')[:80]}")
            return
        acc.sources.add("nws_cli")
        acc.put("kind", "tmax")
        acc.put("entity", _station(m.group("st")))
        day = parse_date(m.group("d")).isoformat()
        acc.put("window", (day, day))
        acc.put("timezone", "station local day")
        acc.put("cmp", cmp)
        return
    m = _POLY_INDEX.fullmatch(cond) or _KALSHI_INDEX.fullmatch(cond)
    if m:
        cmp = parse_comparator(m.group("rest"))
        idx = m.group("idx").lower()
        if cmp is None:
            acc.unknowns.append(f"index comparison not understood: {m.group('rest')[:80]}")
            return
        if m.group("name") not in _IDX_NAMES.get(idx, ()):
            # the name and the code must agree: a contradiction leaves the asset unknown
            acc.unknowns.append(f"index name {m.group('name')!r} does not match the index code {m.group('idx')}")
            return
        when = parse_date(m.group("d"))
        at = _instant(when, *_hour(m.group("h"), m.group("mi"), m.group("ap")), m.group("z"))
        if at is None:
            acc.unknowns.append(f"time zone {m.group('z')} contradicts the date {m.group('d')}")
            return
        if "h2" in m.groupdict() and _instant(when, *_hour(m.group("h2"), m.group("mi2"), m.group("ap2")),
                                               m.group("z2").upper()) != at:
            acc.unknowns.append("two different times in one condition")
            return
        acc.sources.add("cf_benchmarks")
        acc.put("kind", "index_avg60_before")
        acc.put("entity", idx)
        acc.put("window", (at, at))
        acc.put("timezone", m.group("z"))
        acc.put("cmp", cmp)
        return
    m = _FOMC_POLY.fullmatch(cond) or _FOMC_KALSHI.fullmatch(cond)
    if m:
        sign = "cut" if m.group("dir") in {"decreased", "cuts", "lowers"} else "hike"
        if "full" in m.groupdict():
            when = parse_date(m.group("full"))
        else:
            when = parse_date(f"{m.group('m')} {m.group('d')}, {m.group('y')}")
            if int(m.group("d")) not in (int(m.group("d1")) + 1, int(m.group("d1"))):
                acc.unknowns.append(f"meeting days {m.group('d1')}-{m.group('d')} are not one meeting")
                return
        acc.put("kind", f"fomc_upper_bound_{sign}")
        acc.put("entity", "fed_funds_upper_bound")
        acc.put("window", (when.isoformat(), when.isoformat()))
        acc.put("timezone", "meeting date")
        acc.put("cmp", ("==", Decimal(m.group("bps")), None, "bps"))
        acc.put("precision", Decimal(1))  # basis points are whole numbers
        acc.sources.add("fomc_statement")
        return
    m = _CPI_POLY.fullmatch(cond) or _CPI_KALSHI.fullmatch(cond) or _U3_POLY.fullmatch(cond) \
        or _U3_KALSHI.fullmatch(cond)
    if m:
        cmp = parse_comparator(m.group("rest"))
        if cmp is None:
            acc.unknowns.append(f"release comparison not understood: {m.group('rest')[:80]}")
            return
        period = f"{m.group('y')}-{_MONTHS[m.group('mon')[:3].lower()]:02d}"
        acc.put("kind", "econ_release")
        acc.put("entity", "cpi" if "CPI" in cond else "unemployment_rate")
        acc.tags.update(_econ_tags(cond))
        if "U-3" in cond:
            acc.tags.add("series:u3")
        acc.put("window", (period, period))
        acc.put("timezone", "reference month")
        acc.put("cmp", cmp)
        return
    acc.unknowns.append(f"condition not understood: {cond[:100]}")


def _game_rules() -> list[Rule]:
    def sched(m: re.Match[str], acc: _Acc) -> None:
        league = m.group("lg").lower()
        acc.put("league", league)
        d = parse_date(m.group("d")).isoformat()
        acc.put("window", (d, d))
        hh, mm = _hour(m.group("h"), m.group("mi"), m.group("ap"))
        acc.put("start", f"{hh:02d}{mm:02d}")

    def yes_team(m: re.Match[str], acc: _Acc) -> None:
        acc.put("yes", m.group("t"))

    def no_team(m: re.Match[str], acc: _Acc) -> None:
        acc.put("no", m.group("t"))

    def postpone_open(m: re.Match[str], acc: _Acc) -> None:
        bounded = re.search(r"within (?:14 days|two weeks)", m.group(0))
        acc.void.add("postpone:open_14d" if bounded else "postpone:open_unbounded")
        if re.search(r"canceled entirely.*resolve 50-50|otherwise this market will resolve 50-50", m.group(0)):
            acc.void.add("cancel:5050")

    def cancel(m: re.Match[str], acc: _Acc) -> None:
        acc.void.add("cancel:5050")

    def tie(m: re.Match[str], acc: _Acc) -> None:
        acc.void.add("tie:5050")

    def overtime(m: re.Match[str], acc: _Acc) -> None:
        acc.void.add("overtime:counts")
        acc.sources.add(m.group("lg").lower())

    def final_score(m: re.Match[str], acc: _Acc) -> None:
        acc.void.add("overtime:counts")
        acc.sources.add((m.group("lg") or m.group("lg2") or "").strip().lower())

    return [
        (re.compile(rf"^In the upcoming (?P<lg>NBA|NFL|MLB|NHL) game, scheduled for (?P<d>{_DATE}) at "
                    r"(?P<h>\d{1,2}):(?P<mi>\d{2}) ?(?P<ap>[AP]M) ET:?$"), sched),
        (re.compile(rf'^If the (?P<t>{_TEAM}) win, the market will resolve to "Yes"\.$'), yes_team),
        (re.compile(rf'^If the (?P<t>{_TEAM}) win, the market will resolve to "No"\.$'), no_team),
        (re.compile(r"^If the game is postponed, this market will remain open until the game has been completed"
                    r"(?:, provided it is completed within 14 days of the originally scheduled date)?"
                    r"(?:; otherwise this market will resolve 50-50)?\.$"), postpone_open),
        (re.compile(r"^If the game is canceled entirely, with no make-up game(?: within that period)?, "
                    r"this market will resolve 50-50\.$"), cancel),
        (re.compile(r"^If the game ends in a tie, this market will resolve 50-50\.$"), tie),
        (re.compile(r"^The (?:result will be determined based on the|resolution source is the) official "
                    r"(?:NBA |NFL |MLB |NHL )?final score(?: as reported by the (?P<lg>NBA|NFL|MLB|NHL))?"
                    r", including overtime\.$".replace("(?:NBA |NFL |MLB |NHL )?", r"(?P<lg2>NBA |NFL |MLB |NHL )?")),
         final_score),
    ]


# Kalshi game tickers: series (the league), date, an optional ET start time (HHMM), the teams, the YES team.
_GAME_TICKER = re.compile(r"KX(?P<lg>[A-Z]+)GAME-(?P<yy>\d{2})(?P<mon>[A-Z]{3})(?P<dd>\d{2})(?P<hhmm>\d{4})?"
                          r"[A-Z0-9]+-[A-Z0-9]+")


def _kalshi_game_ticker(ticker: str, sport: str, day: str, acc: _Acc) -> None:
    """The ticker's series names the league ("professional basketball" is the NBA or the WNBA), and its date must be
    the rules' date; its start time (if any) pins which game of a doubleheader."""
    m = _GAME_TICKER.fullmatch(ticker)
    if not m:
        acc.unknowns.append(f"ticker {ticker!r} does not name a league's game series")
        return
    league = m.group("lg").lower()
    if LEAGUE_SPORT.get(league) != sport:
        acc.unknowns.append(f"ticker series {league.upper()} is not a {sport} league this extractor knows")
        return
    mon = _MONTHS.get(m.group("mon").lower())
    if mon is None or f"20{m.group('yy')}-{mon:02d}-{m.group('dd')}" != day:
        acc.unknowns.append(f"ticker date {m.group('yy')}{m.group('mon')}{m.group('dd')} is not the rules' date {day}")
    if m.group("hhmm"):
        acc.put("start", m.group("hhmm"))


def _kalshi_game(primary: str, secondary: str, acc: _Acc, ticker: str = "") -> None:
    m = re.match(rf"^If (?P<yes>{_TEAM}) wins the (?P<a>{_TEAM}) (?:vs|at) (?P<b>{_TEAM}) professional "
                 rf"(?P<sport>basketball|football|baseball|hockey|soccer) game originally scheduled for "
                 rf"(?P<d>{_DATE}), then the market resolves to Yes\.$", normalize(primary))
    if not m:
        acc.unknowns.append(f"rules_primary not understood: {primary[:100]}")
        return
    yes, a, b = m.group("yes"), m.group("a"), m.group("b")
    if yes not in (a, b):
        acc.unknowns.append(f"YES team {yes!r} is not one of {a!r}, {b!r}")
        return
    league, draws = SPORTS[m.group("sport")]
    _kalshi_game_ticker(ticker, m.group("sport"), parse_date(m.group("d")).isoformat(), acc)
    acc.put("league", league)
    acc.put("draws", draws)
    acc.put("yes", yes)
    acc.put("no", b if yes == a else a)
    d = parse_date(m.group("d")).isoformat()
    acc.put("window", (d, d))
    acc.sources.add(league)
    for s in sentences(secondary):
        if re.match(rf"^The following market refers to the {re.escape(a)} (?:vs|at) {re.escape(b)} professional "
                    rf"{m.group('sport')} game originally scheduled for {re.escape(m.group('d'))}\.$", s):
            continue
        if s == ("If the game is postponed, the market will remain open and close after the rescheduled game has "
                 "finished (within two weeks)."):
            acc.void.add("postpone:open_14d")
        elif s == ("If the game is cancelled or not completed within two weeks of the original date, the market "
                   "will resolve to $0.50."):
            acc.void.add("cancel:5050")
        elif s == "Overtime counts toward the final result.":
            acc.void.add("overtime:counts")
        elif s == "If the game ends in a tie, the market will resolve to $0.50.":
            acc.void.add("tie:5050")
        else:
            acc.unknowns.append(f"rules_secondary sentence not understood: {s[:100]}")


# Sentences of threshold families that carry no condition but must still be understood.
def _threshold_rules() -> list[Rule]:
    def precision(m: re.Match[str], acc: _Acc) -> None:
        t = m.group(0).lower()
        if "whole degrees" in t:
            acc.put("precision", Decimal(1))
            acc.put("unit_stated", "degF" if "fahrenheit" in t else "degC" if "celsius" in t else None)
        elif "one decimal place" in t:
            acc.put("precision", Decimal("0.1"))
        elif "two decimal places" in t:
            acc.put("precision", Decimal("0.01"))
        acc.tags.update(_econ_tags(t))

    def tags(m: re.Match[str], acc: _Acc) -> None:
        acc.tags.update(_econ_tags(m.group(0)))
        acc.sources.update(_sources_in(m.group(0)))

    def delay(m: re.Match[str], acc: _Acc) -> None:
        acc.void.add("delay:open")

    def no_decision(m: re.Match[str], acc: _Acc) -> None:
        acc.void.add("no_decision:no")

    def final_value(m: re.Match[str], acc: _Acc) -> None:
        acc.tags.add("value:final")
        acc.sources.update(_sources_in(m.group(0)))

    def noop(m: re.Match[str], acc: _Acc) -> None:
        return None

    def release_date(m: re.Match[str], acc: _Acc) -> None:
        tags(m, acc)
        acc.put("release_date", parse_date(m.group("d")).isoformat())

    def tags_one_decimal(m: re.Match[str], acc: _Acc) -> None:
        tags(m, acc)
        acc.put("precision", Decimal("0.1"))

    def avg_at_expiration(m: re.Match[str], acc: _Acc) -> None:
        acc.put("avg_at_expiration", True)

    def cf_source(m: re.Match[str], acc: _Acc) -> None:
        acc.sources.add("cf_benchmarks")

    return [
        (re.compile(r"^(?:The resolution source (?:for this market )?measures temperatures (?:in|to)|Temperatures "
                    r"are reported in|The (?:figure|rate) is reported to|Price precision is) "
                    r"(?:whole degrees (?:Fahrenheit|Celsius)(?: \(eg, -?\d+°[FC]\))?|one decimal place|two decimal "
                    r"places)(?:; (?:subsequent )?revisions will not be considered)?"
                    r"(?:\. Thus, this is the level of precision that will be used when resolving the market)?\.$",
                    re.I), precision),
        (re.compile(r"^Thus, this is the level of precision that will be used when resolving the market\.$"), noop),
        (re.compile(r"^(?:Subsequent )?[Rr]evisions(?: after the initial release)? (?:will not be|are not) "
                    r"considered\.$"), tags),
        (re.compile(r"^The resolution source (?:for this market )?(?:is|will be) (?:the )?(?:CF Benchmarks|"
                    r"BLS CPI release for \w+ \d{4}|the FOMC's statement after its "
                    r"meeting|FOMC's statement after its meeting)\.$"), tags),
        (re.compile(rf"^The resolution source (?:for this market )?(?:is|will be) (?:the )?BLS CPI release for "
                    rf"\w+ \d{{4}} \(scheduled for (?P<d>{_DATE})\)\.$"), release_date),
        (re.compile(r"^If the (?:release|report) is delayed, (?:this market will remain|the market remains) open "
                    r"until (?:the data is published|it is (?:published|released))\.$"), delay),
        (re.compile(r"^The month-over-month percent change in the seasonally adjusted CPI-U, as first reported by "
                    r"the Bureau of Labor Statistics, rounded to one decimal place, is used\.$"),
         tags_one_decimal),
        (re.compile(r"^The seasonally adjusted U-3 rate as first reported by the Bureau of Labor Statistics in the "
                    r"Employment Situation report is used; revisions are not considered\.$"), tags),
        (re.compile(r"^Only the final CLI value(?: for \w+ \d{1,2})? will be used(?:; later revisions will not be "
                    r"considered)?\.$"), final_value),
        (re.compile(r"^The official and final value used to determine this market is the highest temperature as "
                    r"reported by the corresponding NWS Climatological Report \(Daily\) linked in the rules "
                    r"above\.$"), final_value),
        (re.compile(r"^Preliminary NWS reporting and measurement methods may be subject to underlying rounding and "
                    r"conversion nuances; only the final Climatological Report value is used\.$"), final_value),
        (re.compile(r"^Not all cryptocurrency price data is the same\.$"), noop),
        (re.compile(r"^While checking a source like Google or Coinbase may help guide your decision, the price "
                    r"used to determine this market is based on CF Benchmarks' corresponding Real Time Index "
                    r"\(RTI\)\.$"), cf_source),
        (re.compile(r"^At the expiration time, CF Benchmarks' RTI value is calculated as the simple average of the "
                    r"sixty seconds of RTI values before the expiration time\.$"),
         avg_at_expiration),
        (re.compile(r"^The FED interest rates are defined in this market by the upper bound of the target federal "
                    r"funds range\.$"), noop),
        (re.compile(r"^The decisions on the target federal fund range are made by the Federal Open Market "
                    r"Committee \(FOMC\) meetings\.$"), noop),
        (re.compile(r'^If no statement is released by the end date of the next scheduled meeting, this market '
                    r'will resolve to the "No" outcome\.$'), no_decision),
        (re.compile(r"^If no decision is announced at the scheduled meeting, the market resolves to No\.$"),
         no_decision),
        (re.compile(r"^The outcome is determined by the FOMC statement published on federalreserve\.gov following "
                    r"the meeting\.$"), tags),
    ]


_POLY_MAIN = re.compile(r'^This market will resolve to "Yes" if (?P<c>.+?)\. Otherwise, this market will resolve '
                        r'to "No"\.$')


def _finish(acc: _Acc, text: str, expiration: str | None = None) -> Criteria:
    f = acc.fields
    placeholders = tuple(sorted(set(PLACEHOLDER.findall(text))))
    unknowns = list(acc.unknowns)
    if "yes" in f:  # game
        window = f.get("window") or (None, None)
        league = f.get("league")
        draws = f.get("draws")
        if draws is None and league in LEAGUE_SPORT:
            draws = SPORTS[LEAGUE_SPORT[league]][1]
        srcs = acc.sources - {""}
        if league:
            srcs.add(league)
        if len(srcs) != 1:
            unknowns.append(f"resolution source unclear: {sorted(srcs)}")
        subject = f"game_winner|{league}"
        if league in DOUBLEHEADERS:
            # two games between the same teams on one date happen: only the start time tells them apart
            if f.get("start") is None:
                unknowns.append(f"{league} game without a start time (a doubleheader has two games that day)")
            subject += f"|start {f.get('start')} ET"
        return Criteria(
            family="game_winner", subject=subject, entity=f.get("yes"), counterparty=f.get("no"),
            comparator="wins", unit="outcome", window_start=window[0], window_end=window[1], timezone="ET date",
            source=next(iter(srcs)) if len(srcs) == 1 else None, yes_outcome=f"{f.get('yes')} wins",
            void_rules=tuple(sorted(acc.void)), draws_possible=draws, placeholders=placeholders,
            unknowns=tuple(unknowns))
    kind = f.get("kind")
    if kind is None:
        unknowns.append("no resolution condition recognised")
        return Criteria(placeholders=placeholders, unknowns=tuple(unknowns))
    cmp = f.get("cmp")
    op, thr, high, unit = cmp if cmp else (None, None, None, None)
    srcs = set(acc.sources) | _sources_in(str(f.get("yes_outcome", "")))
    precision = f.get("precision")
    tags = set(acc.tags) | _econ_tags(str(f.get("yes_outcome", "")))
    if kind == "tmax":
        if srcs == {"nws_cli"}:
            precision = precision or Decimal(1)  # the CLI product reports whole °F
            if unit in (None, "deg"):
                unit = "degF"
        if f.get("unit_stated") and f["unit_stated"] != unit:
            unknowns.append(f"unit {unit} vs stated {f['unit_stated']}")
        tags.discard("series:core")
    if kind == "index_avg60_before":
        idx = str(f.get("entity"))
        if unit is None and (idx == "brti" or idx.endswith("usd_rti")):
            unit = "usd"  # both indexes are quoted in US dollars
        if f.get("avg_at_expiration") and expiration and f["window"][0] != expiration.replace("+00:00", "Z"):
            unknowns.append(f"averaging time {f['window'][0]} is not the expiration time {expiration}")
    if kind == "econ_release":
        if f.get("entity") == "cpi" and "series:cpi_u" not in tags:
            unknowns.append("CPI series not named (CPI-U?)")
    if precision is None and len(srcs) == 1:
        # the step the named source publishes when the text states none: CF Benchmarks' RTI in cents, BLS
        # rates and percent changes to one decimal; a stated step always wins (and then must match the other side)
        precision = SOURCE_STEP.get((kind, next(iter(srcs))))
    if len(srcs) != 1:
        unknowns.append(f"resolution source unclear: {sorted(srcs)}")
    window = f.get("window") or (None, None)
    subject = "|".join([kind, *sorted(tags)])
    return Criteria(
        family="threshold", subject=subject, entity=f.get("entity"), comparator=op, threshold=thr,
        threshold_high=high, unit=unit, precision=precision, window_start=window[0], window_end=window[1],
        timezone=f.get("timezone"), source=next(iter(srcs)) if len(srcs) == 1 else None,
        yes_outcome=f.get("yes_outcome"), void_rules=tuple(sorted(acc.void)), placeholders=placeholders,
        unknowns=tuple(unknowns))


def _run_rules(sents: list[str], rules: list[Rule], acc: _Acc) -> None:
    for s in sents:
        hit = False
        for pat, fn in rules:
            m = pat.search(s)
            if m:
                fn(m, acc)
                hit = True
        if not hit:
            acc.unknowns.append(f"sentence not understood: {s[:100]}")


def extract_polymarket(market: Mapping[str, Any]) -> Criteria:
    """Criteria from a Polymarket Gamma market (the description defines resolution; the question is a hint)."""
    desc = str(market.get("description") or "")
    outcomes = market.get("outcomes")
    acc = _Acc()
    # the order says which token is YES: missing or different outcomes leave the polarity unknown
    if not isinstance(outcomes, list) or [str(o).lower() for o in outcomes] != ["yes", "no"]:
        acc.unknowns.append(f"outcomes {outcomes!r} are not [\"Yes\", \"No\"]")
    sents = sentences(desc)
    event = events.polymarket_event(market, sents, desc, tuple(sorted(set(PLACEHOLDER.findall(desc)))))
    if event is not None:
        return replace(event, unknowns=(*acc.unknowns, *event.unknowns))
    match = tennis.polymarket_tennis(sents, tuple(sorted(set(PLACEHOLDER.findall(desc)))))
    if match is not None:
        return replace(match, unknowns=(*acc.unknowns, *match.unknowns))
    if sents and re.match(r"^In the upcoming (?:NBA|NFL|MLB|NHL) game", sents[0]):
        _run_rules(sents, _game_rules(), acc)
        return _finish(acc, desc)
    rest: list[str] = []
    joined = []
    # the main sentence is split by the sentence splitter at ". Otherwise"; glue it back
    i = 0
    while i < len(sents):
        if sents[i].startswith('This market will resolve to "Yes" if ') and i + 1 < len(sents) \
                and sents[i + 1] == 'Otherwise, this market will resolve to "No".':
            joined.append(sents[i] + " " + sents[i + 1])
            i += 2
            continue
        rest.append(sents[i])
        i += 1
    if len(joined) != 1:
        acc.unknowns.append("no single 'resolve to Yes if ... Otherwise No' sentence")
    for s in joined:
        m = _POLY_MAIN.match(s)
        if m:
            _main_condition(m.group("c"), acc)
    _run_rules(rest, _threshold_rules(), acc)
    release, end = acc.fields.get("release_date"), str(market.get("end_date_iso") or "")[:10]
    if release is not None and release != end:
        acc.unknowns.append(f"stated release date {release} is not the market end date {end or '?'}")
    return _finish(acc, desc)


def extract_kalshi(market: Mapping[str, Any]) -> Criteria:
    """Criteria from a Kalshi market (rules_primary + rules_secondary; title and subtitle are hints)."""
    c = _extract_kalshi(market)
    late = _expires_before_window(c, str(market.get("expiration_time") or ""))
    return replace(c, unknowns=(*c.unknowns, late)) if late else c


def _expires_before_window(c: Criteria, expiration: str) -> str | None:
    """A market that expires before the day (or month) it is about cannot settle on it: the listing contradicts its
    own rules, so nothing can be verified. Instants are compared exactly elsewhere (the RTI average)."""
    end = c.window_end or ""
    exp = expiration[:10]
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", exp):
        return None if not end or not re.match(r"\d{4}-\d{2}", end) else "no expiration_time to check the window"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", end) and exp < end:
        return f"expires {exp}, before the day it is about ({end})"
    if re.fullmatch(r"\d{4}-\d{2}", end):
        y, mo = int(end[:4]), int(end[5:7])
        after = f"{y + mo // 12}-{mo % 12 + 1:02d}-01"
        if exp < after:
            return f"expires {exp}, before the month it is about ({end}) has ended"
    return None


def _extract_kalshi(market: Mapping[str, Any]) -> Criteria:
    primary = normalize(str(market.get("rules_primary") or ""))
    secondary = str(market.get("rules_secondary") or "")
    text = primary + "\n" + secondary
    acc = _Acc()
    event = events.kalshi_event(market, primary, sentences(secondary), text,
                                tuple(sorted(set(PLACEHOLDER.findall(text)))))
    if event is not None:
        return event
    match = tennis.kalshi_tennis(market, primary, sentences(secondary), tuple(sorted(set(PLACEHOLDER.findall(text)))))
    if match is not None:
        return match
    if re.search(r"professional \w+ game originally scheduled", primary):
        _kalshi_game(primary, secondary, acc, str(market.get("ticker") or ""))
        return _finish(acc, text)
    m = re.match(r"^If (?P<c>.+), then the market resolves to Yes\.$", primary)
    if not m:
        acc.unknowns.append(f"rules_primary not understood: {primary[:100]}")
    else:
        _main_condition(m.group("c"), acc)
    _run_rules(sentences(secondary), _threshold_rules(), acc)
    exp = market.get("expiration_time")
    return _finish(acc, text, str(exp) if exp else None)


def extract_pair(pair: Mapping[str, Any]) -> tuple[Criteria, Criteria]:
    """Both sides; a side that cannot be read at all comes back as Criteria with the error in unknowns."""
    out: list[Criteria] = []
    for venue, fn in (("polymarket", extract_polymarket), ("kalshi", extract_kalshi)):
        try:
            out.append(fn(pair.get(venue) or {}))
        except (ValueError, KeyError, TypeError) as exc:
            out.append(replace(Criteria(), unknowns=(f"{venue} text could not be read: {exc}",)))
    return out[0], out[1]
