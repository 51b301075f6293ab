"""Framing of the signer's fast path, shared by the signer (server) and :mod:`crossbook.signing.client`.

The fast path carries the gRPC service's own protobuf messages (``proto/signer.proto``) over a second
uid-checked Unix socket, one frame per message, with no HTTP/2 and no relay::

    request  u32 length | u8 FastMethod | u32 call id | request message
    reply    u32 length | u8 FastReply  | u32 call id | reply message (OK) or CallError (ERROR)

``length`` (big-endian, like every integer here) counts the bytes after itself: 5 + the message. The
call id is chosen by the client and echoed back, so one connection carries overlapping calls and a
reply can be matched even after its caller gave up. A frame whose length is below 5 or above
:data:`MAX_FRAME` cannot be skipped safely (framing is lost): the signer answers it with an ERROR
frame of call id 0 and closes the connection.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.message import Message

from crossbook._proto import signer_pb2 as pb

__all__ = ["HEADER", "MAX_FRAME", "METHODS", "FrameReader", "FramingError", "Method", "encode"]

HEADER = struct.Struct("!IBI")
_AFTER_LENGTH = HEADER.size - 4  # kind + call id
MAX_FRAME = 4 * 1024 * 1024  # gRPC's default receive limit, so both transports accept the same requests
OK = pb.FAST_REPLY_OK
ERROR = pb.FAST_REPLY_ERROR


@dataclass(frozen=True, slots=True)
class Method:
    id: int
    name: str  # the gRPC method name: the key of the one request handler both transports call
    request: type[Message]
    reply: type[Message]


# The signer's methods, for both transports: the gRPC service registers exactly these names and types.
METHODS: dict[int, Method] = {
    m.id: m
    for m in (
        Method(
            pb.FAST_SIGN_POLYMARKET_ORDER,
            "SignPolymarketOrder",
            pb.SignPolymarketOrderRequest,
            pb.SignPolymarketOrderReply,
        ),
        Method(pb.FAST_POLYMARKET_L1_HEADERS, "PolymarketL1Headers", pb.PolymarketL1HeadersRequest, pb.HeadersReply),
        Method(pb.FAST_POLYMARKET_L2_HEADERS, "PolymarketL2Headers", pb.PolymarketL2HeadersRequest, pb.HeadersReply),
        Method(pb.FAST_KALSHI_HEADERS, "KalshiHeaders", pb.KalshiHeadersRequest, pb.HeadersReply),
        Method(pb.FAST_SIGN_TRANSACTION, "SignTransaction", pb.SignTransactionRequest, pb.SignTransactionReply),
        Method(pb.FAST_AUTHORIZE_SESSION, "AuthorizeSession", pb.AuthorizeSessionRequest, pb.SessionReply),
        Method(pb.FAST_REVOKE_SESSION, "RevokeSession", pb.RevokeSessionRequest, pb.SessionReply),
        Method(pb.FAST_HEALTH, "Health", pb.HealthRequest, pb.HealthReply),
        Method(pb.FAST_PROBE_OPEN, "ProbeOpen", pb.ProbeOpenRequest, pb.ProbeOpenReply),
        Method(
            pb.FAST_PREPARE_POLYMARKET_ORDER,
            "PreparePolymarketOrder",
            pb.PreparePolymarketOrderRequest,
            pb.PreparePolymarketOrderReply,
        ),
    )
}
METHOD_IDS: dict[str, int] = {m.name: m.id for m in METHODS.values()}


class FramingError(ValueError):
    """The byte stream is not a sequence of valid frames; the connection cannot be trusted further."""


def encode(kind: int, call_id: int, payload: bytes) -> bytes:
    """One frame: header + payload (a single ``bytes``, so the transport does one ``send``)."""
    return HEADER.pack(len(payload) + _AFTER_LENGTH, kind, call_id) + payload


class FrameReader:
    """Splits a stream into frames and calls ``on_frame(kind, call_id, payload)`` for each.

    The usual case (one whole frame per read) is handed over without touching the buffer; partial
    frames are accumulated. :meth:`feed` raises :class:`FramingError` on an impossible length.
    """

    __slots__ = ("_buf", "_on_frame")

    def __init__(self, on_frame: Callable[[int, int, bytes], None]) -> None:
        self._buf = bytearray()
        self._on_frame = on_frame

    def feed(self, data: bytes) -> None:
        if not self._buf and len(data) >= HEADER.size:
            length, kind, call_id = HEADER.unpack_from(data)
            if len(data) == length + 4 and _AFTER_LENGTH <= length <= MAX_FRAME:
                self._on_frame(kind, call_id, data[HEADER.size :])
                return
        buf = self._buf
        buf += data
        pos = 0
        end = len(buf)
        try:
            while end - pos >= 4:
                (length,) = struct.unpack_from("!I", buf, pos)
                if not _AFTER_LENGTH <= length <= MAX_FRAME:
                    raise FramingError(f"frame length {length} is outside {_AFTER_LENGTH}..{MAX_FRAME}")
                if end - pos < length + 4:
                    break
                _, kind, call_id = HEADER.unpack_from(buf, pos)
                payload = bytes(buf[pos + HEADER.size : pos + 4 + length])
                pos += 4 + length
                self._on_frame(kind, call_id, payload)
        finally:
            del buf[:pos]
