"""Kalshi WebSocket v2: signed handshake, `orderbook_delta` subscription, snapshots on sequence gaps."""

from __future__ import annotations

import itertools
import logging
import weakref
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

# stream id -> the connection it belongs to: a sequence gap is healed with a get_snapshot on the
# connection (and sid) the gap was seen on, whichever connection's frame revealed it.
_owners: weakref.WeakValueDictionary[int, KalshiConnection] = weakref.WeakValueDictionary()


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
        self._markets = tuple(dict.fromkeys(tickers))
        self.kalshi_cfg = cfg
        self.signer = signer
        self._ids = itertools.count(1)
        self.snapshot_requests = 0
        self.max_markets = cfg.max_markets_per_connection
        # The one orderbook_delta subscription of this connection: its sid once acked, and the markets
        # we asked the venue to carry on it. Adds and deletes go through update_subscription on that
        # sid; replies are matched to commands by id (an error names only the command's id).
        self._sid: int | None = None
        self._subscribing = False  # a `subscribe` is in flight (no sid yet)
        self._sent: set[str] = set()
        self._cmds: dict[int, tuple[str, tuple[str, ...]]] = {}
        self.control_errors = 0

    def handshake_headers(self) -> dict[str, str]:
        return self.signer.kalshi_headers("GET", urlsplit(self.url).path or "/trade-api/ws/v2")

    def _command(self, cmd: str, params: dict[str, object], tickers: tuple[str, ...] = ()) -> bytes:
        cid = next(self._ids)
        self._cmds[cid] = (cmd if cmd != "update_subscription" else str(params.get("action")), tickers)
        if len(self._cmds) > 1000:  # replies that never came (a venue bug): do not grow without bound
            self._cmds.pop(next(iter(self._cmds)))
        return orjson.dumps({"id": cid, "cmd": cmd, "params": params})

    def _subscribe_cmd(self, tickers: tuple[str, ...]) -> bytes:
        params: dict[str, object] = {"channels": ["orderbook_delta"], "market_tickers": list(tickers)}
        if self.kalshi_cfg.use_yes_price:
            params["use_yes_price"] = True
        self._subscribing = True
        self._sent = set(tickers)
        return self._command("subscribe", params, tickers)

    def subscribe_messages(self) -> list[bytes]:
        # A new connection: no sid yet, and the CURRENT set is what gets subscribed.
        _owners[self.stream] = self
        self._sid, self._subscribing, self._sent = None, False, set()
        self._cmds.clear()
        if not self._markets:
            return []
        return [self._subscribe_cmd(self._markets)]

    def has_room(self) -> bool:
        return len(self._markets) < self.max_markets

    def add_market(self, market: str) -> None:
        if market in self._markets:
            return
        if not self.has_room():
            raise ValueError(f"{self.name} already carries {self.max_markets} markets")
        self._markets += (market,)
        if not self.connected:
            return  # the next connect subscribes the current set
        if self._sid is not None:
            self._add_on_sid((market,))
        elif not self._subscribing:
            self.send_text(self._subscribe_cmd((market,)))
        # else: reconciled when the pending subscribe is acked

    def remove_market(self, market: str) -> None:
        if market not in self._markets:
            return
        self._markets = tuple(t for t in self._markets if t != market)
        if self.connected and self._sid is not None and market in self._sent:
            self._delete_on_sid((market,))

    def _add_on_sid(self, tickers: tuple[str, ...]) -> None:
        for t in tickers:  # one per command: the venue refuses a whole command for one unknown ticker
            self._sent.add(t)
            self.send_text(self._command("update_subscription", {"sids": [self._sid], "market_tickers": [t],
                                                                 "action": "add_markets"}, (t,)))

    def _delete_on_sid(self, tickers: tuple[str, ...]) -> None:
        self._sent.difference_update(tickers)
        if not self._sent:  # nothing left on it: drop the subscription itself
            self.send_text(self._command("unsubscribe", {"sids": [self._sid]}))
            self._sid = None
            return
        self.send_text(self._command("update_subscription", {"sids": [self._sid], "market_tickers": list(tickers),
                                                             "action": "delete_markets"}, tickers))

    def _reconcile(self) -> None:
        """After a subscribe ack: the set may have changed while it was in flight."""
        extra = tuple(t for t in self._sent if t not in self._markets)
        if extra and self._sid is not None:
            self._delete_on_sid(extra)
        missing = tuple(t for t in self._markets if t not in self._sent)
        if not missing:
            return
        if self._sid is not None:
            self._add_on_sid(missing)
        elif not self._subscribing:
            self.send_text(self._subscribe_cmd(missing[:1]))

    def _on_control(self, payload: bytes) -> None:
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return  # BookSet already judged the frame; nothing of ours in it
        if not isinstance(msg, dict):
            return
        kind = msg.get("type")
        cid = msg.get("id")
        cmd = self._cmds.pop(cid, None) if isinstance(cid, int) else None
        body = msg.get("msg")
        if kind == "subscribed" and isinstance(body, dict) and body.get("channel") == "orderbook_delta":
            sid = body.get("sid")
            if isinstance(sid, int):
                self._sid, self._subscribing = sid, False
                self._reconcile()
            return
        if kind != "error":
            return
        self.control_errors += 1
        code = body.get("code") if isinstance(body, dict) else None
        text = body.get("msg") if isinstance(body, dict) else None
        action, tickers = cmd if cmd is not None else ("?", ())
        log.warning("%s: venue refused %s %s: code %s %s", self.name, action, ",".join(tickers), code, text)
        if action == "subscribe":
            self._subscribing = False
            self._sent.difference_update(tickers)
        elif action == "add_markets":
            self._sent.difference_update(tickers)
        # "Market not found": code 16 at the venue's spec; the text too, since Kalshi has retired and
        # renumbered codes before (a venue that says nothing is caught by MarketData's snapshot timeout).
        not_found = code == 16 or (isinstance(text, str) and "not found" in text.lower())
        if not_found and action in ("subscribe", "add_markets"):
            if len(tickers) == 1:
                self._reject(tickers[0], f"Kalshi has no market {tickers[0]!r} (venue error 16: {text})")
            # A batch with an unknown ticker is refused whole: _reconcile subscribes one ticker, then
            # adds the others one per command, so the unknown one is named by its own refusal.
            if action == "subscribe":
                self._reconcile()
        elif action == "subscribe":
            # Anything else leaves us without a subscription: start over on a fresh connection
            # (with backoff) rather than retrying into the same refusal.
            self.kick(f"venue refused the orderbook subscription: code {code} {text}")

    def _reject(self, market: str, reason: str) -> None:
        self._markets = tuple(t for t in self._markets if t != market)
        if self.on_rejected is not None:
            try:
                self.on_rejected(market, reason)
            except Exception:  # the listener's bug must not break the feed
                log.exception("%s: rejection listener failed", self.name)

    def after_apply(self, transport: WSTransport, payload: bytes) -> None:
        # Book frames carry a seq and no command id; everything else may be a reply to one of our
        # commands. Two substring scans keep the book path free of a second JSON parse.
        if b'"seq"' not in payload or b'"id"' in payload:
            self._on_control(payload)
        gaps = self.books.take_resync_streams()
        if not gaps:
            return
        by_sub: dict[tuple[int, int], list[str]] = {}
        for stream, sid, market in gaps:
            by_sub.setdefault((stream, sid), []).append(market)
        self.integrity_event(f"{self.name}: sequence gap")
        for (stream, sid), markets in by_sub.items():
            # The sid is only meaningful on the connection that numbered it.
            owner = self if stream == self.stream else _owners.get(stream)
            if owner is None or owner.stream != stream or not owner.connected:
                # That connection is gone: its books were invalidated when it closed, and its
                # successor's subscribe brings fresh snapshots.
                log.info("%s: sequence gap on a closed connection's sid %d (%s); no snapshot asked",
                         self.name, sid, ", ".join(markets))
                continue
            owner._ask_snapshot(transport if owner is self else None, sid, markets)

    def _ask_snapshot(self, transport: WSTransport | None, sid: int, markets: list[str]) -> None:
        self.snapshot_requests += 1
        log.warning("%s: sequence gap on sid %d (%s); asking for a snapshot", self.name, sid, ", ".join(markets))
        msg = orjson.dumps({
            "id": next(self._ids),
            "cmd": "update_subscription",
            "params": {"sids": [sid], "market_tickers": markets, "action": "get_snapshot"},
        })
        if transport is not None:
            transport.send(WSMsgType.TEXT, msg)
        else:
            self.send_text(msg)

    def on_reconnect(self) -> None:
        reason = "feed disconnected; waiting for a fresh snapshot"
        for ticker in self._markets:
            self.books.invalidate(VENUE, ticker, reason)
        # The closed connection's sids and seqs mean nothing on the next one (which takes a new
        # stream id): drop them, and any snapshot still queued for them.
        self.books.forget_stream(VENUE, self.stream, reason)
        if _owners.get(self.stream) is self:
            del _owners[self.stream]


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
