"""Cancel-on-disconnect with what each venue offers.

Polymarket: the order-safety heartbeat. While we send ``POST /v1/heartbeats`` the venue keeps our open
orders; if they stop (this process died, hung, or lost its network) the venue cancels them all by
itself, no message from us needed. The interval stays well inside the venue's timeout.

Kalshi has no heartbeat: every order is sent with ``cancel_order_on_pause`` (the exchange cancels it
when trading pauses) and inside one order group per executor life, whose contracts limit makes the
venue cancel the whole group past that volume in 15 s; stopping (or the kill switch) deletes the group,
which cancels all its resting orders in one call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from crossbook.execution.errors import VenueUnavailable
from crossbook.execution.executor import Executor
from crossbook.execution.venues import KalshiTrader, PolymarketTrader

log = logging.getLogger("crossbook.execution")


class OrderSafety:
    def __init__(
        self, executor: Executor, *, heartbeat_interval: float = 5.0, kalshi_group_contracts_limit: int = 10_000
    ) -> None:
        self.executor = executor
        self.heartbeat_interval = heartbeat_interval
        self.kalshi_group_contracts_limit = kalshi_group_contracts_limit
        self.heartbeat_id: str | None = None
        self.heartbeats_sent = 0
        self.heartbeat_failures = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def _poly(self) -> PolymarketTrader | None:
        t = self.executor.traders.get("polymarket")
        return t if isinstance(t, PolymarketTrader) else None

    @property
    def _kalshi(self) -> KalshiTrader | None:
        t = self.executor.traders.get("kalshi")
        return t if isinstance(t, KalshiTrader) else None

    async def start(self) -> None:
        """First heartbeat and the Kalshi order group before any order goes out."""
        kalshi = self._kalshi
        if kalshi is not None:
            await kalshi.create_order_group(self.kalshi_group_contracts_limit)
        if self._poly is not None:
            await self._beat()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="polymarket-heartbeat")

    async def _beat(self) -> None:
        poly = self._poly
        assert poly is not None
        try:
            self.heartbeat_id = await poly.heartbeat(self.heartbeat_id)
            self.heartbeats_sent += 1
        except VenueUnavailable as exc:
            # Nothing else to do: if the venue keeps missing our heartbeats it cancels our orders, which is
            # the point. Say so loudly.
            self.heartbeat_failures += 1
            log.error("polymarket heartbeat failed (%s); the venue cancels open orders if this persists", exc)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            await self._beat()

    def stop_heartbeats(self) -> None:
        """Stop heartbeating without cancelling anything (what a dead process looks like to the venue)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def stop(self, *, cancel_open: bool = True) -> None:
        """Orderly stop: heartbeats end and, with ``cancel_open``, the Kalshi group (with its resting
        orders) is deleted and Polymarket's open orders cancelled now rather than at the heartbeat timeout."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not cancel_open:
            return
        for trader in (self._poly, self._kalshi):
            if trader is None:
                continue
            try:
                await trader.cancel_all()
            except VenueUnavailable as exc:
                log.error("cancelling open %s orders at stop failed: %s", trader.venue, exc)
