"""What a scanner wraps around a code's data, and how it is taken off again.

Scanners are configured to send, in this order: an optional prefix, an optional AIM symbology
identifier, the data, an optional suffix, then the terminator (CR, LF, CRLF, Enter or Tab). The
terminator is the transport's business (a line for serial, a key for HID); :class:`Framing`
handles the rest, identically for every kind of scanner.

The AIM symbology identifier (ISO/IEC 15424) is three characters: ``]``, a letter naming the
symbology, a modifier. It is the only way a scanner says *what* it read, and for GS1 codes it
carries the leading FNC1 (``]C1`` is a GS1-128, ``]d2`` a GS1 DataMatrix, ``]Q3`` a GS1 QR):
the element string that follows has the separating FNC1s as GS (0x1D) and no leading one.

FNC1 through a keyboard wedge: GS is a control character, which a wedge scanner types either as
Ctrl+] (the keymap decodes that to 0x1D) or, on request, as a printable stand-in configured in
the scanner (Honeywell "GS substitution", Zebra/Datalogic "FNC1 substitution"). ``fnc1_as``
names that stand-in so it is turned back into GS. Choose one that cannot occur in the data:
GS1 element strings use only the 82 characters of GS1 set 82, which exclude ``~ ^ # $ @ [ ]
{ } | \\ `` and the backtick, so ``fnc1_as="~"`` is safe for GS1 labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GS = "\x1d"

# AIM identifier -> symbology name (names as drivers.camera.codes uses them where both exist).
# A modifier not listed still gets stripped; its symbology is then unknown (None).
AIM_SYMBOLOGIES: dict[str, str] = {
    # Code 128: 0 standard, 1 FNC1 in first position (GS1-128), 2 FNC1 in second, 4 ISBT 128.
    "]C0": "code128",
    "]C1": "gs1-128",
    "]C2": "code128",
    "]C4": "code128",
    # EAN/UPC: UPC-A and UPC-E are sent as EAN-13 (13 digits) under ]E0.
    "]E0": "ean13",
    "]E1": "ean-addon",
    "]E2": "ean-addon",
    "]E3": "ean13",  # with its add-on appended
    "]E4": "ean8",
    **{f"]A{m}": "code39" for m in "01234567"},
    **{f"]I{m}": "itf" for m in "0123"},
    **{f"]F{m}": "codabar" for m in "01234"},
    "]G0": "code93",
    **{f"]L{m}": "pdf417" for m in "012"},
    "]e0": "gs1-databar",
    # QR: 3 and 4 have FNC1 in first position (GS1 QR), with and without ECI.
    "]Q0": "qr",
    "]Q1": "qr",
    "]Q2": "qr",
    "]Q3": "gs1-qr",
    "]Q4": "gs1-qr",
    "]Q5": "qr",
    "]Q6": "qr",
    # Data Matrix ECC 200: 2 and 5 have FNC1 in first position (GS1 DataMatrix).
    "]d0": "datamatrix",
    "]d1": "datamatrix",
    "]d2": "gs1-datamatrix",
    "]d3": "datamatrix",
    "]d4": "datamatrix",
    "]d5": "gs1-datamatrix",
    "]d6": "datamatrix",
    # Aztec: 1 and 4 have FNC1 in first position.
    "]z0": "aztec",
    "]z1": "gs1-aztec",
    "]z2": "aztec",
    "]z3": "aztec",
    "]z4": "gs1-aztec",
    "]z5": "aztec",
    **{f"]U{m}": "maxicode" for m in "0123"},
}
# The identifier a simulator sends for a symbology: the first one listed for it, except where
# scanners send another (QR Model 2 and Data Matrix ECC 200, not the obsolete variants).
AIM_IDS: dict[str, str] = {}
for _aim_id, _name in AIM_SYMBOLOGIES.items():
    AIM_IDS.setdefault(_name, _aim_id)
AIM_IDS.update({"qr": "]Q1", "datamatrix": "]d1"})

_AIM_PATTERN = re.compile(r"\][A-Za-z][0-9A-Za-z]")


class FramingError(ValueError):
    """The scan lacks what the scanner was configured to send around it."""


@dataclass(frozen=True, slots=True)
class Unwrapped:
    text: str
    symbology: str | None
    aim_id: str | None


@dataclass(frozen=True, slots=True)
class Framing:
    """How one scanner is configured to wrap its data (see the module docstring)."""

    prefix: str = ""
    suffix: str = ""
    aim_ids: bool = False
    fnc1_as: str | None = None

    def __post_init__(self) -> None:
        if self.fnc1_as == "":
            raise ValueError("fnc1_as must be a non-empty text or None")

    def unwrap(self, text: str) -> Unwrapped:
        """The data, its symbology and AIM identifier; FramingError if the framing is wrong."""
        if self.prefix:
            if not text.startswith(self.prefix):
                raise FramingError(f"configured prefix ({len(self.prefix)} chars) missing")
            text = text[len(self.prefix) :]
        if self.suffix:
            if not text.endswith(self.suffix):
                raise FramingError(f"configured suffix ({len(self.suffix)} chars) missing")
            text = text[: -len(self.suffix)]
        symbology: str | None = None
        aim_id: str | None = None
        if self.aim_ids:
            if not _AIM_PATTERN.match(text):
                raise FramingError("AIM symbology identifier missing")
            aim_id, text = text[:3], text[3:]
            symbology = AIM_SYMBOLOGIES.get(aim_id)
        if self.fnc1_as is not None:
            text = text.replace(self.fnc1_as, GS)
        return Unwrapped(text, symbology, aim_id)

    def wrap(self, data: str, symbology: str | None = None) -> str:
        """What a scanner so configured sends for ``data`` (before its terminator)."""
        aim = ""
        if self.aim_ids:
            if symbology is None or symbology not in AIM_IDS:
                raise ValueError(f"no AIM identifier known for symbology {symbology!r}")
            aim = AIM_IDS[symbology]
        if self.fnc1_as is not None:
            data = data.replace(GS, self.fnc1_as)
        return f"{self.prefix}{aim}{data}{self.suffix}"
