"""Unix-socket peer credentials, for every socket of ours that decides by who is at the other end: the
signer's public and fast-path sockets (which uid may ask), the daemon's execution socket (only our own
uid), and the signer client (which CPUs the signer may run on)."""

from __future__ import annotations

import socket
import struct

_UCRED = struct.Struct("3i")


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a connected Unix socket (``SO_PEERCRED``)."""
    pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return pid, uid, gid
