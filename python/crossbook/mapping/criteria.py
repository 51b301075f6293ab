"""The strict criteria schema both extractors fill in, and the deterministic checks that compare two.

The checks veto: a pair passes only if every one of them is satisfied. Anything the extractor could not
pin down is ``None`` or listed in ``unknowns``, and either makes the comparison fail.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, Literal

Polarity = Literal["same", "inverted"]
COMPARATORS = (">", ">=", "<", "<=", "==", "between", "wins")
FAMILIES = ("game_winner", "threshold", "event_winner")


@dataclass(frozen=True)
class Criteria:
    """What one contract pays YES on. Strings are canonical lower-case ids where the extractor knows them."""

    family: str | None = None  # "game_winner" | "threshold"
    subject: str | None = None  # what is measured / decided, e.g. "tmax|nws_cli", "cpi_u|bls|first_release|mom|sa"
    entity: str | None = None  # the YES team, the weather station, the index
    counterparty: str | None = None  # the other side of a game
    comparator: str | None = None
    threshold: Decimal | None = None
    threshold_high: Decimal | None = None
    unit: str | None = None
    precision: Decimal | None = None  # step of the reported value (1 = whole degrees, 0.1 = one decimal)
    window_start: str | None = None  # ISO date/instant or a period like "2026-06"; UTC for instants
    window_end: str | None = None
    timezone: str | None = None
    source: str | None = None
    yes_outcome: str | None = None  # in words: when YES pays
    void_rules: tuple[str, ...] = ()  # canonical tags: "postpone:open_14d", "cancel:5050", "tie:5050", ...
    draws_possible: bool | None = None  # game family: can the game end level?
    placeholders: tuple[str, ...] = ()
    unknowns: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("threshold", "threshold_high", "precision"):
            d[k] = None if d[k] is None else str(d[k])
        d["void_rules"] = list(self.void_rules)
        d["placeholders"] = list(self.placeholders)
        d["unknowns"] = list(self.unknowns)
        return d

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str) -> Criteria:
        """Strict: unknown keys, wrong types, non-decimal numbers and unknown comparators are errors."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: criteria must be a JSON object, got {type(data).__name__}")
        names = set(cls.__dataclass_fields__)
        extra = set(data) - names
        if extra:
            raise ValueError(f"{where}: unknown criteria fields {sorted(extra)}")
        kw: dict[str, Any] = {}
        for k in names:
            v = data.get(k)
            if k in ("threshold", "threshold_high", "precision"):
                kw[k] = _decimal(v, f"{where}.{k}")
            elif k in ("void_rules", "placeholders", "unknowns"):
                if v is None:
                    v = []
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    raise ValueError(f"{where}.{k}: must be a list of strings")
                kw[k] = tuple(v)
            elif k == "draws_possible":
                if v is not None and not isinstance(v, bool):
                    raise ValueError(f"{where}.{k}: must be true, false or null")
                kw[k] = v
            else:
                if v is not None and not isinstance(v, str):
                    raise ValueError(f"{where}.{k}: must be a string or null")
                kw[k] = v
        if kw["comparator"] is not None and kw["comparator"] not in COMPARATORS:
            raise ValueError(f"{where}.comparator: {kw['comparator']!r} is not one of {COMPARATORS}")
        if kw["family"] is not None and kw["family"] not in FAMILIES:
            raise ValueError(f"{where}.family: {kw['family']!r} is not one of {FAMILIES}")
        return cls(**kw)


def _decimal(v: Any, where: str) -> Decimal | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise ValueError(f"{where}: must be a decimal string (not {type(v).__name__})")
    try:
        d = Decimal(str(v).replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"{where}: {v!r} is not a decimal number") from None
    if not d.is_finite():
        raise ValueError(f"{where}: {v!r} is not finite")
    return d


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class Comparison:
    polarity: Polarity | None
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.polarity is not None and all(c.ok for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok]


# ------------------------------------------------------------------------------------------ entities

_GENERIC = {"the", "fc", "cf", "sc", "afc"}


def _tokens(name: str) -> list[str]:
    return [t for t in re.sub(r"[^a-z0-9' ]+", " ", name.lower()).split() if t not in _GENERIC]


def short_name_matches(short: str, full: str) -> bool:
    """Kalshi-style short team names: "New York" ~ "New York Knicks", "Los Angeles L" ~ "Los Angeles Lakers".

    The short name's words must be a word prefix of the full name; a trailing single letter must be the
    initial of the next word. Equal names match.
    """
    s, f = _tokens(short), _tokens(full)
    if not s or not f:
        return False
    if s == f:
        return True
    if len(s[-1]) == 1 and len(s) >= 2 and len(f) > len(s) - 1:
        head = s[:-1]
        return f[: len(head)] == head and f[len(head)].startswith(s[-1])
    return len(f) > len(s) and f[: len(s)] == s


def same_entity(a: str, b: str, others: tuple[str, ...] = ()) -> bool:
    """``a`` and ``b`` name the same team/person and ``a`` matches none of ``others`` (no ambiguity)."""
    fits = short_name_matches(a, b) or short_name_matches(b, a)
    if not fits:
        return False
    return not any(short_name_matches(a, o) or short_name_matches(o, a) for o in others if o)


def same_station(a: str, b: str) -> bool:
    """Entities of threshold contracts; a weather station may carry "@<state>" ("chicago midway@il").

    Equal names with equal (or no) states match. A state on one side only is accepted when the name is specific
    (two words or more, "chicago midway"); a bare city name ("springfield", "portland") with a state on one side
    is not pinned down, so it does not match.
    """
    (na, _, sa), (nb, _, sb) = a.partition("@"), b.partition("@")
    if na != nb:
        return False
    if sa and sb:
        return sa == sb
    if sa or sb:
        return len(na.split()) >= 2
    return True


# --------------------------------------------------------------------------------------- comparison


def _canonical_bound(op: str, x: Decimal, step: Decimal | None) -> tuple[str, Decimal] | None:
    """On a grid of ``step``, every one-sided condition is ">= n" or "<= n"; without a grid, None."""
    if step is None or step <= 0:
        return None
    q = x / step
    if op == ">":
        return ">=", (q.to_integral_value(ROUND_FLOOR) + 1) * step
    if op == ">=":
        return ">=", q.to_integral_value(ROUND_CEILING) * step
    if op == "<":
        return "<=", (q.to_integral_value(ROUND_CEILING) - 1) * step
    if op == "<=":
        return "<=", q.to_integral_value(ROUND_FLOOR) * step
    return None


_COMPLEMENT = {">": "<=", ">=": "<", "<": ">=", "<=": ">"}


def threshold_polarity(a: Criteria, b: Criteria) -> tuple[Polarity | None, str]:
    """Same / inverted / neither for two one-sided threshold conditions on the same measure."""
    if a.comparator is None or b.comparator is None or a.threshold is None or b.threshold is None:
        return None, "comparator or threshold missing"
    if "between" in (a.comparator, b.comparator) or "==" in (a.comparator, b.comparator):
        if (a.comparator, a.threshold, a.threshold_high) == (b.comparator, b.threshold, b.threshold_high):
            return "same", f"both {a.comparator} {a.threshold}..{a.threshold_high}"
        return None, f"{a.comparator} {a.threshold} vs {b.comparator} {b.threshold} (a range/exact value " \
                     "never equals or complements a different condition)"
    if (a.comparator, a.threshold) == (b.comparator, b.threshold):
        return "same", f"both {a.comparator} {a.threshold}"
    if _COMPLEMENT.get(a.comparator) == b.comparator and a.threshold == b.threshold:
        return "inverted", f"{a.comparator} {a.threshold} is the complement of {b.comparator} {b.threshold}"
    step = a.precision if a.precision is not None and a.precision == b.precision else None
    ca, cb = _canonical_bound(a.comparator, a.threshold, step), _canonical_bound(b.comparator, b.threshold, step)
    if ca and cb and step is not None:
        if ca == cb:
            return "same", f"{a.comparator} {a.threshold} equals {b.comparator} {b.threshold} at step {step}"
        flip = {">=": "<=", "<=": ">="}[ca[0]]
        if cb[0] == flip and abs(ca[1] - cb[1]) == step:
            return "inverted", f"{a.comparator} {a.threshold} complements {b.comparator} {b.threshold} at step {step}"
    return None, (f"{a.comparator} {a.threshold} vs {b.comparator} {b.threshold}"
                  f" (precision {a.precision} vs {b.precision}) differ")


def compare(poly: Criteria, kalshi: Criteria) -> Comparison:
    """Every deterministic veto check between the Polymarket and the Kalshi criteria."""
    checks: list[Check] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append(Check(name, ok, detail))

    for side, c in (("polymarket", poly), ("kalshi", kalshi)):
        check(f"placeholders:{side}", not c.placeholders,
              "none" if not c.placeholders else f"unfilled template text {list(c.placeholders)}")
        check(f"understood:{side}", not c.unknowns,
              "every clause understood" if not c.unknowns else "; ".join(c.unknowns[:4]))
    check("family", poly.family is not None and poly.family == kalshi.family, f"{poly.family} vs {kalshi.family}")
    check("subject", poly.subject is not None and poly.subject == kalshi.subject,
          f"{poly.subject} vs {kalshi.subject}")
    check("source", poly.source is not None and poly.source == kalshi.source, f"{poly.source} vs {kalshi.source}")
    check("unit", poly.unit is not None and poly.unit == kalshi.unit, f"{poly.unit} vs {kalshi.unit}")
    check("window", poly.window_start is not None and poly.window_end is not None
          and (poly.window_start, poly.window_end) == (kalshi.window_start, kalshi.window_end),
          f"{poly.window_start}..{poly.window_end} vs {kalshi.window_start}..{kalshi.window_end}")
    check("void_rules", set(poly.void_rules) == set(kalshi.void_rules),
          f"{sorted(poly.void_rules)} vs {sorted(kalshi.void_rules)}")

    polarity: Polarity | None = None
    if poly.family == "game_winner" and kalshi.family == "game_winner":
        polarity = _game_polarity(poly, kalshi, check)
    elif poly.family == "threshold" and kalshi.family == "threshold":
        ok_entity = poly.entity is not None and kalshi.entity is not None and same_station(poly.entity,
                                                                                          kalshi.entity)
        check("entity", ok_entity, f"{poly.entity} vs {kalshi.entity}")
        # the same printed threshold means different states on a different reporting step (0.24% is "> 0.2" to
        # two decimals, but rounds to 0.2 on one), so the steps must be known and equal
        ok_step = poly.precision is not None and poly.precision == kalshi.precision
        check("precision", ok_step, f"reported step {poly.precision} vs {kalshi.precision}")
        polarity, why = threshold_polarity(poly, kalshi)
        check("threshold", polarity is not None, why)
    elif poly.family == "event_winner" and kalshi.family == "event_winner":
        # one entity wins one event: the same entity on both sides is the same contract; a different entity is
        # never a complement (a third entity can win), so there is no inverted case here
        ok_entity = poly.entity is not None and poly.entity == kalshi.entity
        check("entity", ok_entity, f"{poly.entity} vs {kalshi.entity}")
        ok_cmp = poly.comparator == kalshi.comparator == "wins"
        check("comparator", ok_cmp, f"{poly.comparator} vs {kalshi.comparator}")
        polarity = "same" if ok_entity and ok_cmp else None
    else:
        check("polarity", False, "no comparable contract family")
    if polarity == "inverted":
        # a complement needs every special case to pay complementary amounts too: a rule that settles both YES
        # markets the same way ("no decision resolves No" on both) makes YES+YES lose together, not hedge
        one_sided = sorted(t for t in {*poly.void_rules, *kalshi.void_rules} if t.endswith((":no", ":yes")))
        check("inverted_void_rules", not one_sided,
              "special cases pay 50/50 or keep the market open" if not one_sided
              else f"{one_sided} settle both YES sides alike, so YES on one venue is not NO on the other")
    result = Comparison(polarity, checks)
    if not result.passed:
        result.polarity = None
    return result


def _game_polarity(poly: Criteria, kalshi: Criteria, check: Any) -> Polarity | None:
    p_yes, p_no, k_yes, k_other = poly.entity, poly.counterparty, kalshi.entity, kalshi.counterparty
    if not (p_yes and p_no and k_yes and k_other):
        check("entity", False, "a team name is missing")
        return None
    teams_ok = (same_entity(k_yes, p_yes, (p_no,)) and same_entity(k_other, p_no, (p_yes,))) or (
        same_entity(k_yes, p_no, (p_yes,)) and same_entity(k_other, p_yes, (p_no,)))
    check("entity", teams_ok, f"game {p_yes} v {p_no} vs {k_yes} v {k_other}")
    if not teams_ok:
        return None
    check("comparator", poly.comparator == kalshi.comparator == "wins", f"{poly.comparator} vs {kalshi.comparator}")
    if same_entity(k_yes, p_yes, (p_no,)):
        check("polarity", True, f"YES is {p_yes} on both")
        return "same"
    # Kalshi YES is the other team: an exact complement only if the game cannot end level, or a level
    # game pays 50/50 on both venues (then YES_poly = 1 - YES_kalshi still holds).
    ties_settle_half = "tie:5050" in poly.void_rules and "tie:5050" in kalshi.void_rules
    no_draws = poly.draws_possible is False and kalshi.draws_possible is False
    ok = no_draws or ties_settle_half
    check("polarity", ok, f"YES is {p_yes} on Polymarket and {k_yes} on Kalshi; "
          + ("a draw is impossible or pays 50/50 on both: exact complement" if ok
             else "a draw/tie pays NO on both sides or is not ruled out: not a complement"))
    return "inverted" if ok else None
