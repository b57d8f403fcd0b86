"""One grab thread: open a capture, read frames until told to stop or until the source fails.

OpenCV reads block (and release the GIL), and a read from a hung network camera can block far
longer than anyone wants to wait; such a thread cannot be killed. So each (re)open runs in a
fresh daemon thread that owns its capture from open to release, reports what happens through a
callback, and checks a cancel flag between reads: a camera that gives up on a hung thread just
sets the flag and walks away, and the thread releases its capture when the read finally returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2

from .capture import BgrImage, OpenedCapture, SourceKind, describe, open_capture, to_bgr
from .errors import CameraError, CameraStreamError
from .settings import CameraSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Opened:
    """The source is open; frames should follow."""


@dataclass(frozen=True)
class Grabbed:
    image: BgrImage
    captured_at: float  # time.monotonic() when the read returned (or when paced out, for files)


@dataclass(frozen=True)
class Failed:
    """The thread is done with this capture; ``error`` says why. ``final``: do not reopen."""

    error: CameraError
    final: bool = False


@dataclass(frozen=True)
class Exited:
    """The thread has released its capture and is about to end."""


GrabEvent = Opened | Grabbed | Failed | Exited
Report = Callable[[GrabEvent], None]


class Grabber:
    """Owns one capture in one daemon thread; ``report`` is called from that thread."""

    def __init__(self, name: str, settings: CameraSettings, report: Report) -> None:
        self._name = name
        self._settings = settings
        self._report = report
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        """Ask the thread to stop at its next chance (a blocked read is not interrupted)."""
        self._cancelled.set()

    def _run(self) -> None:
        opened: OpenedCapture | None = None
        try:
            opened = open_capture(self._name, self._settings)
            if not self._cancelled.is_set():
                self._report(Opened())
                self._read_loop(opened)
        except CameraError as error:
            self._report(Failed(error))
        except Exception as error:  # anything OpenCV throws must still end the session cleanly
            log.exception("camera %s: grab thread failed", self._name)
            self._report(
                Failed(CameraStreamError(f"camera '{self._name}' failed in OpenCV: {error}"))
            )
        finally:
            if opened is not None:
                opened.capture.release()
            self._report(Exited())

    def _read_loop(self, opened: OpenedCapture) -> None:
        settings = self._settings
        size = (
            (settings.width, settings.height)
            if settings.width is not None and settings.height is not None
            else None
        )
        is_file = opened.source.kind is SourceKind.FILE
        interval = 1.0 / opened.file_fps if is_file and settings.realtime and opened.file_fps else 0
        due = time.monotonic()
        read_this_pass = 0
        while not self._cancelled.is_set():
            ok, image = opened.capture.read()
            if self._cancelled.is_set():
                return
            if not ok or image is None:
                if is_file and settings.loop and read_this_pass > 0:
                    # Rewinding keeps the same capture (no reopen, no gap in seq) for the demo.
                    opened.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    read_this_pass = 0
                    continue
                self._report(self._end_of_source(opened, is_file))
                return
            read_this_pass += 1
            if interval:
                # Pace a file like a camera: frame n at start + n·interval; after a hiccup
                # longer than one frame, start counting again rather than bursting to catch up.
                now = time.monotonic()
                if now - due > interval:
                    due = now
                elif self._cancelled.wait(max(0.0, due - now)):
                    return
                due += interval
            frame = to_bgr(image, size)
            frame.setflags(write=False)  # shared by every consumer of the camera
            self._report(Grabbed(frame, time.monotonic()))

    def _end_of_source(self, opened: OpenedCapture, is_file: bool) -> Failed:
        what = describe(self._name, opened.source)
        if is_file:
            return Failed(
                CameraStreamError(f"{what} reached the end of the video file (set loop to replay)"),
                final=True,
            )
        return Failed(
            CameraStreamError(
                f"{what} stopped delivering frames (stream ended or read timed out): reopening"
            )
        )
