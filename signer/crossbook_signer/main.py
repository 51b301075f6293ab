"""``crossbook-signer --socket PATH --config FILE``: load keys from KMS, harden, serve.

Order matters: (1) read the config, (2) no core dumps + non-dumpable, (3) decrypt every blob through
KMS straight into Rust key handles, (4) bind the public socket and the fast-path socket (both 0600)
and make the private 0700 directory, (5) Landlock, in the main thread, before gRPC or any executor
starts a thread, so every thread inherits it, (6) on one asyncio event loop: the gRPC server on the
private socket, the SO_PEERCRED relay on the public one, the fast path on ``<socket>.fast``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import logging
import os
import shutil
import signal
import socket
import stat
import sys
from typing import Any
from urllib.parse import urlsplit

import boto3
import grpc
import grpc.aio

from crossbook.errors import CrossbookError
from crossbook.logs import log_in_background
from crossbook.signing import ApiCreds, HmacKey, PrivateKey, RsaKey
from crossbook_signer import service as _service  # noqa: F401  (imported before Landlock)
from crossbook_signer.config import SignerConfig, load_config
from crossbook_signer.envelope import context, open_blob
from crossbook_signer.fast import FastServer
from crossbook_signer.hardening import is_dumpable, no_core_dumps, restrict_files
from crossbook_signer.relay import Relay
from crossbook_signer.service import Hardening, Keys, SignerService, generic_handler
from crossbook_signer.sessions import Session, load_session
from crossbook_signer.wipe import wipe

log = logging.getLogger("crossbook.signer")


def kms_client(cfg: SignerConfig) -> Any:
    """boto3's default credential chain (instance role in production); endpoint from the config or
    AWS_ENDPOINT_URL_KMS."""
    kwargs: dict[str, Any] = {}
    if cfg.kms_region:
        kwargs["region_name"] = cfg.kms_region
    if cfg.kms_endpoint_url:
        kwargs["endpoint_url"] = cfg.kms_endpoint_url
    return boto3.session.Session().client("kms", **kwargs)


def load_keys(kms: Any, cfg: SignerConfig) -> Keys:
    keys = Keys()
    for name, blob in cfg.wallets.items():
        secret = open_blob(kms, blob, context(name, "polymarket-key"), f"wallets.{name}.private_key")
        try:
            keys.wallets[name] = PrivateKey(secret)  # copies into locked memory, wipes `secret`
        finally:
            wipe(secret)
    for name, acct in cfg.polymarket_api.items():
        secret = open_blob(kms, acct.secret, context(name, "polymarket-api-secret"), f"polymarket_api.{name}.secret")
        phrase = open_blob(
            kms, acct.passphrase, context(name, "polymarket-api-passphrase"), f"polymarket_api.{name}.passphrase"
        )
        try:
            # HmacKey takes a str: that transient str copy cannot be wiped (docs/signer.md).
            creds = ApiCreds(acct.api_key, HmacKey(secret.decode()), phrase.decode())
        finally:
            wipe(secret)
            wipe(phrase)
        keys.polymarket_api[name] = (creds, acct.address)
    if cfg.kalshi_private_key:
        secret = open_blob(
            kms, cfg.kalshi_private_key, context(cfg.kalshi_key_id, "kalshi-rsa-key"), "kalshi.private_key"
        )
        try:
            keys.kalshi = (cfg.kalshi_key_id, RsaKey(secret))
        finally:
            wipe(secret)
    return keys


def _all_locked(keys: Keys, sessions: dict[str, Session]) -> bool:
    handles: list[Any] = [*keys.wallets.values(), *(s.key for s in sessions.values())]
    handles += [c.secret for c, _ in keys.polymarket_api.values()]
    if keys.kalshi is not None:
        handles.append(keys.kalshi[1])
    return all(getattr(h, "locked", True) for h in handles)


def bind_public_socket(path: str) -> socket.socket:
    """A listening Unix socket at ``path`` with mode 0600 (umask while binding, then chmod)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)  # stale socket of a previous run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def private_dir(public_path: str) -> str:
    path = public_path + ".private"
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    os.mkdir(path, 0o700)
    return path


def preload() -> None:
    """Import what gRPC and asyncio would import lazily: after Landlock no module file can be read."""
    for name in _LAZY_MODULES:
        importlib.import_module(name)


_LAZY_MODULES = (
    "grpc._utilities",
    "grpc.aio._server",
    "grpc._server",
    "grpc._common",
    "grpc.aio._typing",
    "asyncio.unix_events",
    "concurrent.futures.thread",
    "encodings.idna",
    "json.decoder",
)


def fast_socket_path(public_path: str) -> str:
    """Where the fast path listens: next to the gRPC socket, so the same directory rules apply."""
    return public_path + ".fast"


async def keep_warm(svc: SignerService, interval: float) -> None:
    """G4: after ~100 ms idle a signature costs ~5x a warm one (CPU frequency, caches); a throwaway
    signature every ``interval`` without real requests keeps the order path warm for ~0.2 % of a core
    (a busy signer is warm anyway and is not slowed by it)."""
    seen = -1
    while True:
        await asyncio.sleep(interval)
        if svc.calls == seen:
            svc.warm()
        seen = svc.calls


async def serve(
    svc: SignerService,
    public: socket.socket,
    public_path: str,
    internal: str,
    allowed_uids: frozenset[int],
    fast: socket.socket | None,
    keep_warm_ms: int,
) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((generic_handler(svc),))
    server.add_insecure_port(f"unix:{internal}")
    await server.start()
    relay = Relay(public, internal, allowed_uids)
    await relay.start()
    fast_server = FastServer(fast, svc, allowed_uids) if fast is not None else None
    if fast_server is not None:
        await fast_server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    warmer = loop.create_task(keep_warm(svc, keep_warm_ms / 1000.0)) if keep_warm_ms > 0 else None
    # Everything loaded so far (grpc, boto3, protobuf: ~50k objects) lives as long as the process:
    # out of the collector's sight, a full collection no longer pauses a signature for ~50 ms.
    gc.collect()
    gc.freeze()
    log.info("serving on %s (pid %d)", public_path, os.getpid())
    print(f"crossbook-signer: ready on {public_path}", file=sys.stderr, flush=True)
    await stop.wait()
    log.info("stopping")
    if warmer is not None:
        warmer.cancel()
    if fast_server is not None:
        await fast_server.close()
    await relay.close()
    await server.stop(1.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="crossbook-signer", description="crossbook's signer service (docs/signer.md)")
    ap.add_argument("--socket", required=True, help="path of the Unix socket to serve on (created with mode 0600)")
    ap.add_argument("--config", required=True, help="TOML config holding KMS-sealed blobs (docs/signer.md)")
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    # A log line per request is on the signing path's CPU budget (~15 µs of ~50 per order): skip what
    # logging gathers per record and our format never prints (the caller's file and line by a stack
    # walk, thread and process names). The logging HOWTO's "Optimization" section lists these.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    writer = log_in_background()
    try:
        return _run(args)
    finally:
        writer.stop()  # every queued line written before the process ends


def _run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
        no_core_dumps()
        kms = kms_client(cfg)
        keys = load_keys(kms, cfg)
        sessions = {s.sid: s for s in (load_session(kms, b) for b in cfg.sessions)}
        if cfg.kms_key_id:  # validates the key and warms the connection + botocore's lazy imports
            kms.describe_key(KeyId=cfg.kms_key_id)
        locked = _all_locked(keys, sessions)
        if cfg.require_locked and not locked:
            raise CrossbookError(
                "a key's pages could not be mlock'd (raise RLIMIT_MEMLOCK or set require_locked = false)"
            )
        public_path = os.path.abspath(args.socket)
        priv = private_dir(public_path)
        public = bind_public_socket(public_path)
        fast = bind_public_socket(fast_socket_path(public_path)) if cfg.fast_path else None
        hardening = Hardening(non_dumpable=not is_dumpable(), keys_locked=locked)
        svc = SignerService(keys, sessions, kms, cfg.kms_key_id, hardening, test_mode=cfg.test_mode)
        preload()
        abi = 0
        if cfg.landlock:
            endpoint = kms.meta.endpoint_url
            port = urlsplit(endpoint).port or (443 if endpoint.startswith("https") else 80)
            abi = restrict_files(os.path.dirname(public_path), port)
        hardening.landlock_abi = abi
    except CrossbookError as exc:
        log.error("not starting: %s", exc)
        return 2
    log.info(
        "loaded %d wallet(s), %d API account(s), kalshi=%s, %d session(s); landlock ABI %d",
        len(keys.wallets),
        len(keys.polymarket_api),
        keys.kalshi is not None,
        len(sessions),
        abi,
    )
    try:
        asyncio.run(
            serve(svc, public, public_path, os.path.join(priv, "grpc.sock"), cfg.allowed_uids, fast, cfg.keep_warm_ms)
        )
    finally:
        for p in (os.path.join(priv, "grpc.sock"), public_path, fast_socket_path(public_path)):
            with contextlib.suppress(OSError):
                os.unlink(p)
        with contextlib.suppress(OSError):
            os.rmdir(priv)
    return 0
