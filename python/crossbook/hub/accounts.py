"""Users' venue credentials for private tunnels, and the daemon's tunnel wiring from config.

The accounts file (``hub.accounts_file``, TOML, mode 0600 or stricter, refused otherwise) names per
hub user where each venue credential comes from::

    [alice.kalshi]
    api_key_id = "a1b2..."
    signer_socket = "/run/crossbook/alice-signer.sock"   # production: the signer holds the RSA key
    # private_key_path = "keys/alice.pem"                # development only: key loaded in this process

    [alice.polymarket]
    api_key = "..."          # L2 API credentials: the venue's user channel wants them in its subscribe
    secret = "..."           # message, so the hub must hold them (the only venue secret it holds)
    passphrase = "..."
    markets = []             # condition ids to filter on; empty = all

Kalshi handshakes are always signed through a :class:`~crossbook.signing.headers.HeaderSigner`: the
signer service (``signer_socket``) in production, so the daemon never sees that key.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from crossbook.errors import ConfigError
from crossbook.hub.tunnels import InMemoryCredentials, PolymarketApiCreds, TunnelManager, TunnelSettings
from crossbook.signing.headers import HeaderSigner, LocalHeaderSigner

if TYPE_CHECKING:
    from crossbook.config import Config
    from crossbook.hub.proxies import ProxyPool

_KALSHI_KEYS = {"api_key_id", "signer_socket", "private_key_path"}
_POLY_KEYS = {"api_key", "secret", "passphrase", "markets"}


def load_accounts(path: str | os.PathLike[str]) -> InMemoryCredentials:
    """Read the accounts file; errors name the file, the user and the key, never a value."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ConfigError(f"hub accounts file {p} does not exist (hub.accounts_file)") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"hub accounts file {p} holds venue credentials: chmod 600 it "
                          f"(it is {stat.filemode(st.st_mode)})")
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"hub accounts file {p} is not valid TOML: {exc}") from None
    creds = InMemoryCredentials()
    for user, venues in raw.items():
        where = f"hub accounts file {p}: [{user}"
        if not isinstance(venues, dict) or not set(venues) <= {"kalshi", "polymarket"}:
            raise ConfigError(f"{where}] must hold only [{user}.kalshi] and/or [{user}.polymarket] tables")
        if (k := venues.get("kalshi")) is not None:
            creds.set_kalshi(user, _kalshi_signer(k, f"{where}.kalshi]"))
        if (pm := venues.get("polymarket")) is not None:
            creds.set_polymarket(user, _poly_creds(pm, f"{where}.polymarket]"))
    return creds


def _strings(table: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    if unknown := set(table) - allowed:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(allowed))}")
    return table


def _kalshi_signer(table: Any, where: str) -> HeaderSigner:
    t = _strings(table, _KALSHI_KEYS, where)
    key_id = t.get("api_key_id")
    if not isinstance(key_id, str) or not key_id:
        raise ConfigError(f"{where} needs api_key_id")
    socket_path, key_path = t.get("signer_socket"), t.get("private_key_path")
    if bool(socket_path) == bool(key_path):
        raise ConfigError(f"{where} needs exactly one of signer_socket (production) or private_key_path (development)")
    if socket_path:
        from crossbook.signing.client import SignerClient

        # The signer service signs with the Kalshi key it was given for this account; the id is its label.
        return SignerClient(str(socket_path))
    return LocalHeaderSigner.from_files(key_id, str(key_path))


def _poly_creds(table: Any, where: str) -> PolymarketApiCreds:
    t = _strings(table, _POLY_KEYS, where)
    missing = [k for k in ("api_key", "secret", "passphrase") if not isinstance(t.get(k), str) or not t.get(k)]
    if missing:
        raise ConfigError(f"{where} needs {', '.join(missing)}")
    markets = t.get("markets", [])
    if not isinstance(markets, list) or not all(isinstance(m, str) for m in markets):
        raise ConfigError(f"{where}: markets must be a list of condition ids")
    return PolymarketApiCreds(t["api_key"], t["secret"], t["passphrase"], tuple(markets))


def polymarket_user_url(market_ws_url: str) -> str:
    """The user-channel URL next to a market-channel URL (``.../ws/market`` → ``.../ws/user``)."""
    parts = urlsplit(market_ws_url)
    path = parts.path
    path = path[: -len("/market")] + "/user" if path.endswith("/market") else path.rstrip("/") + "/user"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def build_tunnels(cfg: Config) -> tuple[TunnelManager, ProxyPool] | None:
    """The private tunnels of ``cfg.hub`` (None unless both proxies and an accounts file are configured)."""
    from crossbook.hub.proxies import ProxyPool

    h = cfg.hub
    if not h.proxies and not h.accounts_file:
        return None
    if not h.proxies or not h.accounts_file:
        raise ConfigError("private tunnels need both hub.proxies (proxy URLs) and hub.accounts_file "
                          "(users' venue credentials); set both, or neither")
    parts = urlsplit(cfg.kalshi.ws_url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    # Health checks open a real tunnel to the Kalshi host through each proxy.
    pool = ProxyPool(h.proxies, health_target=(parts.hostname or "127.0.0.1", port))
    tunnels = TunnelManager(
        pool, load_accounts(h.accounts_file), kalshi_ws_url=cfg.kalshi.ws_url,
        polymarket_user_url=h.polymarket_user_url or polymarket_user_url(cfg.polymarket.ws_url),
        settings=TunnelSettings(), grace_s=h.tunnel_grace_s,
    )
    return tunnels, pool
