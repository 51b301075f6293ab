"""Turning verdicts into store records (used by ``pairs judge --store``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crossbook.mapping.consensus import Verdict
from crossbook.store.postgres import VerdictRecord


def to_record(pair: Mapping[str, Any], v: Verdict) -> tuple[VerdictRecord, str, str]:
    poly = pair.get("polymarket") or {}
    kal = pair.get("kalshi") or {}
    cond = poly.get("condition_id") or poly.get("conditionId") or poly.get("slug")
    rec = VerdictRecord(
        pair_ref=v.id, poly_condition_id=str(cond) if cond else None,
        kalshi_ticker=str(kal["ticker"]) if kal.get("ticker") else None, status=v.status, polarity=v.polarity,
        extractor_a=v.extractor_a, extractor_b=v.extractor_b, judge=v.judge, reasons=v.reasons,
        extractions=v.extractions, checks=v.checks, prompts=v.prompts, raw_replies=v.raw_replies,
    )
    return rec, str(poly.get("question") or ""), str(kal.get("title") or "")
