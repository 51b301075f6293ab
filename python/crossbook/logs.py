"""Logs a person can read: one line per event, local time, component, message."""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys


def setup_logging(level: str = "INFO", stream: object = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("picows").setLevel(logging.WARNING)
    logging.getLogger("websockets").setLevel(logging.WARNING)


def log_in_background() -> logging.handlers.QueueListener:
    """The root logger's handlers move to a thread: an event loop (the daemon's, the signer's) only queues a
    record. A write to the log can block for milliseconds (a page under writeback, a slow disk, a full pipe)
    and the loop must never wait on it: a frame or the next signing request would. Call ``stop()`` on the
    listener at exit; it writes what is queued first."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    for h in handlers:
        root.removeHandler(h)
    root.addHandler(logging.handlers.QueueHandler(q))
    listener = logging.handlers.QueueListener(q, *handlers, respect_handler_level=True)
    listener.start()
    return listener
