"""Shared real parts for the hub tests: pproxy HTTP CONNECT / SOCKS5 proxies as subprocesses."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

# pproxy installs uvloop's policy when uvloop is importable, then calls get_event_loop(), which uvloop
# refuses on 3.11: hide uvloop from it (the proxy speed is irrelevant here).
_PPROXY = "import sys; sys.modules['uvloop'] = None; sys.argv[0] = 'pproxy'; from pproxy.server import main; main()"
PROXY_PASSWORD = "pr0xy-s3cret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ProxyProc:
    """One pproxy server process (ours: started, killed and restarted by pid)."""

    scheme: str
    auth: str = ""
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        creds = f"{self.auth}@" if self.auth else ""
        return f"{self.scheme}://{creds}127.0.0.1:{self.port}"

    def start(self) -> ProxyProc:
        listen = f"{self.scheme}://127.0.0.1:{self.port}" + (f"#{self.auth}" if self.auth else "")
        self.proc = subprocess.Popen([sys.executable, "-c", _PPROXY, "-l", listen],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return self
            assert self.proc.poll() is None, f"pproxy {self.scheme} exited with {self.proc.returncode}"
            time.sleep(0.05)
        raise AssertionError(f"pproxy {self.scheme} did not listen on {self.port}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def proxies() -> Iterator[tuple[ProxyProc, ProxyProc]]:
    http = ProxyProc("http", auth=f"crossbook:{PROXY_PASSWORD}").start()
    socks = ProxyProc("socks5").start()
    yield http, socks
    http.kill()
    socks.kill()




@pytest.fixture(scope="session")
def hub_pg() -> Iterator[Any]:
    """A real embedded PostgreSQL for the hub's user store (torn down after the session)."""
    from crossbook.store.embedded_postgres import EmbeddedPostgres

    server = EmbeddedPostgres().start()
    yield server
    server.close()


# The signer service as a real subprocess (moto KMS in server mode), from the signer tests' fixtures:
# private tunnels must be able to run with the Kalshi key only inside the signer.
from tests.signer.conftest import kms, signer_env  # noqa: E402, F401
