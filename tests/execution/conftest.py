"""Execution rigs reuse the embedded PostgreSQL of the store tests (one server per session) and the
signer tests' moto KMS (server mode) and signer process."""

from tests.signer.conftest import kms, signer_env
from tests.store.conftest import pg_server, pg_url

__all__ = ["kms", "pg_server", "pg_url", "signer_env"]
