"""Cameras (V4L2 devices, RTSP/HTTP streams, video files) and codes read from their frames.

:class:`Camera` keeps the latest frame of one source, with a watchdog that reopens a stalled
camera; :class:`CodeReader` decodes QR codes and barcodes in a frame; :mod:`.simulator` is an
MJPEG IP camera on loopback for tests and demos. :class:`CameraScanner` turns a camera into a
code scanner that reports each code once while it stays in view.
"""

from .codes import CodeReader, DecodedCode
from .errors import CameraError, CameraOpenError, CameraStreamError, CameraTimeout
from .scanner import CameraScan, CameraScanner
from .settings import CameraSettings
from .source import Camera, CameraMetrics, Frame

__all__ = [
    "Camera",
    "CameraError",
    "CameraMetrics",
    "CameraOpenError",
    "CameraScan",
    "CameraScanner",
    "CameraSettings",
    "CameraStreamError",
    "CameraTimeout",
    "CodeReader",
    "DecodedCode",
    "Frame",
]
