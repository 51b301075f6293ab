"""``crossbook pairs show REF``: why a pair is (not) Verified, for a person, from the stored verdicts.

Everything printed comes back out of PostgreSQL (the verdict row and market_pairs), so what a person reads is what
the audit trail holds: the verdict, every failed and passed check per model, the two extractions side by side, who
judged (the model ids asked for and the ones that answered), and the prompts and raw replies (``--full``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

# the Criteria fields worth a row in the side-by-side table, in reading order
FIELDS = ("family", "subject", "entity", "counterparty", "comparator", "threshold", "threshold_high", "unit",
          "precision", "window_start", "window_end", "timezone", "source", "yes_outcome", "void_rules",
          "draws_possible", "placeholders", "unknowns")
COLUMNS = ("id", "pair_ref", "poly_condition_id", "kalshi_ticker", "status", "polarity", "extractor_a", "extractor_b",
           "judge", "reasons", "extractions", "checks", "prompts", "raw_replies", "texts_sha256", "created_at")


def _row(r: Mapping[str, Any]) -> dict[str, Any]:
    d = dict(r)
    for k in ("reasons", "extractions", "checks", "prompts", "raw_replies"):
        if isinstance(d.get(k), str):
            d[k] = json.loads(d[k])
    d["created_at"] = d["created_at"].isoformat()
    return d


async def find_verdicts(conn: Any, ref: str, every: bool = False) -> list[dict[str, Any]]:
    """Verdicts for a verdict id, pair ref, Kalshi ticker, Polymarket condition id or market_pairs internal id;
    newest first (only the newest unless ``every``)."""
    cols = ", ".join(COLUMNS)
    if ref.isdigit():
        rows = await conn.fetch(f"SELECT {cols} FROM verdicts WHERE id = $1", int(ref))
        return [_row(r) for r in rows]
    try:
        as_uuid: uuid.UUID | None = uuid.UUID(ref)
    except ValueError:
        as_uuid = None
    if as_uuid is not None:
        pair = await conn.fetchrow("SELECT poly_condition_id, kalshi_ticker FROM market_pairs WHERE internal_id = $1",
                                   as_uuid)
        if pair is None:
            return []
        rows = await conn.fetch(f"SELECT {cols} FROM verdicts WHERE poly_condition_id = $1 AND kalshi_ticker = $2"
                                " ORDER BY id DESC", pair["poly_condition_id"], pair["kalshi_ticker"])
    else:
        rows = await conn.fetch(f"SELECT {cols} FROM verdicts WHERE pair_ref = $1 OR kalshi_ticker = $1"
                                " OR poly_condition_id = $1 ORDER BY id DESC", ref)
    out = [_row(r) for r in rows]
    return out if every else out[:1]


async def stored_pair(conn: Any, v: Mapping[str, Any]) -> dict[str, Any] | None:
    if not (v.get("poly_condition_id") and v.get("kalshi_ticker")):
        return None
    r = await conn.fetchrow(
        "SELECT internal_id, logic_status, polarity, is_halted, last_verdict_id FROM market_pairs"
        " WHERE poly_condition_id = $1 AND kalshi_ticker = $2", v["poly_condition_id"], v["kalshi_ticker"])
    if r is None:
        return None
    d = dict(r)
    d["internal_id"] = str(d["internal_id"])
    return d


def _input(v: Mapping[str, Any]) -> dict[str, Any]:
    """The contract text the verdict was about, as the extractors were given it."""
    for label in ("a", "b", "judge"):
        prompt = (v.get("prompts") or {}).get(label)
        if isinstance(prompt, dict):
            if isinstance(prompt.get("input"), dict):
                return dict(prompt["input"])
            if isinstance(prompt.get("user"), str):
                try:
                    return dict(json.loads(prompt["user"].split("\n\nExtraction A:")[0]))
                except (ValueError, TypeError):
                    continue
    return {}


def _cell(x: Any) -> str:
    if x is None:
        return "?"
    if isinstance(x, list):
        return ", ".join(map(str, x)) if x else "-"
    return str(x)


def _wrap(text: str, width: int, indent: str) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=" " * (len(indent) + 2)) or [indent]


def render(v: Mapping[str, Any], pair: Mapping[str, Any] | None = None, full: bool = False) -> str:
    lines: list[str] = []
    text = _input(v)
    poly, kal = text.get("polymarket") or {}, text.get("kalshi") or {}
    lines.append(f"verdict #{v['id']}  {v['created_at']}  pair {v['pair_ref']}")
    lines.append(f"  Polymarket {v.get('poly_condition_id') or '-'}  {poly.get('question') or ''}")
    lines.append(f"  Kalshi     {v.get('kalshi_ticker') or '-'}  {kal.get('title') or ''}")
    if pair is None:
        lines.append("  market_pairs: not a stored pair (nothing trades on it)")
    else:
        latest = "this verdict" if pair["last_verdict_id"] == v["id"] else f"verdict #{pair['last_verdict_id']}"
        lines.append(f"  market_pairs: {pair['logic_status']}"
                     + (f" ({pair['polarity']})" if pair["polarity"] else "")
                     + (", HALTED" if pair["is_halted"] else ", not halted") + f", set by {latest}")
    lines.append("")
    if v["status"] == "Verified":
        if v["polarity"] == "inverted":
            lines.append("VERIFIED, INVERTED: Polymarket YES pays exactly when Kalshi NO pays (hedge YES with YES).")
        else:
            lines.append("VERIFIED: Polymarket YES pays exactly when Kalshi YES pays (hedge YES with NO).")
    else:
        lines.append("NOT VERIFIED: do not trade this as one contract. Why:")
    for r in v.get("reasons") or []:
        lines.extend(_wrap(str(r), 116, "  - "))
    lines.append("")
    lines.append(f"Who judged: model A {v['extractor_a']} | model B {v['extractor_b']} | judge {v['judge']}")
    served = {k: r.get("model") for k, r in (v.get("raw_replies") or {}).items() if isinstance(r, dict) and
              r.get("model")}
    if served:
        lines.append("  answered by: " + ", ".join(f"{k} {m}" for k, m in served.items()))
    checks = v.get("checks") or []
    if checks:
        lines.append("")
        lines.append("Checks (failures in full; passes by name, --full for their details):")
        for c in checks:
            if not c.get("ok"):
                lines.extend(_wrap(f"FAIL  [{c.get('by')}] {c.get('name')}: {c.get('detail')}", 116, "  "))
        for by in dict.fromkeys(str(c.get("by")) for c in checks):
            passed = [c for c in checks if c.get("ok") and str(c.get("by")) == by]
            if full:
                for c in passed:
                    lines.extend(_wrap(f"pass  [{by}] {c.get('name')}: {c.get('detail')}", 116, "  "))
            elif passed:
                lines.extend(_wrap(f"pass  [{by}] " + ", ".join(str(c.get("name")) for c in passed), 116, "  "))
    for label, ex in (v.get("extractions") or {}).items():
        p, k = ex.get("polymarket") or {}, ex.get("kalshi") or {}
        lines.append("")
        lines.append(f"What YES pays on, as model {label.upper()} read it ('*' marks a difference):")
        lines.append(f"    {'field':<15} {'Polymarket':<48} Kalshi")
        for f in FIELDS:
            a, b = _cell(p.get(f)), _cell(k.get(f))
            if a in ("?", "-") and b in ("?", "-") and f not in ("family", "subject"):
                continue
            mark = " " if a == b else "*"
            lines.append(f"  {mark} {f:<15} {a[:48]:<48} {b[:60]}")
    lines.append("")
    prompts, raws = v.get("prompts") or {}, v.get("raw_replies") or {}
    for label in sorted(set(prompts) | set(raws)):
        pr, rw = prompts.get(label), raws.get(label)
        if full:
            lines.append(f"--- prompt to {label} ---")
            lines.append(pr if isinstance(pr, str) else json.dumps(pr, indent=1, ensure_ascii=False))
            lines.append(f"--- raw reply from {label} ---")
            lines.append(rw if isinstance(rw, str) else json.dumps(rw, indent=1, ensure_ascii=False))
        else:
            asked = "no prompt" if pr is None else f"prompt {len(json.dumps(pr, ensure_ascii=False))} chars"
            reply = "no model reply (offline rules)" if rw is None else \
                f"raw reply {len(json.dumps(rw, ensure_ascii=False))} chars"
            lines.append(f"stored for {label}: {asked}, {reply}")
    if not full and (prompts or raws):
        lines.append("(--full prints the prompts and raw replies)")
    return "\n".join(lines)
