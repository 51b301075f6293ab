"""crossbook.aio.BusyPoll (the daemon's ``busy_poll``): the loop keeps turning while it runs — timers,
callbacks and I/O as usual — and goes back to sleeping when it stops."""

from __future__ import annotations

import asyncio
from pathlib import Path

from crossbook.aio import BusyPoll
from crossbook.config import Config, load_config
from crossbook.daemon import start_busy_poll


async def test_busy_poll_turns_the_loop_until_stopped() -> None:
    poller = BusyPoll()
    assert not poller.running
    poller.start()
    poller.start()  # idempotent: one chain of turns, not two
    fired = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, fired.set)  # timers still fire while polling
    await asyncio.wait_for(fired.wait(), 2)
    await asyncio.sleep(0.02)
    assert poller.running and poller.turns > 10  # the loop turned on its own while this task slept
    poller.stop()
    turns = poller.turns
    await asyncio.sleep(0.02)
    assert not poller.running and poller.turns == turns


async def test_the_daemon_polls_only_when_configured() -> None:
    cfg = Config()
    off = start_busy_poll(cfg)
    assert not off.running
    cfg.busy_poll, cfg.cpu_affinity = True, []
    on = start_busy_poll(cfg)  # without cpu_affinity it warns, and still does what it was told
    assert on.running
    on.stop()


def test_busy_poll_is_a_config_setting(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("busy_poll = true\ncpu_affinity = [1]\n")
    cfg = load_config(str(path))
    assert cfg.busy_poll is True and cfg.cpu_affinity == [1]
