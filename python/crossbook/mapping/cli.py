"""``crossbook pairs ...`` and ``crossbook db ...`` subcommands (loaded by crossbook.cli as a plugin)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import orjson

PAIRS_HELP = """examples:
  crossbook pairs judge ../shared/pairs/public_pairs.json     verdicts as JSON (offline rules by default)
  crossbook pairs eval --offline tests/mapping/hard_pairs.json   precision/recall on labelled pairs
  crossbook pairs sync --config crossbook.toml                pull both catalogs, judge new candidates, store
  crossbook pairs list                                        stored pairs as a table (--json for machines)
  crossbook pairs show KXHIGHNY-26JUL21-T87                   why a pair is (not) Verified (--full: prompts)
  crossbook pairs halt KXHIGHNY-26JUL21-T87                   stop trading a pair (id, condition id or ticker)
"""


def register(sub: Any) -> None:
    p = sub.add_parser("pairs", help="verify and manage Polymarket/Kalshi market pairs",
                       description="Cross-venue pair mapping: a pair is Verified only when two extractions of the "
                       "resolution criteria, a judge and every deterministic check agree.",
                       epilog=PAIRS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=lambda args: _help(p))
    ps = p.add_subparsers(dest="pairs_cmd", metavar="SUBCOMMAND")

    j = ps.add_parser("judge", help="judge candidate pairs given in the shared/pairs schema; JSON out",
                      description="Prints a JSON list: {id, status, polarity, reasons, extractor_a, extractor_b, "
                      "judge} per pair. Model A/B and the judge come from CROSSBOOK_MAPPING_MODEL_A/_B/_JUDGE "
                      "(e.g. openai:gpt-4o-mini, anthropic:claude-..., openai-compatible via "
                      "CROSSBOOK_MAPPING_OPENAI_BASE_URL); unset or without keys: the offline rules.")
    j.add_argument("file", metavar="FILE", help="JSON array (or lines) of pairs; - for stdin")
    j.add_argument("--offline", action="store_true", help="use the offline rules even if models are configured")
    j.add_argument("--store", action="store_true", help="also record the verdicts in PostgreSQL")
    _db_args(j)
    j.set_defaults(func=_judge)

    ev = ps.add_parser("eval", help="precision/recall of the verifier on labelled pairs (shared/pairs schema)",
                       description="Judges labelled pairs and prints precision, recall and the ids of false "
                       "positives (a 'different' pair Verified, or the wrong polarity) and misses. Exit status 3 "
                       "when there is any false positive.")
    ev.add_argument("files", metavar="FILE", nargs="+", help="JSON arrays of labelled pairs")
    ev.add_argument("--offline", action="store_true", help="use the offline rules even if models are configured")
    ev.add_argument("--json", action="store_true", help="JSON per file instead of a line per file")
    ev.set_defaults(func=_eval)

    sy = ps.add_parser("sync", help="pull both catalogs, judge new candidate pairs, store the verdicts",
                       description="Pulls Polymarket's Gamma markets and Kalshi's open events with their markets "
                       "nested (or its markets API; URLs from --config, or "
                       "--gamma-url/--kalshi-url), generates candidates (blocking on years, strikes and named "
                       "entities, then rapidfuzz on titles), runs the consensus on every candidate not yet judged "
                       "for the same texts, and stores each verdict as it arrives. Safe to re-run and to kill: "
                       "a re-run judges only what is new. Prints a JSON summary on stdout.")
    sy.add_argument("--config", default=None, help="crossbook TOML (polymarket.rest_url, kalshi.rest_url)")
    sy.add_argument("--gamma-url", default=None, help="Gamma markets endpoint (default from polymarket.rest_url)")
    sy.add_argument("--kalshi-url", default=None,
                    help="Kalshi catalog endpoint: .../trade-api/v2/events (events with nested markets) or "
                    ".../trade-api/v2/markets (default: the events API under kalshi.rest_url)")
    sy.add_argument("--offline", action="store_true", help="use the offline rules even if models are configured")
    sy.add_argument("--concurrency", type=int, default=8, help="consensus runs in flight (default 8)")
    sy.add_argument("--rate", default="0", help="at most this many consensus runs started per second (0: no cap)")
    sy.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    _db_args(sy)
    sy.set_defaults(func=_sync)

    ls = ps.add_parser("list", help="show stored pairs (a table; --json for machines)")
    ls.add_argument("--json", action="store_true", help="JSON array instead of a table")
    _db_args(ls)
    ls.set_defaults(func=_list)
    sh = ps.add_parser("show", help="why a pair is (not) Verified: verdict, checks, extractions, models, prompts",
                       description="Reads the stored verdicts of a pair back from PostgreSQL and prints them for a "
                       "person: the verdict and its reasons, every check (failures first), both models' extractions "
                       "side by side, who judged, and the prompts and raw replies (--full).")
    sh.add_argument("ref", metavar="REF", help="verdict id, pair ref (slug~ticker), Kalshi ticker, Polymarket "
                    "condition id or market_pairs internal id")
    sh.add_argument("--all", action="store_true", help="every verdict for the pair, newest first (default: newest)")
    sh.add_argument("--full", action="store_true", help="print the prompts and raw replies in full")
    sh.add_argument("--json", action="store_true", help="the stored verdict rows as JSON")
    _db_args(sh)
    sh.set_defaults(func=_show)
    for name, halted in (("halt", True), ("resume", False)):
        h = ps.add_parser(name, help=f"{'halt' if halted else 'resume'} trading of a stored pair")
        h.add_argument("ref", metavar="ID", help="internal id, Polymarket condition id or Kalshi ticker")
        _db_args(h)
        h.set_defaults(func=lambda args, halted=halted: _halt(args, halted))

    d = sub.add_parser("db", help="database tools (migrate)")
    d.set_defaults(func=lambda args: _help(d))
    ds = d.add_subparsers(dest="db_cmd", metavar="SUBCOMMAND")
    m = ds.add_parser("migrate", help="apply the numbered SQL migrations (idempotent, safe concurrently)")
    _db_args(m)
    m.set_defaults(func=_migrate)


def _help(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def _db_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db-url", default=None,
                   help="postgresql:// URL (default CROSSBOOK_POSTGRES_URL; empty: embedded server in --state-dir)")
    p.add_argument("--state-dir", default=".crossbook", help="where the embedded PostgreSQL keeps its data")


def _url(args: argparse.Namespace) -> str:
    from crossbook.store.postgres import postgres_url_from_env

    return str(args.db_url) if args.db_url is not None else postgres_url_from_env()


def _dump(obj: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n")


@contextlib.contextmanager
def _progress(what: str, total: int) -> Iterator[Callable[[Any], None]]:
    """A progress bar on stderr when it is a terminal (model calls take seconds each); silent otherwise."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=not console.is_terminal, transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda _v: bar.advance(task)


def _judge(args: argparse.Namespace) -> int:
    from crossbook.mapping.consensus import judge_pairs, offline_consensus
    from crossbook.mapping.pairs_io import load_pairs
    from crossbook.mapping.providers import consensus_from_env

    pairs = load_pairs(args.file)
    cons = offline_consensus() if args.offline else consensus_from_env()
    with _progress("judging pairs", len(pairs)) as tick:
        verdicts = asyncio.run(judge_pairs(pairs, cons, on_done=tick))
    if args.store:
        asyncio.run(_store(args, pairs, verdicts))
    _dump([v.summary() for v in verdicts])
    return 0


def _eval(args: argparse.Namespace) -> int:
    from crossbook.mapping.consensus import offline_consensus
    from crossbook.mapping.evaluate import evaluate
    from crossbook.mapping.pairs_io import load_pairs
    from crossbook.mapping.providers import consensus_from_env

    cons = offline_consensus() if args.offline else consensus_from_env()
    out: dict[str, Any] = {}
    fp = False
    for f in args.files:
        pairs = load_pairs(f)
        with _progress(f"judging {f}", len(pairs)) as tick:
            sc, _ = asyncio.run(evaluate(pairs, cons, on_done=tick))
        fp = fp or bool(sc.false_positives)
        if args.json:
            out[f] = {"consensus": f"{cons.a.name} + {cons.b.name} / {cons.judge_model.name}", **sc.to_json()}
        else:
            print(f"{f}: {sc.line()}")
    if args.json:
        _dump(out)
    return 3 if fp else 0


async def _store(args: argparse.Namespace, pairs: list[dict[str, Any]], verdicts: list[Any]) -> None:
    from crossbook.mapping.sync import to_record
    from crossbook.store.postgres import connect, migrate, postgres_url, record_verdict

    async with postgres_url(_url(args), args.state_dir) as url:
        await migrate(url)
        conn = await connect(url)
        try:
            for pair, v in zip(pairs, verdicts, strict=True):
                rec, pt, kt = to_record(pair, v)
                await record_verdict(conn, rec, pt, kt)
        finally:
            await conn.close()


def _list(args: argparse.Namespace) -> int:
    from crossbook.store.postgres import connect, list_pairs, migrate, postgres_url

    async def go() -> list[dict[str, Any]]:
        async with postgres_url(_url(args), args.state_dir) as url:
            await migrate(url)
            conn = await connect(url)
            try:
                return await list_pairs(conn)
            finally:
                await conn.close()

    rows = asyncio.run(go())
    if args.json:
        _dump(rows)
    else:
        _print_table(rows)
    return 0


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped into a file or a pager: do not fold ids at 80 columns
        console = Console(width=200)
    if not rows:
        console.print("no stored pairs yet (run `crossbook pairs sync` or `crossbook pairs judge FILE --store`)")
        return
    t = Table(title=f"market pairs ({sum(r['logic_status'] == 'Verified' for r in rows)} verified of {len(rows)})")
    for col in ("status", "polarity", "halted"):
        t.add_column(col)
    t.add_column("Polymarket", overflow="fold")
    t.add_column("Kalshi", overflow="fold")
    t.add_column("last price", justify="right")
    t.add_column("verdict")
    t.add_column("id", overflow="fold")
    for r in rows:
        ok = r["logic_status"] == "Verified"
        cond = str(r["poly_condition_id"])
        t.add_row(
            f"[green]{r['logic_status']}[/]" if ok else f"[yellow]{r['logic_status']}[/]",
            f"[magenta]{r['polarity']}[/]" if r["polarity"] == "inverted" else str(r["polarity"] or "-"),
            "[red]HALTED[/]" if r["is_halted"] else "no",
            f"{r['poly_title']}\n[dim]{cond[:10]}…{cond[-6:]}[/]" if len(cond) > 20 else f"{r['poly_title']}\n{cond}",
            f"{r['kalshi_title']}\n[dim]{r['kalshi_ticker']}[/]",
            r["last_undisputed_price"] or "-", str(r["last_verdict_id"] or "-"), r["internal_id"],
        )
    console.print(t)


def _sync(args: argparse.Namespace) -> int:
    from decimal import Decimal, InvalidOperation

    from crossbook.config import load_config
    from crossbook.errors import ConfigError
    from crossbook.mapping.consensus import offline_consensus
    from crossbook.mapping.providers import consensus_from_env
    from crossbook.mapping.sync import (
        fetch_kalshi_catalog,
        fetch_polymarket,
        gamma_markets_url,
        kalshi_events_url,
        run_sync,
    )
    from crossbook.store.postgres import connect, migrate, postgres_url

    try:
        rate = Decimal(args.rate)
    except InvalidOperation:
        raise ConfigError(f"--rate {args.rate!r} is not a number (starts per second; 0 = no cap)") from None
    cfg = load_config(args.config)
    gamma = args.gamma_url or gamma_markets_url(cfg.polymarket.rest_url)
    kalshi = args.kalshi_url or kalshi_events_url(cfg.kalshi.rest_url)
    cons = offline_consensus() if args.offline else consensus_from_env()

    async def go() -> dict[str, Any]:
        from rich.console import Console

        console = Console(stderr=True, quiet=args.no_progress)
        with console.status("fetching catalogs") as status:
            polys, kals = await asyncio.gather(
                fetch_polymarket(gamma),
                fetch_kalshi_catalog(kalshi, on_page=lambda n: status.update(f"fetching catalogs: {n} Kalshi "
                                                                            "markets so far")))
        console.print(f"catalogs: {len(polys)} Polymarket markets, {len(kals)} Kalshi markets")
        import asyncpg  # type: ignore[import-untyped]

        from crossbook.errors import StoreError

        async with postgres_url(_url(args), args.state_dir) as url:
            await migrate(url)
            conn = await connect(url)
            try:
                rep = await run_sync(conn, polys, kals, cons, concurrency=args.concurrency, rate=rate,
                                     progress=not args.no_progress)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # each verdict commits on its own: what was stored stays, a re-run judges only the rest
                raise StoreError(f"the database failed mid-sync ({type(exc).__name__}: {str(exc)[:200]}); every "
                                 "verdict committed so far is kept; run `crossbook pairs sync` again to finish") \
                    from exc
            finally:
                with contextlib.suppress(Exception):  # the connection may be gone with the server
                    await conn.close(timeout=5)
        return rep.to_json()

    _dump(asyncio.run(go()))
    return 0


def _show(args: argparse.Namespace) -> int:
    from crossbook.errors import ConfigError
    from crossbook.mapping.show import find_verdicts, render, stored_pair
    from crossbook.store.postgres import connect, migrate, postgres_url

    async def go() -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        async with postgres_url(_url(args), args.state_dir) as url:
            await migrate(url)
            conn = await connect(url)
            try:
                return [(v, await stored_pair(conn, v)) for v in await find_verdicts(conn, args.ref, args.all)]
            finally:
                await conn.close()

    found = asyncio.run(go())
    if not found:
        raise ConfigError(f"no verdict for {args.ref!r} (try a verdict id, a Kalshi ticker, a condition id, "
                          "or `crossbook pairs list`)")
    if args.json:
        _dump([{**v, "market_pair": pair} for v, pair in found])
    else:
        print("\n\n".join(render(v, pair, args.full) for v, pair in found))
    return 0


def _halt(args: argparse.Namespace, halted: bool) -> int:
    from crossbook.store.postgres import connect, migrate, postgres_url, set_halted

    async def go() -> int:
        async with postgres_url(_url(args), args.state_dir) as url:
            await migrate(url)
            conn = await connect(url)
            try:
                return await set_halted(conn, args.ref, halted)
            finally:
                await conn.close()

    n = asyncio.run(go())
    if not n:
        print(f"crossbook: no stored pair matches {args.ref!r} (try `crossbook pairs list`)", file=sys.stderr)
        return 1
    print(f"{args.ref}: {'halted' if halted else 'resumed'}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from crossbook.store.postgres import migrate, postgres_url

    async def go() -> list[str]:
        async with postgres_url(_url(args), args.state_dir) as url:
            return await migrate(url)

    applied = asyncio.run(go())
    print("applied: " + ", ".join(applied) if applied else "up to date")
    return 0
