"""Users and their tokens. Tokens are random (256 bits) and stored only as SHA-256 hashes.

A slow password hash buys nothing for a 256-bit random secret; SHA-256 keeps auth O(1) and lets the
lookup be keyed by the hash. The :class:`UserStore` protocol is what the hub needs: PostgreSQL
(:class:`PgUserStore`: ``users`` + ``sessions.token_hash``) when a PostgreSQL store is configured,
otherwise the embedded default, in memory or a 0600 JSON file.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from crossbook.errors import ConfigError, StoreError

TOKEN_PREFIX = "cb_"


@dataclass(frozen=True)
class User:
    name: str
    created_ms: int


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore(Protocol):
    async def add_user(self, name: str) -> str:
        """Create ``name`` (or rotate its token) and return the new token; only the hash is kept."""
        ...

    async def authenticate(self, token: str) -> User | None:
        """The user this token belongs to, or None."""
        ...


def _check_name(name: str) -> str:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "._-@" for c in name):
        raise ConfigError(f"user name {name!r}: use 1-64 letters, digits or . _ - @")
    return name


class InMemoryUserStore:
    def __init__(self) -> None:
        self._by_hash: dict[str, User] = {}

    def add_user_sync(self, name: str) -> str:
        _check_name(name)
        self._by_hash = {h: u for h, u in self._by_hash.items() if u.name != name}
        token = new_token()
        self._by_hash[hash_token(token)] = User(name, int(time.time() * 1000))
        return token

    async def add_user(self, name: str) -> str:
        return self.add_user_sync(name)

    async def authenticate(self, token: str) -> User | None:
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX):
            return None
        digest = hash_token(token)
        user = self._by_hash.get(digest)
        # the dict lookup already matched; compare_digest keeps the final check constant-time
        if user is not None and hmac.compare_digest(digest, hash_token(token)):
            return user
        return None


class FileUserStore(InMemoryUserStore):
    """The embedded default across processes (``crossbook users add`` then ``crossbook hub``)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self._mtime = -1.0
        self._load()

    def _load(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        if st.st_mtime == self._mtime:
            return
        try:
            raw = json.loads(self.path.read_text())
            self._by_hash = {u["token_sha256"]: User(u["name"], int(u["created_ms"])) for u in raw["users"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"users file {self.path}: unreadable ({exc}); fix or remove it") from exc
        self._mtime = st.st_mtime

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        body = {"users": [{"name": u.name, "token_sha256": h, "created_ms": u.created_ms}
                          for h, u in self._by_hash.items()]}
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(body, f, indent=1)
        os.replace(tmp, self.path)

    def add_user_sync(self, name: str) -> str:
        self._load()
        token = super().add_user_sync(name)
        self._save()
        return token

    async def authenticate(self, token: str) -> User | None:
        # a user added by `crossbook users add` while the hub runs is picked up without a restart
        await asyncio.to_thread(self._load)
        return await super().authenticate(token)


class PgUserStore:
    """Users in PostgreSQL: ``users(handle)`` and one live ``sessions`` row per user holding the token's
    SHA-256 (``token_hash`` bytea). Adding an existing user rotates its token: the old session is revoked
    in the same transaction, so exactly one token works at any time. ``users.disabled`` and
    ``sessions.revoked_at`` / ``expires_at`` are honoured by :meth:`authenticate`.
    """

    def __init__(self, pool: Any) -> None:
        self._pool = pool  # an asyncpg pool (or connection) the caller owns

    async def add_user(self, name: str) -> str:
        _check_name(name)
        token = new_token()
        digest = hashlib.sha256(token.encode()).digest()
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                user_id = await conn.fetchval(
                    "INSERT INTO users (handle) VALUES ($1) ON CONFLICT (handle) DO UPDATE SET handle = EXCLUDED.handle"
                    " RETURNING id", name)
                await conn.execute(
                    "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", user_id)
                await conn.execute(
                    "INSERT INTO sessions (user_id, token_hash, expires_at) VALUES ($1, $2, 'infinity')",
                    user_id, digest)
        except Exception as exc:  # asyncpg errors carry no secret; the token is never in them
            raise StoreError(f"cannot save hub user {name!r} in PostgreSQL: {exc}") from exc
        return token

    async def authenticate(self, token: str) -> User | None:
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX):
            return None
        digest = hashlib.sha256(token.encode()).digest()
        # keyed lookup on the (unique, indexed) hash: the token itself is never compared or stored
        row = await self._pool.fetchrow(
            "SELECT u.handle, u.created_at FROM sessions s JOIN users u ON u.id = s.user_id"
            " WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now() AND NOT u.disabled",
            digest)
        if row is None:
            return None
        return User(str(row["handle"]), int(row["created_at"].timestamp() * 1000))

    def __repr__(self) -> str:
        return "PgUserStore()"
