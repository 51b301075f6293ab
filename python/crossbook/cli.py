"""The ``crossbook`` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from crossbook.errors import CrossbookError

EPILOG = """examples:
  crossbook demo                         live books from both simulators (Ctrl-C stops)
  crossbook demo --seconds 20 --chaos    stop by itself; inject venue faults every few seconds
  crossbook daemon --config crossbook.toml
  crossbook book replay --venue kalshi frames.jsonl > books.json
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="crossbook",
        description="Trade the same event on Polymarket and Kalshi: live books, safety, execution.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    d = sub.add_parser(
        "demo",
        help="run embedded Redis, both venue simulators and the daemon, with a live table",
        description="Starts an embedded Redis, a Polymarket and a Kalshi simulator (real wire protocols, "
        "on loopback), and the market-data daemon; shows the top of book as stored in Redis.",
    )
    d.add_argument("--seconds", type=float, default=None, help="stop by itself after N seconds")
    d.add_argument("--markets", type=int, default=4, help="markets per venue (default 4)")
    d.add_argument("--chaos", action="store_true",
                   help="inject faults (drops, garbage, Kalshi gaps, tick changes, stalls) every 4 s")
    d.add_argument("--seed", type=int, default=7, help="simulator seed")

    dm = sub.add_parser(
        "daemon",
        help="run the production daemon",
        description="Streams the configured markets from both venues, keeps live L2 books and writes "
        "book:<venue>:<market> hashes to Redis. Settings: the TOML file, then CROSSBOOK_* env vars.",
    )
    dm.add_argument("--config", help="TOML config file (see examples/crossbook.toml)")
    dm.add_argument("--seconds", type=float, default=None, help="stop by itself after N seconds")

    st = sub.add_parser(
        "status",
        help="books and pair execute states of a running daemon (read from Redis)",
        description="Reads the daemon's Redis: every book:<venue>:<market> hash (with its age) and every "
        "pair's execute state as the breaker published it.",
    )
    st.add_argument("--config", help="the daemon's TOML config (finds its state dir / Redis)")
    st.add_argument("--redis", help="Redis URL (default: the running daemon's)")
    st.add_argument("--json", action="store_true", help="machine-readable output")

    tu = sub.add_parser(
        "tune",
        help="check (and with --apply set) NIC IRQ and engine CPU affinity",
        description="Prints each NIC interrupt's CPU affinity and the engine's, and what the seed layout wants "
        "(NIC IRQs on core 0, the engine on cores 1-3, clipped to this machine). --apply makes the changes "
        "(root needed for IRQs) and reports any the kernel refuses.",
    )
    tu.add_argument("--iface", help="network interface (default: the default route's)")
    tu.add_argument("--nic-cores", default="0", help="cores for NIC interrupts (default 0)")
    tu.add_argument("--engine-cores", default="1-3", help="cores for the engine (default 1-3)")
    tu.add_argument("--pid", type=int, help="engine process to pin (default: the running daemon, else this one)")
    tu.add_argument("--apply", action="store_true", help="make the changes (as root)")

    b = sub.add_parser("book", help="book tools (replay)")
    bsub = b.add_subparsers(dest="book_cmd", metavar="SUBCOMMAND")
    r = bsub.add_parser(
        "replay",
        help="apply recorded frames and print the resulting books as JSON",
        description="Reads frames (JSON lines, a JSON array of frames, one message per file, a directory "
        "of such files, or - for stdin), applies them in order and prints {\"books\": [...]}. Malformed "
        "and unknown frames are reported on stderr and skipped; the exit code stays 0.",
    )
    r.add_argument("--venue", required=True, choices=["polymarket", "kalshi"])
    r.add_argument("files", nargs="+", metavar="FILE")
    r.add_argument("--depth", type=int, default=None, help="levels per side to print (default all)")
    r.add_argument("--kalshi-use-yes-price", action="store_true",
                   help="the frames were recorded with use_yes_price=true (NO levels on the YES scale)")
    for name in PLUGINS:
        try:
            present = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # its package is not there (yet)
            present = False
        if present:
            importlib.import_module(name).register(sub)
    return p


# Packages that add their own subcommands: each has ``register(subparsers)`` and sets ``func`` on
# its parsers (``func(args) -> int``).
PLUGINS = ("crossbook.mapping.cli", "crossbook.hub.cli", "crossbook.signing.cli", "crossbook.safety.cli",
           "crossbook.chain.cli", "crossbook.execution.cli")


def _daemon_pid() -> int | None:
    """The running daemon's pid from its runtime file (default state dir), if it is alive."""
    from crossbook.config import Config

    try:
        info = orjson.loads((Path(Config().state_dir) / "daemon.json").read_bytes())
        pid = int(info["pid"])
        os.kill(pid, 0)
        return pid
    except (OSError, KeyError, ValueError, orjson.JSONDecodeError):
        return None


def _install_uvloop() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.cmd == "demo":
            from crossbook.demo import run_demo

            _install_uvloop()
            return asyncio.run(run_demo(args.seconds, args.markets, args.chaos, args.seed))
        if args.cmd == "daemon":
            from crossbook.config import load_config
            from crossbook.daemon import run_daemon
            from crossbook.logs import log_in_background, setup_logging

            cfg = load_config(args.config)
            setup_logging(cfg.log_level)
            writer = log_in_background()  # the engine's loop never waits on a log write
            try:
                _install_uvloop()
                asyncio.run(run_daemon(cfg, seconds=args.seconds))
            finally:
                writer.stop()
            return 0
        if args.cmd == "status":
            from crossbook.config import load_config
            from crossbook.status import show_status

            return show_status(load_config(args.config), args.redis, args.json)
        if args.cmd == "tune":
            from crossbook.tune import run as tune

            return tune(args.iface, args.nic_cores, args.engine_cores, args.pid or _daemon_pid(), args.apply)
        if args.cmd == "book" and args.book_cmd == "replay":
            from crossbook.book.replay import replay

            out = replay(args.venue, args.files, kalshi_use_yes_price=args.kalshi_use_yes_price, depth=args.depth)
            sys.stdout.buffer.write(orjson.dumps(out, option=orjson.OPT_INDENT_2) + b"\n")
            return 0
        if getattr(args, "func", None) is not None:
            return int(args.func(args))
        if args.cmd == "book":
            parser.parse_args(["book", "--help"])
        parser.print_help()
        return 2
    except CrossbookError as exc:
        print(f"crossbook: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except FileNotFoundError as exc:
        print(f"crossbook: {exc.filename}: no such file", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
