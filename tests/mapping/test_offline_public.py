"""The offline default on the public labelled pairs and on adversarial variants built from them."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crossbook.cli import main
from crossbook.mapping.consensus import judge_pairs

PAIRS = Path(__file__).resolve().parents[3] / "shared" / "pairs" / "public_pairs.json"
if not PAIRS.exists():
    PAIRS = Path("/work/shared/pairs/public_pairs.json")
pytestmark = pytest.mark.skipif(not PAIRS.exists(), reason="shared/pairs not present")


def load() -> list[dict[str, Any]]:
    return list(json.loads(PAIRS.read_text()))


async def test_public_precision_is_one_and_recall_reported() -> None:
    pairs = load()
    verdicts = {v.id: v for v in await judge_pairs(pairs)}
    fp = [p["id"] for p in pairs if p["label"] == "different" and verdicts[p["id"]].status == "Verified"]
    assert fp == [], f"false positives: {fp}"
    for p in pairs:
        v = verdicts[p["id"]]
        if v.status == "Verified":
            want = "inverted" if p["label"] == "equivalent_inverted" else "same"
            assert v.polarity == want, p["id"]
        else:
            assert v.polarity is None and v.reasons, p["id"]
    positives = [p for p in pairs if p["label"] != "different"]
    tp = sum(verdicts[p["id"]].status == "Verified" for p in positives)
    assert tp / len(positives) >= 14 / 15  # recall floor of the offline rules today (14 of 15; was 10 before v2)


def _sub(side: str, key: str, old: str, new: str) -> Callable[[dict[str, Any]], bool]:
    def mutate(p: dict[str, Any]) -> bool:
        text = p[side][key]
        if old not in text:
            return False
        p[side][key] = text.replace(old, new)
        return True
    return mutate


def _regex(side: str, key: str, pat: str, repl: Callable[[re.Match[str]], str]) -> Callable[[dict[str, Any]], bool]:
    def mutate(p: dict[str, Any]) -> bool:
        text = p[side][key]
        new = re.sub(pat, repl, text, count=1)
        p[side][key] = new
        return new != text
    return mutate


def _bump_number(m: re.Match[str]) -> str:
    raw = m.group(0)
    decimals = len(raw.split(".")[1]) if "." in raw else 0
    step = 10 ** -decimals
    return f"{float(raw.replace(',', '')) + step:.{decimals}f}"


MUTATIONS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "kalshi_threshold_up": _regex("kalshi", "rules_primary", r"(?<=than |bove )\d[\d,]*(?:\.\d+)?", _bump_number),
    "poly_threshold_up": _regex("polymarket", "description", r"(?:(?<=than )|(?<=bove )|(?<=\$))\d[\d,]*(?:\.\d+)?",
                                _bump_number),
    "kalshi_inclusive": _sub("kalshi", "rules_primary", "is greater than", "is greater than or equal to"),
    "kalshi_strict_to_at_least": _sub("kalshi", "rules_primary", "is above", "is at least"),
    "poly_inclusive_flip": _sub("polymarket", "description", "or higher", "or lower"),
    "kalshi_station": _regex("kalshi", "rules_primary", r"(?<=recorded at )[A-Z][a-z]+", lambda m: "Newark"),
    "poly_station": _regex("polymarket", "description", r"(?<=recorded at )[A-Z][a-z]+", lambda m: "Newark"),
    "kalshi_date": _regex("kalshi", "rules_primary", r"(?<= )(\d{1,2})(?=, 20\d\d)",
                          lambda m: str(int(m.group(1)) % 28 + 1)),
    "poly_date": _regex("polymarket", "description", r"(?<= )(\d{1,2})(?=, 20\d\d)",
                        lambda m: str(int(m.group(1)) % 28 + 1)),
    "kalshi_timezone": _sub("kalshi", "rules_primary", "EDT", "CT"),
    "poly_timezone_utc": _sub("polymarket", "description", "PM ET", "PM UTC"),
    "poly_hour": _regex("polymarket", "description", r"before (\d{1,2}):00",
                        lambda m: f"before {int(m.group(1)) % 12 + 1}:00"),
    "kalshi_source": _sub("kalshi", "rules_primary", "National Weather Service's Climatological Report (Daily)",
                          "AccuWeather daily summary"),
    "poly_source_binance": _sub("polymarket", "description", "CF Benchmarks", "Binance"),
    "kalshi_other_team": _regex("kalshi", "rules_primary", r"^If (.+?) wins the (.+?) (vs|at) (.+?) professional",
                                lambda m: f"If {m.group(4) if m.group(1) == m.group(2) else m.group(2)} wins the "
                                          f"{m.group(2)} {m.group(3)} {m.group(4)} professional"),
    "kalshi_drop_tie_rule": _sub("kalshi", "rules_secondary", " If the game ends in a tie, the market will resolve "
                                 "to $0.50.", ""),
    "kalshi_no_two_weeks": _sub("kalshi", "rules_secondary", " (within two weeks)", ""),
    "poly_placeholder": _regex("polymarket", "description", r"(?<=if the )[A-Z][a-z]+ [A-Z][a-z]+(?= win)",
                               lambda m: "[Team]"),
    "kalshi_placeholder": _regex("kalshi", "rules_primary", r"^If [A-Z][\w ]+? wins", lambda m: "If [Team] wins"),
    "kalshi_not_sa": _sub("kalshi", "rules_secondary", "seasonally adjusted", "not seasonally adjusted"),
    "poly_core_cpi": _sub("polymarket", "description", "Consumer Price Index", "core Consumer Price Index"),
    "poly_yoy": _sub("polymarket", "description", "month-over-month", "year-over-year"),
    "kalshi_month": _regex("kalshi", "rules_primary", r"(?:(?<=for )|(?<=in ))(January|February|March|April|May|June)",
                           lambda m: "July"),
    "kalshi_bucket": _regex("kalshi", "rules_primary", r"is above (\d[\d.]*)",
                            lambda m: f"is between {m.group(1)} and {m.group(1)}9"),
    "kalshi_celsius": _regex("kalshi", "rules_primary", r"(\d+)°", lambda m: f"{m.group(1)}°C"),
    "kalshi_extra_clause": _regex("kalshi", "rules_secondary", r"$",
                                  lambda m: " If the reporting station is offline, the market resolves to No."),
    "poly_extra_clause": _regex("polymarket", "description", r"$",
                                lambda m: "\n\nIf the data source is unavailable, this market resolves 50-50."),
    "kalshi_fomc_50": _sub("kalshi", "rules_primary", "exactly 25 basis points", "exactly 50 basis points"),
    "poly_fomc_hike": _sub("polymarket", "description", "is decreased by", "is increased by"),
    "poly_winter_edt": _sub("polymarket", "description", "PM ET", "PM EST"),
}


async def test_adversarial_variants_never_verified() -> None:
    """Mutate each pair that the rules Verify: every mutation that changed the text must not stay Verified
    with the same polarity (the mutations all change which states pay)."""
    base = [p for p in load() if p["label"] != "different"]
    ok_ids = {v.id for v in await judge_pairs(base) if v.status == "Verified"}
    variants: list[dict[str, Any]] = []
    for p in base:
        if p["id"] not in ok_ids:
            continue
        for name, mutate in MUTATIONS.items():
            q = copy.deepcopy(p)
            if mutate(q):
                q["id"] = f"{p['id']}:{name}"
                variants.append(q)
    assert len(variants) >= 40
    verdicts = await judge_pairs(variants)
    orig = {v.id: v.polarity for v in await judge_pairs(base)}
    # None of these mutations yields an exact equal or complement of the other venue's contract, except
    # swapping the YES team of a game that cannot end level (a legitimate inversion), so any other
    # Verified variant is a false positive.
    bad = [v.id for v in verdicts if v.status == "Verified"
           and not (v.id.endswith(":kalshi_other_team") and v.polarity != orig[v.id.split(":")[0]])]
    assert not bad, f"false positives on adversarial variants: {sorted(set(bad))}"


def test_cli_pairs_judge(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pairs", "judge", "--offline", str(PAIRS)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 30
    for v in out:
        assert set(v) >= {"id", "status", "polarity", "reasons", "extractor_a", "extractor_b", "judge"}
        assert v["status"] in ("Verified", "Unverified")
        assert v["polarity"] in ("same", "inverted", None)


def test_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "x.json"
    f.write_text('[{"polymarket": {}}]')
    assert main(["pairs", "judge", str(f)]) == 1
    assert "x.json" in capsys.readouterr().err
