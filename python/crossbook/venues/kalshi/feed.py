"""Kalshi WebSocket v2: signed handshake, `orderbook_delta` subscription, snapshots on sequence gaps."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import orjson
from picows import WSMsgType, WSTransport

from crossbook._core import BookSet
from crossbook.config import FeedConfig, KalshiConfig
from crossbook.signing import HeaderSigner
from crossbook.venues.wsfeed import UpstreamConnection

VENUE = "kalshi"
log = logging.getLogger("crossbook.feed")


class KalshiConnection(UpstreamConnection):
    venue = VENUE

    def __init__(
        self,
        name: str,
        tickers: Sequence[str],
        books: BookSet,
        cfg: KalshiConfig,
        feed_cfg: FeedConfig,
        signer: HeaderSigner,
        on_update: Callable[[], None] | None = None,
    ) -> None:
        if not tickers:
            raise ValueError("a Kalshi connection needs at least one market ticker")
        super().__init__(
            name,
            cfg.ws_url,
            books,
            feed_cfg,
            ping_interval_s=cfg.ping_interval_s,
            pong_timeout_s=cfg.pong_timeout_s,
            on_update=on_update,
        )
        self._markets = tuple(tickers)
        self.kalshi_cfg = cfg
        self.signer = signer
        self._ids = itertools.count(1)
        self.snapshot_requests = 0

    def handshake_headers(self) -> dict[str, str]:
        return self.signer.kalshi_headers("GET", urlsplit(self.url).path or "/trade-api/ws/v2")

    def subscribe_messages(self) -> list[bytes]:
        params: dict[str, object] = {"channels": ["orderbook_delta"], "market_tickers": list(self._markets)}
        if self.kalshi_cfg.use_yes_price:
            params["use_yes_price"] = True
        return [orjson.dumps({"id": next(self._ids), "cmd": "subscribe", "params": params})]

    def after_apply(self, transport: WSTransport) -> None:
        gaps = self.books.take_resync()
        if not gaps:
            return
        by_sid: dict[int, list[str]] = {}
        for sid, market in gaps:
            by_sid.setdefault(sid, []).append(market)
        self.integrity_event(f"{self.name}: sequence gap")
        for sid, markets in by_sid.items():
            self.snapshot_requests += 1
            log.warning("%s: sequence gap on sid %d (%s); asking for a snapshot", self.name, sid,
                        ", ".join(markets))
            msg = {
                "id": next(self._ids),
                "cmd": "update_subscription",
                "params": {"sids": [sid], "market_tickers": markets, "action": "get_snapshot"},
            }
            transport.send(WSMsgType.TEXT, orjson.dumps(msg))

    def on_reconnect(self) -> None:
        for ticker in self._markets:
            self.books.invalidate(VENUE, ticker, "feed disconnected; waiting for a fresh snapshot")


def connections_for(
    tickers: Sequence[str],
    books: BookSet,
    cfg: KalshiConfig,
    feed_cfg: FeedConfig,
    signer: HeaderSigner,
    on_update: Callable[[], None] | None = None,
) -> list[KalshiConnection]:
    n = cfg.max_markets_per_connection
    unique = list(dict.fromkeys(tickers))
    return [
        KalshiConnection(f"kalshi#{i // n}", unique[i : i + n], books, cfg, feed_cfg, signer, on_update)
        for i in range(0, len(unique), n)
    ]
