"""Where scans meet the kiosk flows: each kiosk reads the codes scanned at it, while they are fresh.

A scan is kept for a short while only: a kiosk screen that asks for scans sees the ones made
since it last asked, never a code someone showed a minute ago to a screen that was not
listening. Scans are kept in memory, never in the database: a member QR or a pickup code is
something typed, not a state change.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from edge.clock import Clock

log = logging.getLogger(__name__)

# A scan older than this is no longer handed to a kiosk screen.
FRESH_FOR_S = 10.0
# Scans remembered per kiosk (a flood of scans cannot grow memory).
KEPT_PER_KIOSK = 20


@dataclass(frozen=True, slots=True)
class Scan:
    seq: int  # increases across the site; a kiosk asks for scans after the last it saw
    kiosk: str
    device: str
    symbology: str | None  # None where the device does not say (a keyboard-wedge scanner)
    text: str
    at: datetime


@dataclass(frozen=True)
class Outcome:
    """What a kiosk flow made of a scan."""

    flow: str | None
    status: str
    """``accepted``, ``refused`` (the code was wrong for the flow, or unreadable) or
    ``ignored`` (no flow waited for it)."""
    code: str | None = None
    message: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


class ScanHub:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._seq = 0
        self._recent: dict[str, deque[Scan]] = {}
        self._changed = asyncio.Event()
        self.counts: Counter[tuple[str, str]] = Counter()
        """Scans by (device, symbology), for metrics."""
        self.listeners: list[Callable[[Scan], None]] = []
        """Told of every scan as it is published (the kiosk flows' router)."""
        self.outcomes: dict[int, Outcome] = {}
        """What the kiosk flow made of each kept scan, by ``seq``."""
        self.outcome_counts: Counter[tuple[str, str]] = Counter()
        """Scans by (flow, status), for metrics."""

    @property
    def last_seq(self) -> int:
        return self._seq

    def publish(self, kiosk: str, device: str, symbology: str | None, text: str) -> Scan:
        self._seq += 1
        scan = Scan(self._seq, kiosk, device, symbology, text, self.clock.now())
        self._recent.setdefault(kiosk, deque(maxlen=KEPT_PER_KIOSK)).append(scan)
        self.counts[(device, symbology or "unknown")] += 1
        # The code itself may be a member's or a pickup credential: never logged.
        log.info(
            "code scanned",
            extra={"kiosk": kiosk, "device": device, "symbology": symbology, "length": len(text)},
        )
        self._changed.set()
        self._changed = asyncio.Event()
        for listener in self.listeners:
            listener(scan)
        return scan

    def reject(self, kiosk: str, device: str, reason: str) -> Scan:
        """A scan the device could not read whole (cut off, garbled, too long): the screen
        says "scan again", and nothing is acted on."""
        self._seq += 1
        scan = Scan(self._seq, kiosk, device, None, "", self.clock.now())
        self._recent.setdefault(kiosk, deque(maxlen=KEPT_PER_KIOSK)).append(scan)
        log.warning("scan not readable", extra={"kiosk": kiosk, "device": device, "reason": reason})
        self.record_outcome(
            scan, Outcome(None, "refused", reason, "The code could not be read: scan it again.")
        )
        return scan

    def record_outcome(self, scan: Scan, outcome: Outcome) -> None:
        self.outcomes[scan.seq] = outcome
        self.outcome_counts[(outcome.flow or "none", outcome.status)] += 1
        kept = {s.seq for scans in self._recent.values() for s in scans}
        for seq in [seq for seq in self.outcomes if seq not in kept]:
            del self.outcomes[seq]
        self._changed.set()
        self._changed = asyncio.Event()

    def fresh(self, kiosk: str, after: int) -> list[Scan]:
        oldest = self.clock.now() - timedelta(seconds=FRESH_FOR_S)
        return [s for s in self._recent.get(kiosk, ()) if s.seq > after and s.at >= oldest]

    async def wait(self, kiosk: str, after: int, timeout: float) -> list[Scan]:  # noqa: ASYNC109
        """Fresh scans at ``kiosk`` after ``after``; waits up to ``timeout`` s for one."""
        try:
            async with asyncio.timeout(timeout):
                while not (scans := self.fresh(kiosk, after)):
                    await self._changed.wait()
                return scans
        except TimeoutError:
            return []
