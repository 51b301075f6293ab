"""An executor built from the one config: PostgreSQL (embedded unless ``postgres.url``), live books
from both venues, the breaker and gate over the configured pairs, the signer (service or development
keys) and the venue REST clients. ``crossbook trade`` runs in one of these; starting one reconciles
whatever a previous executor left unfinished (:meth:`Executor.recover`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, cast

import orjson

from crossbook.book.service import MarketData
from crossbook.config import Config
from crossbook.errors import ConfigError
from crossbook.execution.executor import Executor
from crossbook.execution.liveness import OrderSafety
from crossbook.execution.models import PairMarkets, UnwindPolicy, Venue
from crossbook.execution.signer import ExecutionSigner, LocalSigner, ServiceSigner
from crossbook.execution.store import ExecutionStore
from crossbook.execution.venues import KalshiTrader, PolymarketTrader, VenueTrader
from crossbook.safety.breaker import Breaker
from crossbook.safety.gate import Gate
from crossbook.signing import ApiCreds, HeaderSigner, LocalHeaderSigner, PrivateKey

log = logging.getLogger("crossbook.execution")


@dataclass
class Runtime:
    cfg: Config
    db_url: str
    store: ExecutionStore
    md: MarketData | None
    breaker: Breaker | None
    executor: Executor | None
    markets: dict[str, PairMarkets]

    async def wait_ready(self, pair_ids: list[str] | None = None) -> list[str]:
        """Wait (up to ``execution.ready_timeout_s``) until each pair's breaker is enabled; the ids still
        disabled are returned (the gate then refuses them with its reasons)."""
        if self.breaker is None:
            return list(pair_ids or [])
        wanted = list(self.markets) if pair_ids is None else pair_ids
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.execution.ready_timeout_s
        while True:
            waiting = [p for p in wanted if p in self.markets and not self.breaker.evaluate(p).enabled]
            if not waiting or loop.time() >= deadline:
                return waiting
            await asyncio.sleep(0.05)


def _dec(value: str, name: str) -> Decimal:
    try:
        out = Decimal(value)
    except InvalidOperation:
        raise ConfigError(f"execution.{name} = {value!r} is not a decimal") from None
    if not out.is_finite() or out < 0:
        raise ConfigError(f"execution.{name} must be a non-negative decimal")
    return out


def pair_markets(cfg: Config) -> dict[str, PairMarkets]:
    out: dict[str, PairMarkets] = {}
    for pc in cfg.pairs:
        polarity: Literal["same", "inverted"] = "inverted" if pc.polarity == "inverted" else "same"
        out[pc.pair_id] = PairMarkets(pc.pair_id, pc.poly_asset, pc.poly_no_asset, pc.kalshi_ticker, polarity)
    return out


def build_signer(cfg: Config) -> tuple[ExecutionSigner, HeaderSigner, Any]:
    """(order/header signer, Kalshi WebSocket header signer, a closeable or None)."""
    ex = cfg.execution
    if ex.signer_socket:
        from crossbook.signing.client import SignerClient

        if not (ex.polymarket_address and ex.polymarket_api_key):
            raise ConfigError("execution.signer_socket needs execution.polymarket_address and polymarket_api_key")
        client = SignerClient(ex.signer_socket, timeout=max(2.0, ex.order_timeout_s))
        signer = ServiceSigner(client, address=ex.polymarket_address, api_key=ex.polymarket_api_key,
                               session_id=ex.signer_session_id or None, wallet=ex.signer_wallet)  # fmt: skip
        return signer, client, client
    if not (ex.polymarket_key_path and ex.polymarket_api_creds_path):
        raise ConfigError("trading needs execution.signer_socket (production) or, for development, "
                          "execution.polymarket_key_path and execution.polymarket_api_creds_path")  # fmt: skip
    try:
        key_hex = Path(ex.polymarket_key_path).read_text().strip()
        creds = orjson.loads(Path(ex.polymarket_api_creds_path).read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read a development key file: {exc.filename}: {exc.strerror}") from None
    except orjson.JSONDecodeError:
        raise ConfigError(f"{ex.polymarket_api_creds_path} is not JSON {{api_key, secret, passphrase}}") from None
    names = ("api_key", "secret", "passphrase")
    if not isinstance(creds, dict) or not all(isinstance(creds.get(k), str) for k in names):
        raise ConfigError(f"{ex.polymarket_api_creds_path} must hold string api_key, secret and passphrase")
    headers = LocalHeaderSigner.from_files(cfg.kalshi.api_key_id, cfg.kalshi.private_key_path)
    wallet = PrivateKey(key_hex)
    return LocalSigner(wallet, ApiCreds(creds["api_key"], creds["secret"], creds["passphrase"]), headers), headers, None


def check_execution_config(cfg: Config, markets: dict[str, PairMarkets]) -> None:
    ex = cfg.execution
    if ex.first_venue not in ("polymarket", "kalshi"):
        raise ConfigError("execution.first_venue must be polymarket or kalshi")
    if ex.unwind not in ("complete", "flatten", "none"):
        raise ConfigError("execution.unwind must be complete, flatten or none")
    missing = [p for p, m in markets.items() if not m.poly_no_token]
    if missing:
        raise ConfigError(f"pairs {', '.join(missing)} need poly_no_asset (the NO token) to trade")


async def build_executor(
    cfg: Config, signer: ExecutionSigner, gate: Gate, books: Any, store: ExecutionStore,
    markets: dict[str, PairMarkets], stack: contextlib.AsyncExitStack,
) -> Executor:  # fmt: skip
    """The executor with its venue clients (rate limits, proxy) and, when configured, cancel-on-disconnect;
    everything it starts is stopped by ``stack``."""
    ex = cfg.execution
    pw, kw, kr = ex.polymarket_writes_per_s, ex.kalshi_writes_per_s, ex.kalshi_reads_per_s
    traders: dict[Venue, VenueTrader] = {
        "polymarket": PolymarketTrader(cfg.polymarket.rest_url, signer, timeout=ex.order_timeout_s,
                                       write_rate=(pw, max(1.0, pw)) if pw > 0 else None, proxy=ex.proxy or None),
        "kalshi": KalshiTrader(cfg.kalshi.rest_url, signer, timeout=ex.order_timeout_s,
                               write_rate=(kw, max(1.0, kw)) if kw > 0 else None,
                               read_rate=(kr, max(1.0, kr)) if kr > 0 else None, proxy=ex.proxy or None),
    }  # fmt: skip
    for t in traders.values():
        stack.push_async_callback(t.close)
    # Connections open before the first order (then kept open and warm by the traders themselves).
    await asyncio.gather(*(t.warm() for t in traders.values()))
    executor = Executor(
        gate=gate, books=books, traders=traders, markets=markets, store=store,
        unwind=UnwindPolicy(cast(Any, ex.unwind), _dec(ex.unwind_band, "unwind_band")),
        first_venue=cast(Venue, ex.first_venue), resolve_timeout=ex.resolve_timeout_s,
        poly_fee_bps=ex.poly_fee_bps, hedge_slippage=_dec(ex.hedge_slippage, "hedge_slippage"),
        user_ref=ex.user,
    )  # fmt: skip
    if ex.cancel_on_disconnect:
        safety = OrderSafety(executor, heartbeat_interval=ex.heartbeat_interval_s,
                             kalshi_group_contracts_limit=ex.kalshi_group_contracts_limit)  # fmt: skip
        await safety.start()
        # An orderly exit stops the heartbeats and leaves open orders to the venues' own
        # cancel-on-disconnect; ``trade kill`` cancels at once.
        stack.push_async_callback(safety.stop, cancel_open=False)
    return executor


@contextlib.asynccontextmanager
async def open_runtime(cfg: Config, *, trading: bool = True, books: bool = True) -> AsyncIterator[Runtime]:
    """The store always; with ``books`` the live market data and breaker; with ``trading`` the executor."""
    from crossbook.daemon import build_safety
    from crossbook.store.postgres import migrate, postgres_url

    markets = pair_markets(cfg)
    if trading:
        check_execution_config(cfg, markets)
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(postgres_url(cfg.postgres.url, cfg.state_dir))
        await migrate(url)
        store = await ExecutionStore.connect(url)
        stack.push_async_callback(store.close)
        if not books:
            yield Runtime(cfg, url, store, None, None, None, markets)
            return
        signer: ExecutionSigner | None = None
        if trading:
            signer, header_signer, closeable = build_signer(cfg)
            if closeable is not None:
                stack.push_async_callback(closeable.close)
        elif cfg.execution.signer_socket:  # production: even reading Kalshi books needs signed headers
            from crossbook.signing.client import SignerClient

            client = SignerClient(cfg.execution.signer_socket)
            stack.push_async_callback(client.close)
            header_signer = client
        else:
            header_signer = LocalHeaderSigner.from_files(cfg.kalshi.api_key_id, cfg.kalshi.private_key_path)
        md = MarketData(cfg, header_signer, None)
        await md.start()
        stack.push_async_callback(md.stop)
        breaker, gate = build_safety(cfg, md)
        breaker.start()
        stack.push_async_callback(breaker.stop)
        executor = None
        if signer is not None:
            executor = await build_executor(cfg, signer, gate, md.books, store, markets, stack)
        yield Runtime(cfg, url, store, md, breaker, executor, markets)
