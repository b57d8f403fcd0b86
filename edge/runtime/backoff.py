"""Jittered exponential backoff for retrying: a fleet that lost its broker together, or labels
an access point turned away, must not come back in lock step."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(
        self, initial_s: float, max_s: float, rand: Callable[[], float] = random.random
    ) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._rand = rand
        self.attempt = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each failure doubles the ceiling."""
        delay = self.delay(self.attempt)
        self.attempt = min(self.attempt + 1, 32)
        return delay

    def delay(self, attempt: int) -> float:
        """The delay after ``attempt`` earlier failures (0: the first retry), for callers that
        keep the count themselves: half the ceiling plus a random share of the other half
        ("equal jitter"): spread out, yet never a hot loop of immediate retries."""
        ceiling = min(self.max_s, self.initial_s * 2.0 ** min(attempt, 32))
        return ceiling / 2 + self._rand() * ceiling / 2

    def reset(self) -> None:
        self.attempt = 0
