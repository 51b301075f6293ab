"""``crossbook hub`` (a hub node fed through Redis) and ``crossbook users add``."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

DEFAULT_USERS_FILE = os.environ.get(
    "CROSSBOOK_USERS_FILE", str(Path.home() / ".local" / "share" / "crossbook" / "users.json")
)


def register(subparsers: Any) -> None:
    h = subparsers.add_parser(
        "hub",
        help="run a fan-out hub node fed by a feed node through Redis pub/sub",
        description="Serves users over WebSocket (protocol: docs/hub-protocol.md). Updates come from the "
        "feed node through Redis pub/sub with their sequence numbers, so every hub node delivers the "
        "same sequence. Tokens come from `crossbook users add NAME` (same --users file).",
    )
    h.add_argument("--redis", required=True, metavar="URL", help="Redis URL of the feed node, e.g. redis://host:6379/0")
    h.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    h.add_argument("--port", type=int, default=8765, help="listen port (default 8765; 0 picks a free one)")
    h.add_argument("--users", default=DEFAULT_USERS_FILE, metavar="FILE", help="users file (hashed tokens)")
    h.add_argument("--cert", default=None, help="TLS certificate (PEM): serve wss:// instead of ws://")
    h.add_argument("--key", default=None, help="TLS private key (PEM) if not inside --cert")
    h.add_argument("--prefix", default="crossbook:hub", help="Redis channel / key prefix")
    h.add_argument("--seconds", type=float, default=None, help="stop by itself after N seconds")
    h.set_defaults(func=_run_hub)

    u = subparsers.add_parser("users", help="manage hub users (tokens)")
    usub = u.add_subparsers(dest="users_cmd", metavar="SUBCOMMAND")
    a = usub.add_parser("add", help="create a user (or rotate its token) and print the token once",
                        description="Only a SHA-256 hash of the token is stored; the token is printed once.")
    a.add_argument("name")
    a.add_argument("--users", default=DEFAULT_USERS_FILE, metavar="FILE", help="users file (hashed tokens)")
    a.set_defaults(func=_users_add)
    u.set_defaults(func=lambda args: (u.print_help(), 2)[1])


def _users_add(args: argparse.Namespace) -> int:
    from crossbook.hub.auth import FileUserStore

    token = FileUserStore(args.users).add_user_sync(args.name)
    print(token)
    print(f"user {args.name!r} saved (hashed) in {args.users}; keep the token, it is not shown again",
          file=sys.stderr)
    return 0


def _run_hub(args: argparse.Namespace) -> int:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    return asyncio.run(_hub_main(args))


async def _hub_main(args: argparse.Namespace) -> int:
    from crossbook.hub.auth import FileUserStore
    from crossbook.hub.bridge import RedisBridgeSubscriber
    from crossbook.hub.server import Hub

    hub = await Hub(FileUserStore(args.users), host=args.host, port=args.port,
                    certfile=args.cert, keyfile=args.key).start()
    sub = RedisBridgeSubscriber(args.redis, hub, prefix=args.prefix)
    sub.start()
    print(f"hub listening on {hub.url} (fed by {args.redis})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), args.seconds)
    except TimeoutError:
        pass
    finally:
        await sub.stop()
        await hub.stop()
    return 0
