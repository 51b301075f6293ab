"""The proxy pool private tunnels dial through: round-robin over healthy proxies, a request budget
per proxy per venue, health checks, and backoff before a dead proxy is tried again.

Proxies are ``http://`` (HTTP CONNECT) or ``socks5://`` URLs, optionally with ``user:password@``.
A URL with credentials is a secret: logs, errors, :meth:`ProxyPool.status` and reprs only ever show
its *label* (scheme, host and port). Health checks open a tunnel through the proxy with python-socks
(the library picows itself dials SOCKS with), so no proxy handshake is written by hand here.

Budgets keep each egress IP under the venue's limits: one token bucket per (proxy, budget name).
Defaults follow ``shared/reference/venues.md`` (Kalshi Basic: 20 reads/s, 10 writes/s); Polymarket
publishes no per-IP figure there, so its default is a conservative guess — configure real tiers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from python_socks.async_.asyncio import Proxy

from crossbook.aio import cancel_and_wait
from crossbook.errors import ConfigError, CrossbookError

log = logging.getLogger("crossbook.hub.proxies")

SCHEMES = ("http", "socks5", "socks5h", "socks4")


class NoProxyAvailable(CrossbookError, ConnectionError):
    """No proxy can take this request now: none is healthy, or every healthy one is over budget."""


class ProxyBudgetExhausted(NoProxyAvailable):
    """Healthy proxies exist but each is over its request budget for that venue; retry after ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Budget:
    """A token bucket: ``rate`` requests per second sustained, up to ``burst`` at once."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ConfigError(f"proxy budget rate={self.rate} burst={self.burst}: need rate > 0 and burst >= 1")


# Per proxy (= per egress IP). Kalshi Basic tier: 20 reads/s, 10 writes/s (docs.kalshi.com rate_limits).
DEFAULT_BUDGETS: dict[str, Budget] = {
    "kalshi": Budget(rate=20.0, burst=20.0),  # reads, and WebSocket dials
    "kalshi-write": Budget(rate=10.0, burst=10.0),
    "polymarket": Budget(rate=20.0, burst=20.0),  # not a published figure: keep it modest
}


def proxy_label(url: str) -> str:
    """``scheme://host:port`` of a proxy URL: safe to log (no credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{parts.port}" if parts.port else f"{parts.scheme}://{host}"


def check_proxy_url(url: str) -> str:
    """Validate one proxy URL (errors name only its label); returns it unchanged."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(f"proxy {proxy_label(url)}: not a valid URL (scheme://[user:pass@]host:port)") from None
    if parts.scheme not in SCHEMES:
        raise ConfigError(f"proxy {proxy_label(url)}: scheme must be one of {', '.join(SCHEMES)}")
    if not parts.hostname or port is None:
        raise ConfigError(f"proxy {proxy_label(url)}: needs a host and a port")
    return url


class _Bucket:
    __slots__ = ("at", "budget", "tokens")

    def __init__(self, budget: Budget, now: float) -> None:
        self.budget = budget
        self.tokens = budget.burst
        self.at = now

    def refill(self, now: float) -> float:
        self.tokens = min(self.budget.burst, self.tokens + (now - self.at) * self.budget.rate)
        self.at = now
        return self.tokens

    def wait_for(self, cost: float) -> float:
        return max(0.0, (cost - self.tokens) / self.budget.rate)


@dataclass(eq=False)
class ProxyState:
    url: str = field(repr=False)
    label: str
    healthy: bool = True
    failures: int = 0  # consecutive failed checks / dials
    next_check_at: float = 0.0  # monotonic; when a dead proxy is tried again
    last_error: str = ""
    buckets: dict[str, _Bucket] = field(default_factory=dict, repr=False)
    uses: int = 0


class ProxyPool:
    """Round-robin over healthy proxies with per-proxy, per-venue budgets.

    ``acquire(venue, cost)`` returns a proxy URL (hand it to ``ws_connect(..., proxy=url)``; don't log
    it — log :func:`proxy_label`) or raises :class:`NoProxyAvailable` / :class:`ProxyBudgetExhausted`.
    ``report_failure(url)`` takes a proxy out at once; the health loop (``start()``) probes dead ones
    after a jittered exponential backoff and live ones every ``check_interval_s``.
    """

    def __init__(
        self,
        proxies: Sequence[str],
        budgets: Mapping[str, Budget] | None = None,
        *,
        health_target: tuple[str, int] | None = None,
        check_interval_s: float = 10.0,
        check_timeout_s: float = 3.0,
        retry_min_s: float = 1.0,
        retry_max_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not proxies:
            raise ConfigError("the proxy pool needs at least one proxy URL (http://host:port or socks5://host:port)")
        self._proxies = [ProxyState(check_proxy_url(u), proxy_label(u)) for u in dict.fromkeys(proxies)]
        self._by_url = {p.url: p for p in self._proxies}
        self.budgets: dict[str, Budget] = dict(DEFAULT_BUDGETS if budgets is None else budgets)
        self.health_target = health_target
        self.check_interval_s = check_interval_s
        self.check_timeout_s = check_timeout_s
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self._clock = clock
        self._cursor = 0
        self._rng = random.Random()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ProxyPool:
        """From a config table: ``urls`` (list), optional ``budgets`` {name: {rate, burst}},
        ``health_target`` "host:port", ``check_interval_s``, ``check_timeout_s``, ``retry_min_s``, ``retry_max_s``."""
        urls = cfg.get("urls")
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ConfigError("hub proxies: 'urls' must be a list of proxy URLs")
        budgets = dict(DEFAULT_BUDGETS)
        for name, b in dict(cfg.get("budgets") or {}).items():
            try:
                budgets[str(name)] = Budget(float(b["rate"]), float(b.get("burst", b["rate"])))
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"hub proxies: budget {name!r} needs numeric 'rate' (and optional 'burst')") from exc
        target: tuple[str, int] | None = None
        if raw := cfg.get("health_target"):
            host, _, port = str(raw).rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError(f"hub proxies: health_target {raw!r} must be host:port")
            target = (host.strip("[]"), int(port))
        def num(key: str, default: float) -> float:
            try:
                return float(cfg.get(key, default))
            except (TypeError, ValueError):
                raise ConfigError(f"hub proxies: {key} must be a number of seconds") from None

        return cls(
            urls, budgets, health_target=target,
            check_interval_s=num("check_interval_s", 10.0), check_timeout_s=num("check_timeout_s", 3.0),
            retry_min_s=num("retry_min_s", 1.0), retry_max_s=num("retry_max_s", 60.0),
        )

    # -- choosing -------------------------------------------------------------------------------
    def acquire(self, venue: str, cost: float = 1.0, *, avoid: Collection[str] = ()) -> str:
        """A healthy proxy URL with ``cost`` tokens left in its ``venue`` budget (which it spends).

        Proxies in ``avoid`` (URLs) are used only if no other one qualifies.
        """
        budget = self.budgets.get(venue)
        if budget is None:
            raise ConfigError(f"no proxy request budget named {venue!r}; configured: {', '.join(sorted(self.budgets))}")
        if cost <= 0 or cost > budget.burst:
            raise ValueError(f"request cost {cost} must be > 0 and at most the {venue} burst ({budget.burst:g})")
        now = self._clock()
        n = len(self._proxies)
        order = [self._proxies[(self._cursor + i) % n] for i in range(n)]
        healthy = [p for p in order if p.healthy]
        if not healthy:
            soonest = min(p.next_check_at for p in self._proxies) - now
            why = "; ".join(f"{p.label}: {p.last_error or 'down'}" for p in self._proxies)
            raise NoProxyAvailable(
                f"no healthy proxy for {venue}: all {n} are out ({why}); next retry in {max(0.0, soonest):.1f}s"
            )
        waits: list[float] = []
        for candidates in ([p for p in healthy if p.url not in avoid], [p for p in healthy if p.url in avoid]):
            for p in candidates:
                bucket = p.buckets.get(venue)
                if bucket is None:
                    bucket = p.buckets[venue] = _Bucket(budget, now)
                if bucket.refill(now) >= cost:
                    bucket.tokens -= cost
                    p.uses += 1
                    self._cursor = (self._proxies.index(p) + 1) % n
                    return p.url
                waits.append(bucket.wait_for(cost))
        retry = min(waits)
        raise ProxyBudgetExhausted(
            f"every healthy proxy ({len(healthy)} of {n}) is over its {venue} budget "
            f"({budget.rate:g}/s, burst {budget.burst:g} per proxy); retry in {retry:.2f}s or add proxies",
            retry,
        )

    def label(self, url: str) -> str:
        return self._by_url[url].label if url in self._by_url else proxy_label(url)

    def status(self) -> list[dict[str, Any]]:
        """Per proxy (labels only, never credentials): healthy, failures, last_error, retry_in_s, uses."""
        now = self._clock()
        return [
            {"proxy": p.label, "healthy": p.healthy, "failures": p.failures, "last_error": p.last_error,
             "retry_in_s": 0.0 if p.healthy else max(0.0, p.next_check_at - now), "uses": p.uses}
            for p in self._proxies
        ]

    def is_healthy(self, url: str) -> bool:
        return self._by_url[url].healthy

    @property
    def healthy_count(self) -> int:
        return sum(p.healthy for p in self._proxies)

    # -- health ---------------------------------------------------------------------------------
    def report_failure(self, url: str, reason: str) -> None:
        """A dial through ``url`` failed because of the proxy: take it out until a check passes."""
        p = self._by_url.get(url)
        if p is not None:
            self._mark_dead(p, reason)

    def _mark_dead(self, p: ProxyState, reason: str) -> None:
        p.failures += 1
        delay = min(self.retry_max_s, self.retry_min_s * 2 ** (p.failures - 1))
        p.next_check_at = self._clock() + delay * (0.75 + self._rng.random() / 2)
        p.last_error = reason
        if p.healthy:
            log.warning("proxy %s taken out: %s (retry in %.1fs)", p.label, reason, p.next_check_at - self._clock())
        p.healthy = False
        self._wake.set()

    def _mark_alive(self, p: ProxyState) -> None:
        if not p.healthy:
            log.info("proxy %s is back after %d failed checks", p.label, p.failures)
        p.healthy = True
        p.failures = 0
        p.last_error = ""

    async def probe(self, url: str) -> str | None:
        """Open one tunnel through the proxy (to ``health_target``, else just TCP to the proxy).

        None if it worked, else why not (credential-free). Does not change the proxy's state.
        """
        p = self._by_url.get(url)
        label = p.label if p is not None else proxy_label(url)
        try:
            if self.health_target is not None:
                host, port = self.health_target
                sock = await Proxy.from_url(url).connect(host, port, timeout=self.check_timeout_s)
                sock.close()
            else:
                parts = urlsplit(url)
                assert parts.hostname is not None and parts.port is not None
                conn = asyncio.ensure_future(asyncio.open_connection(parts.hostname, parts.port))
                done, _ = await asyncio.wait({conn}, timeout=self.check_timeout_s)
                if not done:
                    conn.cancel()
                    return f"no TCP connect to {label} within {self.check_timeout_s:g}s"
                _, writer = conn.result()
                writer.close()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # python-socks errors, OSError, timeouts: all mean "not usable now"
            return describe_error(exc, url)
        return None

    async def check(self, url: str) -> bool:
        """Probe one proxy now and update its state; True if healthy."""
        p = self._by_url[url]
        reason = await self.probe(url)
        if reason is None:
            self._mark_alive(p)
            return True
        self._mark_dead(p, reason)
        return False

    async def check_all(self) -> list[dict[str, Any]]:
        await asyncio.gather(*(self.check(p.url) for p in self._proxies))
        return self.status()

    async def check_due(self) -> None:
        """Probe the dead proxies whose backoff has passed."""
        now = self._clock()
        due = [p.url for p in self._proxies if not p.healthy and p.next_check_at <= now]
        if due:
            await asyncio.gather(*(self.check(u) for u in due))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._health_loop(), name="proxy-health")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _health_loop(self) -> None:
        last_full = self._clock()
        while True:
            now = self._clock()
            dead = [p.next_check_at for p in self._proxies if not p.healthy]
            next_full = last_full + self.check_interval_s
            wake_at = min([next_full, *dead])
            self._wake.clear()
            waiter = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({waiter}, timeout=max(0.01, wake_at - now))
            finally:
                waiter.cancel()
            try:
                if self._clock() >= next_full:
                    last_full = self._clock()
                    await asyncio.gather(*(self.check(p.url) for p in self._proxies if p.healthy))
                await self.check_due()
            except Exception:  # the loop must outlive any one check's bug
                log.exception("proxy health check failed")

    def __repr__(self) -> str:
        return f"ProxyPool({', '.join(p.label + ('' if p.healthy else ' (down)') for p in self._proxies)})"


def describe_error(exc: BaseException, url: str) -> str:
    """An error message with any proxy credentials scrubbed."""
    text = f"{type(exc).__name__}: {exc}"
    parts = urlsplit(url)
    for secret in (parts.password, parts.username, url):
        if secret:
            text = text.replace(secret, "***")
    return text
