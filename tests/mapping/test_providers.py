"""Model A/B and the judge through the official clients, against local servers speaking their wire formats.

Every failure mode (429, malformed JSON, schema violations, refusals, timeouts) must give Unverified.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from crossbook.mapping.consensus import Consensus, judge_pairs
from crossbook.mapping.offline import extract_pair
from crossbook.mapping.providers import AnthropicChat, LLMExtractor, LLMJudge, OpenAIChat, consensus_from_env

PAIRS = Path("/work/shared/pairs/public_pairs.json")
if not PAIRS.exists():
    PAIRS = Path(__file__).resolve().parents[3] / "shared" / "pairs" / "public_pairs.json"
pytestmark = pytest.mark.skipif(not PAIRS.exists(), reason="shared/pairs not present")


class Script:
    """What the fake server answers: mode per request kind ("extract" or "judge")."""

    def __init__(self) -> None:
        self.extract = "good"
        self.judge = "agree"
        self.pairs = {p["kalshi"]["ticker"]: p for p in json.loads(PAIRS.read_text())}

    def reply(self, system: str, user: str) -> tuple[int, str, str]:
        """(http status, text, finish) for one request."""
        kind = "judge" if system.startswith("You are the judge") else "extract"
        mode = self.judge if kind == "judge" else self.extract
        if mode == "429":
            return 429, "", ""
        if mode == "timeout":
            time.sleep(3)
        if mode == "malformed":
            return 200, '{"polymarket": {"family": "threshold", ', "stop"
        if mode == "refusal":
            return 200, "", "refusal"
        if mode == "schema":
            return 200, json.dumps({"polymarket": {"comparator": "about"}, "kalshi": {}}), "stop"
        ticker = json.loads(user.split("\n\nExtraction A:")[0])["kalshi"]["ticker"]
        p, k = extract_pair(self.pairs[ticker])
        if kind == "extract":
            return 200, json.dumps({"polymarket": p.to_json(), "kalshi": k.to_json()}), "stop"
        if mode == "always_yes":
            return 200, json.dumps({"equivalent": True, "polarity": "same", "reasons": []}), "stop"
        from crossbook.mapping.criteria import compare

        c = compare(p, k)
        return 200, json.dumps({"equivalent": c.passed, "polarity": c.polarity, "reasons": c.reasons}), "stop"


def _server(script: Script) -> ThreadingHTTPServer:
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            anthropic = self.path.endswith("/messages")
            if anthropic:
                system, user = body["system"], body["messages"][0]["content"]
            else:
                system, user = body["messages"][0]["content"], body["messages"][1]["content"]
            status, text, finish = script.reply(system, user)
            if status != 200:
                out: dict[str, Any] = {"error": {"type": "rate_limit_error", "message": "slow down"}}
            elif anthropic:
                out = {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
                       "content": [{"type": "text", "text": text}] if text else [],
                       "stop_reason": "end_turn" if finish == "stop" else finish, "stop_sequence": None,
                       "usage": {"input_tokens": 1, "output_tokens": 1}}
            else:
                msg: dict[str, Any] = {"role": "assistant", "content": text or None}
                if finish == "refusal":
                    msg["refusal"] = "I can't help with that."
                out = {"id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                       "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
            data = json.dumps(out).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture
def llm() -> Iterator[tuple[Script, Consensus]]:
    script = Script()
    srv = _server(script)
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    a = OpenAIChat("gpt-test", "k", base + "/v1", timeout=2.0)
    b = AnthropicChat("claude-test", "k", base, timeout=2.0)
    j = OpenAIChat("judge-test", "k", base + "/v1", timeout=2.0)
    yield script, Consensus(LLMExtractor(a), LLMExtractor(b), LLMJudge(j), timeout_s=2.5)
    srv.shutdown()
    srv.server_close()


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
