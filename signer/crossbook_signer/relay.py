"""The public socket: accept, check the peer's uid (SO_PEERCRED), then splice to the gRPC server.

Python gRPC exposes neither the peer's credentials nor a way to hand it an accepted fd, so the
signer accepts on its own socket (mode 0600), checks ``SO_PEERCRED`` against the allowlist and,
for an allowed peer, relays bytes both ways to the gRPC server listening on a socket in the
signer's private 0700 directory. A refused peer is disconnected before a single byte is read.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import cast

from crossbook.unixsock import peer_credentials

log = logging.getLogger("crossbook.signer")


class _Pipe(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self.pending.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class _Client(_Pipe):
    def __init__(self, relay: Relay) -> None:
        super().__init__()
        self.relay = relay

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        pid, uid, _gid = peer_credentials(sock)
        if uid not in self.relay.allowed_uids:
            log.warning("refused peer uid=%d pid=%d: uid not in allowed_uids", uid, pid)
            self.relay.refused += 1
            transport.abort()
            return
        transport.pause_reading()
        task = asyncio.get_running_loop().create_task(self._connect())
        self.relay.tasks.add(task)
        task.add_done_callback(self.relay.tasks.discard)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _tr, upstream = await loop.create_unix_connection(_Pipe, self.relay.upstream_path)
        except OSError as exc:
            log.error("relay: cannot reach the gRPC server: %s", exc.strerror)
            if self.transport is not None:
                self.transport.abort()
            return
        if self.transport is None:  # the client left meanwhile
            _tr.close()
            return
        upstream.peer, self.peer = self, upstream
        for chunk in self.pending:
            _tr.write(chunk)
        self.pending.clear()
        self.transport.resume_reading()


class Relay:
    def __init__(self, listen: socket.socket, upstream_path: str, allowed_uids: frozenset[int]) -> None:
        self.listen = listen
        self.upstream_path = upstream_path
        self.allowed_uids = allowed_uids
        self.refused = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_unix_server(lambda: _Client(self), sock=self.listen)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
