"""Long-lived tasks that restart with backoff when they fail, so one device cannot stop a site."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

TaskFactory = Callable[[], Awaitable[None]]


@dataclass
class SupervisedTask:
    name: str
    factory: TaskFactory
    restarts: int = 0
    last_error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    def __init__(self, initial_backoff: float = 0.5, max_backoff: float = 30.0) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.tasks: dict[str, SupervisedTask] = {}
        self._stopping = False

    def start(self, name: str, factory: TaskFactory) -> SupervisedTask:
        supervised = SupervisedTask(name, factory)
        supervised.task = asyncio.create_task(self._keep_running(supervised), name=name)
        self.tasks[name] = supervised
        return supervised

    async def _keep_running(self, supervised: SupervisedTask) -> None:
        backoff = self.initial_backoff
        while not self._stopping:
            started = asyncio.get_running_loop().time()
            try:
                await supervised.factory()
                if self._stopping:
                    return
                log.warning("task ended unexpectedly; restarting", extra={"task": supervised.name})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                supervised.last_error = f"{type(exc).__name__}: {exc}"
                if self._stopping:
                    # It failed while being stopped (cleanup on cancel): do not wait out a backoff.
                    return
                log.exception("task failed; restarting", extra={"task": supervised.name})
            supervised.restarts += 1
            # A task that ran a good while before failing starts its backoff afresh.
            if asyncio.get_running_loop().time() - started > self.max_backoff:
                backoff = self.initial_backoff
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))  # noqa: S311
            backoff = min(backoff * 2, self.max_backoff)

    async def stop(self) -> None:
        self._stopping = True
        tasks = [t.task for t in self.tasks.values() if t.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
