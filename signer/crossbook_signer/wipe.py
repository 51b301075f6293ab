"""Best-effort wiping of Python-side copies of secrets."""

from __future__ import annotations

import ctypes
import sys

_BYTES_DATA_OFFSET = sys.getsizeof(b"") - 1  # header size of a bytes object; its data follows


def wipe(buf: bytearray | memoryview) -> None:
    """Zero a mutable buffer in place."""
    view = memoryview(buf).cast("B")
    view[:] = bytes(len(view))


def wipe_bytes(data: bytes) -> None:
    """Zero an immutable ``bytes`` object we received from a library (boto3, cryptography).

    Only for fresh objects nobody else holds (0- and 1-byte objects are shared singletons: skipped).
    """
    if type(data) is bytes and len(data) > 1:
        ctypes.memset(id(data) + _BYTES_DATA_OFFSET, 0, len(data))
