"""Execution inside the daemon: one executor over the daemon's live books, breaker and gate, taking
intents on a Unix socket (``<state_dir>/execution.sock``, mode 0600, peers of our own uid only).

Protocol: one JSON object per line in, one per line out. A request is what ``crossbook trade ...
--daemon`` sends (``{"op": "pair"|"buy"|"sell"|"route"|"kill"|"release"|"arm"|"disarm"|"armed"|"status",
...}``); the reply is the result, ``{"refused": {"step", "reasons"}}`` or ``{"error": "..."}``. ``arm``
leaves a standing edge intent on a pair (an :class:`~crossbook.execution.trigger.EdgeTrigger` over the
daemon's live books: it fires on the frame that opens the edge); ``armed`` lists them with their last
firing. On start the service waits
for the pairs' books (up to ``execution.ready_timeout_s``) and reconciles every intent a previous
daemon left unfinished before it runs any new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any, cast

from crossbook.book.service import MarketData
from crossbook.config import Config
from crossbook.errors import ConfigError, CrossbookError
from crossbook.execution.errors import IntentRefused
from crossbook.execution.executor import Executor
from crossbook.execution.models import PairMarkets
from crossbook.execution.store import ExecutionStore
from crossbook.execution.trigger import EdgeTrigger, Firing, RearmPolicy
from crossbook.safety.breaker import Breaker
from crossbook.safety.gate import Gate
from crossbook.unixsock import peer_credentials

log = logging.getLogger("crossbook.execution")
MAX_REQUEST = 64 * 1024


def socket_path(cfg: Config) -> Path:
    return Path(cfg.state_dir) / "execution.sock"


class ExecutionService:
    def __init__(
        self, executor: Executor, markets: dict[str, PairMarkets], breaker: Breaker, path: Path, ready_timeout: float,
        trigger: EdgeTrigger | None = None,
    ) -> None:  # fmt: skip
        self.executor = executor
        self.trigger = trigger
        self.markets = markets
        self.breaker = breaker
        self.path = path
        self.ready_timeout = ready_timeout
        self.refresh_interval = 5.0
        self.ready = asyncio.Event()
        self.recovered: list[dict[str, Any]] = []
        self._server: asyncio.AbstractServer | None = None
        self._startup: asyncio.Task[None] | None = None
        self._clients: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        old = os.umask(0o177)  # the socket is born 0600: no window where another user could connect
        try:
            self._server = await asyncio.start_unix_server(self._client, path=str(self.path), limit=MAX_REQUEST)
        finally:
            os.umask(old)
        self._startup = asyncio.get_running_loop().create_task(self._recover(), name="execution-recover")
        log.info("execution: taking intents on %s", self.path)

    async def _recover(self) -> None:
        from crossbook.execution.cli import _recovered

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout
        # Polled: the breaker offers no awaitable for "enabled" (its listeners fire on transitions only).
        while loop.time() < deadline and not all(self.breaker.evaluate(p).enabled for p in self.markets):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        try:
            self.recovered = [_recovered(r) for r in await self.executor.recover()]
        finally:
            self.ready.set()  # a failed recovery is logged; intents still pass every check of their own
        for r in self.recovered:
            log.warning("execution: recovered intent %s: %s", r["intent_id"], r["status"])
        while True:  # resting orders filled or cancelled later: keep the store and positions in step
            await asyncio.sleep(self.refresh_interval)
            try:
                await self.executor.refresh_open()
            except CrossbookError as exc:
                log.warning("execution: refreshing open orders failed: %s", exc)

    def busy(self) -> bool:
        """An intent is being executed (a request on the socket, or a fired trigger's)."""
        return bool(self._clients) or (self.trigger is not None and self.trigger.busy())

    async def stop(self) -> None:
        if self.trigger is not None:
            await self.trigger.stop()  # intents in flight finish (bounded) before the venue clients close
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in [self._startup, *self._clients]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self.path.unlink(missing_ok=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            sock = writer.get_extra_info("socket")
            _, uid, _ = peer_credentials(sock)
            if uid != os.getuid():
                log.warning("execution socket: refused peer uid=%d", uid)
                return
            try:
                line = await reader.readline()
                req = json.loads(line)
                if not isinstance(req, dict):
                    raise ValueError("a request is a JSON object")
            except (ValueError, asyncio.LimitOverrunError) as exc:
                reply: dict[str, Any] = {"error": f"bad request: {exc}"}
            else:
                reply = await self.handle(req)
            writer.write(json.dumps(reply, default=str).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            if task is not None:
                self._clients.discard(task)

    async def handle_for_user(self, user: str, req: dict[str, Any]) -> dict[str, Any]:
        """An intent from a hub user (the hub checked they may trade with this executor)."""
        log.info("intent %s from hub user %s", req.get("op"), user)
        return await self.handle(req)

    async def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        from crossbook.execution.cli import run_request

        if req.get("op") == "status":
            return {"ready": self.ready.is_set(), "recovered": self.recovered, "kill_switch": self.executor.kill_switch}
        await self.ready.wait()
        if req.get("op") == "recover":  # the daemon reconciled at start; say what it found
            return {"recovered": self.recovered}
        try:
            return await run_request(self.executor, self.markets, req, trigger=self.trigger)
        except IntentRefused as refused:
            return {"refused": {"step": refused.step, "reasons": list(refused.reasons)}}
        except CrossbookError as exc:
            log.exception("execution request %s failed", req.get("op"))
            return {"error": str(exc)}


async def start_execution(
    cfg: Config, md: MarketData, gate: Gate, breaker: Breaker, pool: Any, stack: contextlib.AsyncExitStack
) -> ExecutionService:
    """Wire execution into a running daemon (``execution.enabled``); stopped with ``stack``."""
    from crossbook.execution.runtime import build_executor, build_signer, check_execution_config, pair_markets

    markets = pair_markets(cfg)
    check_execution_config(cfg, markets)
    signer, _, closeable = build_signer(cfg)
    if closeable is not None:
        stack.push_async_callback(closeable.close)
    store = ExecutionStore(pool, commit=cfg.execution.records_commit)
    stack.push_async_callback(store.release_owner)  # before the daemon closes the pool (it waits for it)
    executor = await build_executor(cfg, signer, gate, md.books, store, markets, stack)
    keep_warm = cfg.execution.trigger_keep_warm_ms / 1000 or None
    trigger = EdgeTrigger(executor, books=md.books, rearm=cast(RearmPolicy, cfg.execution.trigger_rearm),
                          on_fire=_fired, on_done=_finished, keep_warm_s=keep_warm)  # fmt: skip
    trigger.attach(md)
    service = ExecutionService(executor, markets, breaker, socket_path(cfg), cfg.execution.ready_timeout_s, trigger)
    await service.start()
    stack.push_async_callback(service.stop)
    return service


def _fired(f: Firing) -> None:
    if f.refused:
        return  # the trigger logs a refusal (once until its reasons change); the pair stays armed
    plan = f.plan
    legs = " + ".join(f"{lp.outcome.upper()} on {lp.venue} at {lp.limit}" for lp in plan.legs) if plan else "?"
    log.info("pair %s: edge seen, trigger fired: %s, size %s, planned edge %s per share", f.pair_id, legs,
             f.intent.size, plan.edge if plan else "?")  # fmt: skip


def _finished(f: Firing) -> None:
    took = (f.finished_ns - f.detected_ns) / 1e6
    if f.result is not None:
        log.info("pair %s: fired intent %s %s in %.1f ms%s", f.pair_id, f.result.intent_id, f.result.status, took,
                 "".join(f"; {r}" for r in f.result.reasons))  # fmt: skip
    elif f.error:
        log.error("pair %s: fired intent failed after %.1f ms: %s (see crossbook orders)", f.pair_id, took, f.error)


async def ask_daemon(cfg: Config, req: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
    """One request to the running daemon's execution socket."""
    path = socket_path(cfg)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path), limit=16 * 2**20), 5)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"no daemon taking intents at {path} ({exc}); is execution.enabled set and the daemon "
                          "running with this config?") from None  # fmt: skip
    try:
        writer.write(json.dumps(req).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if not line:
        raise ConfigError(f"the daemon at {path} closed the connection without an answer")
    out = json.loads(line)
    if not isinstance(out, dict):
        raise ConfigError(f"the daemon at {path} answered {line[:200]!r}")
    return out
