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
    h.add_argument("--postgres", default=None, metavar="URL",
                   help="authenticate against the users in this PostgreSQL (instead of --users)")
    h.add_argument("--cert", default=None, help="TLS certificate (PEM): serve wss:// instead of ws://")
    h.add_argument("--key", default=None, help="TLS private key (PEM) if not inside --cert")
    h.add_argument("--prefix", default="crossbook:hub", help="Redis channel / key prefix")
    h.add_argument("--config", default=None, metavar="FILE",
                   help="daemon config: its [hub] certfile/keyfile, private tunnels (proxies + accounts_file) "
                   "and postgres.url apply to this node unless the flags above say otherwise")
    h.add_argument("--node-id", default=None,
                   help="this node's name in its Redis leases, unique among the nodes (default host-pid-random: "
                   "unique per run)")
    h.add_argument("--lease", type=float, default=15.0, metavar="S",
                   help="the markets this node's users watch are leased in Redis for S seconds, refreshed every "
                   "S/3: the feed node streams them while leased and releases them when a dead node's leases "
                   "expire (default 15)")
    h.add_argument("--demand-grace", type=float, default=0.0, metavar="S",
                   help="keep a market leased S seconds after its last user here leaves (default 0: the feed "
                   "node's hub.upstream_grace_s applies anyway)")
    h.add_argument("--seconds", type=float, default=None, help="stop by itself after N seconds")
    h.set_defaults(func=_run_hub)

    u = subparsers.add_parser("users", help="manage hub users (tokens)")
    usub = u.add_subparsers(dest="users_cmd", metavar="SUBCOMMAND")
    a = usub.add_parser("add", help="create a user (or rotate its token) and print the token once",
                        description="Only a SHA-256 hash of the token is stored; the token is printed once. "
                        "With a PostgreSQL store (--postgres, or postgres.url in --config) the hash goes to its "
                        "users/sessions tables (what the daemon then reads); otherwise to the --users file.")
    a.add_argument("name")
    a.add_argument("--users", default=DEFAULT_USERS_FILE, metavar="FILE", help="users file (hashed tokens)")
    a.add_argument("--config", default=None, metavar="FILE", help="daemon config: use its postgres.url if set")
    a.add_argument("--postgres", default=None, metavar="URL", help="store the user in this PostgreSQL")
    a.set_defaults(func=_users_add)
    u.set_defaults(func=lambda args: (u.print_help(), 2)[1])


def _users_add(args: argparse.Namespace) -> int:
    from crossbook.hub.auth import FileUserStore

    pg_url = args.postgres
    if pg_url is None and args.config is not None:
        from crossbook.config import load_config

        pg_url = load_config(args.config).postgres.url or None
    if pg_url:
        token = asyncio.run(_users_add_pg(pg_url, args.name))
        print(token)
        print(f"user {args.name!r} saved (hashed) in PostgreSQL; keep the token, it is not shown again",
              file=sys.stderr)
        return 0
    token = FileUserStore(args.users).add_user_sync(args.name)
    print(token)
    print(f"user {args.name!r} saved (hashed) in {args.users}; keep the token, it is not shown again",
          file=sys.stderr)
    return 0


async def _users_add_pg(url: str, name: str) -> str:
    from crossbook.hub.auth import PgUserStore
    from crossbook.store.postgres import create_pool, migrate

    await migrate(url)
    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        return await PgUserStore(pool).add_user(name)
    finally:
        await pool.close()


def _run_hub(args: argparse.Namespace) -> int:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    return asyncio.run(_hub_main(args))


async def _hub_main(args: argparse.Namespace) -> int:
    if args.lease <= 0 or args.demand_grace < 0:
        print("crossbook hub: --lease must be positive and --demand-grace not negative", file=sys.stderr)
        return 2
    from crossbook.hub.auth import FileUserStore, UserStore
    from crossbook.hub.bridge import RedisBridgeSubscriber, RedisDemandUpstream
    from crossbook.hub.demand import DemandTracker
    from crossbook.hub.server import Hub

    cfg = None
    if args.config is not None:
        from crossbook.config import load_config

        cfg = load_config(args.config)
        args.postgres = args.postgres or cfg.postgres.url or None
        args.cert = args.cert or cfg.hub.certfile or None
        args.key = args.key or cfg.hub.keyfile or None
    users: UserStore
    pg_pool: Any = None
    if args.postgres:
        from crossbook.hub.auth import PgUserStore
        from crossbook.store.postgres import create_pool

        pg_pool = await create_pool(args.postgres, min_size=1, max_size=2)
        users = PgUserStore(pg_pool)
    else:
        users = FileUserStore(args.users)
    private = None
    if cfg is not None:
        from crossbook.hub.accounts import build_tunnels

        private = build_tunnels(cfg)  # this node's users get their own tunnels, dialled from here
    # The markets this node's users watch are leased in Redis: the feed node streams them on demand.
    leases = RedisDemandUpstream(args.redis, prefix=args.prefix, node_id=args.node_id, lease_s=args.lease)
    hub = await Hub(users, host=args.host, port=args.port, certfile=args.cert, keyfile=args.key,
                    tunnels=private[0] if private else None,
                    demand=DemandTracker(leases, grace_s=args.demand_grace)).start()
    if private is not None:
        private[1].start()
    leases.start()
    sub = RedisBridgeSubscriber(args.redis, hub, prefix=args.prefix, leases=leases)
    sub.start()
    print(f"hub listening on {hub.url} (fed by {args.redis}, node {leases.node_id})", flush=True)
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
        await leases.stop()  # withdraws the leases: the feed node releases them after its grace
        if private is not None:
            await private[1].stop()
        if pg_pool is not None:
            await pg_pool.close()
    return 0
