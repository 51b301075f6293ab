"""A local server speaking the OpenAI chat-completions and Anthropic messages wire formats, answering from a script.

The scripted "model" extracts with the offline rules from the contract text in the prompt (so it sees exactly what a
real model would be sent) and can be told to fail in every way a provider can fail.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from crossbook.mapping.consensus import Consensus
from crossbook.mapping.offline import extract_pair
from crossbook.mapping.providers import AnthropicChat, LLMExtractor, LLMJudge, OpenAIChat


class Script:
    """What the fake server answers: mode per request kind ("extract" or "judge")."""

    def __init__(self) -> None:
        self.extract = "good"
        self.judge = "agree"

    def reply(self, system: str, user: str, system_is_openai: bool = True) -> tuple[int, str, str]:
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
        # the "model" reads the same contract text it was sent (any pair, not only a known list)
        p, k = extract_pair(json.loads(user.split("\n\nExtraction A:")[0]))
        if kind == "extract":
            if mode == "sloppy":  # a model that claims to understand every clause it was sent
                p, k = replace(p, unknowns=()), replace(k, unknowns=())
            if mode == "mirror":  # a model that reads the Polymarket text as the Kalshi contract, word for word
                p = k = replace(k, unknowns=(), placeholders=())
            if mode == "shift_b" and not system_is_openai:  # model B (Anthropic wire) misreads both thresholds alike
                p = replace(p, threshold=None if p.threshold is None else p.threshold + 1)
                k = replace(k, threshold=None if k.threshold is None else k.threshold + 1)
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
            status, text, finish = script.reply(system, user, not anthropic)
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


@contextmanager
def scripted_consensus() -> Iterator[tuple[Script, Consensus]]:
    """OpenAI-wire model A, Anthropic-wire model B and an OpenAI-wire judge, all on one local scripted server."""
    script = Script()
    srv = _server(script)
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    a = OpenAIChat("gpt-test", "k", base + "/v1", timeout=2.0)
    b = AnthropicChat("claude-test", "k", base, timeout=2.0)
    j = OpenAIChat("judge-test", "k", base + "/v1", timeout=2.0)
    try:
        yield script, Consensus(LLMExtractor(a), LLMExtractor(b), LLMJudge(j), timeout_s=2.5)
    finally:
        srv.shutdown()
        srv.server_close()
