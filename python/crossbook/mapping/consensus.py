"""Adversarial consensus: model A and model B extract, a judge compares, deterministic checks veto.

Verified only when A's and B's extractions each pass every check with the same polarity, A and B agree
on each venue's objective fields, the judge agrees, the raw texts carry no template placeholders, and
(when models are in play) the offline rules Verify the pair too with the same polarity wherever they
recognise the contract family on either venue. Every error, timeout or malformed reply is Unverified.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from crossbook.mapping import offline
from crossbook.mapping.criteria import Comparison, Criteria, Polarity, compare

STEP_TIMEOUT_S = 60.0


@dataclass
class Extraction:
    polymarket: Criteria
    kalshi: Criteria
    prompt: Any = None
    raw: Any = None


@dataclass
class JudgeOpinion:
    equivalent: bool
    polarity: Polarity | None
    reasons: list[str] = field(default_factory=list)
    prompt: Any = None
    raw: Any = None


class Extractor(Protocol):
    name: str

    async def extract(self, pair: Mapping[str, Any]) -> Extraction: ...


class Judge(Protocol):
    name: str

    async def judge(self, pair: Mapping[str, Any], a: Extraction, b: Extraction) -> JudgeOpinion: ...


def contract_input(pair: Mapping[str, Any]) -> dict[str, Any]:
    """Exactly the contract text every extractor and judge is given (and the audit keeps)."""
    poly = pair.get("polymarket") or {}
    kal = pair.get("kalshi") or {}
    return {
        "polymarket": {k: poly.get(k) for k in ("question", "description", "outcomes", "end_date_iso")},
        "kalshi": {k: kal.get(k) for k in ("ticker", "title", "yes_sub_title", "rules_primary", "rules_secondary",
                                           "close_time", "expiration_time")},
    }


class OfflineExtractor:
    """The built-in rules (no network); deterministic, so A and B agree whenever both are this one."""

    name = offline.NAME

    async def extract(self, pair: Mapping[str, Any]) -> Extraction:
        p, k = offline.extract_pair(pair)
        # no model: the "prompt" is the rules' version and the text they read; there is no raw reply
        return Extraction(p, k, prompt={"rules": offline.NAME, "input": contract_input(pair)}, raw=None)


class DeterministicJudge:
    """Judges by the deterministic comparison of A's extraction (the consensus checks B separately)."""

    name = "deterministic-judge-v1"

    async def judge(self, pair: Mapping[str, Any], a: Extraction, b: Extraction) -> JudgeOpinion:
        c = compare(a.polymarket, a.kalshi)
        return JudgeOpinion(c.passed, c.polarity, c.reasons)


@dataclass
class Verdict:
    id: str
    status: str  # "Verified" | "Unverified"
    polarity: Polarity | None
    reasons: list[str]
    extractor_a: str
    extractor_b: str
    judge: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    extractions: dict[str, Any] = field(default_factory=dict)
    prompts: dict[str, Any] = field(default_factory=dict)
    raw_replies: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "polarity": self.polarity, "reasons": self.reasons,
                "extractor_a": self.extractor_a, "extractor_b": self.extractor_b, "judge": self.judge}


def _err(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _raw_placeholders(pair: Mapping[str, Any]) -> list[str]:
    texts: list[str] = []
    for venue, keys in (("polymarket", ("question", "description")),
                        ("kalshi", ("title", "yes_sub_title", "rules_primary", "rules_secondary"))):
        side = pair.get(venue) or {}
        texts.extend(str(side.get(k) or "") for k in keys)
    return sorted({m for t in texts for m in offline.PLACEHOLDER.findall(t)})


class Consensus:
    def __init__(self, a: Extractor, b: Extractor, judge: Judge, timeout_s: float = STEP_TIMEOUT_S) -> None:
        self.a, self.b, self.judge_model, self.timeout_s = a, b, judge, timeout_s

    @property
    def offline_only(self) -> bool:
        return self.a.name == offline.NAME and self.b.name == offline.NAME

    async def run(self, pair: Mapping[str, Any]) -> Verdict:
        pid = str(pair.get("id") or _pair_ref(pair))
        v = Verdict(pid, "Unverified", None, [], self.a.name, self.b.name, self.judge_model.name)
        results = await asyncio.gather(
            asyncio.wait_for(self.a.extract(pair), self.timeout_s),
            asyncio.wait_for(self.b.extract(pair), self.timeout_s),
            return_exceptions=True,
        )
        ext: dict[str, Extraction] = {}
        for label, res in zip(("a", "b"), results, strict=True):
            if isinstance(res, BaseException):
                if not isinstance(res, Exception):
                    raise res
                v.reasons.append(f"model {label} ({getattr(self, label).name}) failed: {_err(res)}")
                # a failed step is audited too: what was asked and whatever came back
                v.prompts[label] = getattr(res, "prompt", None) or {"input": contract_input(pair)}
                v.raw_replies[label] = getattr(res, "raw", None) or {"error": _err(res)}
                continue
            ext[label] = res
            v.extractions[label] = {"polymarket": res.polymarket.to_json(), "kalshi": res.kalshi.to_json()}
            v.prompts[label] = res.prompt
            v.raw_replies[label] = res.raw
        comps: dict[str, Comparison] = {k: compare(e.polymarket, e.kalshi) for k, e in ext.items()}
        for k, c in comps.items():
            v.checks.extend({"by": k, **ch.to_json()} for ch in c.checks)
            if not c.passed:
                v.reasons.extend(f"model {k}: {r}" for r in c.reasons)
        placeholders = _raw_placeholders(pair)
        if placeholders:
            v.reasons.append(f"placeholders: unfilled template text in the rules {placeholders}")
        if len(ext) == 2:
            try:
                op = await asyncio.wait_for(self.judge_model.judge(pair, ext["a"], ext["b"]), self.timeout_s)
            except Exception as exc:
                v.reasons.append(f"judge ({self.judge_model.name}) failed: {_err(exc)}")
                v.prompts["judge"] = getattr(exc, "prompt", None) or {"input": contract_input(pair)}
                v.raw_replies["judge"] = getattr(exc, "raw", None) or {"error": _err(exc)}
            else:
                v.prompts["judge"], v.raw_replies["judge"] = op.prompt, op.raw
                v.checks.append({"by": "judge", "name": "judge", "ok": op.equivalent,
                                 "detail": f"equivalent={op.equivalent}, polarity={op.polarity}"
                                 + (f": {'; '.join(op.reasons[:5])}" if op.reasons else "")})
                if not op.equivalent:
                    v.reasons.append("judge: not equivalent" + (f" ({'; '.join(op.reasons[:3])})" if op.reasons
                                                                 else ""))
                pa, pb = comps["a"].polarity, comps["b"].polarity
                if comps["a"].passed and comps["b"].passed:
                    v.reasons.extend(_field_disagreements(ext["a"], ext["b"]))
                    if pa != pb:
                        v.reasons.append(f"disagreement: model A says {pa}, model B says {pb}")
                    elif op.equivalent and op.polarity != pa:
                        v.reasons.append(f"disagreement: models say {pa}, judge says {op.polarity}")
        if not self.offline_only:
            v.reasons.extend(self._offline_veto(pair, comps))
        ok = (len(ext) == 2 and not v.reasons and comps["a"].passed and comps["b"].passed)
        if ok:
            v.status, v.polarity = "Verified", comps["a"].polarity
            v.reasons = [f"A, B and the judge agree; all {len(comps['a'].checks)} checks passed"
                         + (" (YES on one venue is NO on the other)" if v.polarity == "inverted" else "")]
        return v

    def _offline_veto(self, pair: Mapping[str, Any], comps: Mapping[str, Comparison]) -> list[str]:
        """The offline rules as a third, deterministic reader next to the models.

        Where the rules recognise a contract family on either venue, the pair is in territory they cover, and
        there they must Verify it too, with the models' polarity: a side they cannot read in a family they know
        (an extra clause, an odd comparison, another station) is exactly where traps hide, and two models agreeing
        on a misreading must not be enough. Only where neither side is in a family the rules know do they abstain.
        """
        p, k = offline.extract_pair(pair)
        c = compare(p, k)
        if not c.passed:
            if p.family is None and k.family is None:
                return []  # the rules do not cover this pair: no opinion
            why = c.reasons or [*p.unknowns, *k.unknowns]
            return [f"offline rules veto ({p.family or '?'} / {k.family or '?'}): " + "; ".join(why[:3])]
        if any(x.polarity != c.polarity for x in comps.values()):
            return [f"offline rules veto: polarity {c.polarity} differs from the models'"]
        return []


# Objective fields two independent readings of the same text must agree on (names and canonical ids may be spelled
# differently by different models, so they are left to the per-model checks).
AGREEMENT_FIELDS = ("family", "comparator", "threshold", "threshold_high", "precision", "window_start", "window_end",
                    "draws_possible")


def _field_disagreements(a: Extraction, b: Extraction) -> list[str]:
    """Models A and B must have read each venue's contract the same way, not merely each found a match: two
    extractions that pass on different thresholds or dates mean at least one model misread the text."""
    out: list[str] = []
    for venue in ("polymarket", "kalshi"):
        ca, cb = getattr(a, venue), getattr(b, venue)
        for f in AGREEMENT_FIELDS:
            va, vb = getattr(ca, f), getattr(cb, f)
            if va != vb:
                out.append(f"disagreement: {venue} {f} is {va} for model A, {vb} for model B")
    return out


def _pair_ref(pair: Mapping[str, Any]) -> str:
    poly = pair.get("polymarket") or {}
    kal = pair.get("kalshi") or {}
    return f"{poly.get('condition_id') or poly.get('slug') or '?'}~{kal.get('ticker') or '?'}"


def offline_consensus() -> Consensus:
    ex = OfflineExtractor()
    return Consensus(ex, ex, DeterministicJudge())


async def judge_pairs(pairs: Sequence[Mapping[str, Any]], consensus: Consensus | None = None,
                      concurrency: int = 8, on_done: Callable[[Verdict], None] | None = None) -> list[Verdict]:
    """Verdicts in the order of ``pairs``; ``on_done`` sees each as it completes (progress bars)."""
    cons = consensus or offline_consensus()
    sem = asyncio.Semaphore(concurrency)

    async def one(p: Mapping[str, Any]) -> Verdict:
        async with sem:
            v = await cons.run(p)
        if on_done is not None:
            on_done(v)
        return v

    return list(await asyncio.gather(*(one(p) for p in pairs)))
