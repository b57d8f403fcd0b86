"""What a camera is and how patiently to treat it: source address, size, pacing, timeouts."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class CameraSettings:
    """One camera source.

    ``uri`` is a V4L2 device (``/dev/video0``), a device index (``"0"``), a network stream
    (``rtsp://…``, ``http://….mjpg``) or a video file path.
    """

    uri: str
    width: int | None = None
    """Frames are delivered at this size: requested from a device, resized for other sources."""
    height: int | None = None
    fps: float | None = None
    """Requested from a device; for a realtime video file, overrides the file's own frame rate."""
    loop: bool = False
    """Video files: start again at the end (demo); otherwise the end of the file ends the camera."""
    realtime: bool = True
    """Video files: deliver at the file's frame rate, like a camera (False: as fast as decoded)."""
    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    stall_timeout_s: float = 3.0
    """Watchdog: no frame for this long and the camera is reopened."""
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.uri.strip():
            raise ValueError("camera uri is empty: give a device, stream address or video file")
        if (self.width is None) != (self.height is None):
            raise ValueError(
                f"camera {self.uri}: width and height go together: give both or neither"
            )
        for label, size in (("width", self.width), ("height", self.height)):
            if size is not None and size <= 0:
                raise ValueError(f"camera {self.uri}: {label} must be positive, not {size}")
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"camera {self.uri}: fps must be a positive number, not {self.fps}")
        for label, seconds in (
            ("open_timeout_s", self.open_timeout_s),
            ("read_timeout_s", self.read_timeout_s),
            ("stall_timeout_s", self.stall_timeout_s),
            ("backoff_initial_s", self.backoff_initial_s),
            ("backoff_max_s", self.backoff_max_s),
        ):
            if not (math.isfinite(seconds) and seconds > 0):
                raise ValueError(f"camera {self.uri}: {label} must be positive, not {seconds}")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"camera {self.uri}: backoff_max_s ({self.backoff_max_s}) is below "
                f"backoff_initial_s ({self.backoff_initial_s}): raise the maximum"
            )
