"""UHF RFID readers behind one interface (``RfidReader``), one package per wire protocol:
``r2000`` (0xA0 frames), ``chafon`` (UHFReader18), ``m100`` (BB ... 7E) and ``llrp`` (network
readers). ``epc`` decodes what a tag carries; ``field`` is the tag population simulators use.

Protocol packages are imported by whoever needs them, so a site loads only its own readers.
"""

from .reader import (
    InventoryListener,
    ReaderError,
    ReaderMetrics,
    ReaderRejected,
    ReaderTimeout,
    ReaderUnavailable,
    RfidReader,
    RoundEnd,
    TagRead,
)

__all__ = [
    "InventoryListener",
    "ReaderError",
    "ReaderMetrics",
    "ReaderRejected",
    "ReaderTimeout",
    "ReaderUnavailable",
    "RfidReader",
    "RoundEnd",
    "TagRead",
]
