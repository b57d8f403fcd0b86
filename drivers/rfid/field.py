"""The radio field a simulated reader sees: which tags answer on which antenna in each round.

Shared by the protocol simulators, so that a test controls the tag population, each tag's
chance of answering a round, misreads and faults the same way whatever the wire protocol.
Deterministic for a given seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class SimTag:
    epc: bytes
    antenna: int = 1
    read_probability: float | None = None
    """None: the field's ``read_probability``."""
    rssi: int = -55
    """dBm."""


class TagField:
    def __init__(
        self,
        *,
        read_probability: float = 1.0,
        misread_rate: float = 0.0,
        seed: int | None = 0,
    ) -> None:
        self.read_probability = read_probability
        self.misread_rate = misread_rate
        """Chance that a tag frame is corrupted on the line (one byte flipped)."""
        self.rng = random.Random(seed)  # noqa: S311 (a simulation, not security)
        self.tags: dict[bytes, SimTag] = {}
        self.rounds = 0

    def place(
        self,
        epc: bytes | str,
        antenna: int = 1,
        *,
        read_probability: float | None = None,
        rssi: int = -55,
    ) -> SimTag:
        raw = bytes.fromhex(epc) if isinstance(epc, str) else bytes(epc)
        if len(raw) % 2:
            raise ValueError("an EPC is a whole number of 16-bit words")
        tag = SimTag(raw, antenna, read_probability, rssi)
        self.tags[raw] = tag
        return tag

    def remove(self, epc: bytes | str) -> None:
        raw = bytes.fromhex(epc) if isinstance(epc, str) else bytes(epc)
        self.tags.pop(raw, None)

    def epcs(self) -> set[str]:
        return {epc.hex() for epc in self.tags}

    def answering(self, antenna: int) -> list[SimTag]:
        """The tags that answer one inventory round on ``antenna``, in a random order."""
        self.rounds += 1
        default = self.read_probability
        rng = self.rng.random
        found = [
            tag
            for tag in self.tags.values()
            if tag.antenna == antenna
            and rng() < (default if tag.read_probability is None else tag.read_probability)
        ]
        self.rng.shuffle(found)
        return found

    def maybe_corrupt(self, frame: bytes) -> bytes:
        """The frame as it crosses the line: occasionally one byte flipped past the header."""
        if self.misread_rate <= 0 or self.rng.random() >= self.misread_rate or len(frame) < 3:
            return frame
        corrupted = bytearray(frame)
        i = self.rng.randrange(1, len(frame))
        corrupted[i] ^= 1 << self.rng.randrange(8)
        return bytes(corrupted)
