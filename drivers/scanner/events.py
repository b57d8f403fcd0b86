"""What every scanner driver reports: codes, codes it had to reject, and its availability.

A scanned code may be a member's or a courier's credential: drivers log lengths and reasons,
never the text. Listeners get the text; they must not log it either.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class ScannedCode:
    """One code as a scanner delivered it, framing removed."""

    device: str
    """The scanner's configured name."""
    text: str
    """The data, with prefix, suffix and AIM identifier removed; GS1 separators as GS (0x1D)."""
    symbology: str | None
    """From the AIM symbology identifier where the scanner sends one ("gs1-128", "qr"…), else
    None: a scanner without AIM identifiers does not say what it read."""
    raw: bytes | str
    """What arrived before framing was removed: the line's bytes (serial) or the decoded
    keystrokes (HID keyboard wedge)."""
    aim_id: str | None = None
    """The AIM symbology identifier as sent ("]C1"), when the scanner sends them."""


class RejectReason(StrEnum):
    """Why a scan was not delivered."""

    TOO_LONG = "too_long"  # longer than the driver's limit: discarded up to the terminator
    INVALID_TEXT = "invalid_text"  # bytes that do not decode in the configured encoding
    BAD_FRAMING = "bad_framing"  # configured prefix, suffix or AIM identifier missing
    UNKNOWN_KEYS = "unknown_keys"  # keys the keyboard layout cannot turn into characters
    CUT_OFF = "cut_off"  # the device went away in the middle of a code
    STALE = "stale"  # a code that never got its terminator (keys stopped coming)
    EVENTS_DROPPED = "events_dropped"  # the kernel dropped input events (SYN_DROPPED)


@dataclass(frozen=True, slots=True)
class RejectedScan:
    """A scan that was read but not delivered: the kiosk should ask to scan again."""

    device: str
    reason: RejectReason
    detail: str  # for logs and operators; never contains the code's text
    raw: bytes | str  # what was read of it (may be a credential: do not log)


@dataclass
class ScannerMetrics:
    """Counters of one scanner; mutated in place, so a reference stays current."""

    scans: int = 0  # codes delivered to on_scan
    rejected: Counter[str] = field(default_factory=Counter)  # by RejectReason value
    reconnects: int = 0  # successful re-opens after the device was lost
    empty: int = 0  # terminators with nothing before them, ignored
    unknown_keys: int = 0  # key presses the layout has no character for (HID)
    repeats_ignored: int = 0  # autorepeat events of held keys, ignored (HID)
    last_error: str | None = None  # why the device was last unavailable


ScanListener = Callable[[ScannedCode], None]
RejectListener = Callable[[RejectedScan], None]
AvailabilityListener = Callable[[bool, str | None], None]
"""``(available, reason)``: the reason says why the device is unavailable (None when up)."""
