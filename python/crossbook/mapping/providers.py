"""Model A, model B and the judge over the official ``openai`` and ``anthropic`` clients.

The OpenAI path also serves any OpenAI-compatible endpoint (Ollama, vLLM) through ``base_url``. Every
failure (HTTP error, 429, timeout, refusal, malformed or schema-violating JSON) raises ProviderError,
which the consensus turns into Unverified. Clients never retry on their own: a retry is a new verdict.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any, Protocol

from crossbook.errors import CrossbookError
from crossbook.mapping.consensus import Consensus, Extraction, JudgeOpinion, contract_input, offline_consensus
from crossbook.mapping.criteria import Criteria

TIMEOUT_S = 30.0

EXTRACT_SYSTEM = """You extract the resolution criteria of two prediction-market contracts, one from Polymarket
and one from Kalshi, into a strict JSON schema. Use only the resolution text (Polymarket description; Kalshi
rules_primary and rules_secondary); titles are hints. Reply with one JSON object:
{"polymarket": CRITERIA, "kalshi": CRITERIA} where CRITERIA has exactly these keys:
family ("game_winner"|"threshold"|"event_winner"|null), subject (canonical id of what is measured, same
spelling for both sides when it is the same thing), entity, counterparty,
comparator (">"|">="|"<"|"<="|"=="|"between"|"wins"|null),
threshold and threshold_high (decimal strings or null), unit, precision (decimal string: step of the reported
value), window_start, window_end (ISO; UTC for instants), timezone, source, yes_outcome, void_rules (list of
canonical tags), draws_possible (bool|null), placeholders (unfilled template text like "[Candidate]"),
unknowns (anything you could not determine). Use null rather than guessing."""

JUDGE_SYSTEM = """You are the judge. Given two contracts and two independent extractions of their criteria,
decide whether Polymarket YES pays in exactly the same states as Kalshi YES ("same"), exactly the states where
Kalshi NO pays ("inverted"), or neither. Any doubt means not equivalent. Reply with one JSON object:
{"equivalent": true|false, "polarity": "same"|"inverted"|null, "reasons": [strings]}."""


class ProviderError(CrossbookError, RuntimeError):
    """A model provider failed or answered something we cannot use.

    ``prompt`` and ``raw`` carry what was sent and whatever came back, so a failed step is audited like a good one.
    """

    def __init__(self, message: str, *, prompt: Any = None, raw: Any = None) -> None:
        super().__init__(message)
        self.prompt, self.raw = prompt, raw


def _reply(text: str | None, model: Any, rid: Any, finish: Any, **extra: Any) -> dict[str, Any]:
    """A raw reply as stored: the text plus the model id the provider says answered (not only the one asked for)."""
    return {"text": text, "model": None if model is None else str(model), "id": None if rid is None else str(rid),
            "finish": None if finish is None else str(finish), **extra}


class Chat(Protocol):
    name: str

    async def complete(self, system: str, user: str) -> dict[str, Any]: ...


class OpenAIChat:
    def __init__(self, model: str, api_key: str, base_url: str | None = None, timeout: float = TIMEOUT_S) -> None:
        import openai

        self.name = f"openai:{model}" if base_url is None else f"openai-compatible:{model}@{base_url}"
        self.model = model
        self._openai = openai
        self.client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)

    async def complete(self, system: str, user: str) -> dict[str, Any]:
        try:
            resp = await self.client.chat.completions.create(
                model=self.model, temperature=0, response_format={"type": "json_object"},
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            )
        except self._openai.OpenAIError as exc:
            raise ProviderError(f"{self.name}: {type(exc).__name__}: {str(exc)[:200]}",
                                raw={"error": f"{type(exc).__name__}: {str(exc)[:2000]}"}) from exc
        if not resp.choices:
            raise ProviderError(f"{self.name}: reply has no choices", raw=_reply(None, resp.model, resp.id, None))
        msg = resp.choices[0].message
        raw = _reply(msg.content, resp.model, resp.id, resp.choices[0].finish_reason,
                     refusal=getattr(msg, "refusal", None))
        if getattr(msg, "refusal", None):
            raise ProviderError(f"{self.name}: refused: {str(msg.refusal)[:200]}", raw=raw)
        if resp.choices[0].finish_reason not in ("stop", None) or not msg.content:
            raise ProviderError(f"{self.name}: incomplete reply (finish_reason={resp.choices[0].finish_reason})",
                                raw=raw)
        return raw


class AnthropicChat:
    def __init__(self, model: str, api_key: str, base_url: str | None = None, timeout: float = TIMEOUT_S) -> None:
        import anthropic

        self.name = f"anthropic:{model}"
        self.model = model
        self._anthropic = anthropic
        self.client = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)

    async def complete(self, system: str, user: str) -> dict[str, Any]:
        try:
            resp = await self.client.messages.create(
                model=self.model, max_tokens=4096, system=system,
                messages=[{"role": "user", "content": user}],
            )
        except self._anthropic.AnthropicError as exc:
            raise ProviderError(f"{self.name}: {type(exc).__name__}: {str(exc)[:200]}",
                                raw={"error": f"{type(exc).__name__}: {str(exc)[:2000]}"}) from exc
        text = "".join(getattr(b, "text", "") for b in resp.content if getattr(b, "type", "") == "text")
        raw = _reply(text, resp.model, resp.id, resp.stop_reason)
        if resp.stop_reason != "end_turn":
            raise ProviderError(f"{self.name}: stop_reason {resp.stop_reason!r} (refusal or truncated)", raw=raw)
        if not text:
            raise ProviderError(f"{self.name}: reply has no text", raw=raw)
        return raw


def _contract_text(pair: Mapping[str, Any]) -> str:
    return json.dumps(contract_input(pair), indent=1, ensure_ascii=False)


def _parse_json(text: str, who: str, prompt: Any = None, raw: Any = None) -> dict[str, Any]:
    t = text.strip()
    if t.startswith("```"):
        t = t.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(t)
    except json.JSONDecodeError as exc:
        raise ProviderError(f"{who}: reply is not JSON ({exc.msg} at {exc.pos})", prompt=prompt, raw=raw) from None
    if not isinstance(data, dict):
        raise ProviderError(f"{who}: reply is JSON but not an object", prompt=prompt, raw=raw)
    return data


class LLMExtractor:
    def __init__(self, chat: Chat) -> None:
        self.chat = chat
        self.name = chat.name

    async def extract(self, pair: Mapping[str, Any]) -> Extraction:
        user = _contract_text(pair)
        prompt = {"system": EXTRACT_SYSTEM, "user": user}
        try:
            raw = await self.chat.complete(EXTRACT_SYSTEM, user)
        except ProviderError as exc:
            exc.prompt = prompt
            raise
        data = _parse_json(str(raw.get("text") or ""), self.name, prompt, raw)
        try:
            p = Criteria.from_json(data.get("polymarket"), f"{self.name}.polymarket")  # type: ignore[arg-type]
            k = Criteria.from_json(data.get("kalshi"), f"{self.name}.kalshi")  # type: ignore[arg-type]
        except ValueError as exc:
            raise ProviderError(f"schema violation: {exc}", prompt=prompt, raw=raw) from None
        return Extraction(p, k, prompt=prompt, raw=raw)


class LLMJudge:
    def __init__(self, chat: Chat) -> None:
        self.chat = chat
        self.name = chat.name

    async def judge(self, pair: Mapping[str, Any], a: Extraction, b: Extraction) -> JudgeOpinion:
        user = _contract_text(pair) + "\n\nExtraction A:\n" + json.dumps(
            {"polymarket": a.polymarket.to_json(), "kalshi": a.kalshi.to_json()}) + "\n\nExtraction B:\n" + \
            json.dumps({"polymarket": b.polymarket.to_json(), "kalshi": b.kalshi.to_json()})
        prompt = {"system": JUDGE_SYSTEM, "user": user}
        try:
            raw = await self.chat.complete(JUDGE_SYSTEM, user)
        except ProviderError as exc:
            exc.prompt = prompt
            raise
        text = str(raw.get("text") or "")
        data = _parse_json(text, self.name, prompt, raw)
        eq, pol, reasons = data.get("equivalent"), data.get("polarity"), data.get("reasons", [])
        if not isinstance(eq, bool) or pol not in ("same", "inverted", None) or not isinstance(reasons, list):
            raise ProviderError(f"{self.name}: judge reply violates the schema: {text[:200]}", prompt=prompt, raw=raw)
        return JudgeOpinion(eq, pol, [str(r) for r in reasons], prompt=prompt, raw=raw)


def chat_from_spec(spec: str, env: Mapping[str, str]) -> Chat | None:
    """``openai:MODEL``, ``anthropic:MODEL`` or ``openai-compatible:MODEL``; None when the key is missing."""
    kind, _, model = spec.partition(":")
    if not model:
        raise ProviderError(f"model spec {spec!r}: expected provider:model (openai, anthropic, openai-compatible)")
    if kind == "openai":
        key = env.get("OPENAI_API_KEY", "")
        return OpenAIChat(model, key, env.get("OPENAI_BASE_URL") or None) if key else None
    if kind == "openai-compatible":
        base = env.get("CROSSBOOK_MAPPING_OPENAI_BASE_URL", "")
        if not base:
            raise ProviderError(f"model spec {spec!r} needs CROSSBOOK_MAPPING_OPENAI_BASE_URL (e.g. Ollama's /v1)")
        return OpenAIChat(model, env.get("CROSSBOOK_MAPPING_OPENAI_API_KEY", "none"), base)
    if kind == "anthropic":
        key = env.get("ANTHROPIC_API_KEY", "")
        return AnthropicChat(model, key, env.get("ANTHROPIC_BASE_URL") or None) if key else None
    raise ProviderError(f"model spec {spec!r}: unknown provider {kind!r}")


def consensus_from_env(env: Mapping[str, str] | None = None) -> Consensus:
    """Models from CROSSBOOK_MAPPING_MODEL_A/_B/_JUDGE; the offline rules unless all three are usable."""
    e = os.environ if env is None else env
    specs = [e.get(f"CROSSBOOK_MAPPING_MODEL_{r}", "").strip() for r in ("A", "B", "JUDGE")]
    if not any(specs):
        return offline_consensus()
    chats = [chat_from_spec(s, e) if s else None for s in specs]
    if any(c is None for c in chats):
        print("crossbook: model A, B and judge are not all configured with keys; using the offline rules",
              file=sys.stderr)
        return offline_consensus()
    a, b, j = chats
    assert a is not None and b is not None and j is not None
    return Consensus(LLMExtractor(a), LLMExtractor(b), LLMJudge(j))
