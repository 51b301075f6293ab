"""Real parts for the signer tests: moto in server mode (KMS), the signer as a subprocess."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3  # a missing signer install must fail the run, never skip it (make setup installs it)
import pytest
from crossbook_signer.envelope import context, seal

from tests.conftest import eventually

VENV_BIN = Path(sys.executable).parent
ANVIL_KEY = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL_ADDR = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
# Test-only API credentials and the shared Kalshi known-answer key (vectors/kalshi/kat_rsa_pss_verify.json).
API_KEY = "00000000-1111-2222-3333-444444444444"
API_SECRET = base64.urlsafe_b64encode(bytes(range(32))).decode()
API_PASSPHRASE = "test-passphrase"
VECTORS = Path(os.environ.get("CROSSBOOK_VECTORS") or Path(__file__).parents[2].parent / "shared" / "vectors")
KALSHI_KAT = VECTORS / "kalshi" / "kat_rsa_pss_verify.json"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Kms:
    url: str
    client: Any
    key_id: str


@pytest.fixture(scope="session")
def kms() -> Iterator[Kms]:
    port = _free_port()
    exe = shutil.which("moto_server", path=str(VENV_BIN)) or "moto_server"
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in [*AWS_ENV, "AWS_ENDPOINT_URL_KMS"]}
    os.environ.update(AWS_ENV)
    os.environ["AWS_ENDPOINT_URL_KMS"] = url
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)
        client = boto3.client("kms", region_name="us-east-1", endpoint_url=url)
        key_id = client.create_key(Description="crossbook-signer test")["KeyMetadata"]["KeyId"]
        yield Kms(url, client, key_id)
    finally:
        proc.terminate()
        proc.wait(5)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class Signer:
    dir: str
    socket: str
    config: str
    kms: Kms
    proc: subprocess.Popen[bytes] | None = None
    log: list[str] = field(default_factory=list)

    def write_config(
        self,
        *,
        wallet_ctx_name: str = "main",
        sessions: list[bytes] | None = None,
        allowed_uids: list[int] | None = None,
        fast_path: bool = True,
        header_keys: bool = False,
    ) -> None:
        """``header_keys``: also load a Polymarket API account ``main`` and the Kalshi KAT key."""
        blob = seal(
            self.kms.client, self.kms.key_id, bytes.fromhex(ANVIL_KEY), context(wallet_ctx_name, "polymarket-key")
        )
        doc = [
            f"allowed_uids = {json.dumps(allowed_uids if allowed_uids is not None else [os.getuid()])}",
            "test_mode = true",
            f"fast_path = {'true' if fast_path else 'false'}",
            f"sessions = {json.dumps([b.decode() for b in sessions or []])}",
            "[kms]",
            f'key_id = "{self.kms.key_id}"',
            "[wallets.main]",
            f'private_key = "{blob}"',
        ]
        if header_keys:
            kat = json.loads(KALSHI_KAT.read_text())
            kms, key_id = self.kms.client, self.kms.key_id
            secret = seal(kms, key_id, API_SECRET.encode(), context("main", "polymarket-api-secret"))
            phrase = seal(kms, key_id, API_PASSPHRASE.encode(), context("main", "polymarket-api-passphrase"))
            der = base64.b64decode(kat["private_key_pkcs8_der_b64"])
            rsa = seal(kms, key_id, der, context(kat["api_key_id"], "kalshi-rsa-key"))
            doc += [
                "[polymarket_api.main]",
                f'api_key = "{API_KEY}"',
                f'address = "{ANVIL_ADDR}"',
                f'secret = "{secret}"',
                f'passphrase = "{phrase}"',
                "[kalshi]",
                f'key_id = "{kat["api_key_id"]}"',
                f'private_key = "{rsa}"',
            ]
        Path(self.config).write_text("\n".join(doc) + "\n")

    def start(self, expect_ready: bool = True) -> subprocess.Popen[bytes]:
        env = {**os.environ, **AWS_ENV, "AWS_ENDPOINT_URL_KMS": self.kms.url}
        # O_APPEND: the signer shares this file's offset; reading it (seek(0)) while the signer writes must
        # not make its next line overwrite the start (a new file: nothing to append to).
        self.errfile = open(os.path.join(self.dir, f"signer-{time.monotonic_ns()}.log"), "a+b")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crossbook_signer", "--socket", self.socket, "--config", self.config],
            stdout=subprocess.DEVNULL,
            stderr=self.errfile,
            env=env,
        )
        if expect_ready:
            deadline = time.monotonic() + 20
            while "ready on" not in self.stderr():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"signer did not start:\n{self.stderr()}")
                time.sleep(0.02)
        return self.proc

    def stderr(self) -> str:
        self.errfile.flush()
        self.errfile.seek(0)
        return self.errfile.read().decode(errors="replace")

    async def logged(self, text: str, timeout: float = 10.0) -> int:
        """How many lines carry ``text`` once one does (the signer logs after its reply is written, in
        a later loop turn, so a client can hold the reply before the line exists), and a moment more for any
        second one. Fails the test after ``timeout`` without one."""
        await eventually(lambda: text in self.stderr(), timeout=timeout, what=f"the signer's log line {text!r}")
        await asyncio.sleep(0.05)
        return self.stderr().count(text)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def signer_env(kms: Kms) -> Iterator[Signer]:
    d = tempfile.mkdtemp(prefix="cb-signer-")
    os.chmod(d, 0o700)
    s = Signer(d, os.path.join(d, "signer.sock"), os.path.join(d, "signer.toml"), kms)
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def signer(signer_env: Signer) -> Signer:
    signer_env.write_config()
    signer_env.start()
    return signer_env


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
