"""The supervisor: a failing task restarts with backoff and never takes the others down."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Iterator

import pytest

import edge.runtime.supervisor as supervisor_module
from edge.runtime.supervisor import Supervisor

_real_sleep = asyncio.sleep


class Backoffs:
    """Replaces the supervisor's backoff sleeps (only its own) with a record of their lengths."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        await _real_sleep(0)


@pytest.fixture
def backoffs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Backoffs]:
    record = Backoffs()
    fake_asyncio = types.SimpleNamespace(**vars(asyncio))
    fake_asyncio.sleep = record.sleep
    fake_random = types.SimpleNamespace(uniform=lambda low, high: 1.0)  # no jitter
    monkeypatch.setattr(supervisor_module, "asyncio", fake_asyncio)
    monkeypatch.setattr(supervisor_module, "random", fake_random)
    yield record


async def test_a_failing_task_restarts_with_backoff_and_others_keep_running(
    backoffs: Backoffs,
) -> None:
    supervisor = Supervisor(initial_backoff=0.5, max_backoff=30)
    calls = 0
    recovered = asyncio.Event()
    tick, ticked = asyncio.Event(), asyncio.Event()

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls <= 4:
            raise ValueError(f"port vanished ({calls})")
        recovered.set()
        await asyncio.Event().wait()

    async def healthy() -> None:
        while True:
            await tick.wait()
            tick.clear()
            ticked.set()

    good = supervisor.start("healthy", healthy)
    bad = supervisor.start("flaky", flaky)
    try:
        await asyncio.wait_for(recovered.wait(), 5)
        assert bad.restarts == 4
        assert bad.last_error == "ValueError: port vanished (4)"
        assert backoffs.delays == [0.5, 1.0, 2.0, 4.0]
        assert bad.task is not None and not bad.task.done()

        tick.set()  # the healthy task still does its work
        await asyncio.wait_for(ticked.wait(), 5)
        assert good.restarts == 0 and good.last_error is None
        assert good.task is not None and not good.task.done()
    finally:
        await supervisor.stop()


async def test_backoff_is_capped(backoffs: Backoffs) -> None:
    supervisor = Supervisor(initial_backoff=0.1, max_backoff=0.3)
    failures = 0
    done = asyncio.Event()

    async def always_fails() -> None:
        nonlocal failures
        failures += 1
        if failures == 6:
            done.set()
            await asyncio.Event().wait()
        raise OSError("no answer")

    task = supervisor.start("bus", always_fails)
    try:
        await asyncio.wait_for(done.wait(), 5)
        assert backoffs.delays == pytest.approx([0.1, 0.2, 0.3, 0.3, 0.3])
        assert task.restarts == 5 and task.last_error == "OSError: no answer"
    finally:
        await supervisor.stop()


async def test_a_task_that_returns_is_restarted(backoffs: Backoffs) -> None:
    supervisor = Supervisor(initial_backoff=0.1)
    runs = 0
    third = asyncio.Event()

    async def returns() -> None:
        nonlocal runs
        runs += 1
        if runs == 3:
            third.set()
            await asyncio.Event().wait()

    task = supervisor.start("returns", returns)
    try:
        await asyncio.wait_for(third.wait(), 5)
        assert task.restarts == 2 and task.last_error is None
    finally:
        await supervisor.stop()


async def test_stop_cancels_every_task(backoffs: Backoffs) -> None:
    supervisor = Supervisor(initial_backoff=0.1)
    running = {name: asyncio.Event() for name in ("a", "b", "c")}
    cancelled: list[str] = []

    def forever(name: str) -> supervisor_module.TaskFactory:
        async def run() -> None:
            running[name].set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(name)
                raise

        return run

    for name in running:
        supervisor.start(name, forever(name))
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in running.values())), 5)

    await asyncio.wait_for(supervisor.stop(), 5)
    assert sorted(cancelled) == ["a", "b", "c"]
    for supervised in supervisor.tasks.values():
        assert supervised.task is not None and supervised.task.done()
        assert supervised.restarts == 0


async def test_stop_cancels_a_task_waiting_out_its_backoff() -> None:
    supervisor = Supervisor(initial_backoff=30, max_backoff=60)
    failed = asyncio.Event()

    async def fails() -> None:
        failed.set()
        raise RuntimeError("broken")

    task = supervisor.start("fails", fails)
    await asyncio.wait_for(failed.wait(), 5)
    await asyncio.wait_for(supervisor.stop(), 5)  # not after the 30 s backoff
    assert task.task is not None and task.task.done()


async def test_a_task_that_fails_while_being_stopped_does_not_delay_the_stop() -> None:
    """Cleanup that raises on cancel (closing a vanished port) must not start a backoff."""
    supervisor = Supervisor(initial_backoff=30, max_backoff=60)
    running = asyncio.Event()

    async def messy() -> None:
        running.set()
        try:
            await asyncio.Event().wait()
        finally:
            raise OSError("port already gone")

    task = supervisor.start("messy", messy)
    await asyncio.wait_for(running.wait(), 5)
    await asyncio.wait_for(supervisor.stop(), 5)
    assert task.task is not None and task.task.done()
    assert task.restarts == 0
