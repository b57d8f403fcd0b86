"""QR codes and barcodes in camera frames (pickup codes, parcel labels, product barcodes).

Every symbology is decoded with zxing-cpp, QR included. OpenCV's ``QRCodeDetector`` was
measured against it on 168 synthetic camera frames (QR pasted on a noisy background; plain,
rotated 15° and 90°, perspective-warped, blurred, low-contrast and small; 640x480):
``detectAndDecodeMulti`` decoded 17 at 13.6 ms a frame, ``detectAndDecode`` 80 at 17 ms,
``QRCodeDetectorAruco`` 108 at 9.5 ms, zxing-cpp 153 at 1.0 ms, and OpenCV found none that
zxing-cpp missed. A second zxing-cpp pass on the frame upscaled 2x brought it to 160; it also
recovers 1-D codes at about 1.5 pixels per module. OpenCV's ``barcode.BarcodeDetector`` is not
used: it decoded none of the synthetic 1-D labels tried here (opencv-python-headless 5.0), and
has been seen reading a Code128 label as a UPC-A.

zxing-cpp is only asked for the configured symbologies, and each result is checked twice
against them (its format, and the AIM symbology identifier the decoder read from the bars), so
a Code128 of digits is reported as ``code128`` and never as an EAN/UPC reading of it.

:meth:`CodeReader.read` is CPU-bound (a few ms for 640x480): call it from a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import zxingcpp

log = logging.getLogger(__name__)

Corners = tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class DecodedCode:
    symbology: str  # "qr", "code128", "code39", "ean13", "ean8", "upca", "upce", "itf"…
    text: str
    corners: tuple[tuple[float, float], ...]  # top-left, top-right, bottom-right, bottom-left


@dataclass(frozen=True)
class _Symbology:
    formats: tuple[zxingcpp.BarcodeFormat, ...]  # what zxing-cpp is asked to look for
    reported_as: tuple[zxingcpp.BarcodeFormat, ...]  # formats zxing-cpp may report it as
    aim_prefix: str  # AIM symbology identifier: "]C" is Code 128, "]E" EAN/UPC…


_SYMBOLOGIES: dict[str, _Symbology] = {
    "qr": _Symbology(
        (zxingcpp.BarcodeFormat.QRCode,),
        (
            zxingcpp.BarcodeFormat.QRCode,
            zxingcpp.BarcodeFormat.QRCodeModel1,
            zxingcpp.BarcodeFormat.QRCodeModel2,
        ),
        "]Q",
    ),
    "code128": _Symbology(
        (zxingcpp.BarcodeFormat.Code128,), (zxingcpp.BarcodeFormat.Code128,), "]C"
    ),
    "code39": _Symbology(
        (zxingcpp.BarcodeFormat.Code39,),
        (
            zxingcpp.BarcodeFormat.Code39,
            zxingcpp.BarcodeFormat.Code39Std,
            zxingcpp.BarcodeFormat.Code39Ext,
        ),
        "]A",
    ),
    "ean13": _Symbology(
        (zxingcpp.BarcodeFormat.EAN13,),
        (zxingcpp.BarcodeFormat.EAN13, zxingcpp.BarcodeFormat.ISBN),
        "]E",
    ),
    "ean8": _Symbology((zxingcpp.BarcodeFormat.EAN8,), (zxingcpp.BarcodeFormat.EAN8,), "]E"),
    "upca": _Symbology((zxingcpp.BarcodeFormat.UPCA,), (zxingcpp.BarcodeFormat.UPCA,), "]E"),
    "upce": _Symbology((zxingcpp.BarcodeFormat.UPCE,), (zxingcpp.BarcodeFormat.UPCE,), "]E"),
    "itf": _Symbology(
        (zxingcpp.BarcodeFormat.ITF,),
        (zxingcpp.BarcodeFormat.ITF, zxingcpp.BarcodeFormat.ITF14),
        "]I",
    ),
    "datamatrix": _Symbology(
        (zxingcpp.BarcodeFormat.DataMatrix,), (zxingcpp.BarcodeFormat.DataMatrix,), "]d"
    ),
}
SYMBOLOGIES = tuple(_SYMBOLOGIES)

# The upscaled second pass is skipped for frames this wide or wider (cost grows with area).
_UPSCALE_MAX_WIDTH = 1280


class CodeReader:
    """Decodes the configured symbologies in BGR (or grey) camera frames.

    ``linear`` names the zxing-read symbologies besides QR: the 1-D ones, and ``datamatrix``.
    ``retry_upscaled``: when a frame yields nothing, read it again at twice the size, which
    recovers codes whose modules are under about 2 pixels (~5 ms more per empty 640x480 frame).
    """

    def __init__(
        self,
        *,
        qr: bool = True,
        linear: Sequence[str] = ("code128", "code39", "ean13", "ean8", "upca"),
        retry_upscaled: bool = True,
    ) -> None:
        if isinstance(linear, str):
            raise TypeError(f"linear must be a sequence of symbology names, not {linear!r}")
        unknown = [name for name in linear if name not in _SYMBOLOGIES or name == "qr"]
        if unknown:
            raise ValueError(
                f"unknown barcode symbology {unknown[0]!r}: use some of "
                f"{', '.join(name for name in SYMBOLOGIES if name != 'qr')} (QR is the qr flag)"
            )
        self.symbologies: tuple[str, ...] = (("qr",) if qr else ()) + tuple(dict.fromkeys(linear))
        self._retry_upscaled = retry_upscaled
        formats = [fmt for name in self.symbologies for fmt in _SYMBOLOGIES[name].formats]
        self._formats = zxingcpp.BarcodeFormats(formats) if formats else None
        self._by_format = {
            fmt: name for name in self.symbologies for fmt in _SYMBOLOGIES[name].reported_as
        }

    def read(self, frame_bgr: np.ndarray) -> list[DecodedCode]:
        """Every configured code in the frame, once each; [] if there is none."""
        if self._formats is None:
            return []
        image = _as_readable(frame_bgr)
        codes = self._decode(image, scale=1.0)
        if not codes and self._retry_upscaled and image.shape[1] < _UPSCALE_MAX_WIDTH:
            larger = cv2.resize(image, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
            codes = self._decode(larger, scale=0.5)
        return codes

    def _decode(self, image: np.ndarray, scale: float) -> list[DecodedCode]:
        assert self._formats is not None
        found: dict[tuple[str, str], DecodedCode] = {}
        for barcode in zxingcpp.read_barcodes(image, formats=self._formats):
            code = self._verified(barcode, scale)
            if code is not None:
                found.setdefault((code.symbology, code.text), code)
        return list(found.values())

    def _verified(self, barcode: zxingcpp.Barcode, scale: float) -> DecodedCode | None:
        """The barcode as a DecodedCode if it is what it claims to be and was asked for."""
        name = self._by_format.get(barcode.format)
        if name is None or not barcode.valid:
            log.debug("ignoring unrequested %s reading %r", barcode.format, barcode.text)
            return None
        if not barcode.symbology_identifier.startswith(_SYMBOLOGIES[name].aim_prefix):
            log.debug(
                "ignoring %s reading %r with symbology identifier %s",
                barcode.format,
                barcode.text,
                barcode.symbology_identifier,
            )
            return None
        text = barcode.text
        if name == "ean13" and "upca" in self.symbologies and text.startswith("0"):
            # A UPC-A is an EAN-13 with a leading 0 (the bars are the same): asked for both,
            # zxing-cpp reports EAN-13, but the label says UPC-A.
            name = "upca"
        if name == "upca" and len(text) == 13 and text.startswith("0"):
            text = text[1:]  # zxing-cpp gives the GTIN-13; the printed UPC-A has 12 digits
        elif name == "upce":
            extra = barcode.extra
            printed = extra.get("UPCE") if isinstance(extra, dict) else None
            text = printed if isinstance(printed, str) else text  # 8 digits, not the GTIN-13
        position = barcode.position
        corners = tuple(
            (point.x * scale, point.y * scale)
            for point in (
                position.top_left,
                position.top_right,
                position.bottom_right,
                position.bottom_left,
            )
        )
        return DecodedCode(symbology=name, text=text, corners=corners)


def _as_readable(frame: np.ndarray) -> np.ndarray:
    """A C-contiguous uint8 BGR or grey image that zxing-cpp accepts."""
    if frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8 (BGR or grey), not {frame.dtype}")
    if frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    elif frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    elif not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)):
        raise ValueError(f"frame must be H x W x 3 (BGR) or H x W (grey), not {frame.shape}")
    return np.ascontiguousarray(frame)
