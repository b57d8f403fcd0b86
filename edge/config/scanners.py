"""Configuration of barcode/QR scanners: which kiosk each one serves, and how it talks."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from edge.config.facepay import CameraConfig, known_codes
from edge.config.types import Strict

Name = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class _Scanner(Strict):
    name: str = Name
    kiosk: str = Name
    """The kiosk whose screen its scans go to (one of ``kiosks``)."""


class SerialScannerConfig(_Scanner):
    """A scanner in USB-CDC or RS-232 mode: one line per code."""

    kind: Literal["serial"]
    port: str = Field(min_length=1)
    """``/dev/ttyACM0``, or better a udev name (see deploy/99-edge.rules)."""
    baudrate: int = Field(default=9600, gt=0)
    terminator: Literal["cr", "lf", "crlf"] = "cr"
    prefix: str = ""
    suffix: str = ""
    """Set in the scanner's own configuration; stripped from every code."""
    aim_ids: bool = False
    """The scanner sends the AIM symbology identifier first (``]C1``…): the symbology is known."""


class HidScannerConfig(_Scanner):
    """A scanner in USB keyboard (HID) mode: read and grabbed through evdev."""

    kind: Literal["hid"]
    device: str = Field(min_length=1)
    """``/dev/input/by-id/usb-…-event-kbd`` (stable across reboots and ports)."""
    layout: Literal["us", "de", "fr"] = "us"
    """The keyboard layout the scanner is set to type in."""
    terminator: Literal["enter", "tab"] = "enter"


class CameraScannerConfig(_Scanner):
    """A camera used only to read codes (the face camera reads them with ``facepay``'s
    ``terminals[].codes``)."""

    kind: Literal["camera"]
    camera: CameraConfig
    codes: list[str] = Field(default_factory=lambda: ["qr"], min_length=1)

    _codes = field_validator("codes")(known_codes)


ScannerConfig = Annotated[
    SerialScannerConfig | HidScannerConfig | CameraScannerConfig, Field(discriminator="kind")
]
