"""A real embedded PostgreSQL per test session; each test gets its own fresh database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg  # type: ignore[import-untyped]
import pytest

from crossbook.store.embedded_postgres import EmbeddedPostgres


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres().start()
    yield server
    server.close()


@pytest.fixture
async def pg_url(pg_server: EmbeddedPostgres) -> AsyncIterator[str]:
    pg_server.start()  # a test may have stopped it
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_server.url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    yield pg_server.url.rsplit("/", 1)[0] + "/" + name
