"""Model A/B and the judge through the official clients, against local servers speaking their wire formats.

Every failure mode (429, malformed JSON, schema violations, refusals, timeouts) must give Unverified.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossbook.mapping.consensus import Consensus, judge_pairs
from crossbook.mapping.providers import consensus_from_env
from tests.mapping.llm_server import Script, scripted_consensus

PAIRS = Path("/work/shared/pairs/public_pairs.json")
if not PAIRS.exists():
    PAIRS = Path(__file__).resolve().parents[3] / "shared" / "pairs" / "public_pairs.json"
pytestmark = pytest.mark.skipif(not PAIRS.exists(), reason="shared/pairs not present")


@pytest.fixture
def llm() -> Iterator[tuple[Script, Consensus]]:
    with scripted_consensus() as sc:
        yield sc


async def test_consensus_good_replies(llm: tuple[Script, Consensus]) -> None:
    _, cons = llm
    pairs = json.loads(PAIRS.read_text())
    verdicts = {v.id: v for v in await judge_pairs(pairs, cons, concurrency=2)}
    labels = {p["id"]: p["label"] for p in pairs}
    assert not [i for i, v in verdicts.items() if v.status == "Verified" and labels[i] == "different"]
    assert sum(v.status == "Verified" for v in verdicts.values()) >= 10, [(i, v.reasons) for i, v in verdicts.items()]
    equivalent = [i for i, lab in labels.items() if lab != "different"]
    tp = sum(verdicts[i].status == "Verified" for i in equivalent)
    wrong_polarity = [i for i in equivalent if verdicts[i].status == "Verified"
                      and (verdicts[i].polarity == "inverted") != (labels[i] == "equivalent_inverted")]
    assert not wrong_polarity
    print(f"consensus (scripted OpenAI + Anthropic extractors, OpenAI judge): precision 1.0, "
          f"recall {tp}/{len(equivalent)}")
    v = verdicts["pub-001"]
    assert v.extractor_a.startswith("openai-compatible:gpt-test") and v.extractor_b == "anthropic:claude-test"
    assert v.raw_replies["a"] and v.prompts["judge"]


@pytest.mark.parametrize("extract,judge", [("429", "agree"), ("malformed", "agree"), ("refusal", "agree"),
                                           ("schema", "agree"), ("timeout", "agree"), ("good", "429"),
                                           ("good", "malformed"), ("good", "refusal"), ("good", "timeout")])
async def test_every_failure_is_unverified(llm: tuple[Script, Consensus], extract: str, judge: str) -> None:
    script, cons = llm
    script.extract, script.judge = extract, judge
    pairs = [p for p in json.loads(PAIRS.read_text()) if p["id"] in ("pub-001", "pub-013")]
    for v in await judge_pairs(pairs, cons):
        assert v.status == "Unverified" and v.polarity is None and v.reasons, (extract, judge, v)


async def test_yes_man_judge_cannot_verify_a_trap(llm: tuple[Script, Consensus]) -> None:
    script, cons = llm
    script.judge = "always_yes"
    pairs = [p for p in json.loads(PAIRS.read_text()) if p["label"] == "different"]
    assert all(v.status == "Unverified" for v in await judge_pairs(pairs, cons))


def test_consensus_from_env_falls_back_offline() -> None:
    assert consensus_from_env({}).offline_only
    assert consensus_from_env({"CROSSBOOK_MAPPING_MODEL_A": "openai:x", "CROSSBOOK_MAPPING_MODEL_B": "anthropic:y",
                               "CROSSBOOK_MAPPING_MODEL_JUDGE": "openai:z"}).offline_only  # no keys
    c = consensus_from_env({"CROSSBOOK_MAPPING_MODEL_A": "openai:x", "CROSSBOOK_MAPPING_MODEL_B": "anthropic:y",
                            "CROSSBOOK_MAPPING_MODEL_JUDGE": "openai:z", "OPENAI_API_KEY": "k",
                            "ANTHROPIC_API_KEY": "k"})
    assert not c.offline_only and c.b.name == "anthropic:y"


async def test_models_that_read_different_contracts_do_not_verify(llm: tuple[Script, Consensus]) -> None:
    """Model B reads a different threshold on both sides (still a consistent pair for B alone): A and B disagree
    on what the contract is, so the pair is not Verified even though each model's checks pass."""
    script, cons = llm
    script.extract = "shift_b"
    pairs = [p for p in json.loads(PAIRS.read_text()) if p["id"] in ("pub-005", "pub-010")]
    for v in await judge_pairs(pairs, cons):
        assert v.status == "Unverified", (v.id, v.reasons)
        assert any("disagreement:" in r and "threshold" in r for r in v.reasons), v.reasons
