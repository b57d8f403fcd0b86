"""Jittered exponential backoff between attempts to reopen a device (a camera, a scanner)."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double from ``initial`` up to ``maximum``, each drawn in [half, full].

    The jitter keeps several devices that lost the same switch from retrying in lockstep; the
    lower half-bound keeps the spacing meaningful (never a burst of near-zero delays).
    """

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        self._initial = initial
        self._maximum = maximum
        # Jitter only spreads retries in time: no security property rests on it.
        self._rng = rng if rng is not None else random.Random()  # noqa: S311
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self._maximum, self._initial * 2.0 ** min(self._attempt, 62))
        self._attempt += 1
        return self._rng.uniform(ceiling / 2.0, ceiling)

    def reset(self) -> None:
        """The source worked again: the next failure starts over at ``initial``."""
        self._attempt = 0
