"""anvil (from tools/anvil, never skipped) and an embedded PostgreSQL with the migrations applied."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from crossbook.chain.rpc import http_web3, raw
from crossbook.store.embedded_postgres import EmbeddedPostgres
from crossbook.store.postgres import migrate

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "contracts" / "artifacts"


def anvil_path() -> str:
    env = os.environ.get("CROSSBOOK_ANVIL")
    candidates = [env] if env else []
    candidates += sorted(glob.glob(str(ROOT / "tools/anvil/node_modules/@foundry-rs/anvil-*/bin/anvil")))
    candidates.append(str(ROOT / "tools/anvil/node_modules/.bin/anvil"))
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    pytest.fail("anvil is not installed: run `tools/anvil/ensure.sh` (part of `make setup`) or set CROSSBOOK_ANVIL "
                f"to the anvil binary; looked at {candidates}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Anvil:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def start_anvil(*extra: str) -> Anvil:
    port = _free_port()
    proc = subprocess.Popen(
        [anvil_path(), "--port", str(port), "--chain-id", "137", "--slots-in-an-epoch", "1", "--silent", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"anvil exited at start: {err[-400:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return Anvil(port, proc)
        time.sleep(0.02)
    proc.kill()
    pytest.fail("anvil did not listen within 15 s")


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    a = start_anvil()
    yield a
    a.proc.terminate()
    a.proc.wait(timeout=10)


@pytest.fixture
def anvil_nomine() -> Iterator[Anvil]:
    a = start_anvil("--no-mining")
    yield a
    a.proc.terminate()
    a.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def chain_pg() -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres().start()
    yield server
    server.close()


@pytest.fixture
async def db_url(chain_pg: EmbeddedPostgres) -> str:
    """A fresh database with every migration (001 + 050_chain) applied."""
    chain_pg.start()
    name = f"c_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(chain_pg.url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = chain_pg.url.rsplit("/", 1)[0] + "/" + name
    await migrate(url)
    return url


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[Any]:
    p = await asyncpg.create_pool(db_url, min_size=1, max_size=8)
    yield p
    try:
        await asyncio.wait_for(p.close(), 5)
    except TimeoutError:  # a test left a connection checked out (e.g. a crashed manager's lease)
        p.terminate()


def artifact(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((BUILD / f"{name}.json").read_text())
    return doc


async def deploy(w3: Any, name: str) -> Any:
    art = artifact(name)
    acct = (await w3.eth.accounts)[0]
    h = await w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"]).constructor().transact({"from": acct})
    rcpt = await w3.eth.wait_for_transaction_receipt(h, timeout=10)
    return w3.eth.contract(address=rcpt["contractAddress"], abi=art["abi"])


async def mine(w3: Any, blocks: int = 1) -> None:
    await raw(w3, "anvil_mine", [hex(blocks)])


__all__ = ["Anvil", "anvil_path", "artifact", "deploy", "http_web3", "mine", "start_anvil"]
