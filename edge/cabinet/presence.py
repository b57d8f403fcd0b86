"""Tag presence decided over rounds: a tag is present when seen in at least k of the last m.

One missed read is not a sale, and one ghost read is not stock. Each tag keeps its last m
rounds as the bits of an int (newest in bit 0), so a round costs one shift per known tag.
"""

from __future__ import annotations


class PresenceTracker:
    def __init__(self, k: int, m: int) -> None:
        if not 1 <= k <= m:
            raise ValueError(f"need 1 <= k <= m, got k={k} m={m}")
        self.k = k
        self.m = m
        self._mask = (1 << m) - 1
        self._history: dict[str, int] = {}
        self.seen: set[str] = set()
        """Tags read in the round under way; readers add to it directly (the hot path)."""
        self.rounds = 0
        """Rounds completed since the last reset."""
        self._present: frozenset[str] = frozenset()

    @property
    def ready(self) -> bool:
        """A full window of m rounds is behind every decision."""
        return self.rounds >= self.m

    @property
    def present(self) -> frozenset[str]:
        return self._present

    def recently_seen(self, epc: str) -> bool:
        """Seen at least once in the last m rounds."""
        return epc in self._history

    def end_round(self) -> None:
        seen, self.seen = self.seen, set()
        mask, k = self._mask, self.k
        history: dict[str, int] = {}
        present: list[str] = []
        for epc, bits in self._history.items():
            bits = ((bits << 1) | (epc in seen)) & mask
            if bits:
                history[epc] = bits
                if bits.bit_count() >= k:
                    present.append(epc)
        for epc in seen.difference(self._history):
            history[epc] = 1
            if k == 1:
                present.append(epc)
        self._history = history
        self._present = frozenset(present)
        self.rounds += 1

    def reset(self) -> None:
        """Forget every round: what was read before (with the door open) no longer counts."""
        self._history = {}
        self.seen = set()
        self._present = frozenset()
        self.rounds = 0
