"""Polymarket market channel: public books for up to 200 assets per connection."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import orjson
from picows import WSFrame, WSMsgType, WSTransport

from crossbook._core import BookSet
from crossbook.config import FeedConfig, PolymarketConfig
from crossbook.venues.wsfeed import UpstreamConnection

VENUE = "polymarket"
log = logging.getLogger("crossbook.feed")


class PolymarketConnection(UpstreamConnection):
    venue = VENUE

    def __init__(
        self,
        name: str,
        assets: Sequence[str],
        books: BookSet,
        cfg: PolymarketConfig,
        feed_cfg: FeedConfig,
        on_update: Callable[[], None] | None = None,
    ) -> None:
        if not 1 <= len(assets) <= cfg.max_assets_per_connection:
            raise ValueError(
                f"a Polymarket connection carries 1..{cfg.max_assets_per_connection} assets, got {len(assets)}"
            )
        super().__init__(
            name,
            cfg.ws_url,
            books,
            feed_cfg,
            ping_interval_s=cfg.ping_interval_s,
            pong_timeout_s=cfg.pong_timeout_s,
            on_update=on_update,
        )
        self._markets = tuple(dict.fromkeys(assets))
        self._assets = frozenset(self._markets)
        self.max_assets = cfg.max_assets_per_connection
        self.resyncs = 0

    def subscribe_messages(self) -> list[bytes]:
        # Always the CURRENT set: a reconnect resubscribes what users want now, not what config said.
        if not self._markets:
            return []  # an empty connection is about to be closed by its owner; the venue wants ids
        return [
            orjson.dumps({"assets_ids": list(self._markets), "type": "market", "custom_feature_enabled": True})
        ]

    def has_room(self) -> bool:
        return len(self._markets) < self.max_assets

    def add_market(self, market: str) -> None:
        if market in self._assets:
            return
        if not self.has_room():
            raise ValueError(f"{self.name} already carries {self.max_assets} assets (venue limit per connection)")
        self._markets += (market,)
        self._assets = frozenset(self._markets)
        self.send_text(orjson.dumps({"assets_ids": [market], "operation": "subscribe",
                                     "custom_feature_enabled": True}))

    def remove_market(self, market: str) -> None:
        if market not in self._assets:
            return
        self._markets = tuple(a for a in self._markets if a != market)
        self._assets = frozenset(self._markets)
        self.send_text(orjson.dumps({"assets_ids": [market], "operation": "unsubscribe"}))

    def after_apply(self, transport: WSTransport, payload: bytes) -> None:
        # A book that disagrees with the venue's own best bid/ask lost a message somewhere (this
        # venue has no sequence numbers): unsubscribe and subscribe again for a fresh `book`.
        corrupt = self.books.take_poly_resync()
        if not corrupt:
            return
        mine = [a for a in corrupt if a in self._assets]
        if not mine:
            return
        self.resyncs += 1
        self.integrity_event(f"{self.name}: book disagrees with the venue's best bid/ask")
        log.warning("%s: %d book(s) disagree with the venue's best bid/ask; resubscribing for snapshots",
                    self.name, len(mine))
        transport.send(WSMsgType.TEXT, orjson.dumps({"assets_ids": mine, "operation": "unsubscribe"}))
        transport.send(WSMsgType.TEXT, orjson.dumps({"assets_ids": mine, "operation": "subscribe",
                                                     "custom_feature_enabled": True}))

    def send_heartbeat(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, b"PING")

    def is_heartbeat_reply(self, frame: WSFrame) -> bool:
        return bool(
            frame.payload_size == 4
            and frame.msg_type == WSMsgType.TEXT
            and frame.get_payload_as_bytes() == b"PONG"
        )

    def on_reconnect(self) -> None:
        # No sequence numbers on this venue: after any break only a fresh `book` is trustworthy.
        for asset in self._markets:
            self.books.invalidate(VENUE, asset, "feed disconnected; waiting for a fresh book snapshot")


def connections_for(
    assets: Sequence[str],
    books: BookSet,
    cfg: PolymarketConfig,
    feed_cfg: FeedConfig,
    on_update: Callable[[], None] | None = None,
) -> list[PolymarketConnection]:
    """Split the assets over as few connections as the per-connection limit allows."""
    n = cfg.max_assets_per_connection
    unique = list(dict.fromkeys(assets))
    return [
        PolymarketConnection(f"polymarket#{i // n}", unique[i : i + n], books, cfg, feed_cfg, on_update)
        for i in range(0, len(unique), n)
    ]
