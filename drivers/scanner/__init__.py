"""Barcode and QR scanners: USB HID keyboard wedges (evdev) and serial line scanners.

Each driver reads one device in the background, reconnects with backoff when it goes away,
and reports every code as a :class:`ScannedCode` to ``on_scan``; a code it cannot deliver
intact (cut off, too long, undecodable, missing framing) goes to ``on_rejected`` as a
:class:`RejectedScan`; availability changes go to ``on_availability(available, reason)``.

The serial simulator (``drivers.scanner.simulator``) and the HID replay device
(``drivers.scanner.replay``) are not imported here, so the runtime never loads them. Camera
scanning lives in ``drivers.camera`` (:class:`~drivers.camera.CameraScanner`).
"""

from .events import (
    AvailabilityListener,
    RejectedScan,
    RejectListener,
    RejectReason,
    ScanListener,
    ScannedCode,
    ScannerMetrics,
)
from .framing import AIM_SYMBOLOGIES, GS, Framing, FramingError
from .hid import EventSource, HidScanner, evdev_source
from .keymap import LAYOUTS, KeyDecoder, KeyEvent
from .serial import LineTerminator, SerialScanner

__all__ = [
    "AIM_SYMBOLOGIES",
    "GS",
    "LAYOUTS",
    "AvailabilityListener",
    "EventSource",
    "Framing",
    "FramingError",
    "HidScanner",
    "KeyDecoder",
    "KeyEvent",
    "LineTerminator",
    "RejectListener",
    "RejectReason",
    "RejectedScan",
    "ScanListener",
    "ScannedCode",
    "ScannerMetrics",
    "SerialScanner",
    "evdev_source",
]
