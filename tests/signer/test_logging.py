"""The signer's (and the daemon's) log lines are written by a thread (``crossbook.logs.log_in_background``):
the loop only queues a record, so a log write that blocks (a page under writeback, a full pipe) never delays
the next request. Every queued line still reaches the log, including the last one before the process exits."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

from crossbook.logs import log_in_background


def test_a_blocked_log_writer_does_not_block_the_logger(tmp_path: Path) -> None:
    release = threading.Event()
    written: list[str] = []

    class SlowHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            release.wait(5)  # the file write that blocks
            written.append(record.getMessage())

    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    for h in saved:
        root.removeHandler(h)
    root.addHandler(SlowHandler())
    root.setLevel(logging.INFO)
    listener = log_in_background()
    try:
        log = logging.getLogger("crossbook.signer.test")
        log.info("signed request_id=%s", "a")
        log.info("signed request_id=%s", "b")  # returned at once though the writer is stuck on "a"
        assert written == []
        release.set()
    finally:
        listener.stop()  # flushes what is queued
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved:
            root.addHandler(h)
        root.setLevel(level)
    assert written == ["signed request_id=a", "signed request_id=b"]


def test_the_last_line_before_exit_is_written(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "crossbook_signer", "--socket", str(tmp_path / "s.sock"), "--config",
           str(tmp_path / "missing.toml")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "not starting" in proc.stderr and "missing.toml" in proc.stderr
