"""``crossbook.aio.start_now``: a task whose first step runs before it returns (Python 3.12's eager tasks, on
3.11), on the default loop and on uvloop (the daemon's)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from crossbook.aio import start_now

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="caller")


def run_on(loop_kind: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    if loop_kind == "uvloop":
        uvloop.run(main())
    else:
        asyncio.run(main())


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_the_first_step_runs_now_as_the_task_and_the_rest_as_usual(loop_kind: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        steps: list[str] = []
        gate: asyncio.Future[int] = loop.create_future()
        me = asyncio.current_task()

        async def body() -> int:
            steps.append("first")
            assert asyncio.current_task() is task_box[0] if task_box else True
            seen.append(asyncio.current_task())
            VAR.set("task")
            got = await gate  # the first real wait: start_now returns here
            steps.append(f"after {got} in {VAR.get()}")
            await asyncio.sleep(0)
            return got * 2

        task_box: list[asyncio.Task[int]] = []
        seen: list[asyncio.Task[Any] | None] = []
        turned: list[int] = []
        loop.call_soon(turned.append, 1)
        task = start_now(body(), name="eager")
        task_box.append(task)
        # The first step ran before start_now returned, with no loop turn, as the task itself.
        assert steps == ["first"] and turned == [] and seen == [task] and task.get_name() == "eager"
        assert asyncio.current_task() is me and VAR.get() == "caller"  # the caller's task and context are back
        assert not task.done()
        gate.set_result(21)
        assert await task == 42
        assert steps == ["first", "after 21 in task"]

    run_on(loop_kind, main)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_a_first_step_that_ends_or_raises_is_the_tasks_outcome(loop_kind: str) -> None:
    async def main() -> None:
        async def done_at_once() -> str:
            return "done"

        async def fails_at_once() -> None:
            raise ValueError("refused before any wait")

        t1 = start_now(done_at_once())
        assert await t1 == "done"
        t2 = start_now(fails_at_once())
        with pytest.raises(ValueError, match="refused before any wait"):
            await t2
        # cancelled before its task took over: the outcome of the finished first step stands, or the task is
        # cancelled; never "coroutine reused" errors
        t3 = start_now(done_at_once())
        t3.cancel()
        try:
            assert await t3 == "done"
        except asyncio.CancelledError:
            assert t3.cancelled()

    run_on(loop_kind, main)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_cancelling_reaches_the_coroutine_where_its_first_step_waits(loop_kind: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        cleaned: list[str] = []
        never: asyncio.Future[None] = loop.create_future()

        async def waits() -> None:
            try:
                await never
            except asyncio.CancelledError:
                cleaned.append("cancelled at its wait")
                raise

        task = start_now(waits())
        task.cancel()  # before the loop ever ran the task's own first step
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cleaned == ["cancelled at its wait"] and task.cancelled()
        # and once the task waits on its own, cancelling cancels that wait as ever
        task = start_now(waits())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cleaned == ["cancelled at its wait"] * 2

    run_on(loop_kind, main)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_started_from_inside_another_task_the_caller_stays_current(loop_kind: str) -> None:
    async def main() -> None:
        outer = asyncio.current_task()
        inner_saw: list[Any] = []

        async def inner() -> None:
            inner_saw.append(asyncio.current_task())
            await asyncio.sleep(0)

        async def caller() -> None:
            me = asyncio.current_task()
            t = start_now(inner())
            assert inner_saw == [t] and asyncio.current_task() is me
            await t

        await asyncio.create_task(caller())
        assert asyncio.current_task() is outer

    run_on(loop_kind, main)
