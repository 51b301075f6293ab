"""PostgreSQL through asyncpg: numbered SQL migrations and the mapping tables' access functions.

Migrations live in ``store/migrations/NNN_name.sql``; ``migrate()`` applies the missing ones in order,
each in its own transaction, under a session advisory lock so that any number of processes can call it
at start at the same time. An applied file whose text changed is an error (fix forward with a new file).

Configuration: an empty URL means "start the embedded server in the state directory"; a
``postgresql://`` (or ``postgres://``) URL means a real server.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.resources
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from crossbook.errors import ConfigError, StoreError
from crossbook.store.embedded_postgres import EmbeddedPostgres

# pg_advisory_lock key: "crossbook migrate" folded to a bigint. Constant so every migrator agrees.
MIGRATION_LOCK_KEY = 0x63726F73_73626B31 & 0x7FFFFFFF_FFFFFFFF
_FILE_RE = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The numbered ``.sql`` files, in order; duplicate numbers or odd names are errors."""
    if directory is not None:
        files = {p.name: p.read_text() for p in directory.iterdir() if p.suffix == ".sql"}
    else:
        root = importlib.resources.files("crossbook.store") / "migrations"
        files = {p.name: p.read_text() for p in root.iterdir() if p.name.endswith(".sql")}
    out: list[Migration] = []
    seen: dict[int, str] = {}
    for name in sorted(files):
        m = _FILE_RE.match(name)
        if not m:
            raise StoreError(f"migration file {name!r} does not match NNN_name.sql; rename it")
        version = int(m.group(1))
        if version in seen:
            raise StoreError(f"migrations {seen[version]!r} and {name!r} share number {version}")
        seen[version] = name
        out.append(Migration(version, name, files[name]))
    return sorted(out, key=lambda mig: mig.version)


async def connect(url: str, timeout: float = CONNECT_TIMEOUT_S) -> Any:
    """One asyncpg connection; a clear StoreError naming the server when it is not there."""
    try:
        return await asyncpg.connect(url, timeout=timeout)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise StoreError(f"cannot connect to PostgreSQL at {_redact(url)}: {exc}") from exc


async def _keep_session(conn: Any) -> None:
    """A pooled connection's reset on release: nothing beyond what asyncpg always does (an open transaction
    is rolled back). crossbook keeps no session state on pooled connections: no LISTEN, no cursor outside a
    transaction, settings only transaction-local (``set_config(..., true)``), advisory locks released
    explicitly (the executor's ownership lock lives on a connection it never gives back). asyncpg's default
    reset (``RESET ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); CLOSE ALL``) is one more round trip on
    every release, awaited by whoever released: 0.2–0.3 ms per statement here, on the order path too."""


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 4, timeout: float = CONNECT_TIMEOUT_S) -> Any:
    """An asyncpg pool for crossbook's own use (see :func:`_keep_session` for what it leaves out); a clear
    StoreError naming the server when it is not there."""
    try:
        return await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, timeout=timeout,
                                         reset=_keep_session)  # fmt: skip
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise StoreError(f"cannot connect to PostgreSQL at {_redact(url)}: {exc}") from exc


def _redact(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


async def migrate(url: str, directory: Path | None = None) -> list[str]:
    """Apply the missing migrations; returns the names applied by this call (empty when up to date)."""
    migrations = load_migrations(directory)
    conn = await connect(url)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
            done = {int(r["version"]): (str(r["name"]), str(r["checksum"])) for r in rows}
            for mig in migrations:
                if mig.version in done:
                    name, checksum = done[mig.version]
                    if checksum != mig.checksum:
                        raise StoreError(
                            f"migration {mig.name} was applied as {name} with different text; "
                            "never edit an applied migration, add a new numbered file"
                        )
                    continue
                async with conn.transaction():
                    try:
                        await conn.execute(mig.sql)
                    except asyncpg.PostgresError as exc:
                        raise StoreError(f"migration {mig.name} failed: {exc}") from exc
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        mig.version, mig.name, mig.checksum,
                    )
                applied_now.append(mig.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await conn.close()
    return applied_now


def postgres_url_from_env(env: Mapping[str, str] | None = None) -> str:
    """``CROSSBOOK_POSTGRES_URL`` (empty or unset: embedded)."""
    e = os.environ if env is None else env
    return e.get("CROSSBOOK_POSTGRES_URL", "").strip()


@asynccontextmanager
async def postgres_url(url: str = "", state_dir: str | None = None) -> AsyncIterator[str]:
    """Yield a usable URL: ``url`` itself for a real server, or an embedded server's for an empty one.

    The embedded server keeps its data in ``<state_dir>/postgres`` (persistent across runs) or in a
    temporary directory when ``state_dir`` is None; it is stopped on exit.
    """
    if url:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"postgres url {_redact(url)!r} must start with postgresql:// (or be empty: embedded)")
        yield url
        return
    server = await asyncio.to_thread(start_embedded, state_dir)
    try:
        yield server.url
    finally:
        await asyncio.to_thread(server.close)


def start_embedded(state_dir: str | None) -> EmbeddedPostgres:
    """Start the embedded server: data in ``<state_dir>/postgres`` (kept), or a temp dir when None."""
    workdir = str(Path(state_dir) / "postgres") if state_dir else None
    if workdir:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    server = EmbeddedPostgres(workdir=workdir)
    port_file = Path(workdir) / "port" if workdir else None
    if port_file and port_file.exists():
        server.port = int(port_file.read_text().strip() or server.port)
    server.start()
    if port_file:
        port_file.write_text(str(server.port))
    return server


# ----------------------------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class VerdictRecord:
    pair_ref: str
    poly_condition_id: str | None
    kalshi_ticker: str | None
    status: str
    polarity: str | None
    extractor_a: str
    extractor_b: str
    judge: str
    reasons: Sequence[str]
    extractions: Mapping[str, Any]
    checks: Sequence[Mapping[str, Any]]
    prompts: Mapping[str, Any]
    raw_replies: Mapping[str, Any]


def json_text(value: Any) -> str:
    """JSON for a jsonb parameter (keys sorted; what json cannot encode as its str)."""
    return json.dumps(value, default=str, sort_keys=True)


async def insert_verdict(conn: Any, v: VerdictRecord) -> int:
    if v.status not in ("Verified", "Unverified"):
        raise StoreError(f"verdict status {v.status!r} for {v.pair_ref} must be Verified or Unverified")
    vid = await conn.fetchval(
        "INSERT INTO verdicts (pair_ref, poly_condition_id, kalshi_ticker, status, polarity, extractor_a,"
        " extractor_b, judge, reasons, extractions, checks, prompts, raw_replies)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9::jsonb,$10::jsonb,$11::jsonb,$12::jsonb,$13::jsonb) RETURNING id",
        v.pair_ref, v.poly_condition_id, v.kalshi_ticker, v.status, v.polarity, v.extractor_a, v.extractor_b,
        v.judge, json_text(list(v.reasons)), json_text(v.extractions), json_text(list(v.checks)), json_text(v.prompts),
        json_text(v.raw_replies),
    )
    return int(vid)


async def append_audit(conn: Any, actor: str, action: str, subject: str, detail: Mapping[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor, action, subject, detail) VALUES ($1, $2, $3, $4::jsonb)",
        actor, action, subject, json_text(detail),
    )


async def record_verdict(conn: Any, v: VerdictRecord, poly_title: str = "", kalshi_title: str = "") -> int:
    """Store a verdict and upsert its pair in one transaction; returns the verdict id.

    A pair that loses its Verified status is set Unverified at once; halts are left as they are.
    """
    async with conn.transaction():
        vid = await insert_verdict(conn, v)
        if v.poly_condition_id and v.kalshi_ticker:
            await conn.execute(
                "INSERT INTO market_pairs (poly_condition_id, kalshi_ticker, logic_status, polarity, poly_title,"
                " kalshi_title, last_verdict_id) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT (poly_condition_id) DO UPDATE SET kalshi_ticker = EXCLUDED.kalshi_ticker,"
                " logic_status = EXCLUDED.logic_status, polarity = EXCLUDED.polarity,"
                " poly_title = EXCLUDED.poly_title, kalshi_title = EXCLUDED.kalshi_title,"
                " last_verdict_id = EXCLUDED.last_verdict_id, updated_at = now()",
                v.poly_condition_id, v.kalshi_ticker, v.status, v.polarity, poly_title, kalshi_title, vid,
            )
        await append_audit(conn, "mapping", "verdict", v.pair_ref,
                           {"verdict_id": vid, "status": v.status, "polarity": v.polarity})
    return vid


async def list_pairs(conn: Any) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT internal_id, poly_condition_id, kalshi_ticker, logic_status, is_halted, last_undisputed_price,"
        " polarity, poly_title, kalshi_title, last_verdict_id, updated_at FROM market_pairs ORDER BY created_at"
    )
    out: list[dict[str, Any]] = []
    for r in rows:
        d = dict(r)
        d["internal_id"] = str(d["internal_id"])
        price = d["last_undisputed_price"]
        d["last_undisputed_price"] = str(price) if isinstance(price, Decimal) else None
        d["updated_at"] = d["updated_at"].isoformat()
        out.append(d)
    return out


async def set_halted(conn: Any, ref: str, halted: bool, actor: str = "cli") -> int:
    """Halt or resume by internal_id, Polymarket condition id or Kalshi ticker; returns rows changed."""
    try:
        as_uuid: uuid.UUID | None = uuid.UUID(ref)
    except ValueError:
        as_uuid = None
    async with conn.transaction():
        status = await conn.execute(
            "UPDATE market_pairs SET is_halted = $1, updated_at = now()"
            " WHERE internal_id = $2 OR poly_condition_id = $3 OR kalshi_ticker = $3",
            halted, as_uuid, ref,
        )
        count = int(str(status).split()[-1])
        if count:
            await append_audit(conn, actor, "halt" if halted else "resume", ref, {})
    return count


# ------------------------------------------------------------------------------------------- pairs sync


async def judged_keys(conn: Any, extractor_a: str, extractor_b: str, judge: str) -> set[str]:
    """Text hashes already judged by this extractor/judge combination (``pairs sync`` skips them)."""
    rows = await conn.fetch(
        "SELECT texts_sha256 FROM verdicts WHERE texts_sha256 IS NOT NULL AND extractor_a = $1"
        " AND extractor_b = $2 AND judge = $3",
        extractor_a, extractor_b, judge,
    )
    return {str(r["texts_sha256"]) for r in rows}


async def record_sync_verdict(conn: Any, v: VerdictRecord, texts_sha256: str, poly_title: str = "",
                              kalshi_title: str = "") -> int | None:
    """Store one ``pairs sync`` verdict and apply it to ``market_pairs``, in one transaction.

    Returns the verdict id, or None when a verdict with the same key already exists (another run got there
    first). ``market_pairs`` holds one pair per market on each venue, so: the exact stored pair takes the new
    status (a lost Verified is demoted at once); a new Verified pair is inserted when neither market is
    paired yet, otherwise the existing pair stays and the conflict goes to the audit log; an Unverified
    candidate that is not a stored pair changes nothing there (its verdict and audit entry remain).
    """
    if v.status not in ("Verified", "Unverified"):
        raise StoreError(f"verdict status {v.status!r} for {v.pair_ref} must be Verified or Unverified")
    if not (v.poly_condition_id and v.kalshi_ticker):
        raise StoreError(f"sync verdict {v.pair_ref} needs both a condition id and a ticker")
    async with conn.transaction():
        vid = await conn.fetchval(
            "INSERT INTO verdicts (pair_ref, poly_condition_id, kalshi_ticker, status, polarity, extractor_a,"
            " extractor_b, judge, reasons, extractions, checks, prompts, raw_replies, texts_sha256)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9::jsonb,$10::jsonb,$11::jsonb,$12::jsonb,$13::jsonb,$14)"
            " ON CONFLICT (texts_sha256, extractor_a, extractor_b, judge) WHERE texts_sha256 IS NOT NULL"
            " DO NOTHING RETURNING id",
            v.pair_ref, v.poly_condition_id, v.kalshi_ticker, v.status, v.polarity, v.extractor_a, v.extractor_b,
            v.judge, json_text(list(v.reasons)), json_text(v.extractions), json_text(list(v.checks)),
            json_text(v.prompts), json_text(v.raw_replies), texts_sha256,
        )
        if vid is None:
            return None
        rows = await conn.fetch(
            "SELECT internal_id, poly_condition_id, kalshi_ticker FROM market_pairs"
            " WHERE poly_condition_id = $1 OR kalshi_ticker = $2 FOR UPDATE",
            v.poly_condition_id, v.kalshi_ticker,
        )
        exact = [r for r in rows if (r["poly_condition_id"], r["kalshi_ticker"]) == (v.poly_condition_id,
                                                                                      v.kalshi_ticker)]
        effect = "none"
        if exact:
            await conn.execute(
                "UPDATE market_pairs SET logic_status = $2, polarity = $3, poly_title = $4, kalshi_title = $5,"
                " last_verdict_id = $6, updated_at = now() WHERE internal_id = $1",
                exact[0]["internal_id"], v.status, v.polarity, poly_title, kalshi_title, vid,
            )
            effect = "updated"
        elif v.status == "Verified" and not rows:
            status = await conn.execute(
                "INSERT INTO market_pairs (poly_condition_id, kalshi_ticker, logic_status, polarity, poly_title,"
                " kalshi_title, last_verdict_id) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                v.poly_condition_id, v.kalshi_ticker, v.status, v.polarity, poly_title, kalshi_title, vid,
            )
            effect = "inserted" if str(status).endswith(" 1") else "conflict"
        elif v.status == "Verified":
            effect = "conflict"
        detail: dict[str, Any] = {"verdict_id": vid, "status": v.status, "polarity": v.polarity,
                                  "texts_sha256": texts_sha256, "market_pairs": effect}
        if effect == "conflict":
            detail["kept"] = [f"{r['poly_condition_id']}~{r['kalshi_ticker']}" for r in rows]
        await append_audit(conn, "mapping-sync", "verdict", v.pair_ref, detail)
    return int(vid)
