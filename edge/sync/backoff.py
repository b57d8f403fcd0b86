"""Jittered exponential backoff for reconnecting: a fleet that lost its broker together must not
come back in lock step."""

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
        """Half the current ceiling plus a random share of the other half ("equal jitter"):
        spread out, yet never a hot loop of immediate retries."""
        ceiling = min(self.max_s, self.initial_s * 2.0**self.attempt)
        self.attempt = min(self.attempt + 1, 32)
        return ceiling / 2 + self._rand() * ceiling / 2

    def reset(self) -> None:
        self.attempt = 0
