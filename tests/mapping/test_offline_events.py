"""Event rules (Super Bowl, Premier League title, presidential nomination): the true public pairs are Verified,
and every variant of them with a different entity, season, date, source or void rule is not."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crossbook.mapping.consensus import judge_pairs
from crossbook.mapping.offline import extract_kalshi

PAIRS = Path("/work/shared/pairs/public_pairs.json")
for _up in Path(__file__).resolve().parents:
    if (_up / "shared" / "pairs" / "public_pairs.json").exists():
        PAIRS = _up / "shared" / "pairs" / "public_pairs.json"
        break
pytestmark = pytest.mark.skipif(not PAIRS.exists(), reason="shared/pairs not present")

Mut = Callable[[dict[str, Any]], None]


def sub(side: str, key: str, old: str, new: str) -> Mut:
    def f(p: dict[str, Any]) -> None:
        assert old in p[side][key], (side, key, old)
        p[side][key] = p[side][key].replace(old, new)
    return f


def put(side: str, key: str, value: str) -> Mut:
    def f(p: dict[str, Any]) -> None:
        p[side][key] = value
    return f


VARIANTS: dict[str, dict[str, Mut]] = {
    "pub-007": {  # Seahawks, Super Bowl LX
        "kalshi_other_team": sub("kalshi", "rules_primary", "If Seattle wins", "If Los Angeles R wins"),
        "poly_other_team": sub("polymarket", "description", "Seattle Seahawks", "San Francisco 49ers"),
        "kalshi_next_season": sub("kalshi", "rules_primary", "2026 Pro Football", "2027 Pro Football"),
        "poly_next_super_bowl": sub("polymarket", "description", "Super Bowl LX,", "Super Bowl LXI,"),
        "poly_wrong_date": sub("polymarket", "description", "February 8, 2026", "February 15, 2026"),
        "poly_no_postponement_rule": sub("polymarket", "description", "If the Super Bowl is postponed, this market "
                                         "will remain open until the game is played. ", ""),
        "poly_postponed_is_no": sub("polymarket", "description", "this market will remain open until the game is "
                                    "played", 'this market will resolve to "No"'),
        "poly_other_source": sub("polymarket", "description", "official NFL result", "Associated Press call"),
        "kalshi_secondary_clause": put("kalshi", "rules_secondary", "If the game is postponed, the market resolves "
                                       "to No."),
        "kalshi_no_room_to_postpone": put("kalshi", "expiration_time", "2026-02-09T15:00:00Z"),
        "kalshi_conference_title": sub("kalshi", "rules_primary", "Pro Football Championship",
                                       "Pro Football Conference Championship"),
    },
    "pub-012": {  # Arsenal, 2025-26 Premier League
        "kalshi_other_club": sub("kalshi", "rules_primary", "If Arsenal wins", "If Chelsea wins"),
        "poly_other_club": sub("polymarket", "description", "if Arsenal is", "if Liverpool is"),
        "poly_next_season": sub("polymarket", "description", "2025–26", "2026–27"),
        "kalshi_next_season": put("kalshi", "expiration_time", "2027-05-25T14:00:00Z"),
        "kalshi_unpinned_season": put("kalshi", "expiration_time", "2026-12-31T14:00:00Z"),
        "kalshi_other_league": sub("kalshi", "rules_primary", "English Premier League", "Spanish La Liga"),
        "poly_top_four": sub("polymarket", "description", "is officially crowned champion of",
                             "finishes in the top four of"),
        "poly_incomplete_is_no": sub("polymarket", "description", "resolve according to the title as officially "
                                     "awarded by the Premier League", 'resolve to "No"'),
        "kalshi_secondary_clause": put("kalshi", "rules_secondary", "If the season is abandoned, the market "
                                       "resolves to No."),
    },
    "pub-006": {  # Newsom, 2028 Democratic nomination
        "kalshi_other_person": sub("kalshi", "rules_primary", "Gavin Newsom", "Gretchen Whitmer"),
        "poly_question_other_person": sub("polymarket", "question", "Gavin Newsom", "Pete Buttigieg"),
        "kalshi_other_party": sub("kalshi", "rules_primary", "Democratic party", "Republican party"),
        "poly_next_cycle": sub("polymarket", "description", "2028 nomination", "2032 nomination"),
        "kalshi_next_cycle": put("kalshi", "expiration_time", "2032-11-02T15:00:00Z"),
        "kalshi_off_year": put("kalshi", "expiration_time", "2027-11-07T15:00:00Z"),
        "poly_wins_only": sub("polymarket", "description", "wins and accepts", "wins"),
        "poly_replacement_counts": sub("polymarket", "description", "will not change", "will change"),
        "kalshi_other_close_rule": put("kalshi", "rules_secondary", "This market will close after the Democratic "
                                       "National Convention ends."),
        "kalshi_placeholder": sub("kalshi", "rules_primary", "Gavin Newsom", "[Candidate]"),
    },
}


def load() -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in json.loads(PAIRS.read_text())}


async def test_event_pairs_verified() -> None:
    pairs = load()
    verdicts = await judge_pairs([pairs[i] for i in VARIANTS])
    assert [(v.id, v.status, v.polarity) for v in verdicts] == [(i, "Verified", "same") for i in VARIANTS]


async def test_event_variants_never_verified() -> None:
    pairs = load()
    variants = []
    for pid, muts in VARIANTS.items():
        for name, mut in muts.items():
            q = copy.deepcopy(pairs[pid])
            mut(q)
            q["id"] = f"{pid}:{name}"
            variants.append(q)
    verdicts = await judge_pairs(variants)
    bad = [v.id for v in verdicts if v.status == "Verified"]
    assert bad == []
    assert all(v.reasons for v in verdicts)


def test_kalshi_short_names_are_teams_not_prefixes() -> None:
    base = {"title": "", "yes_sub_title": "", "rules_secondary": "", "expiration_time": "2028-02-08T15:00:00Z"}
    rams = extract_kalshi({**base, "rules_primary": "If Los Angeles R wins the 2026 Pro Football Championship, "
                                                    "then the market resolves to Yes."})
    chargers = extract_kalshi({**base, "rules_primary": "If Los Angeles C wins the 2026 Pro Football Championship, "
                                                        "then the market resolves to Yes."})
    unknown = extract_kalshi({**base, "rules_primary": "If Los Angeles wins the 2026 Pro Football Championship, "
                                                       "then the market resolves to Yes."})
    assert rams.entity == "nfl:Los Angeles Rams" and chargers.entity == "nfl:Los Angeles Chargers"
    assert unknown.unknowns  # "Los Angeles" alone is two teams: not understood
