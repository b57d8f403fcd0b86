"""Opening an OpenCV capture for a camera source, and turning what it reads into BGR frames.

Three kinds of source, told apart by the uri:

* a V4L2 device (``/dev/video0``, or an index ``"0"`` meaning ``/dev/video0``): OpenCV's V4L2
  backend; the requested size and rate are set on the device and its queue is cut to one
  buffer, so a read returns a fresh image rather than one queued seconds ago;
* a network stream (``rtsp://``, ``http://``…): OpenCV's FFMPEG backend with open and read
  timeouts, so a dead camera fails an open or read instead of blocking it for ever;
* a video file: the FFMPEG backend too (tests and demos).

Everything here blocks (OpenCV calls); :mod:`.grabber` calls it from its own thread.
"""

from __future__ import annotations

import enum
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from .errors import CameraOpenError
from .settings import CameraSettings

BgrImage = npt.NDArray[np.uint8]

# A file whose container reports no usable frame rate is paced at this rate.
_FALLBACK_FILE_FPS = 25.0
_CREDENTIALS = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/]*):[^@/]*@")


class SourceKind(enum.Enum):
    DEVICE = "device"
    STREAM = "stream"
    FILE = "file"


@dataclass(frozen=True)
class Source:
    """Where a camera's frames come from, resolved from its uri."""

    kind: SourceKind
    target: str  # device path, stream address or file path
    label: str  # for messages: the target with any password masked

    @classmethod
    def from_uri(cls, uri: str) -> Source:
        uri = uri.strip()
        if uri.isdigit():
            device = f"/dev/video{int(uri)}"
            return cls(SourceKind.DEVICE, device, device)
        if uri.startswith("/dev/"):
            return cls(SourceKind.DEVICE, uri, uri)
        if uri.startswith("file://"):
            path = uri.removeprefix("file://")
            return cls(SourceKind.FILE, path, path)
        if "://" in uri:
            return cls(SourceKind.STREAM, uri, mask_password(uri))
        return cls(SourceKind.FILE, uri, uri)


def mask_password(uri: str) -> str:
    """``rtsp://admin:secret@cam/stream`` → ``rtsp://admin:***@cam/stream`` (messages and logs)."""
    return _CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", uri)


@dataclass
class OpenedCapture:
    capture: cv2.VideoCapture
    source: Source
    file_fps: float | None  # video files: the rate to pace them at


def describe(name: str, source: Source) -> str:
    return f"camera '{name}' ({source.label})"


def open_capture(name: str, settings: CameraSettings) -> OpenedCapture:
    """Open the camera's source; blocks up to ``open_timeout_s`` for a network stream.

    Raises :class:`CameraOpenError` with one sentence saying why, e.g.
    ``camera 'front' (/dev/video9) could not be opened: no such device``.
    """
    source = Source.from_uri(settings.uri)
    if source.kind is SourceKind.DEVICE:
        return OpenedCapture(_open_device(name, source, settings), source, None)
    if source.kind is SourceKind.STREAM:
        return OpenedCapture(_open_stream(name, source, settings), source, None)
    capture = _open_file(name, source)
    reported = capture.get(cv2.CAP_PROP_FPS)
    file_fps = reported if math.isfinite(reported) and 0 < reported <= 1000 else None
    return OpenedCapture(capture, source, settings.fps or file_fps or _FALLBACK_FILE_FPS)


def _open_device(name: str, source: Source, settings: CameraSettings) -> cv2.VideoCapture:
    failed = f"{describe(name, source)} could not be opened"
    if not os.path.exists(source.target):
        raise CameraOpenError(f"{failed}: no such device")
    if not os.access(source.target, os.R_OK | os.W_OK):
        raise CameraOpenError(
            f"{failed}: permission denied (add the service user to the 'video' group)"
        )
    capture = cv2.VideoCapture(source.target, cv2.CAP_V4L2)
    if not capture.isOpened():
        capture.release()
        raise CameraOpenError(
            f"{failed}: the device is busy or is not a video capture device "
            "(check that no other program uses it)"
        )
    capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    if settings.width is not None and settings.height is not None:
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, settings.width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, settings.height)
    if settings.fps is not None:
        capture.set(cv2.CAP_PROP_FPS, settings.fps)
    return capture


def _open_stream(name: str, source: Source, settings: CameraSettings) -> cv2.VideoCapture:
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        max(1, round(settings.open_timeout_s * 1000)),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        max(1, round(settings.read_timeout_s * 1000)),
    ]
    capture = cv2.VideoCapture(source.target, cv2.CAP_FFMPEG, params)
    if not capture.isOpened():
        capture.release()
        raise CameraOpenError(
            f"{describe(name, source)} could not be opened: no video stream within "
            f"{settings.open_timeout_s:g} s (check the address, credentials and network)"
        )
    return capture


def _open_file(name: str, source: Source) -> cv2.VideoCapture:
    failed = f"{describe(name, source)} could not be opened"
    path = Path(source.target)
    if not path.exists():
        raise CameraOpenError(f"{failed}: no such file")
    if path.is_dir():
        raise CameraOpenError(f"{failed}: it is a directory, not a video file")
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        raise CameraOpenError(
            f"{failed}: not a readable video file (unsupported format or truncated?)"
        )
    return capture


def to_bgr(image: np.ndarray, size: tuple[int, int] | None = None) -> BgrImage:
    """A read image as 3-channel BGR uint8, resized to ``size`` (width, height) if given.

    Grey images (a near-infrared camera) keep three channels so every consumer sees one shape.
    """
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if size is not None and (image.shape[1], image.shape[0]) != size:
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    bgr: BgrImage = np.ascontiguousarray(image, dtype=np.uint8)
    return bgr
