"""Execution rigs reuse the embedded PostgreSQL of the store tests (one server per session)."""

from tests.store.conftest import pg_server, pg_url

__all__ = ["pg_server", "pg_url"]
