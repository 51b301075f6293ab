"""Verdict audit completeness, read back from a real PostgreSQL: every verdict keeps the prompts, the model ids asked
for and the ones that answered, the raw replies (also of failed steps), both extractions and every check; verdicts
are append-only; `crossbook pairs show` prints from those rows why a pair is (not) Verified."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from crossbook.cli import main
from crossbook.mapping import offline
from crossbook.mapping.consensus import judge_pairs, offline_consensus
from crossbook.mapping.sync import to_record
from crossbook.store.postgres import migrate, record_verdict
from tests.mapping.llm_server import scripted_consensus

HARD = Path(__file__).with_name("hard_pairs.json")
ROW = "SELECT * FROM verdicts WHERE pair_ref = $1 ORDER BY id DESC LIMIT 1"


def _pairs(*ids: str) -> list[dict[str, Any]]:
    by_id = {p["id"]: p for p in json.loads(HARD.read_text())}
    out = []
    for i in ids:
        p = dict(by_id[i])
        p["polymarket"] = {**p["polymarket"], "condition_id": f"0x{i.replace('-', '')}"}
        out.append(p)
    return out


async def _store(url: str, pairs: list[dict[str, Any]], verdicts: list[Any]) -> None:
    conn = await asyncpg.connect(url)
    try:
        for p, v in zip(pairs, verdicts, strict=True):
            rec, pt, kt = to_record(p, v)
            await record_verdict(conn, rec, pt, kt)
    finally:
        await conn.close()


def _j(x: Any) -> Any:
    return json.loads(x) if isinstance(x, str) else x


async def test_model_verdicts_are_fully_audited(pg_url: str) -> None:
    await migrate(pg_url)
    good, trap = _pairs("hard-004", "hard-022")  # a true temperature pair; an inclusivity trap
    with scripted_consensus() as (script, cons):
        verdicts = await judge_pairs([good, trap], cons)
        script.extract = "malformed"
        bad = _pairs("hard-001")[0]
        bad["id"] = "malformed-reply"
        verdicts.append((await judge_pairs([bad], cons))[0])
        script.extract, script.judge = "good", "refusal"
        ref = _pairs("hard-001")[0]
        ref["id"] = "judge-refused"
        verdicts.append((await judge_pairs([ref], cons))[0])
        script.extract, script.judge = "timeout", "agree"
        slow = _pairs("hard-001")[0]
        slow["id"] = "timed-out"
        verdicts.append((await judge_pairs([slow], cons))[0])
    pairs = [good, trap, bad, ref, slow]
    assert [v.status for v in verdicts] == ["Verified", "Unverified", "Unverified", "Unverified", "Unverified"]
    await _store(pg_url, pairs, verdicts)
    conn = await asyncpg.connect(pg_url)
    try:
        for p, v in zip(pairs, verdicts, strict=True):
            row = await conn.fetchrow(ROW, p["id"])
            assert row is not None, p["id"]
            assert row["extractor_a"] == v.extractor_a and row["extractor_a"].startswith("openai-compatible:gpt-test")
            assert row["extractor_b"] == "anthropic:claude-test" and row["judge"].startswith("openai-compatible:")
            prompts, raws = _j(row["prompts"]), _j(row["raw_replies"])
            extractions, checks, reasons = _j(row["extractions"]), _j(row["checks"]), _j(row["reasons"])
            assert reasons == v.reasons and reasons
            if p["id"] == "timed-out":
                # no reply at all: what was asked (the contract text) and why there is no reply are still stored
                for label in ("a", "b"):
                    assert p["kalshi"]["rules_primary"] in json.dumps(prompts[label], ensure_ascii=False)
                    assert "imeout" in raws[label]["error"] or "timed out" in raws[label]["error"]
                assert any("failed" in r for r in reasons)
                continue
            # model A and B were always asked: their prompts carry the system text and the contract as sent
            for label in ("a", "b"):
                assert prompts[label]["system"].startswith("You extract")
                assert json.loads(prompts[label]["user"])["kalshi"]["rules_primary"] == p["kalshi"]["rules_primary"]
                assert raws[label]["model"] == {"a": "gpt-test", "b": "claude-test"}[label]  # who answered
            if p["id"] == "malformed-reply":
                # the unusable reply itself is kept, not only "it failed"
                assert raws["a"]["text"].startswith('{"polymarket"') and "extractions" not in extractions.get("a", {})
                assert any("failed" in r and "not JSON" in r for r in reasons)
                continue
            assert set(extractions) == {"a", "b"}
            for label in ("a", "b"):
                assert extractions[label] == v.extractions[label]
                assert extractions[label]["kalshi"]["entity"]  # the extraction, field by field
                names = {c["name"] for c in checks if c["by"] == label}
                assert names >= {"family", "subject", "source", "window", "void_rules", "entity"}
                if extractions[label]["kalshi"]["family"] == "threshold":
                    assert names >= {"threshold", "precision", "unit"}
            assert prompts["judge"]["system"].startswith("You are the judge")
            if p["id"] == "judge-refused":
                assert raws["judge"]["finish"] == "stop" and raws["judge"]["refusal"]
                continue
            assert raws["judge"]["model"] == "judge-test" and json.loads(raws["judge"]["text"])["equivalent"] in (
                True, False)
            judge = [c for c in checks if c["by"] == "judge"]
            assert len(judge) == 1 and judge[0]["ok"] == (v.status == "Verified")
            if p["id"] == "hard-022":
                failed = [c for c in checks if not c["ok"] and c["name"] == "threshold"]
                assert failed and ">= 91" in failed[0]["detail"] and "> 91" in failed[0]["detail"]
    finally:
        await conn.close()


async def test_offline_verdicts_keep_the_text_they_read_and_verdicts_are_append_only(pg_url: str) -> None:
    await migrate(pg_url)
    pairs = _pairs("hard-004")
    verdicts = await judge_pairs(pairs, offline_consensus())
    await _store(pg_url, pairs, verdicts)
    conn = await asyncpg.connect(pg_url)
    try:
        row = await conn.fetchrow(ROW, "hard-004")
        prompts = _j(row["prompts"])
        assert prompts["a"]["rules"] == row["extractor_a"] == offline.NAME
        assert prompts["a"]["input"]["polymarket"]["description"] == pairs[0]["polymarket"]["description"]
        assert _j(row["raw_replies"]) == {"a": None, "b": None, "judge": None}
        for sql in ("UPDATE verdicts SET status = 'Verified'", "DELETE FROM verdicts", "TRUNCATE verdicts CASCADE"):
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(sql)
    finally:
        await conn.close()


async def test_pairs_show_explains_from_the_stored_rows(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    await migrate(pg_url)
    pairs = _pairs("hard-004", "hard-022", "hard-005")
    await _store(pg_url, pairs, await judge_pairs(pairs, offline_consensus()))
    db = ["--db-url", pg_url]

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["pairs", "show", *args, *db])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = await asyncio.to_thread(run, "KXHIGHPHX-26APR30-T91")
    assert code == 0
    assert "NOT VERIFIED" in out and "FAIL  [a] threshold: >= 91 vs > 91" in out
    assert "market_pairs: Unverified" in out and "Phoenix" in out and "* comparator" in out
    code, out, _ = await asyncio.to_thread(run, "hard-005")  # by pair ref: an inverted pair
    assert code == 0 and "VERIFIED, INVERTED" in out and "FAIL " not in out and "offline rules" in out
    code, out, _ = await asyncio.to_thread(run, "KXHIGHAUS-26AUG10-T94", "--full")
    assert "--- prompt to a ---" in out and "Austin-Bergstrom" in out
    code, out, _ = await asyncio.to_thread(run, "KXHIGHAUS-26AUG10-T94", "--json")
    rows = json.loads(out)
    assert len(rows) == 1 and rows[0]["status"] == "Verified" and rows[0]["market_pair"]["logic_status"] == "Verified"
    code, _, err = await asyncio.to_thread(run, "KXNOPE-1")
    assert code == 1 and "no verdict for 'KXNOPE-1'" in err


async def test_a_step_that_never_answers_still_leaves_its_question_in_the_verdict() -> None:
    from crossbook.mapping.consensus import Consensus, DeterministicJudge, Extraction, OfflineExtractor

    class Stuck:
        name = "stuck-model"

        async def extract(self, pair: dict[str, Any]) -> Extraction:
            await asyncio.sleep(10)
            raise AssertionError("unreachable")

    cons = Consensus(OfflineExtractor(), Stuck(), DeterministicJudge(), timeout_s=0.2)
    (v,) = await judge_pairs(_pairs("hard-004"), cons)
    assert v.status == "Unverified" and any("stuck-model" in r and "timed out" in r for r in v.reasons)
    assert v.prompts["b"]["input"]["kalshi"]["ticker"] == "KXHIGHAUS-26AUG10-T94"
    assert v.raw_replies["b"] == {"error": "timed out"}
