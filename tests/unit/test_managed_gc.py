"""crossbook.aio.ManagedGC (the daemon's ``gc = "managed"``): automatic collection off, start-up objects
frozen, cycles still collected from the loop's timer; a busy engine defers a collection, never past
``max_defer_s``; stop gives the collector back as it was."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

import pytest

from crossbook.aio import ManagedGC
from crossbook.config import Config, ConfigError, load_config
from crossbook.daemon import start_gc


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    """A two-object reference cycle nothing else holds: only the cyclic collector can free it."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


async def wait_dead(ref: weakref.ref[Node], timeout: float) -> bool:
    """True once the collector freed the object ``ref`` points to (within ``timeout`` seconds)."""
    obj = ref()
    if obj is None:
        return True
    freed = asyncio.Event()
    weakref.finalize(obj, freed.set)
    del obj
    try:
        await asyncio.wait_for(freed.wait(), timeout)
    except TimeoutError:
        pass
    return ref() is None


async def test_cycles_are_collected_by_the_timer_not_by_allocation() -> None:
    was = gc.isenabled()
    collector = ManagedGC(interval_s=0.05, full_every_s=0.2)
    collector.start()
    try:
        assert not gc.isenabled() and gc.get_freeze_count() > 0
        ref = cycle()
        junk = [[i] for i in range(20_000)]  # far past the automatic threshold: no collection runs on it
        del junk
        assert ref() is not None
        assert await wait_dead(ref, 2.0)
        assert collector.collections >= 1 and collector.longest_us > 0
        await asyncio.sleep(0.3)
        assert collector.full_collections >= 1  # everything (but the frozen) every full_every_s
    finally:
        collector.stop()
    assert gc.isenabled() == was and gc.get_freeze_count() == 0 and not collector.running


async def test_a_busy_engine_defers_collection_but_not_past_max_defer() -> None:
    busy = True
    collector = ManagedGC(interval_s=0.02, max_defer_s=0.2, busy=lambda: busy)
    collector.start()
    try:
        ref = cycle()
        await asyncio.sleep(0.1)
        assert ref() is not None and collector.collections == 0 and collector.deferred > 0  # order in flight
        assert await wait_dead(ref, 2.0)  # still busy, but memory stays bounded: collected after max_defer_s
        n = collector.collections
        busy = False
        ref = cycle()
        assert await wait_dead(ref, 1.0) and collector.collections > n
    finally:
        collector.stop()


async def test_a_failing_busy_probe_does_not_stop_collection() -> None:
    def broken() -> bool:
        raise RuntimeError("probe broke")

    collector = ManagedGC(interval_s=0.02, busy=broken)
    collector.start()
    try:
        assert await wait_dead(cycle(), 2.0)
    finally:
        collector.stop()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        ManagedGC(interval_s=0)
    with pytest.raises(ValueError):
        ManagedGC(max_defer_s=-1)


async def test_the_daemon_manages_gc_unless_told_auto(tmp_path: Path) -> None:
    cfg = Config()
    assert cfg.gc == "managed"
    collector = start_gc(cfg)
    assert collector is not None and collector.running and not gc.isenabled()
    collector.stop()
    assert gc.isenabled()
    cfg.gc = "auto"
    assert start_gc(cfg) is None
    path = tmp_path / "c.toml"
    path.write_text('gc = "sometimes"\n')
    with pytest.raises(ConfigError, match="gc must be"):
        load_config(path, env={})
    path.write_text('gc = "auto"\ngc_interval_s = 0.5\n')
    loaded = load_config(path, env={})
    assert loaded.gc == "auto" and loaded.gc_interval_s == 0.5
