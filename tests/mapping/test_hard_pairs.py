"""A held-out adversarial set (tests/mapping/hard_pairs.json, shared/pairs schema): traps built from realistic venue
rule texts, plus true pairs phrased differently. The offline default and the scripted model consensus must Verify
none of the traps; recall on the true pairs is reported and held to a floor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crossbook.cli import main
from crossbook.mapping.evaluate import evaluate
from tests.mapping.llm_server import scripted_consensus

HARD = Path(__file__).with_name("hard_pairs.json")
PUBLIC = Path("/work/shared/pairs/public_pairs.json")
for _up in Path(__file__).resolve().parents:
    if (_up / "shared" / "pairs" / "public_pairs.json").exists():
        PUBLIC = _up / "shared" / "pairs" / "public_pairs.json"
        break


def load(path: Path) -> list[dict[str, Any]]:
    return list(json.loads(path.read_text()))


def test_hard_set_is_a_held_out_adversarial_set() -> None:
    pairs = load(HARD)
    assert len(pairs) >= 40 and len({p["id"] for p in pairs}) == len(pairs)
    traps = [p for p in pairs if p["label"] == "different"]
    assert len(traps) > len(pairs) / 2 and all(p["trap"] and p["why"] for p in traps)
    assert {"equivalent", "equivalent_inverted"} <= {p["label"] for p in pairs}
    keys = {"polymarket": {"question", "description", "outcomes", "end_date_iso", "slug"},
            "kalshi": {"ticker", "title", "yes_sub_title", "rules_primary", "rules_secondary", "close_time",
                       "expiration_time"}}
    for p in pairs:
        for side, want in keys.items():
            assert set(p[side]) == want, (p["id"], side)


async def test_offline_default_zero_false_positives() -> None:
    sc, verdicts = await evaluate(load(HARD))
    print(f"offline on hard_pairs.json: {sc.line()}")
    assert sc.false_positives == []
    for v in verdicts:
        assert v.reasons and (v.status == "Verified") == (v.polarity is not None)
    assert sc.true_positives >= 18  # every true pair


async def test_scripted_consensus_zero_false_positives() -> None:
    with scripted_consensus() as (_, cons):
        for path in (HARD, PUBLIC) if PUBLIC.exists() else (HARD,):
            sc, _ = await evaluate(load(path), cons, concurrency=2)
            print(f"scripted consensus on {path.name}: {sc.line()}")
            assert sc.false_positives == []
            assert sc.true_positives >= 13


@pytest.mark.parametrize("path", [HARD, pytest.param(PUBLIC, marks=pytest.mark.skipif(
    not PUBLIC.exists(), reason="shared/pairs not present"))])
@pytest.mark.parametrize("models", ["sloppy", "mirror"])
async def test_sloppy_models_and_a_yes_man_judge_verify_no_trap(path: Path, models: str) -> None:
    """Models that claim to understand every clause ("sloppy"), or that read the Polymarket side as a copy of the
    Kalshi side ("mirror", so every per-model check passes), and a judge that always agrees: the offline rules'
    veto still keeps every trap Unverified wherever they know the contract family."""
    traps = [p for p in load(path) if p["label"] == "different"]
    with scripted_consensus() as (script, cons):
        script.extract, script.judge = models, "always_yes"
        sc, verdicts = await evaluate(traps, cons, concurrency=2)
    assert sc.false_positives == [], [(v.id, v.reasons) for v in verdicts if v.status == "Verified"]


def test_cli_pairs_eval(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["pairs", "eval", "--offline", "--json", str(HARD)]) == 0
    out = json.loads(capsys.readouterr().out)[str(HARD)]
    assert out["false_positives"] == [] and out["precision"] == "1.000"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{**load(HARD)[0], "label": "same-ish"}]))
    assert main(["pairs", "eval", "--offline", str(bad)]) == 1
    assert "label must be one of" in capsys.readouterr().err


def test_station_states() -> None:
    from crossbook.mapping.criteria import same_station
    from crossbook.mapping.offline import _station

    assert _station("Chicago Midway, IL") == "chicago midway@il" and _station("New York (JFK)") == "new york jfk"
    assert same_station(_station("Chicago Midway International Airport"), _station("Chicago Midway, IL"))
    assert not same_station(_station("Columbus, OH"), _station("Columbus, GA"))
    assert not same_station(_station("Portland"), _station("Portland, OR"))  # a bare city with a state on one side
    assert same_station(_station("Denver International Airport"), _station("Denver International Airport"))


async def test_garbage_fields_never_crash_and_never_verify_a_trap() -> None:
    """Every field of every trap replaced by a wrong type, an empty value or a template slot: a verdict comes back
    (no exception escapes), and it is never Verified; a true pair whose outcomes are unknown is not Verified."""
    import copy

    traps = [p for p in load(HARD) if p["label"] == "different"]
    if PUBLIC.exists():
        traps += [p for p in load(PUBLIC) if p["label"] == "different"]
    garbage: list[Any] = [None, 1, [], {}, "", "{{date}}"]
    variants = []
    for p in traps:
        for side in ("polymarket", "kalshi"):
            for key in p[side]:
                for g in garbage:
                    q = copy.deepcopy(p)
                    q[side][key] = g
                    q["id"] = f"{p['id']}:{side}.{key}={g!r}"
                    variants.append(q)
    sc, verdicts = await evaluate([{**v, "label": "different"} for v in variants])
    assert len(verdicts) == len(variants) and sc.false_positives == []
    true = next(p for p in load(HARD) if p["id"] == "hard-004")
    for outcomes in (None, [], ["No", "Yes"], "Yes,No", ["Yes", "No", "Maybe"]):
        q = copy.deepcopy(true)
        q["polymarket"]["outcomes"] = outcomes
        (v,) = (await evaluate([q]))[1]
        assert v.status == "Unverified" and any("outcomes" in r for r in v.reasons), outcomes


def test_inverted_needs_symmetric_special_cases() -> None:
    """'<= 1' is the complement of '> 1', unless a special case (no release, no decision) resolves both YES sides
    to No: then both hedge legs lose together."""
    from dataclasses import replace
    from decimal import Decimal

    from crossbook.mapping.criteria import Criteria, compare

    a = Criteria(family="threshold", subject="x", entity="e", comparator=">", threshold=Decimal(1), unit="u",
                 precision=Decimal(1), window_start="2026-01", window_end="2026-01", source="s")
    b = replace(a, comparator="<=")
    assert compare(a, b).polarity == "inverted"
    for tag in ("no_decision:no", "no_release:yes"):
        c = compare(replace(a, void_rules=(tag,)), replace(b, void_rules=(tag,)))
        assert not c.passed and any("inverted_void_rules" in r for r in c.reasons)
    assert compare(replace(a, void_rules=("delay:open",)), replace(b, void_rules=("delay:open",))).passed
