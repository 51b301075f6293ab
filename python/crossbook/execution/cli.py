"""``crossbook trade``, ``crossbook orders``, ``crossbook positions``.

``trade`` runs the intent directly in this process: it starts an executor from the config (live books
from both venues, breaker and gate over the configured pairs, the signer, PostgreSQL), first
reconciles any intent a previous executor left unfinished, then runs the new one and prints what
happened. A refusal prints the step and the reasons and exits 3. ``orders`` and ``positions`` only read
PostgreSQL (plus, for positions, marks: the running daemon's Redis books, or ``--live`` books).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from crossbook.config import Config, load_config
from crossbook.errors import ConfigError
from crossbook.execution.errors import ExecutionError, IntentRefused
from crossbook.execution.executor import Executor
from crossbook.execution.models import (
    LimitIntent,
    OrderResult,
    PairIntent,
    PairResult,
    RecoveredIntent,
    RouteIntent,
)
from crossbook.execution.positions import Position, mid_of, outcome_mark
from crossbook.execution.trigger import EdgeIntent, EdgeTrigger

TRADE_EPILOG = """examples:
  crossbook trade pair PAIR --size 20 --edge 0.02          YES on one venue + NO on the other, if the edge holds
  crossbook trade buy PAIR --venue kalshi --outcome yes --price 0.41 --size 10 --tif FAK
  crossbook trade sell PAIR --venue polymarket --outcome no --price 0.60 --size 10
  crossbook trade route PAIR --side buy --outcome yes --size 500 --limit 0.70   best venue after fees, split by depth
  crossbook trade recover                                  reconcile intents a killed executor left open
  crossbook trade kill --reason "desk halt"                cancel the user's open orders, refuse new intents
  crossbook trade release
  crossbook trade arm PAIR --size 20 --edge 0.02 --limit 0.60   in the daemon: fire the pair trade when the edge opens
  crossbook trade armed                                    the daemon's standing triggers, their last firing
  crossbook trade disarm PAIR

Cancel-on-disconnect (execution.cancel_on_disconnect, on by default): while a trade runs it heartbeats
Polymarket and keeps a Kalshi order group; after it exits, a GTC order left open on Polymarket is
cancelled by the venue at its heartbeat timeout, and Kalshi orders carry cancel_order_on_pause.

By default the intent runs in this process (an executor started from --config), which first reconciles
unfinished intents from the venues and PostgreSQL. With --daemon it goes to the running daemon
(execution.enabled = true: it serves <state_dir>/execution.sock, reconciles at start, keeps the books
warm and the heartbeats going). arm, disarm and armed always go to the daemon: a standing trigger lives in
its process, watches every frame of both legs and fires in the loop turn that shows the edge (gate, plan
and the first signing request before that turn ends). Exit codes: 0 done,
3 refused (the step and the reasons are printed), 1 error."""


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a decimal number") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def register(sub: Any) -> None:
    t = sub.add_parser("trade", help="submit an intent: pair trade, routed order, buy/sell on one venue; kill switch",
                       description=__doc__.split("\n\n")[1] if __doc__ else None, epilog=TRADE_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    tsub = t.add_subparsers(dest="trade_cmd", required=True, metavar="INTENT")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML config ([execution], [[pairs]], venues, postgres)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--daemon", action="store_true",
                        help="submit to the running daemon (execution.enabled; <state_dir>/execution.sock)")
    p = tsub.add_parser("pair", parents=[common], help="buy YES on one venue and NO on the other below 1 - edge")
    p.add_argument("pair", help="pair id (as in [[pairs]])")
    p.add_argument("--size", type=_decimal, required=True, help="most shares of each leg")
    p.add_argument("--edge", type=_decimal, default=Decimal("0.01"), help="min 1 - cost after fees, per share")
    p.add_argument("--yes-venue", choices=["polymarket", "kalshi"], help="fix the direction (default: cheaper)")
    p.add_argument("--tif", choices=["FOK", "FAK"], default="FOK", help="time in force of each leg")
    p.set_defaults(func=trade)
    for side in ("buy", "sell"):
        s = tsub.add_parser(side, parents=[common], help=f"{side} one outcome on one venue at a limit")
        s.add_argument("pair", help="pair id (as in [[pairs]])")
        s.add_argument("--venue", choices=["polymarket", "kalshi"], required=True)
        s.add_argument("--outcome", choices=["yes", "no"], required=True, help="as on that venue")
        s.add_argument("--price", type=_decimal, required=True, help="limit price of the outcome")
        s.add_argument("--size", type=_decimal, required=True)
        s.add_argument("--tif", choices=["FOK", "FAK", "GTC"], default="FAK")
        s.set_defaults(func=trade)
    rt = tsub.add_parser("route", parents=[common],
                         help="buy/sell one outcome where it is cheaper after fees, split across both by depth")
    rt.add_argument("pair", help="pair id (as in [[pairs]])")
    rt.add_argument("--side", choices=["buy", "sell"], required=True)
    rt.add_argument("--outcome", choices=["yes", "no"], required=True, help="in Polymarket's terms")
    rt.add_argument("--size", type=_decimal, required=True)
    rt.add_argument("--limit", type=_decimal, required=True, help="worst price per share, before fees")
    rt.add_argument("--tif", choices=["FOK", "FAK"], default="FAK")
    rt.set_defaults(func=trade)
    k = tsub.add_parser("kill", parents=[common],
                        help="engage the user's kill switch: cancel open orders on both venues, refuse new intents")
    k.add_argument("--reason", required=True, help="shown in every refusal until released")
    k.set_defaults(func=trade)
    rl = tsub.add_parser("release", parents=[common], help="release the user's kill switch")
    rl.set_defaults(func=trade)
    r = tsub.add_parser("recover", parents=[common], help="reconcile intents a killed executor left unfinished")
    r.set_defaults(func=trade)
    a = tsub.add_parser("arm", parents=[common],
                        help="in the daemon: a standing pair intent, fired by the frame that opens the edge",
                        description="Leave a standing pair intent in the running daemon (always --daemon). Its "
                        "trigger looks at every book change of both legs; when YES on one venue + NO on the other "
                        "costs below 1 - edge after fees (no leg above --limit), it trades the pair as `trade pair` "
                        "would: gate, sizing along the top of book, both legs, unwind on a broken leg, records. "
                        "It fires once (execution.trigger_rearm = \"after_close\" re-arms it after a clean "
                        "trade once the edge has closed). Arming a pair again replaces its intent; `trade armed` "
                        "shows each trigger and its last firing; `trade disarm` stops one (an intent in flight "
                        "finishes).")  # fmt: skip
    a.add_argument("pair", help="pair id (as in [[pairs]])")
    a.add_argument("--size", type=_decimal, required=True, help="most shares of each leg")
    a.add_argument("--edge", type=_decimal, default=Decimal("0.01"), help="min 1 - cost after fees, per share")
    a.add_argument("--limit", type=_decimal, help="most either leg may pay per share (default: only the edge)")
    a.add_argument("--yes-venue", choices=["polymarket", "kalshi"], help="fix the direction (default: either)")
    a.add_argument("--tif", choices=["FOK", "FAK"], default="FOK", help="time in force of each leg")
    a.set_defaults(func=trade)
    d = tsub.add_parser("disarm", parents=[common], help="in the daemon: stop watching a pair (in flight finishes)")
    d.add_argument("pair", help="pair id (as in [[pairs]])")
    d.set_defaults(func=trade)
    ls = tsub.add_parser("armed", parents=[common], help="the daemon's standing triggers and their last firing")
    ls.set_defaults(func=trade)

    o = sub.add_parser("orders", help="orders from PostgreSQL (newest first)",
                       description="Orders as the executor recorded them: status, fills, why.")  # fmt: skip
    _store_args(o)
    o.add_argument("--open", action="store_true", help="only orders still open or in doubt")
    o.add_argument("--limit", type=int, default=50)
    o.set_defaults(func=orders)

    ps = sub.add_parser("positions", help="positions and PnL per user and market",
                        description="Positions from PostgreSQL (average cost; fees charged to realized PnL). "
                        "Unrealized PnL marks each position at its book's mid: the running daemon's Redis "
                        "books by default, the venues' live books with --live, none if neither.")  # fmt: skip
    _store_args(ps)
    ps.add_argument("--all", action="store_true", help="include flat positions")
    ps.add_argument("--live", action="store_true", help="mark at live books (connects to both venues)")
    ps.add_argument("--redis", help="mark at the books in this Redis (default: the running daemon's)")
    ps.set_defaults(func=positions)


def _store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="the TOML config (finds PostgreSQL: postgres.url or the embedded one)")
    p.add_argument("--user", help="only this user's (default: everyone's)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _cfg(args: argparse.Namespace) -> Config:
    return load_config(args.config)


# -- trade --------------------------------------------------------------------------------------------
_FIELDS = ("pair", "size", "edge", "yes_venue", "tif", "venue", "outcome", "price", "side", "limit", "reason")


def request_of(args: argparse.Namespace) -> dict[str, str]:
    """The intent as a request (what the daemon's execution socket takes), from the command line."""
    req = {"op": str(args.trade_cmd)}
    for name in _FIELDS:
        value = getattr(args, name, None)
        if value is not None:
            req[name] = str(value)
    return req


def _req_dec(req: Mapping[str, Any], name: str, default: str | None = None) -> Decimal:
    raw = req.get(name, default)
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise IntentRefused("intent", [f"{name} {raw!r} is not a decimal number"]) from None
    if raw is None or not value.is_finite():
        raise IntentRefused("intent", [f"{name} is required (a decimal number)"])
    return value


def _req_choice(req: Mapping[str, Any], name: str, choices: tuple[str, ...], default: str | None = None) -> Any:
    value = req.get(name, default)
    if value not in choices:
        raise IntentRefused("intent", [f"{name} {value!r} must be one of {', '.join(choices)}"])
    return value


TRIGGER_OPS = ("arm", "disarm", "armed")


async def run_request(
    executor: Executor, markets: Mapping[str, object], req: Mapping[str, Any], *, trigger: EdgeTrigger | None = None
) -> dict[str, Any]:
    """Run one request (``op``: pair, buy, sell, route, kill, release; with the daemon's ``trigger`` also arm,
    disarm, armed) on a started executor. Raises IntentRefused (with its step) for a refusal, including a
    malformed request."""
    op = req.get("op")
    if op in TRIGGER_OPS:
        return _trigger_request(trigger, markets, req)
    if op == "kill":
        reason = str(req.get("reason") or "").strip()
        if not reason:
            raise IntentRefused("intent", ["kill needs a reason"])
        return {"kill_switch": reason, "cancelled": await executor.kill(reason, by=str(req.get("by", "cli")))}
    if op == "release":
        await executor.release(by=str(req.get("by", "cli")))
        return {"kill_switch": None}
    pair = str(req.get("pair", ""))
    if op not in ("pair", "buy", "sell", "route"):
        known = ", ".join(("pair", "buy", "sell", "route", "kill", "release", *TRIGGER_OPS))
        raise IntentRefused("intent", [f"unknown op {op!r} ({known})"])
    if pair not in markets:
        raise IntentRefused("pair", [f"unknown pair {pair}: not among the config's [[pairs]]"])
    if op == "route":
        routed = await executor.route(RouteIntent(
            pair, _req_choice(req, "side", ("buy", "sell")), _req_choice(req, "outcome", ("yes", "no")),
            _req_dec(req, "size"), _req_dec(req, "limit"), _req_choice(req, "tif", ("FOK", "FAK"), "FAK")))  # fmt: skip
        return {"intent": {"kind": "route", "intent_id": routed.intent_id, "status": routed.status,
                           "filled": str(routed.filled), "legs": [_order(r) for r in routed.orders],
                           "unwinds": [], "reasons": routed.reasons}}  # fmt: skip
    if op == "pair":
        yes_venue = req.get("yes_venue")
        if yes_venue is not None:
            _req_choice(req, "yes_venue", ("polymarket", "kalshi"))
        intent = PairIntent(pair, _req_dec(req, "size"), _req_dec(req, "edge", "0.01"), yes_venue,
                            _req_choice(req, "tif", ("FOK", "FAK"), "FOK"))  # fmt: skip
        return {"intent": _pair_result(await executor.pair_trade(intent))}
    venue = _req_choice(req, "venue", ("polymarket", "kalshi"))
    tif = _req_choice(req, "tif", ("FOK", "FAK", "GTC"), "FAK")
    single = await executor.place(LimitIntent(pair, venue, op, _req_choice(req, "outcome", ("yes", "no")),
                                              _req_dec(req, "price"), _req_dec(req, "size"), tif))  # fmt: skip
    return {"intent": {"kind": "limit", "order": _order(single)}}


def _trigger_request(
    trigger: EdgeTrigger | None, markets: Mapping[str, object], req: Mapping[str, Any]
) -> dict[str, Any]:
    op = str(req.get("op"))
    if trigger is None:
        raise IntentRefused("intent", [f"{op} needs the running daemon (execution.enabled = true): a standing trigger "
                                       "lives in its process"])  # fmt: skip
    if op == "armed":
        return {"triggers": [_trigger_doc(trigger, pid) for pid in trigger.armed()]}
    pair = str(req.get("pair", ""))
    if pair not in markets:
        raise IntentRefused("pair", [f"unknown pair {pair}: not among the config's [[pairs]]"])
    if op == "disarm":
        was = trigger.armed().get(pair)
        trigger.disarm(pair)
        return {"disarmed": pair, "was": was[1] if was else None}
    yes_venue = req.get("yes_venue")
    if yes_venue is not None:
        _req_choice(req, "yes_venue", ("polymarket", "kalshi"))
    limit = _req_dec(req, "limit") if req.get("limit") is not None else None
    try:
        intent = EdgeIntent(pair, _req_dec(req, "size"), _req_dec(req, "edge", "0.01"), limit, yes_venue,
                            _req_choice(req, "tif", ("FOK", "FAK"), "FOK"))  # fmt: skip
    except ValueError as exc:
        raise IntentRefused("intent", [str(exc)]) from None
    trigger.arm(intent)  # fires at once if the books show the edge already
    return {"armed": _trigger_doc(trigger, pair)}


def _trigger_doc(trigger: EdgeTrigger, pair: str) -> dict[str, Any]:
    intent, state, fires = trigger.armed()[pair]
    f = trigger.last_firing(pair)
    last = None
    if f is not None:
        status = f.result.status if f.result else ("refused" if f.refused else "error" if f.error else "in_flight")
        last = {"status": status, "size": str(f.intent.size), "yes_venue": f.intent.yes_venue, "refused": f.refused,
                "error": f.error, "intent": _pair_result(f.result) if f.result else None,
                "took_ms": round((f.finished_ns - f.detected_ns) / 1e6, 3) if f.finished_ns else None}  # fmt: skip
    return {"pair": pair, "state": state, "size": str(intent.size), "edge": str(intent.edge),
            "limit": None if intent.limit is None else str(intent.limit), "yes_venue": intent.yes_venue,
            "tif": intent.tif, "fires": fires, "last_firing": last}  # fmt: skip


def trade(args: argparse.Namespace) -> int:
    from crossbook.execution.runtime import open_runtime

    cfg = _cfg(args)
    req = request_of(args)
    if args.trade_cmd in TRIGGER_OPS:
        args.daemon = True  # a standing trigger lives in the daemon's process, never in this one

    async def go() -> dict[str, Any]:
        if args.daemon:
            from crossbook.execution.service import ask_daemon

            out = await ask_daemon(cfg, req)
            if "refused" in out:
                raise IntentRefused(str(out["refused"]["step"]), list(out["refused"]["reasons"]))
            if "error" in out:
                raise ExecutionError(f"the daemon: {out['error']}")
            return {"recovered": [], **out}
        async with open_runtime(cfg) as rt:
            assert rt.executor is not None
            if args.trade_cmd in ("kill", "release"):
                return {"recovered": [], **await run_request(rt.executor, rt.markets, req)}
            await rt.wait_ready()
            recovered = await rt.executor.recover()
            out = {"recovered": [_recovered(r) for r in recovered]}
            if args.trade_cmd == "recover":
                return out
            return {**out, **await run_request(rt.executor, rt.markets, req)}

    try:
        out = asyncio.run(go())
    except IntentRefused as refused:
        doc = {"refused": {"step": refused.step, "reasons": list(refused.reasons)}}
        if args.json:
            print(json.dumps(doc, indent=1))
        else:
            print(f"refused at {refused.step}:", file=sys.stderr)
            for reason in refused.reasons:
                print(f"  - {reason}", file=sys.stderr)
        return 3
    if args.json:
        print(json.dumps(out, indent=1, default=str))
        return 0
    w = sys.stdout.write
    for t in ([out["armed"]] if "armed" in out else []) + out.get("triggers", []):
        limit = f", limit {t['limit']}" if t["limit"] else ""
        w(f"{t['pair']}: {t['state']} (size {t['size']}, edge {t['edge']}{limit}, {t['tif']}; fired {t['fires']}x)\n")
        last = t["last_firing"]
        if last is not None:
            why = last["refused"] or last["error"]
            took = f" in {last['took_ms']} ms" if last["took_ms"] else ""
            w(f"  last firing: {last['status']}{took}" + (f": {why}" if why else "") + "\n")
            for leg in (last["intent"] or {}).get("legs", []):
                w(_order_line(leg))
    if "triggers" in out and not out["triggers"]:
        w("no triggers armed\n")
    if "disarmed" in out:
        w(f"{out['disarmed']}: disarmed" + (f" (was {out['was']})" if out["was"] else " (was not armed)") + "\n")
    if "kill_switch" in out:
        w(f"kill switch {'engaged: ' + out['kill_switch'] if out['kill_switch'] else 'released'}\n")
        for venue, ids in out.get("cancelled", {}).items():
            w(f"  {venue}: {len(ids)} open order(s) cancelled\n")
    for r in out["recovered"]:
        w(f"recovered intent {r['intent_id']} ({r['kind']} on {r['pair']}): {r['status']}\n")
        for reason in r["reasons"]:
            w(f"  - {reason}\n")
    intent = out.get("intent")
    if intent is not None and intent["kind"] == "route":
        w(f"routed intent {intent['intent_id']}: {intent['status']}, filled {intent['filled']}\n")
        for leg in intent["legs"]:
            w(_order_line(leg))
        for reason in intent["reasons"]:
            w(f"  - {reason}\n")
    elif intent is not None and intent["kind"] == "pair":
        w(f"pair intent {intent['intent_id']}: {intent['status']} (size {intent['plan_size']}, planned edge "
          f"{intent['plan_edge']})\n")
        for leg in intent["legs"] + intent["unwinds"]:
            w(_order_line(leg))
        for reason in intent["reasons"]:
            w(f"  - {reason}\n")
    elif intent is not None:
        w(_order_line(intent["order"]))
    return 0


def _order(r: OrderResult) -> dict[str, Any]:
    o = r.order
    return {"venue": o.venue, "leg": o.leg, "purpose": o.purpose, "side": o.side, "outcome": o.outcome,
            "market": o.market, "limit": str(o.price), "size": str(o.size), "tif": o.tif, "status": r.status,
            "filled": str(r.filled), "avg_price": None if r.avg_price is None else str(r.avg_price),
            "fee": str(r.fee), "reason": r.reason, "resolved_by": r.resolved_by,
            "client_order_id": o.client_order_id, "venue_order_id": o.venue_order_id}  # fmt: skip


def _pair_result(res: PairResult) -> dict[str, Any]:
    return {"kind": "pair", "intent_id": res.intent_id, "status": res.status, "plan_size": str(res.plan.size),
            "plan_edge": str(res.plan.edge), "legs": [_order(r) for r in res.legs],
            "unwinds": [_order(r) for r in res.unwinds], "reasons": res.reasons}  # fmt: skip


def _recovered(r: RecoveredIntent) -> dict[str, Any]:
    return {"intent_id": r.intent_id, "kind": r.kind, "pair": r.pair_id, "status": r.status,
            "orders": [_order(x) for x in r.orders], "unwinds": [_order(x) for x in r.unwinds],
            "reasons": r.reasons}  # fmt: skip


def _order_line(o: Mapping[str, Any]) -> str:
    avg = o["avg_price"] or "-"
    why = f"  ({o['reason']})" if o.get("reason") else ""
    return (f"  {o['leg'] or o['purpose']:<7} {o['venue']:<10} {o['side']:<4} {o['outcome']:<3} {o['size']:>8} "
            f"@ {o['limit']:<7} {o['status']:<9} filled {o['filled']:>8} avg {avg}{why}\n")  # fmt: skip


# -- orders ---------------------------------------------------------------------------------------------
async def _with_store(cfg: Config, fn: Any) -> Any:
    from crossbook.execution.runtime import open_runtime

    async with open_runtime(cfg, trading=False, books=False) as rt:
        return await fn(rt.store)


def orders(args: argparse.Namespace) -> int:
    cfg = _cfg(args)
    rows = asyncio.run(_with_store(cfg, lambda st: st.orders(args.user, limit=args.limit, open_only=args.open)))
    docs = [_order_row(r) for r in rows]
    if args.json:
        print(json.dumps({"orders": docs}, indent=1))
        return 0
    if not docs:
        print("no orders")
        return 0
    head = ("created", "user", "venue", "leg", "side", "out", "size", "limit", "status", "filled", "avg", "fee",
            "trades", "client order id")  # fmt: skip
    table = [[d["created_at"][:19], d["user"] or "-", d["venue"], d["leg"] or d["purpose"], d["side"], d["outcome"],
              d["size"], d["price"], d["status"], d["filled"], d["avg_price"] or "-", d["fee"], str(d["trades"]),
              d["client_order_id"]] for d in docs]  # fmt: skip
    _print_table(head, table)
    for d in docs:
        if d["reason"]:
            print(f"  {d['client_order_id']}: {d['reason']}")
    return 0


def _num(v: Any) -> str | None:
    return None if v is None else format(Decimal(v).normalize(), "f")


def _order_row(r: Mapping[str, Any]) -> dict[str, Any]:
    return {"created_at": r["created_at"].isoformat(), "user": r["user_ref"], "venue": r["venue"],
            "market": r["market"], "pair": r["pair_ref"], "intent_id": str(r["intent_id"] or ""), "leg": r["leg"],
            "purpose": r["purpose"], "side": r["side"], "outcome": r["outcome"], "size": _num(r["size"]),
            "price": _num(r["price"]), "tif": r["time_in_force"], "status": r["status"], "filled": _num(r["filled"]),
            "avg_price": _num(r["avg_price"]), "fee": _num(r["fee"]), "trades": int(r["trades"]),
            "reason": r["reason"] or "", "resolved_by": r["resolved_by"], "client_order_id": r["client_order_id"],
            "venue_order_id": r["venue_order_id"]}  # fmt: skip


def _print_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# -- positions ------------------------------------------------------------------------------------------
def book_key(venue: str, market: str, cfg: Config) -> tuple[str, str]:
    """(venue, market) of the YES book that marks a position: a Polymarket NO token is marked on its YES
    token's book (the one market data keeps; the NO book mirrors it), a Kalshi ticker on its own."""
    if venue == "polymarket":
        for pc in cfg.pairs:
            if pc.poly_no_asset and pc.poly_no_asset == market:
                return venue, pc.poly_asset
    return venue, market


def position_doc(p: Position, yes_mid: Decimal | None) -> dict[str, Any]:
    """A position with its mark (its outcome's mid: ``1 − YES mid`` for NO) and PnL; None when no book."""
    mark = outcome_mark(yes_mid, p.outcome)
    unreal = p.unrealized(mark)
    return {"user": p.user_ref, "pair": p.pair_ref, "venue": p.venue, "market": p.market, "outcome": p.outcome,
            "quantity": _num(p.quantity), "avg_price": _num(p.avg_price), "cost": _num(p.cost),
            "mark": _num(mark), "unrealized_pnl": _num(unreal), "realized_pnl": _num(p.realized_pnl),
            "fees": _num(p.fees), "total_pnl": _num(None if unreal is None else unreal + p.realized_pnl)}  # fmt: skip


async def _redis_mids(url: str, keys: list[tuple[str, str]], prefix: str) -> dict[tuple[str, str], Decimal | None]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_timeout=2)
    out: dict[tuple[str, str], Decimal | None] = {}
    try:
        for venue, market in keys:
            h = await client.hgetall(f"{prefix}:{'poly' if venue == 'polymarket' else 'kalshi'}:{market}")
            d = {_text(k): _text(v) for k, v in h.items()}
            out[(venue, market)] = mid_of(d.get("bid"), d.get("ask")) if d.get("valid", "1") in ("1", "true") else None
    finally:
        await client.aclose()
    return out


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _daemon_redis(cfg: Config) -> str | None:
    try:
        info = json.loads((Path(cfg.state_dir) / "daemon.json").read_text())
    except (OSError, ValueError):
        return None
    url = info.get("redis_url") if isinstance(info, dict) else None
    return str(url) if url else None


def positions(args: argparse.Namespace) -> int:
    from crossbook.execution.runtime import open_runtime

    cfg = _cfg(args)

    async def go() -> tuple[list[dict[str, Any]], str]:
        async with open_runtime(cfg, trading=False, books=bool(args.live)) as rt:
            held = await rt.store.positions(args.user, include_flat=args.all)
            keys = {book_key(p.venue, p.market, cfg) for p in held}
            mids: dict[tuple[str, str], Decimal | None] = {}
            source = "none"
            if args.live and rt.md is not None:
                await rt.wait_ready()
                for venue, market in keys:
                    try:
                        top = rt.md.books.top(venue, market)
                    except KeyError:
                        continue
                    mids[(venue, market)] = mid_of(top.get("bid"), top.get("ask")) if top.get("valid", True) else None
                source = "live books"
            else:
                url = args.redis or _daemon_redis(cfg)
                if url:
                    try:
                        mids = await _redis_mids(url, sorted(keys), cfg.redis.key_prefix)
                        source = f"redis {url}"
                    except OSError as exc:
                        print(f"crossbook: marks unavailable ({exc}); unrealized PnL not shown", file=sys.stderr)
            docs = []
            for p in held:
                docs.append(position_doc(p, mids.get(book_key(p.venue, p.market, cfg))))
            return docs, source

    try:
        docs, source = asyncio.run(go())
    except ConfigError:
        raise
    if args.json:
        print(json.dumps({"positions": docs, "marks": source}, indent=1))
        return 0
    if not docs:
        print("no positions")
        return 0
    head = ("user", "pair", "venue", "outcome", "qty", "avg", "mark", "unrealized", "realized", "fees", "total",
            "market")  # fmt: skip
    table = [[d["user"] or "-", d["pair"][:12], d["venue"], d["outcome"], d["quantity"], d["avg_price"] or "-",
              d["mark"] or "-", d["unrealized_pnl"] or "-", d["realized_pnl"], d["fees"], d["total_pnl"] or "-",
              d["market"][:24]] for d in docs]  # fmt: skip
    _print_table(head, table)
    print(f"marks: {source} (mid of the outcome's book)")
    return 0
