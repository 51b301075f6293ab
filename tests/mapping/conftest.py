"""The mapping tests share the store's real embedded PostgreSQL (one server per session, a database per test)."""

from tests.store.conftest import pg_server, pg_url

__all__ = ["pg_server", "pg_url"]
